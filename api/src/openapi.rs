//! `GET /openapi.json`: the API as an OpenAPI 3.1 document, written out by hand beside the
//! routes it describes (the serve tests check every route listed here answers).

use axum::Json;

use crate::server::BODY_IDLE_TIMEOUT;

pub async fn document() -> Json<serde_json::Value> {
    let error = serde_json::json!({ "$ref": "#/components/schemas/Error" });
    let body_stopped = serde_json::json!({
        "description": format!("the body stopped coming for {} s", BODY_IDLE_TIMEOUT.as_secs()),
        "content": { "application/json": { "schema": error } }
    });
    let filters = serde_json::json!([
        { "name": "label", "in": "query", "schema": { "type": "string" }, "description": "Only this label." },
        { "name": "decision", "in": "query", "schema": { "enum": ["auto", "review"] } },
        { "name": "since", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "Processed at or after (RFC 3339)." },
        { "name": "until", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "Processed before (RFC 3339)." },
        { "name": "prefix", "in": "query", "schema": { "type": "string" }, "description": "Object keys starting with this." }
    ]);
    let mut paged = filters.as_array().unwrap().clone();
    // One claim per request, for all its photos (multipart: text fields of the same names).
    let claim = serde_json::json!([
        { "name": "expected_label", "in": "query", "schema": { "type": "string" }, "description": "The class the customer says they return; a photo the model confidently sees as another goes to review as wrong_item." },
        { "name": "sku", "in": "query", "schema": { "type": "string" }, "description": "The product the customer says they return." },
        { "name": "rma_id", "in": "query", "schema": { "type": "string" }, "description": "The return's id in the shop's system." }
    ]);
    let with_claim = |name: serde_json::Value| {
        let mut parameters = vec![name];
        parameters.extend(claim.as_array().unwrap().iter().cloned());
        parameters
    };
    paged.push(serde_json::json!({ "name": "page", "in": "query", "schema": { "type": "integer", "minimum": 1, "default": 1 } }));
    paged.push(serde_json::json!({ "name": "per_page", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500, "default": 50 } }));
    let errors = serde_json::json!({
        "200": { "description": "ok" },
        "400": { "description": "Bad query", "content": { "application/json": { "schema": error } } },
        "401": { "description": "Missing or wrong bearer token", "content": { "application/json": { "schema": error } } }
    });
    Json(serde_json::json!({
        "openapi": "3.1.0",
        "info": { "title": "AutoRMA", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Results of the returned-item photo classifier. When the server has a token, every route but /healthz (and the returns-bench page at /, which holds no data) needs `Authorization: Bearer <token>`." },
        "paths": {
            "/healthz": { "get": { "summary": "The process answers", "security": [], "responses": { "200": { "description": "ok" } } } },
            "/readyz": { "get": { "summary": "The results index has caught up", "responses": { "200": { "description": "ready" }, "503": { "description": "catching up" } } } },
            "/v1/model": { "get": { "summary": "The model: name, version, sha256, execution provider", "responses": { "200": { "description": "the model" } } } },
            "/v1/results": { "get": { "summary": "Results, newest first, filtered and paged", "parameters": paged.clone(), "responses": errors.clone() } },
            "/v1/results.csv": { "get": { "summary": "The same filters as /v1/results, every page, as CSV", "parameters": filters, "responses": errors.clone() } },
            "/v1/review": { "get": { "summary": "The review queue: decision `review`, not corrected yet, newest first", "parameters": paged.clone(), "responses": errors.clone() } },
            "/v1/review/{key}": { "post": { "summary": "A person's label for the photo (stored as a correction beside its result; it leaves the queue)",
                "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" } }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["label"],
                    "properties": { "label": { "type": "string", "description": "One of the model's classes." }, "by": { "type": "string" } } } } } },
                "responses": { "200": { "description": "the correction record" }, "400": { "description": "not one of the model's classes, or bad JSON", "content": { "application/json": { "schema": error } } },
                               "404": { "description": "no result for that key", "content": { "application/json": { "schema": error } } } } } },
            "/v1/uploads": { "post": { "summary": "Photos into the inbox (multipart: any number of files; or one raw image body named by ?name=); they flow through the pipeline like any other",
                "parameters": with_claim(serde_json::json!({ "name": "name", "in": "query", "schema": { "type": "string" }, "description": "File name of a raw upload." })),
                "requestBody": { "required": true, "content": { "multipart/form-data": {}, "image/jpeg": {}, "image/png": {}, "image/webp": {} } },
                "responses": { "200": { "description": "each photo's key" },
                               "409": { "description": "no inbox (started without --inbox)", "content": { "application/json": { "schema": error } } },
                               "408": body_stopped,
                               "413": { "description": "over the body limit, the photo count or the pipeline's file limit", "content": { "application/json": { "schema": error } } },
                               "415": { "description": "not a jpeg, png or webp image", "content": { "application/json": { "schema": error } } } } } },
            "/v1/classify": { "post": { "summary": "Photos classified in the request (multipart: any number of files; or one raw image body named by ?name=); they share the pipeline's micro-batches and model session; nothing is stored",
                "parameters": with_claim(serde_json::json!({ "name": "name", "in": "query", "schema": { "type": "string" }, "description": "File name of a raw photo." })),
                "requestBody": { "required": true, "content": { "multipart/form-data": {}, "image/jpeg": {}, "image/png": {}, "image/webp": {} } },
                "responses": { "200": { "description": "`results` in the request's order (each: name, label, confidence, decision, review_reason, claim (the request's claim and its check), probabilities, model_version, batch_size, timings_ms; or name and error when that photo failed) and `model`" },
                               "408": body_stopped,
                               "413": { "description": "over the body limit, the photo count or the pipeline's file limit, or the photos over --max-request-pixels together", "content": { "application/json": { "schema": error } } },
                               "415": { "description": "not a jpeg, png or webp image", "content": { "application/json": { "schema": error } } },
                               "422": { "description": "every photo failed to decode", "content": { "application/json": { "schema": error } } },
                               "503": { "description": "the server is shutting down", "content": { "application/json": { "schema": error } } } } } },
            "/v1/events": { "get": { "summary": "Server-sent events: one `result` event (the Result JSON) per result as it is indexed, one `dead_letter` event (the DlqRecord JSON) per photo that failed",
                "responses": { "200": { "description": "text/event-stream", "content": { "text/event-stream": {} } },
                               "503": { "description": "--max-event-streams streams are open already", "content": { "application/json": { "schema": error } } } } } },
            "/v1/catalogue/{sku}": { "get": { "summary": "A product's catalogue photo (the product check compares returns claiming the SKU with it)",
                "parameters": [{ "name": "sku", "in": "path", "required": true, "schema": { "type": "string" } }],
                "responses": { "200": { "description": "the photo" }, "404": { "description": "no catalogue photo for that SKU", "content": { "application/json": { "schema": error } } },
                               "409": { "description": "the server has no catalogue", "content": { "application/json": { "schema": error } } } } } },
            "/v1/photos/{key}": { "get": { "summary": "The photo of a result (the page's thumbnails), from the inbox",
                "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" }, "description": "The object key, slashes included." }],
                "responses": { "200": { "description": "the photo", "content": { "image/jpeg": {}, "image/png": {}, "image/webp": {} } },
                               "404": { "description": "no result for that key, or the photo is gone", "content": { "application/json": { "schema": error } } },
                               "409": { "description": "the server does not know the inbox (started without --inbox)", "content": { "application/json": { "schema": error } } } } } },
            "/v1/results/{key}": { "get": { "summary": "One photo's result", "parameters": [{ "name": "key", "in": "path", "required": true, "schema": { "type": "string" }, "description": "The object key, slashes included." }],
                "responses": { "200": { "description": "the Result, with `correction` (the CorrectionRecord) when a person gave one" }, "404": { "description": "no result for that key", "content": { "application/json": { "schema": error } } } } } }
        },
        "components": {
            "schemas": { "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": { "code": { "type": "string" }, "message": { "type": "string" } }, "required": ["code", "message"] } } } },
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } }
        },
        "security": [{ "bearer": [] }]
    }))
}

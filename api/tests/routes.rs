//! The routes, driven in-process (`ServiceExt::oneshot`, no socket): a real results index
//! (SQLite in a temporary folder), a real model (the classifier's tiny5 fixture on ONNX
//! Runtime), and the in-memory object store in place of the bucket. The binary's
//! `tests/serve.rs` drives the process: the index fed from an output folder and rebuilt, the
//! pipeline it runs on `--inbox`, the server's stop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use autorma_api::feed::FeedStatus;
use autorma_api::stores::{Photos, Stores};
use autorma_api::{ServeState, router};
use autorma_classifier::catalogue::Catalogue;
use autorma_classifier::inference::{RuntimeConfig, default_library_path};
use autorma_classifier::serving::{ModelHandle, ServingModel};
use autorma_classifier::{PipelineConfig, serve_requests};
use autorma_core::{Claim, LocalStore, MemoryStore, ObjectStore, ResultRecord, Store};
use autorma_registry::ModelPackage;
use autorma_sink::index::ResultIndex;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use tower::ServiceExt;

const BUCKET: &str = "returns";
const TOKEN: &str = "s3cret";

/// A server's state and what the tests look at behind it.
struct Server {
    state: Arc<ServeState>,
    memory: MemoryStore,
    _index_dir: tempfile::TempDir,
}

struct Options {
    token: Option<&'static str>,
    /// Whether the server has somewhere for photos (an inbox).
    photos: bool,
    corrections: Option<Store>,
}

impl Default for Options {
    fn default() -> Self {
        Self { token: None, photos: true, corrections: None }
    }
}

async fn server(options: Options) -> Server {
    let index_dir = tempfile::tempdir().unwrap();
    let index = Arc::new(ResultIndex::open(&index_dir.path().join("index.sqlite")).unwrap());
    let library = std::env::var_os("AUTORMA_ORT_LIBRARY").map(PathBuf::from).unwrap_or_else(default_library_path);
    let config = PipelineConfig::new(RuntimeConfig::new(library));
    let package = Arc::new(
        ModelPackage::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../classifier/tests/fixtures/tiny5")).unwrap(),
    );
    let serving = ServingModel::load(package, &config.runtime, config.limits, 1).unwrap();
    let (requests, inbox) = autorma_classifier::requests(ModelHandle::new(serving), None, 2);
    tokio::spawn(async move { serve_requests(inbox, &config, Arc::default()).await });
    let memory = MemoryStore::default();
    let store = Store::Memory(memory.clone());
    let stores = Stores {
        bucket: BUCKET.into(),
        photos: options.photos.then(|| Photos { store: store.clone(), upload_prefix: "inbox/".into() }),
        catalogue: Some(Arc::new(Catalogue::in_bucket(store.clone(), BUCKET.into()))),
        corrections: options.corrections.unwrap_or(store),
        broker: None,
    };
    let (events, _) = tokio::sync::broadcast::channel(16);
    let state = Arc::new(ServeState {
        index,
        stores,
        max_body_bytes: 1 << 20,
        max_request_pixels: 100_000_000,
        events,
        requests,
        cors_origins: Vec::new(),
        token: options.token.map(String::from),
        feed: Arc::new(FeedStatus::default()),
        stopping: tokio::sync::watch::channel(false).1,
        event_streams: autorma_api::EventStreams::new(64),
        allowed_hosts: autorma_api::allowed_hosts("127.0.0.1:8080".parse().unwrap(), &[]),
    });
    Server { state, memory, _index_dir: index_dir }
}

impl Server {
    async fn send(&self, request: Request<Body>) -> (StatusCode, Bytes) {
        let response = router(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.send(Request::get(path).body(Body::empty()).unwrap()).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, content_type: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        let request = Request::post(path).header(header::CONTENT_TYPE, content_type).body(body.into()).unwrap();
        let (status, body) = self.send(request).await;
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn index(&self, records: &[ResultRecord]) {
        self.state.index.upsert(records).unwrap();
    }
}

/// A result as a worker writes it.
fn result(key: &str, label: &str, confidence: f32, decision: &str, minute: u32) -> ResultRecord {
    serde_json::from_value(json!({
        "item": { "bucket": BUCKET, "key": key, "etag": "0123abcd" },
        "label": label,
        "confidence": confidence,
        "probabilities": { label: confidence },
        "decision": decision,
        "model": { "name": "tiny5", "version": "1", "sha256": "00" },
        "execution_provider": "cpu",
        "timings_ms": { "fetch": 1.0, "decode": 2.0, "batch_wait": 0.0, "infer": 3.0, "sink": 1.0 },
        "processed_at": format!("2026-12-06T10:{minute:02}:00Z"),
    }))
    .unwrap()
}

fn png(color: [u8; 3]) -> Vec<u8> {
    let image = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(48, 48, image::Rgb(color)));
    autorma_classifier::testsuite::encode(&image, image::ImageFormat::Png, None)
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("not a JSON error: {body}"))
}

fn keys(page: &Value) -> Vec<&str> {
    page["items"].as_array().unwrap().iter().map(|r| r["item"]["key"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn queries_filter_and_page_the_index_and_refuse_bad_parameters() {
    let server = server(Options::default()).await;
    server.index(&[
        result("inbox/a.jpg", "watches", 0.99, "auto", 1),
        result("inbox/b.jpg", "watches", 0.41, "review", 2),
        result("inbox/c.jpg", "tops", 0.97, "auto", 3),
        result("inbox/d.jpg", "shirts", 0.52, "review", 4),
        result("other/e.jpg", "tops", 0.95, "auto", 5),
    ]);

    let (status, page) = server.get("/v1/results").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 5);
    assert_eq!(
        keys(&page),
        ["other/e.jpg", "inbox/d.jpg", "inbox/c.jpg", "inbox/b.jpg", "inbox/a.jpg"],
        "newest first"
    );
    assert_eq!(keys(&server.get("/v1/results?label=watches").await.1), ["inbox/b.jpg", "inbox/a.jpg"]);
    assert_eq!(keys(&server.get("/v1/results?decision=review").await.1), ["inbox/d.jpg", "inbox/b.jpg"]);
    assert_eq!(keys(&server.get("/v1/results?prefix=other/").await.1), ["other/e.jpg"]);
    assert_eq!(keys(&server.get("/v1/results?since=2026-12-06T10:04:00Z").await.1), ["other/e.jpg", "inbox/d.jpg"]);
    let (_, second) = server.get("/v1/results?per_page=2&page=2").await;
    assert_eq!((keys(&second), second["total"].clone()), (vec!["inbox/c.jpg", "inbox/b.jpg"], json!(5)));

    let (status, one) = server.get("/v1/results/inbox/c.jpg").await;
    assert_eq!((status, one["label"].as_str()), (StatusCode::OK, Some("tops")));

    for (path, status, code) in [
        ("/v1/results/inbox/nope.jpg", StatusCode::NOT_FOUND, "not_found"),
        ("/v1/results?decision=maybe", StatusCode::BAD_REQUEST, "bad_request"),
        ("/v1/results?per_page=0", StatusCode::BAD_REQUEST, "bad_request"),
        ("/v1/results?since=yesterday", StatusCode::BAD_REQUEST, "bad_request"),
        ("/v1/results?colour=red", StatusCode::BAD_REQUEST, "bad_request"),
        ("/v2/nothing", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, body) = server.get(path).await;
        assert_eq!((got, error_code(&body)), (status, code), "{path}: {body}");
    }

    let (status, csv) = server.send(Request::get("/v1/results.csv?label=tops").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csv = String::from_utf8(csv.to_vec()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("key,etag,label,confidence,decision,"), "{}", lines[0]);
    assert_eq!(lines.len(), 3, "{csv}");
}

#[tokio::test]
async fn the_token_guards_every_route_but_liveness_and_the_page() {
    let server = server(Options { token: Some(TOKEN), ..Options::default() }).await;
    let get = |path: &str, authorization: Option<&str>| {
        let mut request = Request::get(path);
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        server.send(request.body(Body::empty()).unwrap())
    };
    assert_eq!(get("/healthz", None).await.0, StatusCode::OK);
    assert_eq!(get("/", None).await.0, StatusCode::OK, "the page holds no data");
    for path in ["/v1/results", "/v1/review", "/v1/model", "/openapi.json", "/readyz", "/v2/nothing"] {
        let (status, body) = get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error_code(&serde_json::from_slice(&body).unwrap()), "unauthorized");
        assert_eq!(get(path, Some("Bearer wrong!")).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    assert_eq!(get("/v1/results", Some(&format!("Bearer {TOKEN}"))).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_correction_is_stored_then_indexed_and_leaves_the_review_queue() {
    let server = server(Options::default()).await;
    server.index(&[
        result("inbox/a.jpg", "watches", 0.41, "review", 1),
        result("inbox/b.jpg", "tops", 0.52, "review", 2),
        result("inbox/c.jpg", "tops", 0.97, "auto", 3),
    ]);
    let (_, queue) = server.get("/v1/review").await;
    assert_eq!(keys(&queue), ["inbox/b.jpg", "inbox/a.jpg"]);

    let json = "application/json";
    let (status, body) = server.post("/v1/review/inbox/a.jpg", json, r#"{"label": "sandals"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "not one of the classes");
    let (status, body) = server.post("/v1/review/inbox/zzz.jpg", json, r#"{"label": "tops"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = server.post("/v1/review/inbox/a.jpg", json, r#"{"label": "tops", "who": "x"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "unknown fields are refused");
    assert!(server.memory.list(BUCKET, "corrections/").await.unwrap().is_empty(), "nothing stored yet");

    let (status, correction) = server.post("/v1/review/inbox/a.jpg", json, r#"{"label": "tops", "by": "ann"}"#).await;
    assert_eq!(status, StatusCode::OK, "{correction}");
    assert_eq!((correction["label"].as_str(), correction["model_label"].as_str()), (Some("tops"), Some("watches")));
    let stored = server.memory.get(BUCKET, "corrections/inbox/a.jpg.json", 1 << 20).await.unwrap();
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!((stored["label"].as_str(), stored["by"].as_str()), (Some("tops"), Some("ann")));
    assert_eq!(keys(&server.get("/v1/review").await.1), ["inbox/b.jpg"], "the corrected photo left the queue");

    // A result `run --bucket shop` recorded, served by a server that names its bucket otherwise:
    // the correction goes to the server's store all the same.
    let mut shop = result("inbox/s.jpg", "tops", 0.3, "review", 5);
    shop.item.bucket = "shop".into();
    server.index(&[shop]);
    let (status, body) = server.post("/v1/review/inbox/s.jpg", json, r#"{"label": "shirts"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(server.memory.get(BUCKET, "corrections/inbox/s.jpg.json", 1 << 20).await.is_ok());
}

#[tokio::test]
async fn a_correction_that_cannot_be_stored_is_not_indexed() {
    // Corrections go to a folder that cannot be created (a file is in its way).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out"), b"a file").unwrap();
    let corrections = Store::Local(LocalStore::new(BUCKET, dir.path().join("out")));
    let server = server(Options { corrections: Some(corrections), ..Options::default() }).await;
    server.index(&[result("inbox/a.jpg", "watches", 0.41, "review", 1)]);
    let (status, body) = server.post("/v1/review/inbox/a.jpg", "application/json", r#"{"label": "tops"}"#).await;
    assert_eq!((status, error_code(&body)), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
    assert_eq!(keys(&server.get("/v1/review").await.1), ["inbox/a.jpg"], "still in the queue");
}

#[tokio::test]
async fn uploads_are_stored_under_the_inbox_or_refused_whole() {
    let server = server(Options::default()).await;
    let (status, body) = server.post("/v1/uploads?name=shoe%201.png", "image/png", png([200, 30, 30])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let key = body["uploads"][0]["key"].as_str().unwrap();
    assert!(key.starts_with("inbox/uploads/") && key.ends_with("-shoe_1.png"), "{key}");
    assert_eq!(server.memory.get(BUCKET, key, 1 << 20).await.unwrap(), Bytes::from(png([200, 30, 30])));

    // A multipart request with a photo and a text file: neither is stored.
    let boundary = "XyZ";
    let mut multipart = Vec::new();
    for (name, bytes) in [("good.png", png([0, 0, 0])), ("notes.txt", b"not a photo".to_vec())] {
        multipart.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n")
                .bytes(),
        );
        multipart.extend(bytes);
        multipart.extend(b"\r\n");
    }
    multipart.extend(format!("--{boundary}--\r\n").bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let (status, body) = server.post("/v1/uploads", &content_type, multipart).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"), "{body}");
    assert_eq!(server.memory.list(BUCKET, "inbox/").await.unwrap().len(), 1, "only the first upload");

    let (status, body) = server.post("/v1/uploads", "image/png", vec![0u8; (1 << 20) + 1]).await;
    assert_eq!((status, error_code(&body)), (StatusCode::PAYLOAD_TOO_LARGE, "too_large"));

    let without_inbox = self::server(Options { photos: false, ..Options::default() }).await;
    let (status, body) = without_inbox.post("/v1/uploads?name=a.png", "image/png", png([1, 2, 3])).await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "no_inbox"));
}

#[tokio::test]
async fn a_photo_is_served_from_the_store_the_pipeline_read() {
    let server = server(Options::default()).await;
    server.memory.insert(BUCKET, "inbox/a.png", Bytes::from(png([10, 200, 10])));
    // The result of the version stored (its etag).
    let (_, etag) = server.memory.get_tagged(BUCKET, "inbox/a.png", 1 << 20).await.unwrap();
    let mut classified = result("inbox/a.png", "tops", 0.9, "auto", 1);
    classified.item.etag = etag;
    server.index(&[classified, result("inbox/gone.png", "tops", 0.9, "auto", 2)]);
    let response =
        router(server.state.clone()).oneshot(Request::get("/v1/photos/inbox/a.png").body(Body::empty()).unwrap()).await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    // Replaced since it was classified: not served.
    server.memory.insert(BUCKET, "inbox/a.png", Bytes::from(png([10, 20, 210])));
    let (status, body) = server.get("/v1/photos/inbox/a.png").await;
    assert_eq!((status, error_code(&body)), (StatusCode::CONFLICT, "photo_changed"), "{body}");
    let (status, body) = server.get("/v1/photos/inbox/gone.png").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = server.get("/v1/photos/inbox/never-classified.png").await;
    assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, "not_found"), "only photos with a result");
}

#[tokio::test]
async fn a_catalogue_photo_is_served_by_its_sku_and_only_an_image() {
    let server = server(Options::default()).await;
    server.memory.insert(BUCKET, "catalogue/1163.png", Bytes::from(png([10, 200, 10])));
    server.memory.insert(BUCKET, "catalogue/1164.jpg", Bytes::from_static(b"not an image"));
    let response = router(server.state.clone())
        .oneshot(Request::get("/v1/catalogue/1163").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "image/png");
    for (sku, code) in [("1164", "not_found"), ("9999", "not_found"), ("..%2Fsecret", "not_found")] {
        let (status, body) = server.get(&format!("/v1/catalogue/{sku}")).await;
        assert_eq!((status, error_code(&body)), (StatusCode::NOT_FOUND, code), "{sku}: {body}");
    }
}

#[tokio::test]
async fn classify_answers_with_the_model_being_served() {
    let server = server(Options::default()).await;
    let (status, model) = server.get("/v1/model").await;
    assert_eq!(status, StatusCode::OK);
    let classes: Vec<&str> = model["classes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(classes.len(), 5, "{model}");
    assert_eq!(model["execution_provider"], "cpu");

    let (status, answer) = server.post("/v1/classify?name=red.png", "image/png", png([220, 20, 20])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let result = &answer["results"][0];
    assert_eq!(result["name"], "red.png");
    assert!(classes.contains(&result["label"].as_str().unwrap()), "{answer}");
    assert_eq!(answer["model"]["sha256"], model["sha256"]);

    let (status, body) = server.post("/v1/classify", "application/octet-stream", b"%PDF-1.7".to_vec()).await;
    assert_eq!((status, error_code(&body)), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_an_image"), "{body}");
}

#[tokio::test]
async fn a_claim_is_stored_with_the_upload_and_checked_by_classify() {
    let server = server(Options::default()).await;
    // Multipart: the claim's text fields apply to every photo of the request.
    let boundary = "XyZ";
    let mut multipart = Vec::new();
    for (field, value) in [("expected_label", "watches"), ("sku", "1163"), ("rma_id", "R-9")] {
        multipart.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    for name in ["a.png", "b.png"] {
        multipart.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n")
                .bytes(),
        );
        multipart.extend(png([220, 20, 20]));
        multipart.extend(b"\r\n");
    }
    multipart.extend(format!("--{boundary}--\r\n").bytes());
    let (status, body) =
        server.post("/v1/uploads", &format!("multipart/form-data; boundary={boundary}"), multipart).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["uploads"].as_array().unwrap().len(), 2, "{body}");
    assert_eq!(body["claim"]["sku"], "1163");
    for upload in body["uploads"].as_array().unwrap() {
        let stored = server.memory.get_object(BUCKET, upload["key"].as_str().unwrap(), 1 << 20).await.unwrap();
        let claim = Claim::from_metadata(&stored.metadata).unwrap().unwrap();
        assert_eq!((claim.expected_label.as_deref(), claim.rma_id.as_deref()), (Some("watches"), Some("R-9")));
    }

    // Classify judges each photo against the claim in the query, as the pipeline would.
    let (_, plain) = server.post("/v1/classify", "image/png", png([220, 20, 20])).await;
    let seen = plain["results"][0]["label"].as_str().unwrap().to_string();
    assert!(plain["results"][0].get("claim").is_none(), "{plain}");
    let (status, answer) =
        server.post(&format!("/v1/classify?expected_label={seen}"), "image/png", png([220, 20, 20])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["claim"]["category"], "match", "{answer}");
    let other = if seen == "watches" { "tops" } else { "watches" };
    let (_, answer) =
        server.post(&format!("/v1/classify?expected_label={other}"), "image/png", png([220, 20, 20])).await;
    let judged = &answer["results"][0];
    let p_claimed = judged["probabilities"][other].as_f64().unwrap();
    let expected = if p_claimed < 0.01 {
        ("mismatch", "review")
    } else {
        ("uncertain", plain["results"][0]["decision"].as_str().unwrap())
    };
    assert_eq!(
        (judged["claim"]["category"].as_str(), judged["decision"].as_str()),
        (Some(expected.0), Some(expected.1)),
        "{answer}"
    );

    // A label the model does not know, or a field over its limit: 400, nothing stored.
    let before = server.memory.list(BUCKET, "inbox/").await.unwrap().len();
    let (status, body) = server.post("/v1/uploads?name=c.png&expected_label=hats", "image/png", png([1, 2, 3])).await;
    assert_eq!((status, error_code(&body)), (StatusCode::BAD_REQUEST, "bad_request"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("`hats` is not a class"), "{body}");
    let (status, _) =
        server.post(&format!("/v1/uploads?name=c.png&sku={}", "9".repeat(101)), "image/png", png([1, 2, 3])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(server.memory.list(BUCKET, "inbox/").await.unwrap().len(), before);
}

#[tokio::test]
async fn readiness_names_what_is_not_ready() {
    let server = server(Options::default()).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!((status, error_code(&body)), (StatusCode::SERVICE_UNAVAILABLE, "not_ready"));
    assert!(body["error"]["message"].as_str().unwrap().contains("index: catching up"), "{body}");
    server.state.feed.set_caught_up();
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for check in ["model", "corrections", "photos", "index"] {
        assert!(body["checks"][check].as_str().is_some_and(|c| c.starts_with("ok")), "{check}: {body}");
    }

    let missing = Store::Local(LocalStore::new(BUCKET, "/nonexistent/autorma-out"));
    let server = self::server(Options { corrections: Some(missing), ..Options::default() }).await;
    server.state.feed.set_caught_up();
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"]["message"].as_str().unwrap().contains("corrections: error"), "{body}");
}

#[tokio::test]
async fn a_cross_site_post_is_refused() {
    let server = server(Options::default()).await;
    server.index(&[result("inbox/a.jpg", "watches", 0.41, "review", 1)]);
    let post = |origin: &str| {
        Request::post("/v1/review/inbox/a.jpg")
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"label": "tops"}"#))
            .unwrap()
    };
    let (status, body) = server.send(post("http://evil.example")).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, error_code(&body)), (StatusCode::FORBIDDEN, "forbidden_origin"));
    assert_eq!(keys(&server.get("/v1/review").await.1), ["inbox/a.jpg"], "not corrected");
    assert_eq!(server.send(post("http://127.0.0.1:8080")).await.0, StatusCode::OK, "the page's own origin");
}

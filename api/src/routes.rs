//! The handlers.

use std::sync::Arc;

use autorma_classifier::preprocess::sniff_format;
use autorma_core::{CorrectionRecord, Decision, ResultRecord};
use autorma_sink::index::{Page, ResultFilter};
use autorma_sink::results_csv::results_csv;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::{ModelInfo, ServeState};

/// Most results on one page.
const MAX_PER_PAGE: u32 = 500;

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the model is loaded (it is, once the server listens), the stores it depends on
/// answer, and the index has caught up with what there was at start; 503 with each check's
/// state otherwise.
pub async fn readyz(State(state): State<Arc<ServeState>>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let model = state.requests.models().current();
    checks.insert(
        "model".into(),
        format!("ok: {} v{} on {}", model.model.name, model.model.version, model.execution_provider).into(),
    );
    for (name, check) in state.stores.checks().await {
        ready &= check.is_ok();
        checks.insert(name.into(), check.map_or_else(|e| format!("error: {e}"), |()| "ok".into()).into());
    }
    let index = state.index.clone();
    let indexed = tokio::task::spawn_blocking(move || index.len()).await.expect("counting panicked")?;
    let index = match (state.feed.is_caught_up(), state.feed.error()) {
        (_, Some(error)) => format!("error: {error} ({indexed} results)"),
        (true, None) => format!("ok: {indexed} results"),
        (false, None) => format!("catching up: {indexed} results so far"),
    };
    ready &= index.starts_with("ok");
    checks.insert("index".into(), index.into());
    let body = serde_json::json!({ "status": if ready { "ready" } else { "not_ready" }, "checks": checks });
    if !ready {
        let failing: Vec<String> = checks
            .iter()
            .filter_map(|(name, state)| state.as_str().filter(|s| !s.starts_with("ok")).map(|s| format!("{name}: {s}")))
            .collect();
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "not_ready",
            message: format!("not ready: {}", failing.join("; ")),
        });
    }
    Ok(Json(body))
}

pub async fn model(State(state): State<Arc<ServeState>>) -> Json<ModelInfo> {
    Json(state.model_info())
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /openapi.json)")
}

/// The query string of the results routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    label: Option<String>,
    decision: Option<String>,
    since: Option<String>,
    until: Option<String>,
    prefix: Option<String>,
    page: Option<u32>,
    per_page: Option<u32>,
}

impl ResultsQuery {
    fn filter(&self) -> Result<ResultFilter, ApiError> {
        let decision = match self.decision.as_deref() {
            None => None,
            Some("auto") => Some(Decision::Auto),
            Some("review") => Some(Decision::Review),
            Some(other) => {
                return Err(ApiError::bad_request(format!("decision `{other}`: expected `auto` or `review`")));
            }
        };
        let time = |name: &str, value: &Option<String>| -> Result<Option<DateTime<Utc>>, ApiError> {
            value
                .as_deref()
                .map(|v| {
                    DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                        ApiError::bad_request(format!("{name} `{v}`: expected RFC 3339, e.g. 2026-11-27T10:00:00Z"))
                    })
                })
                .transpose()
        };
        Ok(ResultFilter {
            label: self.label.clone(),
            decision,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            key_prefix: self.prefix.clone(),
            uncorrected: false,
        })
    }
}

fn query(raw: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>) -> Result<ResultsQuery, ApiError> {
    raw.map(|Query(q)| q).map_err(|e| ApiError::bad_request(e.body_text()))
}

pub async fn list_results(
    State(state): State<Arc<ServeState>>,
    raw: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    page_of(&state, raw, |_| {}).await
}

/// One page of the results the query string (narrowed by `narrow`) selects.
pub async fn page_of(
    state: &ServeState,
    raw: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
    narrow: impl FnOnce(&mut ResultFilter),
) -> Result<Json<Page>, ApiError> {
    let q = query(raw)?;
    let per_page = q.per_page.unwrap_or(50);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad_request(format!("per_page {per_page}: must be within 1..={MAX_PER_PAGE}")));
    }
    let page = q.page.unwrap_or(1).max(1);
    let mut filter = q.filter()?;
    narrow(&mut filter);
    let index = state.index.clone();
    let page =
        tokio::task::spawn_blocking(move || index.query(&filter, page, per_page)).await.expect("query panicked")?;
    Ok(Json(page))
}

/// `GET /v1/results/{key}`: the Result, and the person's correction when there is one.
#[derive(Debug, Serialize)]
pub struct ResultAnswer {
    #[serde(flatten)]
    result: ResultRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    correction: Option<CorrectionRecord>,
}

pub async fn get_result(
    State(state): State<Arc<ServeState>>,
    Path(key): Path<String>,
) -> Result<Json<ResultAnswer>, ApiError> {
    let result = result_for(&state, &key).await?;
    let (index, etag) = (state.index.clone(), result.item.etag.clone());
    // A correction of another version of the photo (another etag) is not this one's.
    let correction = tokio::task::spawn_blocking(move || index.correction(&key))
        .await
        .expect("lookup panicked")?
        .filter(|c| c.item.etag == etag);
    Ok(Json(ResultAnswer { result, correction }))
}

/// The indexed result of `key`, or 404.
pub async fn result_for(state: &ServeState, key: &str) -> Result<ResultRecord, ApiError> {
    let (index, lookup) = (state.index.clone(), key.to_string());
    tokio::task::spawn_blocking(move || index.get(&lookup))
        .await
        .expect("lookup panicked")?
        .ok_or_else(|| ApiError::not_found(format!("no result for key `{key}`")))
}

/// The same filters as `/v1/results`, every page, as CSV: one row per photo.
pub async fn download_csv(
    State(state): State<Arc<ServeState>>,
    raw: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = query(raw)?.filter()?;
    let index = state.index.clone();
    let records = tokio::task::spawn_blocking(move || index.all(&filter)).await.expect("query panicked")?;
    let body = results_csv(&records);
    Ok((
        [(CONTENT_TYPE, "text/csv; charset=utf-8"), (CONTENT_DISPOSITION, "attachment; filename=\"results.csv\"")],
        body,
    ))
}

/// `GET /v1/photos/{key}`: the photo of a result (the page's thumbnails), from the store the
/// pipeline reads: only the version the result is about (its etag), and only an image. Whatever
/// else the key may name now (a file replaced, a link re-pointed) is not handed out.
pub async fn get_photo(
    State(state): State<Arc<ServeState>>,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    // Only photos with a result: the route does not list the inbox.
    let result = result_for(&state, &key).await?;
    let (bytes, etag) = state.stores.photo(&key, state.max_body_bytes as u64).await?;
    if etag != result.item.etag {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "photo_changed",
            message: format!(
                "the photo `{key}` changed since it was classified (etag {etag}, classified {})",
                result.item.etag
            ),
        });
    }
    let format = sniff_format(&bytes).map_err(|e| ApiError::not_found(format!("`{key}` is not served: {e}")))?;
    Ok(([(CONTENT_TYPE, format.to_mime_type()), (CACHE_CONTROL, "private, max-age=3600")], bytes))
}

/// `GET /v1/catalogue/{sku}`: a product's catalogue photo, shown beside a return the product
/// check compared with it. Only an image is served.
pub async fn get_catalogue_photo(
    State(state): State<Arc<ServeState>>,
    Path(sku): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let bytes = state.stores.catalogue_photo(&sku, state.max_body_bytes as u64).await?;
    let format = sniff_format(&bytes)
        .map_err(|e| ApiError::not_found(format!("SKU `{sku}`'s catalogue photo is not served: {e}")))?;
    Ok(([(CONTENT_TYPE, format.to_mime_type()), (CACHE_CONTROL, "private, max-age=300")], bytes))
}

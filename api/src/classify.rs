//! `POST /v1/classify`: photos answered in the request. Each photo joins the micro-batches of
//! the server's pipeline (or of its own batcher when no pipeline runs in this process) and
//! its answer comes straight back; nothing is stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use autorma_classifier::RequestError;
use autorma_classifier::inference::judge;
use autorma_classifier::pipeline::messages::Answer;
use autorma_classifier::preprocess::{PreprocessError, decoded_pixels};
use autorma_core::{Claim, ClaimCheck, Decision, ReviewReason};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::error::ApiError;
use super::photo_body::{Photo, PhotoQuery, Photos, not_an_image, read_photos};
use super::{ModelInfo, ServeState};

#[derive(Debug, Serialize)]
pub struct ClassifyAnswer {
    /// In the request's order.
    pub results: Vec<PhotoAnswer>,
    /// The model that answered (the first photo's: a swap mid-request is named per photo).
    pub model: ModelInfo,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PhotoAnswer {
    Classified(Classified),
    Failed { name: String, error: ErrorBody },
}

#[derive(Debug, Serialize)]
pub struct Classified {
    pub name: String,
    pub label: String,
    pub confidence: f32,
    pub decision: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review_reason: Option<ReviewReason>,
    /// The request's claim and the check of this photo against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<ClaimCheck>,
    pub probabilities: BTreeMap<String, f32>,
    pub model_version: String,
    /// Photos in the batch it ran in, this request's and the pipeline's together.
    pub batch_size: usize,
    pub timings_ms: Timings,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    pub decode: f64,
    pub batch_wait: f64,
    pub infer: f64,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

/// Every photo is checked to be an image first (415 for the request otherwise); then each is
/// classified, all at once so they can share a batch. A photo that fails later (it does not
/// decode) gets an `error` in its place; when every photo fails, the first one's error is the
/// answer (413, 415 or 422).
pub async fn classify(
    State(state): State<Arc<ServeState>>,
    Query(query): Query<PhotoQuery>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Json<ClassifyAnswer>, ApiError> {
    let Photos { photos, claim } = read_photos(&state, query, &headers, request).await?;
    check_request_pixels(&state, &photos)?;
    let model = state.model_info();
    let (requests, sku) = (&state.requests, claim.as_ref().and_then(|c| c.sku.as_deref()));
    let answers = futures::future::join_all(
        photos.into_iter().map(|photo| async move { (requests.classify(photo.bytes, sku).await, photo.name) }),
    )
    .await;
    let mut results = Vec::with_capacity(answers.len());
    let mut first_error = None;
    for (answer, name) in answers {
        match answer {
            Ok(answer) => results.push(PhotoAnswer::Classified(classified(name, answer, claim.as_ref()))),
            Err(e) => {
                let error = api_error(&name, e);
                results.push(PhotoAnswer::Failed {
                    name,
                    error: ErrorBody { code: error.code, message: error.message.clone() },
                });
                first_error.get_or_insert(error);
            }
        }
    }
    if let Some(error) = first_error.filter(|_| results.iter().all(|r| matches!(r, PhotoAnswer::Failed { .. }))) {
        return Err(error);
    }
    tracing::debug!(photos = results.len(), "classified a request");
    Ok(Json(ClassifyAnswer { results, model }))
}

/// 413 `too_many_pixels` for a request whose photos would decode into more than
/// `state.max_request_pixels` (a JPEG counted at the scale it is decoded at), from their
/// headers, before any is decoded: a body of small files that decode into gigapixels does not
/// hold the decode threads for half a minute.
fn check_request_pixels(state: &ServeState, photos: &[Photo]) -> Result<(), ApiError> {
    let side = state.requests.models().current().preprocessor.size;
    // A header that does not read costs nothing here; its photo's own error says why.
    // Saturating: the sizes are the headers' claims, which may be absurd.
    let pixels =
        photos.iter().map(|photo| decoded_pixels(&photo.bytes, side).unwrap_or(0)).fold(0u64, u64::saturating_add);
    let max = state.max_request_pixels;
    if pixels > max {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_many_pixels",
            message: format!(
                "the photos would decode into {pixels} pixels, over the limit of {max} per request; \
                 send fewer at a time"
            ),
        });
    }
    Ok(())
}

/// The photo's answer, judged against the request's claim as the pipeline judges a stored photo.
fn classified(name: String, answer: Answer, claim: Option<&Claim>) -> Classified {
    let Answer { model, prediction, batch_size, decode_ms, batch_wait_ms, infer_ms, product } = answer;
    let verdict = judge(&prediction, &model.classes, model.package.manifest.claim_threshold, claim, product);
    Classified {
        name,
        label: model.classes[prediction.label].clone(),
        confidence: prediction.confidence,
        decision: verdict.decision,
        review_reason: verdict.review_reason,
        claim: verdict.claim,
        probabilities: model.classes.iter().cloned().zip(prediction.probabilities.iter().copied()).collect(),
        model_version: model.model.version.clone(),
        batch_size,
        timings_ms: Timings { decode: decode_ms, batch_wait: batch_wait_ms, infer: infer_ms },
    }
}

fn api_error(name: &str, e: RequestError) -> ApiError {
    match e {
        RequestError::Photo(e @ PreprocessError::NotAnImage { .. }) => not_an_image(name, &e),
        RequestError::Photo(e @ PreprocessError::TooLarge { .. }) => {
            ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: format!("`{name}`: {e}") }
        }
        RequestError::Photo(e @ PreprocessError::Decode { .. }) => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "cannot_decode",
            message: format!("`{name}`: {e}"),
        },
        RequestError::Stopped => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: "the pipeline has stopped; the server is shutting down".into(),
        },
        e @ RequestError::Inference(_) => ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "inference_failed",
            message: format!("`{name}`: {e}"),
        },
    }
}

//! The photos of a request (`/v1/uploads`, `/v1/classify`): multipart with any number of file
//! fields, or one raw image body named by `?name=`; within the body and photo-count limits.
//! A request may carry one claim for its photos (what the customer says they return): text
//! fields `expected_label`, `sku`, `rma_id`, or the same names in the query.

use autorma_core::{Claim, claim};
use axum::body::Bytes;
use axum::extract::Multipart;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::ServeState;
use super::error::ApiError;

/// Most photos in one request.
pub const MAX_PHOTOS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoQuery {
    /// File name of a raw (non-multipart) photo.
    name: Option<String>,
    expected_label: Option<String>,
    sku: Option<String>,
    rma_id: Option<String>,
}

pub struct Photo {
    /// The file name the client gave ("photo" when none).
    pub name: String,
    pub bytes: Bytes,
}

/// A request's photos and the claim they share.
pub struct Photos {
    pub photos: Vec<Photo>,
    pub claim: Option<Claim>,
}

/// The request's photos, at least one, each checked once all are read: it starts like an image
/// (415 `not_an_image` for the request otherwise) and is within the pipeline's file limit
/// (413 `too_large`); a body over the limit is 413 `too_large` too. Its claim, if any, is
/// checked too (400: too long, control characters, a label the model does not know).
pub async fn read_photos(
    state: &ServeState,
    query: PhotoQuery,
    headers: &HeaderMap,
    request: axum::extract::Request,
) -> Result<Photos, ApiError> {
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut photos = Vec::new();
    // The claim's fields in `claim::FIELDS`' order: from the query, a multipart field (one with
    // no file name) replacing one.
    let mut claim_fields = [query.expected_label, query.sku, query.rma_id];
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            if field.file_name().is_none()
                && let Some(at) = claim::FIELDS.iter().position(|f| Some(*f) == field.name())
            {
                let text = field.text().await.map_err(multipart_error)?;
                claim_fields[at] = Some(text);
                continue;
            }
            let name = field.file_name().unwrap_or("photo").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            photos.push(Photo { name, bytes });
            if photos.len() > MAX_PHOTOS {
                return Err(ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "too_many_photos",
                    message: format!("at most {MAX_PHOTOS} photos per request"),
                });
            }
        }
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), state.max_body_bytes)
            .await
            .map_err(|e| ApiError::unreadable_body(e.to_string(), &e))?;
        photos.push(Photo { name: query.name.unwrap_or_else(|| "photo".into()), bytes });
    }
    if photos.is_empty() {
        return Err(ApiError::bad_request("no photo in the request"));
    }
    let [expected_label, sku, rma_id] = claim_fields.each_ref().map(Option::as_deref);
    let claim = Claim::from_fields(expected_label, sku, rma_id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let model = state.requests.models().current();
    if let Some(unknown) = claim.as_ref().and_then(|c| c.unknown_label(&model.classes)) {
        return Err(ApiError::bad_request(format!("expected_label: {unknown}")));
    }
    // The pipeline's own file limit, so an upload it would dead-letter as too large is refused
    // here, as `/v1/classify` refuses it.
    let max_bytes = state.requests.models().current().preprocessor.limits.max_bytes;
    for photo in &photos {
        check_image(photo)?;
        if photo.bytes.len() as u64 > max_bytes {
            return Err(ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: format!(
                    "`{}` is {} bytes, over the limit of {max_bytes} (--max-file-bytes)",
                    photo.name,
                    photo.bytes.len()
                ),
            });
        }
    }
    Ok(Photos { photos, claim })
}

/// 415 `not_an_image` unless the bytes start like a JPEG, PNG or WebP.
fn check_image(photo: &Photo) -> Result<(), ApiError> {
    autorma_classifier::preprocess::sniff_format(&photo.bytes).map(|_| ()).map_err(|e| not_an_image(&photo.name, &e))
}

pub fn not_an_image(name: &str, e: &dyn std::fmt::Display) -> ApiError {
    ApiError { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, code: "not_an_image", message: format!("`{name}`: {e}") }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: e.body_text() };
    }
    ApiError::unreadable_body(e.body_text(), &e)
}

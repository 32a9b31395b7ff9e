//! `POST /v1/uploads`: photos into the inbox, where the pipeline picks them up like any other.
//! Embedded mode: files under `--inbox` (the `autorma serve` process runs the pipeline on it).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autorma_classifier::preprocess::sniff_format;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::ServeState;
use super::error::ApiError;

/// Most photos in one request.
pub const MAX_PHOTOS: usize = 100;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// File name of a raw (non-multipart) upload.
    name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The photo's key: its results appear under it.
    pub key: String,
    pub bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct UploadAnswer {
    pub uploads: Vec<Uploaded>,
}

/// Multipart (any number of file fields) or one raw image body (`?name=` names it).
pub async fn upload(
    State(state): State<Arc<ServeState>>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Json<UploadAnswer>, ApiError> {
    let Some(inbox) = state.inbox.clone() else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            code: "no_inbox",
            message: "this server has no inbox: start it with --inbox DIR to accept uploads".into(),
        });
    };
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut photos: Vec<(String, Bytes)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.file_name().unwrap_or("photo").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            photos.push((name, bytes));
            if photos.len() > MAX_PHOTOS {
                return Err(too_many());
            }
        }
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), state.max_body_bytes)
            .await
            .map_err(|e| body_error(&e.to_string()))?;
        photos.push((query.name.unwrap_or_else(|| "photo".into()), bytes));
    }
    if photos.is_empty() {
        return Err(ApiError::bad_request("no photo in the request"));
    }
    // All checked before any is stored: a request is taken whole or not at all.
    for (name, bytes) in &photos {
        if let Err(e) = sniff_format(bytes) {
            return Err(ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "not_an_image",
                message: format!("`{name}`: {e}"),
            });
        }
    }
    let uploads = tokio::task::spawn_blocking(move || {
        photos.iter().map(|(name, bytes)| store(&inbox, name, bytes)).collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .expect("storing uploads panicked")?;
    tracing::info!(photos = uploads.len(), "uploaded");
    Ok(Json(UploadAnswer { uploads }))
}

/// Writes one photo as `uploads/<date>/<unique>-<name>` under the inbox, atomically (the
/// inbox's scan skips temp files, so it never sees half a photo).
fn store(inbox: &Path, name: &str, bytes: &[u8]) -> Result<Uploaded, ApiError> {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now();
    let unique = format!("{}-{}", now.format("%H%M%S%6f"), SEQUENCE.fetch_add(1, Ordering::Relaxed));
    let key = format!("uploads/{}/{unique}-{}", now.format("%Y-%m-%d"), safe_name(name));
    let path: PathBuf = inbox.join(&key);
    autorma_core::fsutil::atomic_write(&path, bytes)?;
    Ok(Uploaded { key, bytes: bytes.len() })
}

/// The file name's last component, with anything but letters, digits, `.`, `-` and `_`
/// replaced, and an image extension kept (the inbox scan lists photos by extension).
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("photo");
    let clean: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let clean = clean.trim_start_matches('.');
    if autorma_core::event::image_type_for_key(clean).is_some() { clean.to_string() } else { format!("{clean}.jpg") }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    body_error(&e.body_text())
}

/// A body over the limit is 413; anything else unreadable is 400.
fn body_error(detail: &str) -> ApiError {
    if detail.contains("length limit") {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", message: detail.to_string() }
    } else {
        ApiError::bad_request(detail.to_string())
    }
}

fn too_many() -> ApiError {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "too_many_photos",
        message: format!("at most {MAX_PHOTOS} photos per request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_or_hide() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd.jpg");
        assert_eq!(safe_name("C:\\\\bench\\\\shoe 1.PNG"), "shoe_1.PNG");
        assert_eq!(safe_name(".hidden.jpg"), "hidden.jpg");
        assert_eq!(safe_name("bag.webp"), "bag.webp");
    }
}

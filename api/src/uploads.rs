//! `POST /v1/uploads`: photos into the inbox, where the pipeline picks them up like any other:
//! files under `--inbox` (embedded: this process runs the pipeline on it), or objects under
//! the bucket's inbox prefix (streaming: ingest hears of them).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use autorma_core::Claim;
use autorma_core::fsutil::TMP_MARKER;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::ServeState;
use super::error::ApiError;
use super::photo_body::{PhotoQuery, Photos, read_photos};

#[derive(Debug, Serialize)]
pub struct Uploaded {
    /// The photo's key: its results appear under it.
    pub key: String,
    pub bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct UploadAnswer {
    pub uploads: Vec<Uploaded>,
    /// The claim stored with every photo of the request (as object metadata), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<Claim>,
}

/// Multipart (any number of file fields) or one raw image body (`?name=` names it).
pub async fn upload(
    State(state): State<Arc<ServeState>>,
    Query(query): Query<PhotoQuery>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Json<UploadAnswer>, ApiError> {
    state.stores.uploads()?;
    // All checked before any is stored: a request is taken whole or not at all.
    let Photos { photos, claim } = read_photos(&state, query, &headers, request).await?;
    let metadata = claim.as_ref().map(Claim::to_metadata).unwrap_or_default();
    let mut uploads = Vec::with_capacity(photos.len());
    for photo in photos {
        let bytes = photo.bytes.len();
        let key = state.stores.store_upload(&upload_name(&photo.name), photo.bytes, &metadata).await?;
        uploads.push(Uploaded { key, bytes });
    }
    tracing::info!(photos = uploads.len(), claimed = claim.is_some(), "uploaded");
    Ok(Json(UploadAnswer { uploads, claim }))
}

/// `uploads/<date>/<unique>-<name>`: the key (under the inbox) of an upload named `name`.
fn upload_name(name: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now();
    let unique = format!("{}-{}", now.format("%H%M%S%6f"), SEQUENCE.fetch_add(1, Ordering::Relaxed));
    format!("uploads/{}/{unique}-{}", now.format("%Y-%m-%d"), safe_name(name))
}

/// Longest name kept, extension included (the key stays far under S3's 1,024 bytes and a
/// file system's 255 per name).
const MAX_NAME_CHARS: usize = 100;

/// The file name's last component, with anything but letters, digits, `.`, `-` and `_`
/// replaced, cut to [`MAX_NAME_CHARS`], never hidden nor taken for the pipeline's temporary
/// files, and an image extension kept (the inbox scan lists photos by extension).
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect();
    let clean = clean.replace(TMP_MARKER, "_autorma-tmp-");
    let clean = clean.trim_start_matches('.');
    let (stem, extension) = match clean.rsplit_once('.') {
        Some((stem, extension)) if autorma_core::event::image_type_for_key(clean).is_some() => (stem, extension),
        _ => (clean, "jpg"),
    };
    // Only ASCII is left, so characters are bytes.
    let stem = &stem[..stem.len().min(MAX_NAME_CHARS - 1 - extension.len())];
    let stem = if stem.is_empty() { "photo" } else { stem };
    format!("{stem}.{extension}")
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
        assert_eq!(safe_name(""), "photo.jpg");
        assert_eq!(safe_name("...jpg"), "jpg.jpg");
        assert_eq!(safe_name("shoe.jpg.autorma-tmp-7-1.jpg"), "shoe.jpg_autorma-tmp-7-1.jpg");
        let long = safe_name(&format!("{}.png", "a".repeat(300)));
        assert_eq!((long.len(), &long[long.len() - 4..]), (MAX_NAME_CHARS, ".png"));
        assert!(autorma_core::layout::is_inbox_object(&format!("inbox/uploads/x/{}", safe_name("a.autorma-tmp-1"))));
    }
}

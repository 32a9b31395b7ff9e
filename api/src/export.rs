//! `autorma corrections export`: people's corrections (`corrections/<key>.json`) as a
//! class-folder training set, `<out>/<label>/<photo>`, with `<out>/manifest.csv` naming where
//! each photo came from. The training code reads it as an extra source beside the data set's
//! train split (`python -m autorma_models.train --extra DIR`).
//!
//! A photo is exported only as the person saw it: when the photo under the key is no longer
//! the one corrected (its etag moved), or is gone, or is not an image, it is skipped with the
//! reason, never exported under a label that was given to other bytes.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use autorma_core::fsutil::tmp_path;
use autorma_core::layout::CORRECTIONS_PREFIX;
use autorma_core::{CorrectionRecord, ObjectStore, Store, StoreError};
use autorma_sink::results_csv::neutralised;
use futures::StreamExt;

/// How many photos are fetched at once (the bucket answers in parallel; folders do not mind).
const FETCH_CONCURRENCY: usize = 8;
/// A correction record is a few hundred bytes; anything far larger is not one.
const MAX_RECORD_BYTES: u64 = 1 << 20;
/// The manifest's columns, in order.
pub const MANIFEST_COLUMNS: [&str; 9] =
    ["file", "label", "key", "etag", "by", "corrected_at", "model_label", "model_name", "model_version"];
/// Each exported photo's row.
pub const MANIFEST: &str = "manifest.csv";
/// The file that marks a folder as an export, so a second export may replace it whole (a data
/// set's own `manifest.csv` does not: fashion5 has one).
const MARKER: &str = ".autorma-corrections-export";

/// Where the corrections and their photos are: the output and inbox folders of an embedded
/// run, or the bucket.
pub struct ExportSource {
    pub bucket: String,
    pub corrections: Store,
    pub photos: Store,
    /// The largest photo fetched (the pipeline's own limit).
    pub max_photo_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot list the corrections in {store}")]
    List {
        store: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot read {what}")]
    Read {
        what: String,
        #[source]
        source: StoreError,
    },
    #[error("`{}` exists and is not an earlier export (it has no {MARKER}): give an empty or new folder", .0.display())]
    NotAnExport(PathBuf),
    #[error("cannot write the export at `{}`", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// What an export did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Photos written, by label.
    pub exported: BTreeMap<String, usize>,
    /// (correction object, why it was not exported).
    pub skipped: Vec<(String, String)>,
}

impl ExportSummary {
    pub fn total(&self) -> usize {
        self.exported.values().sum()
    }
}

/// One correction whose photo is exported.
struct Exported {
    record: CorrectionRecord,
    bytes: bytes::Bytes,
    extension: &'static str,
}

/// Writes every correction of `source` whose photo is still the one corrected into `out`
/// (replacing an earlier export there whole: a label changed since moves its photo). The new
/// export is written beside `out` and renamed into place, so `out` is never half written; on
/// an error the partial one is removed and an earlier export stays.
pub async fn export_corrections(source: &ExportSource, out: &Path) -> Result<ExportSummary, ExportError> {
    if out.exists() && !out.join(MARKER).is_file() && !is_empty_dir(out) {
        return Err(ExportError::NotAnExport(out.to_path_buf()));
    }
    let staging = Staging::new(out)?;
    let summary = write_export(source, &staging.0).await?;
    staging.swap_into(out)?;
    Ok(summary)
}

async fn write_export(source: &ExportSource, staging: &Path) -> Result<ExportSummary, ExportError> {
    let listing = source.corrections.list(&source.bucket, CORRECTIONS_PREFIX).await.map_err(|source_error| {
        ExportError::List { store: source.corrections.describe(&source.bucket), source: source_error }
    })?;
    let objects: Vec<String> = listing.into_iter().map(|o| o.key).filter(|k| k.ends_with(".json")).collect();
    // Fetched a few at once, written one by one as they come (in listing order): only the
    // photos in flight are held in memory.
    let mut fetched = futures::stream::iter(objects)
        .map(|object| async move {
            let outcome = fetch_one(source, &object).await?;
            Ok::<_, ExportError>((object, outcome))
        })
        .buffered(FETCH_CONCURRENCY);
    let mut summary = ExportSummary::default();
    let mut manifest = csv::Writer::from_writer(Vec::new());
    manifest.write_record(MANIFEST_COLUMNS).expect("writing to a Vec cannot fail");
    let mut names = HashSet::new();
    while let Some(next) = fetched.next().await {
        let (object, outcome) = next?;
        let exported = match outcome {
            Ok(exported) => exported,
            Err(reason) => {
                tracing::warn!(correction = %object.escape_debug(), %reason, "correction not exported");
                summary.skipped.push((object, reason));
                continue;
            }
        };
        let record = &exported.record;
        let dir = staging.join(&record.label);
        std::fs::create_dir_all(&dir).map_err(|source| ExportError::Write { path: dir.clone(), source })?;
        let file = unique_name(&record.item.key, exported.extension, &mut names);
        write(&dir.join(&file), &exported.bytes)?;
        let relative = format!("{}/{file}", record.label);
        let row = [
            relative.as_str(),
            &record.label,
            &record.item.key,
            &record.item.etag,
            record.by.as_deref().unwrap_or(""),
            &record.corrected_at.to_rfc3339(),
            &record.model_label,
            &record.model.name,
            &record.model.version,
        ];
        manifest.write_record(row.iter().map(|cell| neutralised(cell))).expect("writing to a Vec cannot fail");
        *summary.exported.entry(record.label.clone()).or_default() += 1;
    }
    write(&staging.join(MANIFEST), &manifest.into_inner().expect("flushing a Vec cannot fail"))?;
    write(&staging.join(MARKER), b"written by `autorma corrections export`; a later export replaces this folder\n")?;
    Ok(summary)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    std::fs::write(path, bytes).map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

/// The folder a new export is written into, beside `out`; removed when dropped unless it was
/// swapped into place.
struct Staging(PathBuf);

impl Staging {
    fn new(out: &Path) -> Result<Self, ExportError> {
        let staging = Staging(tmp_path(out));
        remove_dir_if_present(&staging.0)?;
        std::fs::create_dir_all(&staging.0).map_err(|source| ExportError::Write { path: staging.0.clone(), source })?;
        Ok(staging)
    }

    /// The earlier export aside, this one in its place, the earlier one gone; when this one
    /// cannot take its place, the earlier one is put back.
    fn swap_into(self, out: &Path) -> Result<(), ExportError> {
        let old = tmp_path(out);
        remove_dir_if_present(&old)?;
        let had_one = out.exists();
        if had_one {
            std::fs::rename(out, &old).map_err(|source| ExportError::Write { path: out.to_path_buf(), source })?;
        }
        if let Err(source) = std::fs::rename(&self.0, out) {
            if had_one {
                let _ = std::fs::rename(&old, out);
            }
            return Err(ExportError::Write { path: out.to_path_buf(), source });
        }
        remove_dir_if_present(&old)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        // Gone already when it was swapped into place.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The correction in `object` and its photo, or why it is not exported. Only a store that
/// cannot be read at all is an error: one bad correction does not stop the others.
async fn fetch_one(source: &ExportSource, object: &str) -> Result<Result<Exported, String>, ExportError> {
    let read_error = |what: String, source: StoreError| ExportError::Read { what, source };
    let bytes = match source.corrections.get(&source.bucket, object, MAX_RECORD_BYTES).await {
        Ok(bytes) => bytes,
        Err(StoreError::NotFound { .. }) => return Ok(Err("the correction was removed during the export".into())),
        Err(e) if e.is_retryable() => return Err(read_error(object.to_string(), e)),
        Err(e) => return Ok(Err(format!("cannot read the correction: {e}"))),
    };
    let record: CorrectionRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(e) => return Ok(Err(format!("not a correction record: {e}"))),
    };
    if let Err(reason) = check_label(&record.label) {
        return Ok(Err(reason));
    }
    let key = &record.item.key;
    let photo = match source.photos.get_object(&source.bucket, key, source.max_photo_bytes).await {
        Ok(photo) => photo,
        Err(StoreError::NotFound { .. }) => return Ok(Err(format!("the photo `{key}` is gone"))),
        Err(e) if e.is_retryable() => return Err(read_error(format!("the photo `{key}`"), e)),
        Err(e) => return Ok(Err(format!("cannot read the photo `{key}`: {e}"))),
    };
    if photo.etag != record.item.etag {
        return Ok(Err(format!(
            "the photo `{key}` was replaced after it was corrected (etag {} now, {} then)",
            photo.etag, record.item.etag
        )));
    }
    let format = match autorma_classifier::preprocess::sniff_format(&photo.bytes) {
        Ok(format) => format,
        Err(e) => return Ok(Err(format!("the photo `{key}` is not an image: {e}"))),
    };
    let extension = format.extensions_str().first().copied().unwrap_or("img");
    Ok(Ok(Exported { record, bytes: photo.bytes, extension }))
}

/// A label becomes a folder name: it must be one, and only one.
fn check_label(label: &str) -> Result<(), String> {
    let plain = !label.is_empty()
        && label != "."
        && label != ".."
        && !label.chars().any(|c| c == '/' || c == '\\' || c.is_control());
    if plain { Ok(()) } else { Err(format!("the label {label:?} cannot name a class folder")) }
}

/// The photo's file name in its class folder: the key with its folders joined by `__` and
/// anything but letters, digits, `.`, `-` and `_` made `_`, at most 100 characters, and a
/// `-2`, `-3`... when two keys come out the same.
fn unique_name(key: &str, extension: &str, taken: &mut HashSet<String>) -> String {
    let (folders, file) = key.rsplit_once('/').map_or(("", key), |(folders, file)| (folders, file));
    let stem = file.rsplit_once('.').filter(|(stem, _)| !stem.is_empty()).map_or(file, |(stem, _)| stem);
    let safe: String = format!("{folders}/{stem}")
        .trim_start_matches('/')
        .replace('/', "__")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
        .take(100)
        .collect();
    let safe = safe.trim_start_matches('.').to_string();
    let mut name = format!("{safe}.{extension}");
    let mut n = 2;
    while !taken.insert(name.to_lowercase()) {
        name = format!("{safe}-{n}.{extension}");
        n += 1;
    }
    name
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut entries| entries.next().is_none())
}

fn remove_dir_if_present(path: &Path) -> Result<(), ExportError> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(ExportError::Write { path: path.to_path_buf(), source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_bounded_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(unique_name("inbox/bench 1/a.jpg", "jpg", &mut taken), "inbox__bench_1__a.jpg");
        assert_eq!(unique_name("inbox/bench_1/a.png", "jpg", &mut taken), "inbox__bench_1__a-2.jpg");
        assert_eq!(unique_name("../../etc/passwd", "png", &mut taken), "__..__etc__passwd.png");
        assert_eq!(unique_name("no-extension", "webp", &mut taken), "no-extension.webp");
        let long = unique_name(&"x".repeat(300), "jpg", &mut taken);
        assert_eq!(long.len(), 104);
    }

    #[test]
    fn a_label_names_one_folder() {
        assert!(check_label("casual_shoes").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "a\nb"] {
            assert!(check_label(bad).is_err(), "{bad:?}");
        }
    }
}

//! Feeding the index in embedded mode: the `--out` folder of `autorma run` (its
//! `results/**.json`, and the `corrections/**.json` people made), read whole at start and then
//! every interval for files that changed. Each result indexed is also announced to the
//! `/v1/events` subscribers, and so is each dead letter (`dlq/**.json`; not indexed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use autorma_core::fsutil::is_tmp_file;
use autorma_core::{CorrectionRecord, DlqRecord, ResultRecord};
use autorma_sink::index::{IndexError, ResultIndex};
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;

use super::{FeedError, FeedEvent, FeedStatus, parse_record};

/// Files already indexed, by (modified, length).
type Seen = HashMap<PathBuf, (SystemTime, u64)>;

/// Follows `out` into `index` until the task is dropped; says it caught up after the first full
/// pass; sends every result it indexes, and every dead letter it finds, to `events`.
pub async fn follow_out_folder(
    out: PathBuf,
    index: Arc<ResultIndex>,
    interval: Duration,
    status: Arc<FeedStatus>,
    events: broadcast::Sender<FeedEvent>,
) {
    let mut seen = (Seen::new(), Seen::new(), Seen::new());
    loop {
        let (index, out, events) = (index.clone(), out.clone(), events.clone());
        let (fed, back) = tokio::task::spawn_blocking(move || {
            let (mut results, mut corrections, mut dead_letters) = seen;
            let fed = feed_changed(&out.join("results"), &mut results, |records: Vec<ResultRecord>| {
                index.upsert(&records)?;
                for record in records {
                    // Nobody listening is fine.
                    let _ = events.send(FeedEvent::Result(Arc::new(record)));
                }
                Ok(())
            })
            .and_then(|n| {
                let m = feed_changed(&out.join("corrections"), &mut corrections, |records: Vec<CorrectionRecord>| {
                    index.upsert_corrections(&records)
                })?;
                let d = feed_changed(&out.join("dlq"), &mut dead_letters, |records: Vec<DlqRecord>| {
                    for record in records {
                        let _ = events.send(FeedEvent::DeadLetter(Arc::new(record)));
                    }
                    Ok(())
                })?;
                Ok(n + m + d)
            });
            (fed, (results, corrections, dead_letters))
        })
        .await
        .expect("feeding the index panicked");
        seen = back;
        match fed {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(records = n, "indexed");
                }
                status.succeeded();
                // The first full pass read everything there was at start.
                status.set_caught_up();
            }
            Err(e) => {
                tracing::warn!(error = %e, "indexing the output folder failed; trying again");
                status.failed(format!("indexing the output folder failed: {e:#}"));
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reads the JSON files under `dir` that are new or changed since `seen` and hands them to
/// `upsert`; returns how many.
fn feed_changed<T: DeserializeOwned>(
    dir: &Path,
    seen: &mut Seen,
    upsert: impl Fn(Vec<T>) -> Result<(), IndexError>,
) -> Result<usize, FeedError> {
    let mut changed = Vec::new();
    walk(dir, &mut |path| {
        let Ok(meta) = std::fs::metadata(path) else { return };
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if seen.get(path) != Some(&stamp) {
            changed.push((path.to_path_buf(), stamp));
        }
    })
    .map_err(|source| FeedError::Folder { path: dir.display().to_string(), source })?;
    // Records are written atomically: a file that does not parse is not one of ours.
    let records: Vec<T> =
        changed.iter().filter_map(|(path, _)| parse_record(&path.display().to_string(), std::fs::read(path))).collect();
    let n = records.len();
    if n > 0 {
        upsert(records)?;
    }
    seen.extend(changed);
    Ok(n)
}

fn walk(dir: &Path, visit: &mut impl FnMut(&Path)) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, visit)?;
        } else if path.extension().is_some_and(|e| e == "json") && !is_tmp_file(&path) {
            visit(&path);
        }
    }
    Ok(())
}

//! Feeding the index in embedded mode: the `--out` folder of `autorma run` (its
//! `results/**.json`), read whole at start and then every interval for files that changed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use autorma_core::ResultRecord;
use autorma_core::fsutil::is_tmp_file;
use autorma_sink::index::ResultIndex;

/// Follows `out/results/` into `index` until the task is dropped; sets `caught_up` after the
/// first full pass.
pub async fn follow_out_folder(out: PathBuf, index: Arc<ResultIndex>, interval: Duration, caught_up: Arc<AtomicBool>) {
    let mut seen: HashMap<PathBuf, (SystemTime, u64)> = HashMap::new();
    loop {
        let (index, dir) = (index.clone(), out.join("results"));
        let pass = tokio::task::spawn_blocking(move || {
            let fed = feed_changed(&dir, &index, &mut seen);
            (fed, seen)
        })
        .await
        .expect("feeding the index panicked");
        seen = pass.1;
        match pass.0 {
            Ok(0) => {}
            Ok(n) => tracing::debug!(results = n, "indexed"),
            Err(e) => tracing::warn!(error = %e, "indexing the output folder failed; trying again"),
        }
        caught_up.store(true, Ordering::Relaxed);
        tokio::time::sleep(interval).await;
    }
}

/// Indexes the result files that are new or changed since `seen`; returns how many.
fn feed_changed(
    dir: &Path,
    index: &ResultIndex,
    seen: &mut HashMap<PathBuf, (SystemTime, u64)>,
) -> anyhow::Result<usize> {
    let mut changed = Vec::new();
    walk(dir, &mut |path| {
        let Ok(meta) = std::fs::metadata(path) else { return };
        let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
        if seen.get(path) != Some(&stamp) {
            changed.push((path.to_path_buf(), stamp));
        }
    })?;
    let mut records = Vec::with_capacity(changed.len());
    for (path, _) in &changed {
        // Results are written atomically: a file that does not parse is not one of ours.
        match std::fs::read(path)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok(serde_json::from_slice::<ResultRecord>(&b)?))
        {
            Ok(record) => records.push(record),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "not indexed: unreadable result file"),
        }
    }
    for chunk in records.chunks(500) {
        index.upsert(chunk)?;
    }
    seen.extend(changed);
    Ok(records.len())
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

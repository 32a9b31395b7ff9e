//! Embedded mode's sink: files under the output folder.
//!
//! ```text
//! <out>/results/<key>.json   one ResultRecord per photo, replaced atomically
//! <out>/dlq/<key>.json       one DlqRecord per photo that failed for good
//! <out>/results.csv          one row per result file, rebuilt (never appended) on flush
//! <out>/corrections/<key>.json  a person's label for the photo (written by `autorma serve`)
//! ```
//! A key has at most one outcome: a result removes the key's dead letter and vice versa.

mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use autorma_core::store::local::key_to_relative_path;
use autorma_core::{
    DlqReason, DlqRecord, ItemRef, ModelRef, OutboundRecord, Prior, PriorOutcome, ResultRecord, ResultSink, SinkError,
    SourcedEvent, fsutil,
};

use table::ResultTable;

#[derive(Debug, Clone)]
pub struct LocalSink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    out: PathBuf,
    /// Result and dead-letter files are made durable by syncs shared with the other writes in
    /// flight: a write returns (and its photo is acknowledged) only after a sync covers it.
    durable: fsutil::SyncGroup,
    /// What is on disk, mirrored in memory: `lookup` answers from here without I/O, and
    /// `flush` writes results.csv from here without re-reading every file.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    results: ResultTable,
    /// Dead letters by key: (etag, reason).
    dlq: HashMap<String, (String, DlqReason)>,
    /// A result changed since results.csv was last written.
    csv_dirty: bool,
}

impl LocalSink {
    /// Opens `out`, removing debris of interrupted writes and indexing what earlier runs wrote.
    pub fn open(out: &Path) -> Result<Self, SinkError> {
        let mut state = State { csv_dirty: true, ..State::default() };
        for (sub, is_result) in [("results", true), ("dlq", false)] {
            let dir = out.join(sub);
            std::fs::create_dir_all(&dir)
                .map_err(|source| SinkError::Write { path: dir.display().to_string(), source })?;
            for path in walk_files(&dir)? {
                if fsutil::is_tmp_file(&path) {
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                let bytes = std::fs::read(&path)
                    .map_err(|source| SinkError::Read { path: path.display().to_string(), source })?;
                // Writes are atomic, so a file that does not parse was not written by us; it is
                // left alone and its photo is classified again (which replaces it).
                if is_result {
                    match serde_json::from_slice::<ResultRecord>(&bytes) {
                        Ok(record) => state.results.upsert(&record),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable result file")
                        }
                    }
                } else {
                    match serde_json::from_slice::<DlqRecord>(&bytes) {
                        Ok(record) => {
                            state.dlq.insert(record.event.key.clone(), (record.event.etag.clone(), record.reason));
                        }
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable dlq file"),
                    }
                }
            }
        }
        let durable = fsutil::SyncGroup::open(out)
            .map_err(|source| SinkError::Write { path: out.display().to_string(), source })?;
        Ok(Self { inner: Arc::new(Inner { out: out.to_path_buf(), durable, state: Mutex::new(state) }) })
    }

    pub fn result_path(&self, key: &str) -> Result<PathBuf, SinkError> {
        self.record_path("results", key)
    }

    pub fn dlq_path(&self, key: &str) -> Result<PathBuf, SinkError> {
        self.record_path("dlq", key)
    }

    pub fn csv_path(&self) -> PathBuf {
        self.inner.out.join("results.csv")
    }

    fn record_path(&self, sub: &str, key: &str) -> Result<PathBuf, SinkError> {
        record_path(&self.inner.out, sub, key)
    }

    /// The photos with a result from another model than `model` (every photo with a result
    /// when `None`): what a replay classifies again.
    pub fn results_made_by_other_than(&self, model: Option<&ModelRef>) -> Vec<ItemRef> {
        self.state().results.made_by_other_than(model)
    }

    /// Photos with a result.
    pub fn num_results(&self) -> usize {
        self.state().results.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().expect("sink state lock poisoned")
    }

    /// Replaces `path` atomically, removes `other` (the key's outcome of the other kind), and
    /// returns once both are durable.
    async fn write_and_remove(&self, path: PathBuf, bytes: Vec<u8>, other: PathBuf) -> Result<(), SinkError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let failed = |path: &Path| {
                let path = path.display().to_string();
                move |source| SinkError::Write { path, source }
            };
            inner.durable.replace(&path, &bytes).map_err(failed(&path))?;
            match std::fs::remove_file(&other) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(failed(&other)(source)),
            }
            inner.durable.sync().map_err(failed(&inner.out))
        })
        .await
        .expect("sink write panicked")
    }
}

/// `<out>/<sub>/<key>.json`, refusing keys that could escape `out`.
fn record_path(out: &Path, sub: &str, key: &str) -> Result<PathBuf, SinkError> {
    let rel =
        key_to_relative_path(key).map_err(|e| SinkError::InvalidKey { key: key.to_string(), reason: e.to_string() })?;
    let mut path = out.join(sub).join(rel);
    let mut name = path.file_name().expect("validated key has a file name").to_os_string();
    name.push(".json");
    path.set_file_name(name);
    Ok(path)
}

impl ResultSink for LocalSink {
    /// Embedded mode publishes no records: a prior outcome is always settled.
    async fn lookup(&self, sourced: &SourcedEvent, model: &ModelRef) -> Result<Option<Prior>, SinkError> {
        let event = &sourced.event;
        let state = self.state();
        if let Some(decision) = state.results.decision_for(&event.key, &event.etag, model) {
            return Ok(Some(Prior::settled(PriorOutcome::Classified(decision))));
        }
        Ok(state
            .dlq
            .get(&event.key)
            .filter(|(etag, reason)| *etag == event.etag && reason.is_final())
            .map(|(_, reason)| Prior::settled(PriorOutcome::DeadLettered(*reason))))
    }

    async fn write_result(&self, record: &ResultRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        let key = record.item.key.clone();
        let path = self.result_path(&key)?;
        let stale_dlq = self.dlq_path(&key)?;
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|source| SinkError::Encode { key: key.clone(), source })?;
        self.write_and_remove(path, bytes, stale_dlq).await?;
        let mut state = self.state();
        state.results.upsert(record);
        state.dlq.remove(&key);
        state.csv_dirty = true;
        Ok(Vec::new())
    }

    async fn write_dlq(&self, record: &DlqRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        let key = record.event.key.clone();
        let path = self.dlq_path(&key)?;
        let stale_result = self.result_path(&key)?;
        let bytes =
            serde_json::to_vec_pretty(record).map_err(|source| SinkError::Encode { key: key.clone(), source })?;
        self.write_and_remove(path, bytes, stale_result).await?;
        let mut state = self.state();
        state.dlq.insert(key.clone(), (record.event.etag.clone(), record.reason));
        if state.results.remove(&key) {
            state.csv_dirty = true;
        }
        Ok(Vec::new())
    }

    async fn flush(&self) -> Result<(), SinkError> {
        let csv = {
            let mut state = self.state();
            if !state.csv_dirty {
                return Ok(());
            }
            state.csv_dirty = false;
            state.results.to_csv()
        };
        let path = self.csv_path();
        let written = tokio::task::spawn_blocking({
            let path = path.clone();
            move || fsutil::atomic_write(&path, &csv)
        })
        .await
        .expect("csv write panicked");
        if let Err(source) = written {
            self.state().csv_dirty = true;
            return Err(SinkError::Write { path: path.display().to_string(), source });
        }
        Ok(())
    }
}

fn walk_files(root: &Path) -> Result<Vec<PathBuf>, SinkError> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let read_err = |source| SinkError::Read { path: dir.display().to_string(), source };
        for entry in std::fs::read_dir(&dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let file_type = entry.file_type().map_err(read_err)?;
            if file_type.is_dir() {
                dirs.push(entry.path());
            } else if file_type.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use autorma_core::{Decision, Position};

    use super::*;
    use crate::test_records::{dlq, event, model, result};

    #[tokio::test]
    async fn results_are_idempotent_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::open(dir.path()).unwrap();
        sink.write_result(&result("a/x.jpg", "e1", Decision::Auto)).await.unwrap();
        sink.write_result(&result("a/x.jpg", "e1", Decision::Auto)).await.unwrap();
        sink.write_result(&result("b.jpg", "e2", Decision::Review)).await.unwrap();
        sink.flush().await.unwrap();
        assert!(dir.path().join("results/a/x.jpg.json").is_file());
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.lines().next().unwrap().starts_with("key,etag,label,confidence,decision,p_shirts,p_tops"));

        let sink = LocalSink::open(dir.path()).unwrap();
        let found =
            sink.lookup(&SourcedEvent::live(Position::new(0, 0), event("a/x.jpg", "e1")), &model()).await.unwrap();
        assert_eq!(found, Some(Prior::settled(PriorOutcome::Classified(Decision::Auto))));
        // Another etag (the photo was replaced) or another model: not done.
        assert_eq!(
            sink.lookup(&SourcedEvent::live(Position::new(0, 0), event("a/x.jpg", "e9")), &model()).await.unwrap(),
            None
        );
        assert_eq!(
            sink.lookup(
                &SourcedEvent::live(Position::new(0, 0), event("a/x.jpg", "e1")),
                &ModelRef { version: "2".into(), ..model() }
            )
            .await
            .unwrap(),
            None
        );
        sink.write_result(&result("c.jpg", "e3", Decision::Auto)).await.unwrap();
        sink.flush().await.unwrap();
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert_eq!(csv.lines().count(), 4, "{csv}");
    }

    #[tokio::test]
    async fn a_key_has_one_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalSink::open(dir.path()).unwrap();
        sink.write_dlq(&dlq("x.jpg", "e1")).await.unwrap();
        assert!(dir.path().join("dlq/x.jpg.json").is_file());
        assert_eq!(
            sink.lookup(&SourcedEvent::live(Position::new(0, 0), event("x.jpg", "e1")), &model()).await.unwrap(),
            Some(Prior::settled(PriorOutcome::DeadLettered(DlqReason::DecodeError)))
        );
        // The photo is replaced by one that classifies: the dead letter goes.
        sink.write_result(&result("x.jpg", "e2", Decision::Auto)).await.unwrap();
        assert!(!dir.path().join("dlq/x.jpg.json").exists());
        assert!(dir.path().join("results/x.jpg.json").is_file());
        // And replaced again by a broken one: the result goes.
        sink.write_dlq(&dlq("x.jpg", "e3")).await.unwrap();
        assert!(!dir.path().join("results/x.jpg.json").exists());
        sink.flush().await.unwrap();
        let csv = std::fs::read_to_string(dir.path().join("results.csv")).unwrap();
        assert_eq!(csv.lines().count(), 1, "{csv}");
    }

    #[tokio::test]
    async fn open_cleans_temp_debris_and_rejects_escaping_keys() {
        let dir = tempfile::tempdir().unwrap();
        let debris = dir.path().join(format!("results/.a.jpg.json{}9-9", fsutil::TMP_MARKER));
        std::fs::create_dir_all(debris.parent().unwrap()).unwrap();
        std::fs::write(&debris, b"{").unwrap();
        let sink = LocalSink::open(dir.path()).unwrap();
        assert!(!debris.exists());
        let err = sink.write_result(&result("../evil.jpg", "e", Decision::Auto)).await.unwrap_err();
        assert!(matches!(err, SinkError::InvalidKey { .. }), "{err}");
    }
}

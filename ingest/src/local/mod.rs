//! Embedded mode's event source: a scan (and with `watch`, a poll) of a local folder.
//! The protocol (event log + checkpoint file) is in `design.md` beside this file.

mod checkpoint;
mod claims;
mod log;
mod owner;
mod scan;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autorma_core::{Checkpoint, EventOrigin, EventSource, PartitionId, SourceError, Sourced, SourcedEvent};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use checkpoint::CheckpointFile;
pub use claims::{ClaimsByKey, ClaimsFileError, read_claims};
pub use log::EventLog;
pub use owner::StateOwner;
pub use scan::{ScanFilter, ScannedFile, scan};

/// The folder source has one partition.
pub const PARTITION: PartitionId = 0;

#[derive(Debug, Clone)]
pub struct LocalFolderSourceConfig {
    /// The folder photos arrive in; keys are paths relative to it.
    pub inbox: PathBuf,
    /// Where the event log and the checkpoint live (`<out>/state`).
    pub state_dir: PathBuf,
    /// The bucket name events carry (the local store serves the same name).
    pub bucket: String,
    /// Keep polling for new files after the backlog is done, until shutdown.
    pub watch: bool,
    /// Time between two scans in watch mode.
    pub poll_interval: Duration,
    /// In watch mode, a file modified less than this long ago is left for a later scan, so a
    /// photo still being copied in is not read half-written.
    pub settle: Duration,
    /// At most this many events per `next_batch`.
    pub max_batch: usize,
    /// A folder inside the inbox that is never scanned (the output folder, if it is there).
    pub exclude: Option<PathBuf>,
    /// Each photo's claim by key (`--claims FILE`), carried on its event.
    pub claims: Arc<ClaimsByKey>,
}

impl LocalFolderSourceConfig {
    pub fn new(inbox: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            inbox: inbox.into(),
            state_dir: state_dir.into(),
            bucket: "local".into(),
            watch: false,
            poll_interval: Duration::from_millis(500),
            settle: Duration::from_secs(1),
            // Large: the pipeline learns the size of the backlog early (progress, logs); the
            // events are already in memory in the log, so this costs nothing.
            max_batch: 4096,
            exclude: None,
            claims: Arc::default(),
        }
    }
}

pub struct LocalFolderSource {
    config: LocalFolderSourceConfig,
    /// Shared with the scan task that runs on a blocking thread.
    log: Arc<Mutex<EventLog>>,
    checkpoint: CheckpointFile,
    /// Logged events not yet handed out, in offset order.
    pending: std::collections::VecDeque<SourcedEvent>,
    /// The scan in progress. Kept here (not in a local of `next_batch`) so that a cancelled
    /// `next_batch` picks up the same scan's result next time: that is its cancel safety.
    scan_task: Option<JoinHandle<Result<Vec<SourcedEvent>, SourceError>>>,
    num_scans: u64,
    /// When the next watch poll may start; stored for the same cancel-safety reason.
    next_scan_at: Instant,
    filter: ScanFilter,
    /// Inbox entries already reported as skipped (each is logged once, not at every poll).
    reported_skips: Arc<Mutex<HashSet<PathBuf>>>,
    /// The state folder's lock, held while this source lives.
    _owner: StateOwner,
}

impl LocalFolderSource {
    /// Opens (or creates) the state in `state_dir` and queues every logged event at or above
    /// the committed offset for redelivery.
    pub fn open(config: LocalFolderSourceConfig) -> Result<Self, SourceError> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|source| SourceError::State { path: config.state_dir.display().to_string(), source })?;
        let owner = StateOwner::claim(&config.state_dir, &config.inbox, &config.bucket)?;
        let checkpoint = CheckpointFile::open(&config.state_dir.join("checkpoint.json"))?;
        let committed = checkpoint.committed(PARTITION);
        let (log, redeliver) = EventLog::open(&config.state_dir.join("events.jsonl"), committed)?;
        if committed > log.next_offset() {
            return Err(SourceError::Corrupt {
                path: config.state_dir.display().to_string(),
                detail: format!("checkpoint is at offset {committed} but the event log ends at {}", log.next_offset()),
            });
        }
        let filter = ScanFilter::new(&config.inbox, config.exclude.as_deref());
        Ok(Self {
            config,
            log: Arc::new(Mutex::new(log)),
            checkpoint,
            pending: redeliver.into(),
            scan_task: None,
            num_scans: 0,
            next_scan_at: Instant::now(),
            filter,
            reported_skips: Arc::default(),
            _owner: owner,
        })
    }

    pub fn committed_offset(&self) -> u64 {
        self.checkpoint.committed(PARTITION)
    }

    fn start_scan(&mut self) {
        let log = self.log.clone();
        let inbox = self.config.inbox.clone();
        let bucket = self.config.bucket.clone();
        let filter = self.filter.clone();
        // The first scan lists the backlog; later ones find new arrivals.
        let origin = if self.num_scans == 0 { EventOrigin::Replay } else { EventOrigin::Notification };
        let settle = self.config.watch.then_some(self.config.settle);
        let reported = self.reported_skips.clone();
        let claims = self.config.claims.clone();
        self.scan_task = Some(tokio::task::spawn_blocking(move || {
            let found = scan::scan(&inbox, &filter, settle)?;
            let mut reported = reported.lock().expect("reported skips lock poisoned");
            for (path, why) in found.skipped {
                if !reported.contains(&path) {
                    tracing::warn!(path = %path.display(), why, "skipped an inbox entry that is not a photo file");
                    reported.insert(path);
                }
            }
            drop(reported);
            let mut log = log.lock().expect("event log lock poisoned");
            log.append_new(&bucket, found.files, origin, &claims)
        }));
    }
}

impl EventSource for LocalFolderSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(self.config.max_batch.max(1));
                return Ok(Some(self.pending.drain(..n).map(Sourced::Event).collect()));
            }
            if let Some(task) = self.scan_task.as_mut() {
                let result = task.await.expect("folder scan task panicked");
                self.scan_task = None;
                // Only a scan that succeeded counts: a failed one must not leave a one-shot run
                // believing the inbox is done. The error goes up; the next call scans again.
                let found = result?;
                self.num_scans += 1;
                self.pending.extend(found);
                continue;
            }
            if self.num_scans > 0 {
                if !self.config.watch {
                    return Ok(None);
                }
                tokio::time::sleep_until(self.next_scan_at).await;
            }
            self.next_scan_at = Instant::now() + self.config.poll_interval;
            self.start_scan();
        }
    }

    /// Embedded mode's sink publishes no records, so a checkpoint carries none.
    async fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), SourceError> {
        if let Some((partition, record)) = checkpoint.records.first() {
            return Err(SourceError::Commit {
                partition: *partition,
                offset: 0,
                detail: format!("the folder source cannot publish records (one for `{}`)", record.topic),
            });
        }
        for (partition, offset) in checkpoint.watermarks {
            if partition != PARTITION {
                return Err(SourceError::Commit {
                    partition,
                    offset,
                    detail: "the folder source has only partition 0".into(),
                });
            }
            if offset <= self.checkpoint.committed(PARTITION) {
                continue;
            }
            let mut checkpoint = self.checkpoint.clone();
            checkpoint.set(partition, offset);
            // The write is small but does an fsync: keep it off the async workers.
            let checkpoint = tokio::task::spawn_blocking(move || checkpoint.save().map(|()| checkpoint))
                .await
                .expect("checkpoint write panicked")?;
            self.checkpoint = checkpoint;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &std::path::Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// The folder source hands out only events.
    fn events(batch: Vec<Sourced>) -> Vec<SourcedEvent> {
        batch
            .into_iter()
            .map(|sourced| match sourced {
                Sourced::Event(event) => event,
                other => panic!("the folder source handled {other:?} itself"),
            })
            .collect()
    }

    fn up_to(offset: u64) -> Checkpoint {
        Checkpoint { watermarks: vec![(PARTITION, offset)], records: Vec::new() }
    }

    async fn drain(source: &mut LocalFolderSource) -> Vec<SourcedEvent> {
        let mut all = Vec::new();
        while let Some(batch) = source.next_batch().await.unwrap() {
            all.extend(events(batch));
        }
        all
    }

    #[tokio::test]
    async fn scans_in_path_order_and_resumes_from_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let state = dir.path().join("out/state");
        write(&inbox.join("b/2.jpg"), b"b2");
        write(&inbox.join("a.png"), b"a");
        write(&inbox.join("b/1.webp"), b"b1");
        write(&inbox.join(".hidden.jpg"), b"h");
        let mut config = LocalFolderSourceConfig::new(&inbox, &state);
        config.max_batch = 2;

        let mut source = LocalFolderSource::open(config.clone()).unwrap();
        let events = drain(&mut source).await;
        let keys: Vec<_> = events.iter().map(|e| (e.position.offset, e.event.key.as_str())).collect();
        assert_eq!(keys, vec![(0, "a.png"), (1, "b/1.webp"), (2, "b/2.jpg")]);
        assert!(events.iter().all(|e| e.event.source == EventOrigin::Replay && e.event.bucket == "local"));
        source.commit(up_to(2)).await.unwrap();
        drop(source);

        // Restart: offset 2 was not committed, so it comes again; nothing else does.
        write(&inbox.join("c.jpg"), b"c");
        let mut source = LocalFolderSource::open(config.clone()).unwrap();
        assert_eq!(source.committed_offset(), 2);
        let events = drain(&mut source).await;
        let keys: Vec<_> = events.iter().map(|e| (e.position.offset, e.event.key.as_str())).collect();
        assert_eq!(keys, vec![(2, "b/2.jpg"), (3, "c.jpg")]);
    }

    #[tokio::test]
    async fn a_replaced_photo_is_a_new_event() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        let state = dir.path().join("state");
        write(&inbox.join("a.jpg"), b"one");
        let config = LocalFolderSourceConfig::new(&inbox, &state);
        let mut source = LocalFolderSource::open(config.clone()).unwrap();
        let first = drain(&mut source).await;
        source.commit(up_to(1)).await.unwrap();
        drop(source);
        write(&inbox.join("a.jpg"), b"three");
        let mut source = LocalFolderSource::open(config).unwrap();
        let second = drain(&mut source).await;
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].position.offset, 1);
        assert_ne!(second[0].event.etag, first[0].event.etag);
    }

    #[tokio::test]
    async fn watch_finds_new_files_and_a_cancelled_poll_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir_all(&inbox).unwrap();
        let mut config = LocalFolderSourceConfig::new(&inbox, dir.path().join("state"));
        config.watch = true;
        config.poll_interval = Duration::from_millis(20);
        config.settle = Duration::ZERO;
        let mut source = LocalFolderSource::open(config).unwrap();
        // Nothing there: the poll does not finish; cancel it a few times.
        for _ in 0..3 {
            let r = tokio::time::timeout(Duration::from_millis(30), source.next_batch()).await;
            assert!(r.is_err(), "an empty inbox yielded {r:?}");
        }
        write(&inbox.join("new.jpg"), b"x");
        let batch = tokio::time::timeout(Duration::from_secs(5), source.next_batch()).await.unwrap().unwrap().unwrap();
        let batch = events(batch);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].event.key, "new.jpg");
        assert_eq!(batch[0].event.source, EventOrigin::Notification);
        // And it is not found twice.
        let r = tokio::time::timeout(Duration::from_millis(100), source.next_batch()).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn a_failed_scan_is_reported_and_retried_not_taken_for_an_empty_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        write(&inbox.join("a.jpg"), b"a");
        let mut source =
            LocalFolderSource::open(LocalFolderSourceConfig::new(&inbox, dir.path().join("state"))).unwrap();
        // The inbox cannot be listed (here: it is gone for a moment).
        std::fs::rename(&inbox, dir.path().join("away")).unwrap();
        let err = source.next_batch().await.unwrap_err();
        assert!(matches!(err, SourceError::Scan { .. }), "{err}");
        std::fs::rename(dir.path().join("away"), &inbox).unwrap();
        let events = drain(&mut source).await;
        let keys: Vec<_> = events.iter().map(|e| (e.event.key.as_str(), e.event.source)).collect();
        assert_eq!(keys, vec![("a.jpg", EventOrigin::Replay)], "the backlog scan is done again");
    }

    #[test]
    fn a_checkpoint_past_the_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut checkpoint = CheckpointFile::open(&state.join("checkpoint.json")).unwrap();
        checkpoint.set(0, 5);
        checkpoint.save().unwrap();
        let err = LocalFolderSource::open(LocalFolderSourceConfig::new(dir.path(), &state)).err().unwrap();
        assert!(matches!(&err, SourceError::Corrupt { detail, .. } if detail.contains("event log ends at 0")), "{err}");
    }
}

//! The pipeline core alone, on in-memory doubles of the three boundaries: every event gets
//! exactly one durable outcome, transient fetch errors are retried and permanent ones
//! dead-lettered, prior outcomes are skipped, and commits never pass an unfinished event.
//! Uses the tiny5 fixture model and the ONNX Runtime library (see tests/session.rs).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autorma_classifier::inference::{RuntimeConfig, default_library_path};
use autorma_classifier::serving::{ModelHandle, ServingModel};
use autorma_classifier::{Pipeline, PipelineConfig, PipelineModel, RequestError};
use autorma_core::{
    CheckOutcome, Checkpoint, Claim, Decision, DlqReason, DlqRecord, EventOrigin, EventSource, ItemEvent, Lane,
    MemoryStore, Metadata, ModelRef, Object, ObjectInfo, ObjectStore, OutboundRecord, PartitionId, Position, Prior,
    PriorOutcome, ResultRecord, ResultSink, ReviewReason, SinkError, SourceError, Sourced, SourcedEvent, StoreError,
    WriteCondition,
};
use autorma_registry::ModelPackage;
use bytes::Bytes;
use image::{ImageEncoder, Rgb, RgbImage};

/// The bucket every test event names.
const BUCKET: &str = "mem";

fn png(color: [u8; 3]) -> Bytes {
    let img = RgbImage::from_pixel(40, 40, Rgb(color));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(&img, 40, 40, image::ExtendedColorType::Rgb8).unwrap();
    out.into()
}

/// The in-memory store, where a key listed in `transient` fails with an I/O error that many
/// times first, and a key under `gate`'s prefix is not answered before the gate opens (gets a
/// permit). The pipeline only reads; writes go straight to the store.
#[derive(Default)]
struct MemStore {
    objects: MemoryStore,
    transient: Mutex<HashMap<String, u32>>,
    gate: Option<(&'static str, Arc<tokio::sync::Semaphore>)>,
}

impl MemStore {
    fn insert(&self, key: &str, bytes: Bytes) {
        self.objects.insert(BUCKET, key, bytes);
    }
}

impl ObjectStore for MemStore {
    async fn get_object(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        if let Some((prefix, gate)) = &self.gate
            && key.starts_with(prefix)
        {
            drop(gate.acquire().await.unwrap());
        }
        if let Some(left) = self.transient.lock().unwrap().get_mut(key)
            && *left > 0
        {
            *left -= 1;
            let source = std::io::Error::new(std::io::ErrorKind::TimedOut, "flaky");
            return Err(StoreError::Io { bucket: bucket.into(), key: key.into(), action: "read", source });
        }
        self.objects.get_object(bucket, key, max_bytes).await
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &Metadata,
    ) -> Result<(), StoreError> {
        self.objects.put_object(bucket, key, body, content_type, metadata).await
    }

    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<bool, StoreError> {
        self.objects.put_if(bucket, key, body, content_type, condition).await
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.objects.list(bucket, prefix).await
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.objects.delete(bucket, key).await
    }
}

/// Hands out `events` three at a time; with `endless`, then waits forever (like a watch).
/// Keeps the watermarks it was asked to commit, and the keys of the records published with them.
struct VecSource {
    events: std::collections::VecDeque<Sourced>,
    endless: bool,
    commits: Arc<Mutex<Vec<(PartitionId, u64)>>>,
    published: Arc<Mutex<Vec<String>>>,
}

impl VecSource {
    fn new(
        events: impl IntoIterator<Item = SourcedEvent>,
        endless: bool,
        commits: &Arc<Mutex<Vec<(PartitionId, u64)>>>,
    ) -> Self {
        let events = events.into_iter().map(Sourced::Event).collect();
        Self { events, endless, commits: commits.clone(), published: Arc::default() }
    }
}

impl EventSource for VecSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        if self.events.is_empty() {
            if self.endless {
                std::future::pending::<()>().await;
            }
            return Ok(None);
        }
        let n = self.events.len().min(3);
        Ok(Some(self.events.drain(..n).collect()))
    }

    async fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), SourceError> {
        self.commits.lock().unwrap().extend_from_slice(&checkpoint.watermarks);
        self.published
            .lock()
            .unwrap()
            .extend(checkpoint.records.into_iter().map(|(_, r)| format!("{}:{}", r.topic, r.key)));
        Ok(())
    }
}

/// Hands out its events, then fails once with a transient error (telling the test when), then
/// waits forever like an idle watch.
struct FailingOnceSource {
    events: Option<Vec<Sourced>>,
    failed_tx: Option<tokio::sync::oneshot::Sender<()>>,
}

impl EventSource for FailingOnceSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        if let Some(events) = self.events.take() {
            return Ok(Some(events));
        }
        if let Some(failed_tx) = self.failed_tx.take() {
            let _ = failed_tx.send(());
            return Err(SourceError::Scan { path: "inbox".into(), source: std::io::Error::other("flaky listing") });
        }
        std::future::pending().await
    }

    async fn commit(&mut self, _checkpoint: Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }
}

/// Fails every poll with a transient-looking error, counting the polls.
struct AlwaysFailingSource {
    polls: Arc<Mutex<u32>>,
}

impl EventSource for AlwaysFailingSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        *self.polls.lock().unwrap() += 1;
        Err(SourceError::Scan { path: "inbox".into(), source: std::io::Error::other("still down") })
    }

    async fn commit(&mut self, _checkpoint: Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }
}

#[derive(Default)]
struct MemSink {
    results: Mutex<BTreeMap<String, Vec<ResultRecord>>>,
    dlq: Mutex<BTreeMap<String, Vec<DlqRecord>>>,
    prior: HashMap<String, PriorOutcome>,
    /// Writes of this key take long: lets a test catch the pipeline with it in flight.
    slow_key: Option<String>,
    /// Every result write fails for good.
    broken: bool,
    /// The number of results at each flush.
    flushes: Mutex<Vec<usize>>,
}

impl ResultSink for MemSink {
    async fn lookup(&self, sourced: &SourcedEvent, _model: &ModelRef) -> Result<Option<Prior>, SinkError> {
        Ok(self.prior.get(&sourced.event.key).copied().map(Prior::settled))
    }
    /// One record per outcome, named by topic and key.
    async fn write_result(&self, record: &ResultRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        if self.broken {
            return Err(SinkError::InvalidKey { key: record.item.key.clone(), reason: "broken sink".into() });
        }
        if self.slow_key.as_deref() == Some(record.item.key.as_str()) {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        self.results.lock().unwrap().entry(record.item.key.clone()).or_default().push(record.clone());
        Ok(vec![OutboundRecord::new("results", &record.item.key, Vec::new(), &[])])
    }
    async fn write_dlq(&self, record: &DlqRecord) -> Result<Vec<OutboundRecord>, SinkError> {
        self.dlq.lock().unwrap().entry(record.event.key.clone()).or_default().push(record.clone());
        Ok(vec![OutboundRecord::new("dlq", &record.event.key, Vec::new(), &[])])
    }
    async fn flush(&self) -> Result<(), SinkError> {
        let num_results = self.results.lock().unwrap().len();
        self.flushes.lock().unwrap().push(num_results);
        Ok(())
    }
}

/// A store holding one plain PNG of `color` under each key.
fn store_of<K: Into<String>>(keys: impl IntoIterator<Item = K>, color: [u8; 3]) -> MemStore {
    let store = MemStore::default();
    for key in keys {
        let key: String = key.into();
        store.insert(&key, png(color));
    }
    store
}

fn event(offset: u64, key: &str) -> SourcedEvent {
    SourcedEvent::live(
        Position::new(0, offset),
        ItemEvent {
            bucket: BUCKET.into(),
            key: key.into(),
            etag: format!("etag-{offset}"),
            size: 0,
            content_type: "image/png".into(),
            event_time: chrono::Utc::now(),
            source: EventOrigin::Notification,
            claim: None,
            replay: None,
        },
    )
}

/// Hands out partition 0's events, then partition 1's while reporting partition 0 revoked (a
/// rebalance), then is exhausted after opening `gate`.
struct RevokingSource {
    batches: std::collections::VecDeque<Vec<Sourced>>,
    calls: u32,
    gate: Arc<tokio::sync::Semaphore>,
    commits: Arc<Mutex<Vec<(u32, PartitionId, u64)>>>,
}

impl EventSource for RevokingSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        self.calls += 1;
        if self.calls == 3 {
            // The pipeline has heard of the revoke by now: let partition 0's fetches finish.
            self.gate.add_permits(100);
        }
        Ok(self.batches.pop_front())
    }

    async fn commit(&mut self, checkpoint: Checkpoint) -> Result<(), SourceError> {
        let call = self.calls;
        self.commits.lock().unwrap().extend(checkpoint.watermarks.iter().map(|&(p, o)| (call, p, o)));
        Ok(())
    }

    fn take_revoked(&mut self) -> Vec<PartitionId> {
        if self.calls == 2 { vec![0] } else { Vec::new() }
    }
}

fn package() -> Arc<ModelPackage> {
    Arc::new(ModelPackage::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny5")).unwrap())
}

fn config() -> PipelineConfig {
    let library = std::env::var_os("AUTORMA_ORT_LIBRARY").map(PathBuf::from).unwrap_or_else(default_library_path);
    let mut config = PipelineConfig::new(RuntimeConfig::new(library));
    config.batcher.max_batch_size = 4;
    config.fetch_retry.initial_backoff = Duration::from_millis(1);
    config.commit_interval = Duration::from_millis(10);
    config
}

#[tokio::test]
async fn every_event_gets_exactly_one_outcome() {
    let keys = ["red", "green", "flaky", "missing", "down", "garbage", "done-before", "blue", "white", "black"];
    let store = MemStore::default();
    for (key, color) in [
        ("red", [255, 0, 0]),
        ("green", [0, 255, 0]),
        ("flaky", [0, 0, 255]),
        ("blue", [0, 0, 255]),
        ("white", [255; 3]),
        ("black", [0; 3]),
    ] {
        store.insert(key, png(color));
    }
    store.insert("down", png([1, 2, 3]));
    store.insert("garbage", Bytes::from_static(b"%PDF-1.4 not a photo"));
    // Two transient failures then success; the other fails more often than the 3 tries allow.
    store.transient.lock().unwrap().extend([("flaky".to_string(), 2), ("down".to_string(), 10)]);
    let sink = Arc::new(MemSink {
        prior: HashMap::from([("done-before".to_string(), PriorOutcome::Classified(Decision::Auto))]),
        ..Default::default()
    });
    let commits = Arc::new(Mutex::new(Vec::new()));
    let mut source = VecSource::new(keys.iter().enumerate().map(|(i, k)| event(i as u64, k)), false, &commits);
    // A message the source handled itself (one that is not an ItemEvent): committed in its turn.
    let unreadable = OutboundRecord::new("dlq", "unreadable", Vec::new(), &[]);
    source
        .events
        .insert(4, Sourced::Handled { position: Position::new(0, 4), lane: Lane::Live, records: vec![unreadable] });
    for later in source.events.iter_mut().skip(5) {
        if let Sourced::Event(e) = later {
            e.position.offset += 1;
        }
    }
    let published = source.published.clone();

    let summary =
        Pipeline::new(store, source, sink.clone(), package(), config()).run(std::future::pending()).await.unwrap();

    let results = sink.results.lock().unwrap();
    let dlq = sink.dlq.lock().unwrap();
    assert_eq!(
        results.keys().map(String::as_str).collect::<Vec<_>>(),
        ["black", "blue", "flaky", "green", "red", "white"]
    );
    assert!(results.values().all(|r| r.len() == 1), "each result written once");
    assert_eq!(results["red"][0].label, "casual_shoes");
    assert_eq!(results["flaky"][0].label, "shirts", "retried until it worked");
    let reasons: BTreeMap<_, _> =
        dlq.iter().map(|(k, v)| (k.as_str(), (v.len(), v[0].reason, v[0].attempts))).collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("down", (1, DlqReason::StoreUnavailable, 3)),
            ("garbage", (1, DlqReason::NotAnImage, 1)),
            ("missing", (1, DlqReason::FetchFailed, 1)),
        ])
    );
    assert!(!results.contains_key("done-before") && !dlq.contains_key("done-before"), "prior outcomes are not redone");
    assert_eq!((summary.classified(), summary.dlq, summary.already_done), (6, 3, 1));
    assert_eq!(commits.lock().unwrap().last(), Some(&(0, 11)), "everything committed at the end");
    // Every outcome's record published once, with the commit that passed it, in offset order.
    let published = published.lock().unwrap();
    let expected = [
        "results:red",
        "results:green",
        "results:flaky",
        "dlq:missing",
        "dlq:unreadable",
        "dlq:down",
        "dlq:garbage",
        "results:blue",
        "results:white",
        "results:black",
    ];
    assert_eq!(*published, expected, "the prior outcome publishes nothing; the rest once each, in order");
    let committed: Vec<u64> = commits.lock().unwrap().iter().map(|c| c.1).collect();
    assert!(committed.windows(2).all(|w| w[0] < w[1]), "commits only move forward: {committed:?}");
}

#[tokio::test]
async fn shutdown_drains_in_flight_work_and_commits_no_further_than_done() {
    let keys: Vec<String> = (0..12).map(|i| format!("p{i:02}")).collect();
    let store = store_of(&keys, [200, 10, 10]);
    // p05's write is slow: when the shutdown comes, it is still in flight.
    let sink = Arc::new(MemSink { slow_key: Some("p05".into()), ..Default::default() });
    let commits = Arc::new(Mutex::new(Vec::new()));
    let source = VecSource::new(keys.iter().enumerate().map(|(i, k)| event(i as u64, k)), true, &commits);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(Pipeline::new(store, source, sink.clone(), package(), config()).run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), run).await.expect("drains promptly").unwrap().unwrap();

    let results = sink.results.lock().unwrap();
    assert!(results.contains_key("p05"), "the slow write in flight was finished, not dropped");
    assert_eq!(summary.classified() as usize, results.len());
    // The last commit covers exactly a prefix of events that all have results.
    let committed = commits.lock().unwrap().last().map_or(0, |c| c.1);
    assert!(committed >= 6, "committed {committed}");
    for key in &keys[..committed as usize] {
        assert!(results.contains_key(key), "{key} is below the commit but has no result");
    }
}

#[tokio::test]
async fn a_sink_that_fails_for_good_stops_the_pipeline_with_its_error() {
    let keys: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    let store = store_of(&keys, [0, 0, 0]);
    let sink = Arc::new(MemSink { broken: true, ..Default::default() });
    let commits = Arc::new(Mutex::new(Vec::new()));
    // Endless like a watch: without the stop, the run would never end.
    let source = VecSource::new(keys.iter().enumerate().map(|(i, k)| event(i as u64, k)), true, &commits);
    let run = Pipeline::new(store, source, sink, package(), config()).run(std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(10), run).await.expect("stops by itself").unwrap_err();
    assert!(matches!(err, autorma_classifier::PipelineError::Sink { .. }), "{err}");
    assert!(commits.lock().unwrap().is_empty(), "nothing was written, so nothing is committed");
}

#[tokio::test]
async fn waiting_to_retry_a_source_error_does_not_hold_up_the_shutdown() {
    let store = store_of(["a", "b"], [0, 0, 0]);
    let sink = Arc::new(MemSink::default());
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
    let source = FailingOnceSource {
        events: Some(vec![Sourced::Event(event(0, "a")), Sourced::Event(event(1, "b"))]),
        failed_tx: Some(failed_tx),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(Pipeline::new(store, source, sink.clone(), package(), config()).run(async {
        let _ = stop_rx.await;
    }));
    // The source has just failed: the pipeline waits 1 s before asking it again.
    failed_rx.await.unwrap();
    let stopping = std::time::Instant::now();
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(10), run).await.expect("stops").unwrap().unwrap();
    let took = stopping.elapsed();
    assert!(took < Duration::from_millis(800), "the shutdown waited out the retry delay: {took:?}");
    assert_eq!(summary.classified(), 2, "the photos in flight were drained");
    assert_eq!(sink.results.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn derived_outputs_catch_up_while_the_source_is_idle() {
    let store = store_of(["a", "b"], [0, 0, 0]);
    let sink = Arc::new(MemSink::default());
    // Like `run --watch` after a burst: two photos, then nothing for a long time.
    let source = VecSource::new([event(0, "a"), event(1, "b")], true, &Arc::default());
    let mut config = config();
    config.sink_flush_interval = Duration::from_millis(100);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(Pipeline::new(store, source, sink.clone(), package(), config).run(async {
        let _ = stop_rx.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sink.results.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no results within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(sink.flushes.lock().unwrap().contains(&2), "flushes while idle: {:?}", sink.flushes.lock().unwrap());
    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), run).await.expect("stops").unwrap().unwrap();
}

#[tokio::test]
async fn a_source_that_keeps_failing_ends_the_run_after_its_retries() {
    let polls = Arc::new(Mutex::new(0));
    let mut config = config();
    config.source_retry.max_attempts = 3;
    config.source_retry.initial_backoff = Duration::from_millis(1);
    config.source_retry.max_backoff = Duration::from_millis(1);
    let source = AlwaysFailingSource { polls: polls.clone() };
    let run = Pipeline::new(MemStore::default(), source, Arc::new(MemSink::default()), package(), config)
        .run(std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(10), run).await.expect("gives up by itself").unwrap_err();
    assert!(matches!(err, autorma_classifier::PipelineError::Source(_)), "{err}");
    assert_eq!(*polls.lock().unwrap(), 3, "one poll per allowed attempt, then the error");
}

#[tokio::test]
async fn a_revoked_partition_is_forgotten_and_its_unfinished_photos_dropped() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut store = store_of(["p0-a", "p0-b", "p0-c", "p1-a", "p1-b", "p1-c"], [255, 0, 0]);
    store.gate = Some(("p0-", gate.clone()));
    let on = |partition, offset, key: &str| SourcedEvent {
        position: Position::new(partition, offset),
        ..event(offset, key)
    };
    let commits = Arc::new(Mutex::new(Vec::new()));
    let source = RevokingSource {
        batches: [
            [on(0, 0, "p0-a"), on(0, 1, "p0-b"), on(0, 2, "p0-c")].map(Sourced::Event).to_vec(),
            [on(1, 5, "p1-a"), on(1, 6, "p1-b"), on(1, 7, "p1-c")].map(Sourced::Event).to_vec(),
        ]
        .into(),
        calls: 0,
        gate,
        commits: commits.clone(),
    };
    let sink = Arc::new(MemSink::default());

    let summary =
        Pipeline::new(store, source, sink.clone(), package(), config()).run(std::future::pending()).await.unwrap();

    let results = sink.results.lock().unwrap();
    assert_eq!(results.keys().map(String::as_str).collect::<Vec<_>>(), ["p1-a", "p1-b", "p1-c"]);
    assert_eq!(summary.dropped_revoked, 3, "partition 0's photos were dropped, not classified");
    let commits = commits.lock().unwrap();
    assert!(commits.iter().all(|&(_, p, _)| p == 1), "nothing of the revoked partition is committed: {commits:?}");
    assert_eq!(commits.last().map(|&(_, p, o)| (p, o)), Some((1, 8)));
}

/// Hands out its batches in order, then is exhausted; records what it was asked about the
/// bulk lane.
struct LaneSource {
    batches: std::collections::VecDeque<Vec<SourcedEvent>>,
    holds: Arc<Mutex<Vec<bool>>>,
}

impl EventSource for LaneSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        Ok(self.batches.pop_front().map(|batch| batch.into_iter().map(Sourced::Event).collect()))
    }

    async fn commit(&mut self, _checkpoint: Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }

    fn hold_bulk(&mut self, hold: bool) {
        self.holds.lock().unwrap().push(hold);
    }
}

#[tokio::test]
async fn live_photos_pass_a_bulk_backlog_which_holds_its_lane_when_it_piles_up() {
    // 12 replay photos whose fetch hangs until the gate opens, then 2 live photos.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let bulk_keys: Vec<String> = (0..12).map(|i| format!("bulk-{i}")).collect();
    let mut store = store_of(bulk_keys.iter().cloned().chain(["live-0".into(), "live-1".into()]), [0, 0, 200]);
    store.gate = Some(("bulk-", gate.clone()));
    let bulk = |i: usize| SourcedEvent {
        lane: Lane::Bulk,
        position: Position::new(1, i as u64),
        ..event(i as u64, &bulk_keys[i])
    };
    let mut batches: std::collections::VecDeque<Vec<SourcedEvent>> =
        (0..4).map(|b| (3 * b..3 * b + 3).map(bulk).collect()).collect();
    batches.push_back(vec![event(0, "live-0"), event(1, "live-1")]);
    let holds = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::new(MemSink::default());
    let mut config = config();
    // Without the lanes, the first four replay photos would take every fetch slot and the
    // live ones would wait for the gate.
    config.fetch_concurrency = 4;
    config.bulk_inflight = 2;
    config.queue_capacity = 4;
    let source = LaneSource { batches, holds: holds.clone() };
    let run = tokio::spawn(Pipeline::new(store, source, sink.clone(), package(), config).run(std::future::pending()));

    let live_done = || ["live-0", "live-1"].iter().all(|k| sink.results.lock().unwrap().contains_key(*k));
    let started = std::time::Instant::now();
    while !live_done() {
        assert!(started.elapsed() < Duration::from_secs(20), "the live photos waited behind the replay backlog");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        sink.results.lock().unwrap().keys().all(|k| k.starts_with("live-")),
        "no replay photo got through the gate"
    );
    assert_eq!(holds.lock().unwrap().first(), Some(&true), "the piling backlog held the bulk lane");

    gate.add_permits(1_000);
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.classified(), 14, "every replay photo came through once the gate opened");
    assert_eq!(holds.lock().unwrap().last(), Some(&false), "the bulk lane was resumed as the backlog drained");
}

#[tokio::test]
async fn a_request_shares_a_batch_with_the_sources_photos_and_is_answered_not_written() {
    let mut config = config();
    // Only a full batch of two is flushed in time: the request and the event must share it.
    config.batcher.max_batch_size = 2;
    config.batcher.max_wait = Duration::from_secs(600);
    config.batcher.wait_when_idle = true;
    let model = ServingModel::load(package(), &config.runtime, config.limits, 1).unwrap();
    let models = ModelHandle::new(model);
    let (requests, inbox) = autorma_classifier::requests(models.clone(), None, 2);
    let sink = Arc::new(MemSink::default());
    let commits = Arc::new(Mutex::new(Vec::new()));
    let source = VecSource::new([event(0, "red")], true, &commits);
    let mut pipeline =
        Pipeline::serving(store_of(["red"], [255, 0, 0]), source, sink.clone(), PipelineModel::Handle(models), config);
    pipeline.requests = Some(inbox);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(pipeline.run(async move {
        let _ = stop_rx.await;
    }));

    let answer = tokio::time::timeout(Duration::from_secs(60), requests.classify(png([0, 0, 255]), None))
        .await
        .expect("the request and the event fill one batch")
        .unwrap();
    assert_eq!((answer.batch_size, answer.model.classes[answer.prediction.label].as_str()), (2, "shirts"));
    let err = requests.classify(Bytes::from_static(b"%PDF-1.4"), None).await.unwrap_err();
    assert!(matches!(err, RequestError::Photo(_)), "{err}");

    stop_tx.send(()).unwrap();
    let summary = running.await.unwrap().unwrap();
    assert_eq!(summary.classified(), 1, "only the event is a pipeline photo");
    assert_eq!(sink.results.lock().unwrap().keys().collect::<Vec<_>>(), ["red"], "the request wrote nothing");
    let err = requests.classify(png([0, 0, 255]), None).await.unwrap_err();
    assert!(matches!(err, RequestError::Stopped), "{err}");
}

#[tokio::test]
async fn a_claim_from_the_metadata_or_the_event_is_checked_and_a_wrong_item_goes_to_review() {
    let classes = package().classes().to_vec();
    let store = MemStore::default();
    let mut events = vec![event(0, "unclaimed")];
    store.insert("unclaimed", png([255, 0, 0]));
    for (i, class) in classes.iter().enumerate() {
        let claim = Claim { expected_label: Some(class.clone()), sku: Some(format!("sku-{i}")), rma_id: None };
        let key = format!("claims-{class}");
        store.objects.put_object(BUCKET, &key, png([255, 0, 0]), "image/png", &claim.to_metadata()).await.unwrap();
        events.push(event(i as u64 + 1, &key));
    }
    // A claim on the event (a claims file) wins over the object's metadata.
    let claim = Claim { expected_label: Some(classes[0].clone()), ..Claim::default() };
    let metadata = Claim { expected_label: Some(classes[1].clone()), ..Claim::default() }.to_metadata();
    store.objects.put_object(BUCKET, "on-event", png([255, 0, 0]), "image/png", &metadata).await.unwrap();
    let mut on_event = event(events.len() as u64, "on-event");
    on_event.event.claim = Some(claim.clone());
    events.push(on_event);

    let sink = Arc::new(MemSink::default());
    let source = VecSource::new(events, false, &Arc::default());
    Pipeline::new(store, source, sink.clone(), package(), config()).run(std::future::pending()).await.unwrap();

    let results = sink.results.lock().unwrap();
    let unclaimed = &results["unclaimed"][0];
    assert_eq!((unclaimed.claim.as_ref(), unclaimed.label.as_str()), (None, "casual_shoes"));
    for class in &classes {
        let record = &results[&format!("claims-{class}")][0];
        let check = record.claim.as_ref().expect("the claim is recorded");
        assert_eq!(check.claim.expected_label.as_ref(), Some(class));
        let expected = match (class == &record.label, unclaimed.decision) {
            (true, decision) => (CheckOutcome::Match, decision),
            (false, Decision::Auto) => (CheckOutcome::Mismatch, Decision::Review),
            (false, Decision::Review) => (CheckOutcome::Uncertain, Decision::Review),
        };
        assert_eq!((check.category, record.decision), (Some(expected.0), expected.1), "claimed {class}");
        let reason = match expected.0 {
            CheckOutcome::Mismatch => Some(ReviewReason::WrongItem),
            _ if record.decision == Decision::Review => Some(ReviewReason::LowConfidence),
            _ => None,
        };
        assert_eq!(record.review_reason, reason, "claimed {class}");
    }
    assert_eq!(results["on-event"][0].claim.as_ref().unwrap().claim, claim);
}

/// tiny5 as registry version `version`, with its preprocessing's mean moved by `mean_shift`
/// (0: the same preprocessing as production).
fn tiny5_as(dir: &Path, version: &str, mean_shift: f64) -> Arc<ModelPackage> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny5");
    std::fs::copy(fixture.join("model.onnx"), dir.join("model.onnx")).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture.join("model.json")).unwrap()).unwrap();
    manifest["version"] = version.into();
    for mean in manifest["preprocessing"]["mean"].as_array_mut().unwrap() {
        *mean = (mean.as_f64().unwrap() + mean_shift).into();
    }
    std::fs::write(dir.join("model.json"), manifest.to_string()).unwrap();
    Arc::new(ModelPackage::load(dir).unwrap())
}

#[tokio::test]
async fn a_shadow_model_runs_beside_production_and_never_makes_the_result() {
    use autorma_classifier::ShadowConfig;
    use autorma_classifier::serving::ShadowHandle;
    use autorma_core::shadow::ShadowRole;

    let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [20, 20, 20], [200, 180, 40]];
    // The same preprocessing (production's tensor is reused) and another one (the shadow
    // decodes the photo's bytes itself): both give one record per photo.
    for mean_shift in [0.0, 0.3] {
        let dir = tempfile::tempdir().unwrap();
        let shadow = tiny5_as(dir.path(), "2", mean_shift);
        let runtime = config().runtime;
        let shadow = tokio::task::spawn_blocking(move || {
            ServingModel::load(shadow, &runtime, autorma_classifier::preprocess::DecodeLimits::default(), 1)
        })
        .await
        .unwrap()
        .unwrap();
        let models = ShadowHandle::default();
        models.set_candidate(Some(Arc::new(shadow)));
        let (records, mut shadowed) = tokio::sync::mpsc::channel(64);
        let mut config = config();
        config.shadow = Some(ShadowConfig { models, sample: 1.0, records });

        let store = MemStore::default();
        let mut events = Vec::new();
        for (i, colour) in colours.iter().enumerate() {
            store.insert(&format!("photo-{i}"), png(*colour));
            events.push(event(i as u64, &format!("photo-{i}")));
        }
        let sink = Arc::new(MemSink::default());
        let source = VecSource::new(events, false, &Arc::default());
        Pipeline::new(store, source, sink.clone(), package(), config).run(std::future::pending()).await.unwrap();

        let mut got = Vec::new();
        while let Some(record) = shadowed.recv().await {
            got.push(record);
        }
        let results = sink.results.lock().unwrap();
        assert_eq!(got.len(), colours.len(), "one record per sampled photo (mean shift {mean_shift})");
        for record in &got {
            let result = &results[&record.item.key][0];
            assert_eq!(result.model.version, "0", "the result is production's");
            assert_eq!((record.role, record.production.model.version.as_str()), (ShadowRole::Shadow, "0"));
            assert_eq!(record.production.label, result.label);
            assert_eq!(record.shadow.model.version, "2");
            assert_eq!(record.agree, record.shadow.label == result.label);
            assert!(record.shadow_ms > 0.0);
        }
        let agreed = got.iter().filter(|r| r.agree).count();
        if mean_shift == 0.0 {
            assert_eq!(agreed, colours.len(), "the same model and preprocessing agree on every photo");
        } else {
            assert!(agreed < colours.len(), "another preprocessing was applied: the shadow decoded the photo itself");
        }
    }
}

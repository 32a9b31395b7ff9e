//! Stage 0 and the end of the loop: read the source, hand events to the pipeline, hear their
//! completions, commit contiguous watermarks.
//!
//! Only this stage watches the shutdown signal. On shutdown it stops reading and closes the
//! event channel; every later stage flushes and closes when its input closes, and this loop
//! keeps draining completions until the last stage has hung up, then commits one last time.
//! Completions are handled before new input (`biased`), so in-flight work always drains.
//!
//! Two lanes: live events are handed out first, bulk (replay) events only when no live one is
//! waiting and fewer than `bulk_inflight` bulk photos are in the pipeline, so a live photo finds
//! at most that many ahead of it. When bulk events pile up here, the source is asked to hold
//! the bulk lane (Kafka pauses the replay partitions) while live events keep coming.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use autorma_core::{Checkpoint, EventSource, Lane, PartitionId, Position, SourceError, Sourced, SourcedEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::messages::Completion;
use super::revoked::RevokedPartitions;
use super::stats::PipelineStats;
use super::{PipelineError, RetryConfig};
use crate::checkpoint::CheckpointTracker;

pub(crate) struct SourceStage<E> {
    pub source: E,
    /// Where the fetch stage learns of revoked partitions.
    pub revoked: Arc<RevokedPartitions>,
    pub stats: Arc<PipelineStats>,
    /// Commits are batched: at most one per interval (plus a last one at the end). A crash
    /// loses at most this much commit progress, which a restart skips via the sink's lookup.
    pub commit_interval: Duration,
    /// Backoff between polls after a transient source error; after `max_attempts` failures in
    /// a row the error is taken as permanent and ends the run, rather than retrying forever.
    pub retry: RetryConfig,
    /// Bulk-lane photos in the pipeline at once.
    pub bulk_inflight: usize,
    /// Bulk events held here before the source is asked to hold the bulk lane.
    pub bulk_queue: usize,
}

/// Events read from the source and not yet handed to the pipeline, by lane.
#[derive(Default)]
struct Pending {
    live: VecDeque<Sourced>,
    bulk: VecDeque<Sourced>,
    /// Positions of bulk photos in the pipeline.
    bulk_inflight: HashSet<Position>,
    /// Whether the source was asked to hold its bulk lane.
    holding_bulk: bool,
}

impl Pending {
    /// Which lane the next event handed out comes from, if any may go now.
    fn next_lane(&self, bulk_inflight: usize) -> Option<Lane> {
        if !self.live.is_empty() {
            Some(Lane::Live)
        } else if !self.bulk.is_empty() && self.bulk_inflight.len() < bulk_inflight.max(1) {
            Some(Lane::Bulk)
        } else {
            None
        }
    }

    fn pop(&mut self, lane: Lane) -> Sourced {
        let sourced = match lane {
            Lane::Live => self.live.pop_front(),
            Lane::Bulk => self.bulk.pop_front(),
        }
        .expect("next_lane saw an event");
        if let Sourced::Event(event) = &sourced
            && lane == Lane::Bulk
        {
            self.bulk_inflight.insert(event.position);
        }
        sourced
    }

    fn extend(&mut self, batch: Vec<Sourced>) {
        for sourced in batch {
            match sourced.lane() {
                Lane::Live => self.live.push_back(sourced),
                Lane::Bulk => self.bulk.push_back(sourced),
            }
        }
    }

    fn clear(&mut self) {
        self.live.clear();
        self.bulk.clear();
    }

    fn len(&self) -> usize {
        self.live.len() + self.bulk.len()
    }

    /// Drops a revoked partition's waiting events; its photos in the pipeline get no
    /// completion (the fetch stage drops them), so they stop counting too.
    fn forget(&mut self, partition: PartitionId) {
        self.live.retain(|e| e.position().partition != partition);
        self.bulk.retain(|e| e.position().partition != partition);
        self.bulk_inflight.retain(|p| p.partition != partition);
    }
}

enum Step {
    Completed(Option<Completion>),
    Shutdown,
    Sent,
    Polled(Result<Option<Vec<Sourced>>, SourceError>),
    CommitDue,
}

impl<E: EventSource> SourceStage<E> {
    /// Returns the last committed watermarks.
    pub async fn run(
        mut self,
        events_tx: mpsc::Sender<SourcedEvent>,
        mut ack_rx: mpsc::Receiver<Completion>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Vec<(PartitionId, u64)>, PipelineError> {
        let mut tracker = CheckpointTracker::new();
        let mut committed: Vec<(PartitionId, u64)> = Vec::new();
        let mut events_tx = Some(events_tx);
        let mut pending = Pending::default();
        let mut next_commit_at = Instant::now() + self.commit_interval;
        let mut shutdown = std::pin::pin!(shutdown);
        let mut shutting_down = false;
        // The source said it has no more; what is still pending goes out before the end.
        let mut exhausted = false;
        // After a transient source error: no poll before this time. Waited out inside the
        // select, so completions and the shutdown signal are still heard meanwhile.
        let mut retry_at: Option<Instant> = None;
        let mut num_failures: u32 = 0;

        loop {
            let reading = events_tx.is_some();
            let next_lane = pending.next_lane(self.bulk_inflight);
            let step = tokio::select! {
                biased;
                completion = ack_rx.recv() => Step::Completed(completion),
                () = &mut shutdown, if !shutting_down => Step::Shutdown,
                // Due with nothing advanced too: the source may hold a checkpoint to retry.
                () = tokio::time::sleep_until(next_commit_at) => Step::CommitDue,
                permit = reserve(&events_tx), if reading && next_lane.is_some() => {
                    let sourced = pending.pop(next_lane.expect("guarded by next_lane.is_some()"));
                    tracker.track(sourced.position()).map_err(PipelineError::Tracker)?;
                    match sourced {
                        Sourced::Event(event) => permit.send(event),
                        // Done already: complete it in its turn, so the commit passes it in order.
                        Sourced::Handled { position, records, .. } => {
                            tracker.complete(position, records).map_err(PipelineError::Tracker)?;
                        }
                    }
                    Step::Sent
                }
                // Polled whenever nothing can be handed out: live events must get through
                // even while bulk ones wait for room.
                polled = poll_after(&mut self.source, retry_at), if reading && !exhausted && next_lane.is_none() => {
                    retry_at = None;
                    Step::Polled(polled)
                }
            };
            match step {
                Step::Completed(Some(completion)) => {
                    pending.bulk_inflight.remove(&completion.position);
                    tracker.complete(completion.position, completion.records).map_err(PipelineError::Tracker)?;
                    self.stats.record(completion.outcome);
                }
                // Every sender is gone: all stages have drained.
                Step::Completed(None) => break,
                Step::Shutdown => {
                    tracing::info!(
                        inflight = tracker.num_inflight(),
                        "shutting down: no new photos, draining the ones in flight"
                    );
                    shutting_down = true;
                    // Not yet handed out: not tracked, so not committed; the next run gets them.
                    pending.clear();
                    events_tx = None;
                }
                Step::Sent => self.hold_bulk_if_full(&mut pending),
                Step::Polled(Ok(Some(batch))) => {
                    num_failures = 0;
                    self.stats.discovered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    pending.extend(batch);
                    // After the extend: a revoke during this poll may follow some of its events.
                    self.forget_revoked(&mut tracker, &mut pending, &mut committed);
                    self.hold_bulk_if_full(&mut pending);
                }
                Step::Polled(Ok(None)) => {
                    tracing::debug!(pending = pending.len(), "source exhausted");
                    exhausted = true;
                }
                Step::Polled(Err(e)) if e.is_retryable() && num_failures + 1 < self.retry.max_attempts => {
                    num_failures += 1;
                    let wait = self.retry.backoff(num_failures);
                    tracing::warn!(error = %e, attempt = num_failures, ?wait, "source failed; retrying");
                    retry_at = Some(Instant::now() + wait);
                }
                Step::Polled(Err(e)) => return Err(PipelineError::Source(e)),
                Step::CommitDue => {}
            }
            if exhausted && pending.len() == 0 {
                events_tx = None;
            }
            if Instant::now() >= next_commit_at {
                self.commit(&mut tracker, &mut committed).await?;
                next_commit_at = Instant::now() + self.commit_interval;
            }
        }
        self.commit(&mut tracker, &mut committed).await?;
        self.source.close().await.map_err(PipelineError::Commit)?;
        Ok(committed)
    }

    /// Asks the source to hold its bulk lane while `bulk_queue` bulk events wait here, and to
    /// resume once half of them went on.
    fn hold_bulk_if_full(&mut self, pending: &mut Pending) {
        let hold = if pending.holding_bulk {
            pending.bulk.len() > self.bulk_queue / 2
        } else {
            pending.bulk.len() >= self.bulk_queue.max(1)
        };
        if hold != pending.holding_bulk {
            tracing::debug!(hold, waiting = pending.bulk.len(), "bulk lane");
            self.source.hold_bulk(hold);
            pending.holding_bulk = hold;
        }
    }

    /// Partitions the source lost in a rebalance: their queued events are dropped and their
    /// watermarks forgotten (the source committed what was done as it let them go).
    fn forget_revoked(
        &mut self,
        tracker: &mut CheckpointTracker,
        pending: &mut Pending,
        committed: &mut Vec<(PartitionId, u64)>,
    ) {
        for partition in self.source.take_revoked() {
            let before = pending.len();
            pending.forget(partition);
            self.revoked.insert(partition);
            tracker.forget(partition);
            committed.retain(|(p, _)| *p != partition);
            tracing::info!(partition, dropped = before - pending.len(), "partition revoked; its queued photos dropped");
        }
    }

    async fn commit(
        &mut self,
        tracker: &mut CheckpointTracker,
        committed: &mut Vec<(PartitionId, u64)>,
    ) -> Result<(), PipelineError> {
        let checkpoint: Checkpoint = tracker.take_advanced();
        let advanced = checkpoint.watermarks.clone();
        if !checkpoint.is_empty() {
            tracing::debug!(?advanced, records = checkpoint.records.len(), "committing");
        }
        // Empty too: the source may be holding an earlier checkpoint it could not commit yet.
        self.source.commit(checkpoint).await.map_err(PipelineError::Commit)?;
        for (partition, offset) in advanced {
            match committed.iter_mut().find(|(p, _)| *p == partition) {
                Some(entry) => entry.1 = offset,
                None => committed.push((partition, offset)),
            }
        }
        Ok(())
    }
}

/// The source's next batch, not asked for before `at`. Cancel-safe, as `next_batch` is.
async fn poll_after<E: EventSource>(source: &mut E, at: Option<Instant>) -> Result<Option<Vec<Sourced>>, SourceError> {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
    source.next_batch().await
}

async fn reserve<T>(tx: &Option<mpsc::Sender<T>>) -> mpsc::Permit<'_, T> {
    match tx {
        Some(tx) => match tx.reserve().await {
            Ok(permit) => permit,
            // The fetch stage is gone (it only stops when this side closes, or on a panic).
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

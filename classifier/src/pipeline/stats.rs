//! Counters the pipeline keeps while it runs: for the progress bar, the summary and logs.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use autorma_core::{Decision, DlqReason, PartitionId};

use super::batcher::FlushTrigger;
use super::messages::Outcome;

/// A duration in milliseconds, as timings are recorded.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Shared (`Arc`) between the pipeline and whoever watches it.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Events the source handed out.
    pub discovered: AtomicU64,
    pub auto: AtomicU64,
    pub review: AtomicU64,
    /// Dead-lettered in this run.
    pub dlq: AtomicU64,
    /// Redelivered events whose outcome an earlier run had already written.
    pub already_done: AtomicU64,
    /// Events dropped unfetched because a rebalance took their partition away (the new owner
    /// gets them again).
    pub dropped_revoked: AtomicU64,
    pub batches: AtomicU64,
    pub batched_items: AtomicU64,
    dlq_by_reason: Mutex<BTreeMap<DlqReason, u64>>,
    flushes: Mutex<BTreeMap<&'static str, u64>>,
}

impl PipelineStats {
    pub fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Classified(Decision::Auto) => self.auto.fetch_add(1, Ordering::Relaxed),
            Outcome::Classified(Decision::Review) => self.review.fetch_add(1, Ordering::Relaxed),
            Outcome::DeadLettered(reason) => {
                *self.dlq_by_reason.lock().unwrap().entry(reason).or_default() += 1;
                self.dlq.fetch_add(1, Ordering::Relaxed)
            }
            Outcome::AlreadyDone(_) => self.already_done.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn record_batch(&self, size: usize, trigger: FlushTrigger) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_items.fetch_add(size as u64, Ordering::Relaxed);
        *self.flushes.lock().unwrap().entry(trigger.as_str()).or_default() += 1;
    }

    /// Events with a durable outcome (this run's or an earlier one's).
    pub fn num_done(&self) -> u64 {
        self.auto.load(Ordering::Relaxed)
            + self.review.load(Ordering::Relaxed)
            + self.dlq.load(Ordering::Relaxed)
            + self.already_done.load(Ordering::Relaxed)
    }

    pub fn summary(&self, elapsed: Duration, committed: Vec<(PartitionId, u64)>) -> PipelineSummary {
        PipelineSummary {
            discovered: self.discovered.load(Ordering::Relaxed),
            auto: self.auto.load(Ordering::Relaxed),
            review: self.review.load(Ordering::Relaxed),
            dlq: self.dlq.load(Ordering::Relaxed),
            already_done: self.already_done.load(Ordering::Relaxed),
            dropped_revoked: self.dropped_revoked.load(Ordering::Relaxed),
            dlq_by_reason: self.dlq_by_reason.lock().unwrap().iter().map(|(r, n)| (r.as_str(), *n)).collect(),
            batches: self.batches.load(Ordering::Relaxed),
            batched_items: self.batched_items.load(Ordering::Relaxed),
            flushes: self.flushes.lock().unwrap().clone(),
            elapsed,
            committed,
        }
    }
}

/// What one `run` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PipelineSummary {
    pub discovered: u64,
    pub auto: u64,
    pub review: u64,
    pub dlq: u64,
    pub already_done: u64,
    pub dropped_revoked: u64,
    pub dlq_by_reason: BTreeMap<&'static str, u64>,
    pub batches: u64,
    pub batched_items: u64,
    /// Batches by flush trigger (`full`, `deadline`, `idle`, `model_swap`, `input_closed`).
    pub flushes: BTreeMap<&'static str, u64>,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Last committed `(partition, next offset)`.
    pub committed: Vec<(PartitionId, u64)>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl PipelineSummary {
    /// Photos classified by the model in this run.
    pub fn classified(&self) -> u64 {
        self.auto + self.review
    }

    /// Photos this run classified or dead-lettered, per second of wall time.
    pub fn items_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { (self.classified() + self.dlq) as f64 / secs } else { 0.0 }
    }
}

//! The checkpoint tracker: which offsets may be committed.
//!
//! Every event is tracked when the source hands it out and completed when its result or DLQ
//! record is durable. Completions arrive in any order (photos decode at different speeds);
//! the tracker resolves them in offset order and only ever reports a *contiguous* watermark:
//! the next offset whose every predecessor is done. A photo stuck in the middle holds the
//! watermark back, so a crash redelivers it instead of skipping it. (Committing "the latest
//! success" would lose it; see STYLE.md, pattern 4.)
//!
//! Where the watermark goes is the source's business: Kafka stores it as the group's
//! committed offset; the local folder source writes `state/checkpoint.json` (its protocol, and
//! why a `kill -9` at any moment loses and duplicates nothing: `ingest/src/local/design.md`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use autorma_core::{PartitionId, Position};

#[derive(Debug, Default)]
pub struct CheckpointTracker {
    partitions: BTreeMap<PartitionId, PartitionState>,
    /// Partitions taken away (a rebalance): their late completions are ignored. Sources give
    /// a partition that comes back a new id, so an id is never tracked again once forgotten.
    forgotten: BTreeSet<PartitionId>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Tracked offsets not yet below the watermark, in increasing order, with "done" flags.
    inflight: VecDeque<(u64, bool)>,
    /// Next offset to process: every tracked offset below it is done. `None` until the first
    /// completion moves it.
    watermark: Option<u64>,
    /// Whether `watermark` moved since [`CheckpointTracker::take_advanced`] last reported it.
    advanced: bool,
    /// The highest offset ever tracked: offsets must increase.
    last_tracked: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackerError {
    #[error("offset {position} tracked out of order (last tracked is {last})")]
    OutOfOrder { position: Position, last: u64 },
    #[error("completion for untracked or already completed offset {position}")]
    Unknown { position: Position },
}

impl CheckpointTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an event handed to the pipeline. Offsets of a partition must increase.
    pub fn track(&mut self, position: Position) -> Result<(), TrackerError> {
        let state = self.partitions.entry(position.partition).or_default();
        if let Some(last) = state.last_tracked
            && position.offset <= last
        {
            return Err(TrackerError::OutOfOrder { position, last });
        }
        state.last_tracked = Some(position.offset);
        state.inflight.push_back((position.offset, false));
        Ok(())
    }

    /// Marks an event done (its outcome is durable) and advances the watermark past every
    /// done offset at its front.
    pub fn complete(&mut self, position: Position) -> Result<(), TrackerError> {
        if self.forgotten.contains(&position.partition) {
            return Ok(());
        }
        let unknown = TrackerError::Unknown { position };
        let state = self.partitions.get_mut(&position.partition).ok_or(unknown.clone())?;
        let index = state.inflight.binary_search_by_key(&position.offset, |(o, _)| *o).map_err(|_| unknown.clone())?;
        if state.inflight[index].1 {
            return Err(unknown);
        }
        state.inflight[index].1 = true;
        while let Some(&(offset, true)) = state.inflight.front() {
            state.inflight.pop_front();
            state.watermark = Some(offset + 1);
            state.advanced = true;
        }
        Ok(())
    }

    /// Watermarks that moved since the last call, as `(partition, next offset)`: what the
    /// source may commit now.
    pub fn take_advanced(&mut self) -> Vec<(PartitionId, u64)> {
        let mut out = Vec::new();
        for (partition, state) in &mut self.partitions {
            if std::mem::take(&mut state.advanced) {
                out.push((*partition, state.watermark.expect("advanced implies a watermark")));
            }
        }
        out
    }

    /// Drops a revoked partition's state: nothing more of it is committed here (the source
    /// committed what was done when it let the partition go), and its in-flight completions
    /// are ignored when they come.
    pub fn forget(&mut self, partition: PartitionId) {
        self.partitions.remove(&partition);
        self.forgotten.insert(partition);
    }

    pub fn has_advanced(&self) -> bool {
        self.partitions.values().any(|s| s.advanced)
    }

    pub fn watermark(&self, partition: PartitionId) -> Option<u64> {
        self.partitions.get(&partition).and_then(|s| s.watermark)
    }

    /// Events handed out and not yet below a watermark.
    pub fn num_inflight(&self) -> usize {
        self.partitions.values().map(|s| s.inflight.iter().filter(|(_, done)| !done).count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(offset: u64) -> Position {
        Position::new(0, offset)
    }

    fn tracker_with(offsets: std::ops::Range<u64>) -> CheckpointTracker {
        let mut t = CheckpointTracker::new();
        for o in offsets {
            t.track(p(o)).unwrap();
        }
        t
    }

    #[test]
    fn a_failure_in_the_middle_does_not_move_the_watermark() {
        let mut t = tracker_with(10..15);
        // 10 and 11 done, 12 still in flight (say, a slow or failing photo), 13 and 14 done.
        for o in [11, 10, 13, 14] {
            t.complete(p(o)).unwrap();
        }
        assert_eq!(t.take_advanced(), vec![(0, 12)], "stops below the hole at 12");
        assert_eq!(t.num_inflight(), 1);
        // Nothing new to commit until 12 reaches the sink or the DLQ.
        assert!(t.take_advanced().is_empty());
        t.complete(p(12)).unwrap();
        assert_eq!(t.take_advanced(), vec![(0, 15)], "then jumps over everything done");
        assert_eq!(t.num_inflight(), 0);
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = CheckpointTracker::new();
        for o in 0..3 {
            t.track(Position::new(0, o)).unwrap();
            t.track(Position::new(1, o + 100)).unwrap();
        }
        t.complete(Position::new(1, 100)).unwrap();
        t.complete(Position::new(0, 1)).unwrap();
        assert_eq!(t.take_advanced(), vec![(1, 101)]);
        assert_eq!(t.watermark(0), None);
    }

    #[test]
    fn gaps_in_tracked_offsets_are_fine_but_order_is_enforced() {
        // Kafka offsets can skip (compaction, transactions): only tracked offsets count.
        let mut t = CheckpointTracker::new();
        t.track(p(5)).unwrap();
        t.track(p(9)).unwrap();
        assert!(matches!(t.track(p(7)), Err(TrackerError::OutOfOrder { .. })));
        t.complete(p(9)).unwrap();
        t.complete(p(5)).unwrap();
        assert_eq!(t.take_advanced(), vec![(0, 10)]);
        // After everything is done, the next offset continues the sequence.
        t.track(p(10)).unwrap();
        assert!(matches!(t.track(p(10)), Err(TrackerError::OutOfOrder { .. })));
    }

    #[test]
    fn double_or_unknown_completions_are_errors() {
        let mut t = tracker_with(0..2);
        t.complete(p(1)).unwrap();
        assert_eq!(t.complete(p(1)), Err(TrackerError::Unknown { position: p(1) }));
        assert_eq!(t.complete(p(7)), Err(TrackerError::Unknown { position: p(7) }));
        assert_eq!(t.complete(Position::new(3, 0)), Err(TrackerError::Unknown { position: Position::new(3, 0) }));
    }

    #[test]
    fn a_forgotten_partition_ignores_late_completions_and_leaves_the_others_alone() {
        let mut t = CheckpointTracker::new();
        for o in 0..3 {
            t.track(Position::new(0, o)).unwrap();
            t.track(Position::new(1, o)).unwrap();
        }
        t.complete(Position::new(0, 0)).unwrap();
        t.forget(0);
        assert_eq!(t.watermark(0), None);
        // The revoked partition's photos finish after the revoke: ignored, not an error.
        t.complete(Position::new(0, 1)).unwrap();
        t.complete(Position::new(1, 0)).unwrap();
        assert_eq!(t.take_advanced(), vec![(1, 1)]);
        assert_eq!(t.num_inflight(), 2);
    }
}

//! The checkpoint tracker: which offsets may be committed.
//!
//! Every event is tracked when the source hands it out and completed when its result or DLQ
//! record is durable. Completions arrive in any order (photos decode at different speeds);
//! the tracker resolves them in offset order and only ever reports a *contiguous* watermark:
//! the next offset whose every predecessor is done. A photo stuck in the middle holds the
//! watermark back, so a crash redelivers it instead of skipping it. (Committing "the latest
//! success" would lose it; see STYLE.md, pattern 4.)
//!
//! A completion may carry records (the results to publish on topics): they are held until the
//! watermark passes their offset, and handed to the source with it, so a record is published
//! exactly when its offset is committed.
//!
//! Where the watermark goes is the source's business: Kafka stores it as the group's
//! committed offset; the local folder source writes `state/checkpoint.json` (its protocol, and
//! why a `kill -9` at any moment loses and duplicates nothing: `ingest/src/local/design.md`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use autorma_core::{Checkpoint, OutboundRecord, PartitionId, Position};

#[derive(Debug, Default)]
pub struct CheckpointTracker {
    partitions: BTreeMap<PartitionId, PartitionState>,
    /// Partitions taken away (a rebalance): their late completions are ignored. Sources give
    /// a partition that comes back a new id, so an id is never tracked again once forgotten.
    forgotten: BTreeSet<PartitionId>,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Tracked offsets not yet below the watermark, in increasing order, with their records
    /// once done (`None` while in flight).
    inflight: VecDeque<(u64, Option<Vec<OutboundRecord>>)>,
    /// Records of the offsets the watermark passed, not yet taken.
    passed: Vec<OutboundRecord>,
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
        state.inflight.push_back((position.offset, None));
        Ok(())
    }

    /// Marks an event done (its outcome is durable), with the records to publish when its
    /// offset is committed, and advances the watermark past every done offset at its front.
    pub fn complete(&mut self, position: Position, records: Vec<OutboundRecord>) -> Result<(), TrackerError> {
        if self.forgotten.contains(&position.partition) {
            return Ok(());
        }
        let unknown = TrackerError::Unknown { position };
        let state = self.partitions.get_mut(&position.partition).ok_or(unknown.clone())?;
        let index = state.inflight.binary_search_by_key(&position.offset, |(o, _)| *o).map_err(|_| unknown.clone())?;
        if state.inflight[index].1.is_some() {
            return Err(unknown);
        }
        state.inflight[index].1 = Some(records);
        while state.inflight.front().is_some_and(|(_, done)| done.is_some()) {
            let (offset, records) = state.inflight.pop_front().expect("front checked");
            state.passed.extend(records.expect("front checked"));
            state.watermark = Some(offset + 1);
            state.advanced = true;
        }
        Ok(())
    }

    /// Watermarks that moved since the last call, as `(partition, next offset)`, with the
    /// records of the offsets they passed: what the source may commit now.
    pub fn take_advanced(&mut self) -> Checkpoint {
        let mut out = Checkpoint::default();
        for (partition, state) in &mut self.partitions {
            if std::mem::take(&mut state.advanced) {
                out.watermarks.push((*partition, state.watermark.expect("advanced implies a watermark")));
                out.records.extend(state.passed.drain(..).map(|r| (*partition, r)));
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

    pub fn watermark(&self, partition: PartitionId) -> Option<u64> {
        self.partitions.get(&partition).and_then(|s| s.watermark)
    }

    /// Events handed out and not yet below a watermark.
    pub fn num_inflight(&self) -> usize {
        self.partitions.values().map(|s| s.inflight.iter().filter(|(_, done)| done.is_none()).count()).sum()
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
            t.complete(p(o), vec![]).unwrap();
        }
        assert_eq!(t.take_advanced().watermarks, vec![(0, 12)], "stops below the hole at 12");
        assert_eq!(t.num_inflight(), 1);
        // Nothing new to commit until 12 reaches the sink or the DLQ.
        assert!(t.take_advanced().is_empty());
        t.complete(p(12), vec![]).unwrap();
        assert_eq!(t.take_advanced().watermarks, vec![(0, 15)], "then jumps over everything done");
        assert_eq!(t.num_inflight(), 0);
    }

    #[test]
    fn records_wait_for_the_watermark_to_pass_their_offset() {
        let record = |key: &str| OutboundRecord::new("rma.results", key, Vec::new(), &[]);
        let mut t = tracker_with(0..3);
        t.complete(p(1), vec![record("b")]).unwrap();
        t.complete(p(2), vec![]).unwrap();
        // 0 is still in flight: 1's record must not go out before 0's offset is committed.
        assert!(t.take_advanced().is_empty());
        t.complete(p(0), vec![record("a1"), record("a2")]).unwrap();
        let checkpoint = t.take_advanced();
        assert_eq!(checkpoint.watermarks, vec![(0, 3)]);
        let keys: Vec<&str> = checkpoint.records.iter().map(|(_, r)| r.key.as_str()).collect();
        assert_eq!(keys, ["a1", "a2", "b"], "in offset order, each once");
        assert!(t.take_advanced().is_empty());
    }

    #[test]
    fn partitions_are_independent() {
        let mut t = CheckpointTracker::new();
        for o in 0..3 {
            t.track(Position::new(0, o)).unwrap();
            t.track(Position::new(1, o + 100)).unwrap();
        }
        t.complete(Position::new(1, 100), vec![]).unwrap();
        t.complete(Position::new(0, 1), vec![]).unwrap();
        assert_eq!(t.take_advanced().watermarks, vec![(1, 101)]);
        assert_eq!(t.watermark(0), None);
    }

    #[test]
    fn gaps_in_tracked_offsets_are_fine_but_order_is_enforced() {
        // Kafka offsets can skip (compaction, transactions): only tracked offsets count.
        let mut t = CheckpointTracker::new();
        t.track(p(5)).unwrap();
        t.track(p(9)).unwrap();
        assert!(matches!(t.track(p(7)), Err(TrackerError::OutOfOrder { .. })));
        t.complete(p(9), vec![]).unwrap();
        t.complete(p(5), vec![]).unwrap();
        assert_eq!(t.take_advanced().watermarks, vec![(0, 10)]);
        // After everything is done, the next offset continues the sequence.
        t.track(p(10)).unwrap();
        assert!(matches!(t.track(p(10)), Err(TrackerError::OutOfOrder { .. })));
    }

    #[test]
    fn double_or_unknown_completions_are_errors() {
        let mut t = tracker_with(0..2);
        t.complete(p(1), vec![]).unwrap();
        assert_eq!(t.complete(p(1), vec![]), Err(TrackerError::Unknown { position: p(1) }));
        assert_eq!(t.complete(p(7), vec![]), Err(TrackerError::Unknown { position: p(7) }));
        assert_eq!(
            t.complete(Position::new(3, 0), vec![]),
            Err(TrackerError::Unknown { position: Position::new(3, 0) })
        );
    }

    #[test]
    fn a_forgotten_partition_ignores_late_completions_and_leaves_the_others_alone() {
        let mut t = CheckpointTracker::new();
        for o in 0..3 {
            t.track(Position::new(0, o)).unwrap();
            t.track(Position::new(1, o)).unwrap();
        }
        t.complete(Position::new(0, 0), vec![]).unwrap();
        t.forget(0);
        assert_eq!(t.watermark(0), None);
        // The revoked partition's photos finish after the revoke: ignored, not an error.
        t.complete(Position::new(0, 1), vec![]).unwrap();
        t.complete(Position::new(1, 0), vec![]).unwrap();
        assert_eq!(t.take_advanced().watermarks, vec![(1, 1)]);
        assert_eq!(t.num_inflight(), 2);
    }
}

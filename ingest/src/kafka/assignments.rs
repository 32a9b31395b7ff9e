//! Which Kafka partitions this consumer holds, each under a pipeline partition id of its own
//! assignment, and the rebalance callbacks that keep that table (see `design.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use autorma_core::PartitionId;
use autorma_core::kafka::partition_stats;
use autorma_core::metrics::metrics;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

/// A Kafka partition: topic and partition number.
pub type TopicPartition = (String, i32);

/// The assignment table. A topic-partition gets a fresh [`PartitionId`] each time it is
/// assigned, so completions of work from an earlier assignment can never be mistaken for
/// the new one's (the pipeline forgets revoked ids).
#[derive(Debug, Default)]
pub struct Assignments {
    next_id: PartitionId,
    current: HashMap<TopicPartition, PartitionId>,
    by_id: HashMap<PartitionId, TopicPartition>,
    /// Per held id: the partition's end offset when it was assigned. Below it, a message may
    /// have been handled by an earlier owner (or this process before a restart); from it on,
    /// nobody else can have read it.
    handoff: HashMap<PartitionId, u64>,
    /// Per held id: the offset the group had committed when it was assigned (stable: open
    /// transactions not counted). Below it every message was handled and its records
    /// published by a committed transaction, whatever offset the consumer starts from.
    committed: HashMap<PartitionId, u64>,
    /// Ids revoked since the pipeline last asked.
    revoked: Vec<PartitionId>,
}

impl Assignments {
    /// Gives each newly assigned topic-partition a fresh id (one already held keeps its own),
    /// with what it had then: its end offset (`None`: unknown, every message may have been
    /// handled) and the group's committed offset (`None`: none, or unknown).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = (TopicPartition, Option<u64>, Option<u64>)>) {
        for (tp, end, committed) in partitions {
            if self.current.contains_key(&tp) {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.by_id.insert(id, tp.clone());
            self.current.insert(tp, id);
            self.handoff.insert(id, end.unwrap_or(u64::MAX));
            self.committed.insert(id, committed.unwrap_or(0));
        }
    }

    /// Lets partitions go: nothing of theirs is committed any more (the new owner starts from
    /// the last committed transaction).
    pub fn revoke(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        for tp in partitions {
            let Some(id) = self.current.remove(&tp) else { continue };
            self.by_id.remove(&id);
            self.handoff.remove(&id);
            self.committed.remove(&id);
            self.revoked.push(id);
        }
    }

    pub fn id_of(&self, topic: &str, partition: i32) -> Option<PartitionId> {
        self.current.get(&(topic.to_string(), partition)).copied()
    }

    /// The topic-partition of a held id; `None` once revoked.
    pub fn partition_of(&self, id: PartitionId) -> Option<&TopicPartition> {
        self.by_id.get(&id)
    }

    /// Whether a message at `offset` of held id `id` may have been handled before.
    pub fn maybe_done(&self, id: PartitionId, offset: u64) -> bool {
        self.handoff.get(&id).is_none_or(|end| offset < *end)
    }

    /// Whether a committed transaction already passed this message. librdkafka 2.12 can
    /// start a partition below the committed offset (see `design.md`); such a message is
    /// skipped, never published again.
    pub fn committed_before(&self, id: PartitionId, offset: u64) -> bool {
        self.committed.get(&id).is_some_and(|committed| offset < *committed)
    }

    /// The group's committed offset when `id` was assigned: a commit never goes below it.
    pub fn committed_at_assignment(&self, id: PartitionId) -> u64 {
        self.committed.get(&id).copied().unwrap_or(0)
    }

    pub fn take_revoked(&mut self) -> Vec<PartitionId> {
        std::mem::take(&mut self.revoked)
    }

    pub fn num_held(&self) -> usize {
        self.current.len()
    }
}

/// A list of `(topic, partition, next offset)` in Kafka's form (the committed offset is the
/// next one to read).
pub fn offsets_list<'a>(entries: impl IntoIterator<Item = (&'a TopicPartition, u64)>) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in entries {
        list.add_partition_offset(topic, *partition, Offset::Offset(offset as i64))
            .expect("a fresh offset is always valid");
    }
    list
}

/// The consumer's context: keeps [`Assignments`] in step with the group's rebalances, and
/// reports the consumer lag of its partitions from librdkafka's statistics.
#[derive(Clone)]
pub struct AssignmentContext {
    state: Arc<Mutex<Assignments>>,
    /// The consumer group, for the lag's labels.
    group: Arc<str>,
    /// A client of the same group that reads its committed offsets without waiting for open
    /// transactions (`read_uncommitted`): the stable offsets, at once.
    offsets: Arc<BaseConsumer>,
}

impl AssignmentContext {
    pub fn new(group: &str, offsets: BaseConsumer) -> Self {
        Self { state: Arc::default(), group: group.into(), offsets: Arc::new(offsets) }
    }

    pub fn state(&self) -> MutexGuard<'_, Assignments> {
        self.state.lock().expect("assignment table poisoned")
    }
}

impl ClientContext for AssignmentContext {
    /// Every `statistics.interval.ms`: the lag of each partition this member consumes
    /// (librdkafka reports -1 for the others, and for the internal partition -1). Offsets
    /// commit through the transactional producer, which the consumer does not see, so the
    /// lag is measured from the offsets stored after each transaction (`transaction.rs`),
    /// else from those the group had when the partition was assigned. A partition whose last
    /// offset is a transaction's commit marker shows a lag of 1 at rest: no record has it.
    fn stats(&self, statistics: Statistics) {
        for (topic, partition, p) in partition_stats(&statistics) {
            let lag = if p.consumer_lag_stored >= 0 { p.consumer_lag_stored } else { p.consumer_lag };
            if lag >= 0 {
                metrics().record_consumer_lag(&self.group, topic, partition, lag);
            }
        }
    }
}

impl ConsumerContext for AssignmentContext {
    /// Before partitions change hands. Nothing is committed here: offsets commit only in the
    /// transactions that publish their records, and a transaction under way when the group
    /// moves on is fenced (KIP-447), so the new owner starts from the last committed one.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else { return };
        self.state().revoke(topic_partitions(list));
        tracing::info!(revoked = ?topic_partitions(list), lost = consumer.assignment_lost(), "partitions revoked");
    }

    /// New partitions: their end offsets mark which messages may have been handled before.
    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let committed: HashMap<TopicPartition, u64> = match self
                    .offsets
                    .committed_offsets(TopicPartitionList::clone(list), END_OFFSET_TIMEOUT)
                {
                    Ok(found) => found
                        .elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o.max(0) as u64)),
                            _ => None,
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the committed offsets; messages below them are not told apart");
                        HashMap::new()
                    }
                };
                let assigned: Vec<(TopicPartition, Option<u64>, Option<u64>)> = topic_partitions(list)
                    .into_iter()
                    .map(|(topic, partition)| {
                        let end = match consumer.fetch_watermarks(&topic, partition, END_OFFSET_TIMEOUT) {
                            Ok((_, high)) => Some(high.max(0) as u64),
                            Err(e) => {
                                tracing::warn!(%topic, partition, error = %e, "cannot read the end offset; every message of the partition will be looked up");
                                None
                            }
                        };
                        let committed = committed.get(&(topic.clone(), partition)).copied();
                        ((topic, partition), end, committed)
                    })
                    .collect();
                let mut state = self.state();
                state.assign(assigned.iter().cloned());
                tracing::info!(assigned = ?assigned, held = state.num_held(), "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Longest a rebalance waits for a new partition's end offset, or the committed offsets.
const END_OFFSET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn topic_partitions(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        ("rma.items".to_string(), p)
    }

    #[test]
    fn a_partition_assigned_again_gets_a_new_id() {
        let mut a = Assignments::default();
        a.assign([(tp(0), Some(0), None), (tp(1), Some(0), None)]);
        let first = a.id_of("rma.items", 0).unwrap();
        a.revoke([tp(0)]);
        assert_eq!(a.id_of("rma.items", 0), None);
        assert_eq!(a.partition_of(first), None, "a revoked id commits nothing more");
        assert_eq!(a.take_revoked(), vec![first]);
        a.assign([(tp(0), Some(0), None)]);
        let second = a.id_of("rma.items", 0).unwrap();
        assert_ne!(first, second, "work of the old assignment must not complete the new one");
        assert_eq!(a.partition_of(second), Some(&tp(0)));
        assert!(a.take_revoked().is_empty());
    }

    #[test]
    fn only_messages_below_the_end_offset_at_assignment_may_have_been_handled() {
        let mut a = Assignments::default();
        a.assign([(tp(0), Some(100), None), (tp(1), None, None)]);
        let (p0, p1) = (a.id_of("rma.items", 0).unwrap(), a.id_of("rma.items", 1).unwrap());
        assert!(a.maybe_done(p0, 99));
        assert!(!a.maybe_done(p0, 100), "written after the handoff: nobody else read it");
        assert!(a.maybe_done(p1, 1_000_000), "end offset unknown: look everything up");
    }

    #[test]
    fn messages_below_the_committed_offset_at_assignment_were_committed_before() {
        let mut a = Assignments::default();
        a.assign([(tp(0), Some(100), Some(40)), (tp(1), Some(100), None)]);
        let (p0, p1) = (a.id_of("rma.items", 0).unwrap(), a.id_of("rma.items", 1).unwrap());
        assert!(a.committed_before(p0, 39), "a consumer that starts too low skips it");
        assert!(!a.committed_before(p0, 40), "the first message the group has not committed");
        assert!(!a.committed_before(p1, 0), "nothing committed: nothing skipped");
        assert_eq!((a.committed_at_assignment(p0), a.committed_at_assignment(p1)), (40, 0));
        a.revoke([tp(0)]);
        assert!(!a.committed_before(p0, 0), "a revoked id has no floor");
    }
}

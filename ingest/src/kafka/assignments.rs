//! Which Kafka partitions this consumer holds, each under a pipeline partition id of its own
//! assignment, and the rebalance callbacks that keep that table (see `design.md`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use autorma_core::PartitionId;
use autorma_core::metrics::metrics;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
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
    /// Per held id: the latest done watermark the pipeline reported, and the last one the
    /// broker accepted.
    done: HashMap<PartitionId, u64>,
    committed: HashMap<PartitionId, u64>,
    /// Ids revoked since the pipeline last asked.
    revoked: Vec<PartitionId>,
}

impl Assignments {
    /// Gives each newly assigned topic-partition a fresh id (one already held keeps its own).
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) {
        for tp in partitions {
            if self.current.contains_key(&tp) {
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.by_id.insert(id, tp.clone());
            self.current.insert(tp, id);
        }
    }

    /// Lets partitions go; returns the done watermarks not yet committed, to commit before
    /// the partitions change hands.
    pub fn revoke(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Vec<(TopicPartition, u64)> {
        let mut to_commit = Vec::new();
        for tp in partitions {
            let Some(id) = self.current.remove(&tp) else { continue };
            self.by_id.remove(&id);
            let committed = self.committed.remove(&id);
            if let Some(done) = self.done.remove(&id)
                && committed != Some(done)
            {
                to_commit.push((tp, done));
            }
            self.revoked.push(id);
        }
        to_commit
    }

    pub fn id_of(&self, topic: &str, partition: i32) -> Option<PartitionId> {
        self.current.get(&(topic.to_string(), partition)).copied()
    }

    /// Records the pipeline's done watermarks; returns those of held partitions that the
    /// broker has not accepted yet (a failed commit is offered again with the next one).
    pub fn record_done(&mut self, watermarks: &[(PartitionId, u64)]) -> Vec<(TopicPartition, u64)> {
        for &(id, offset) in watermarks {
            if self.by_id.contains_key(&id) {
                self.done.insert(id, offset);
            }
        }
        self.done
            .iter()
            .filter(|(id, offset)| self.committed.get(id) != Some(offset))
            .map(|(id, offset)| (self.by_id[id].clone(), *offset))
            .collect()
    }

    /// The broker accepted these offsets (partitions no longer held are ignored).
    pub fn mark_committed(&mut self, commits: impl IntoIterator<Item = (TopicPartition, u64)>) {
        for (tp, offset) in commits {
            if let Some(id) = self.current.get(&tp) {
                self.committed.insert(*id, offset);
            }
        }
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
#[derive(Clone, Default)]
pub struct AssignmentContext {
    state: Arc<Mutex<Assignments>>,
    /// The consumer group, for the lag's labels.
    group: Arc<str>,
}

impl AssignmentContext {
    pub fn new(group: &str) -> Self {
        Self { state: Arc::default(), group: group.into() }
    }

    pub fn state(&self) -> MutexGuard<'_, Assignments> {
        self.state.lock().expect("assignment table poisoned")
    }
}

impl ClientContext for AssignmentContext {
    /// Every `statistics.interval.ms`: the lag of each partition this member consumes
    /// (librdkafka reports -1 for the others, and for the internal partition -1).
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics().record_consumer_lag(&self.group, topic, *partition, p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for AssignmentContext {
    /// Before partitions change hands: commit what is done in them while this member still
    /// owns them (queued before the unassign, so it goes out under this generation; async, so
    /// a broker that does not answer cannot stall the consumer). Photos still in flight for
    /// them are redelivered to the new owner. Nothing is committed for partitions already
    /// lost (the session expired): another member may own them by now.
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else { return };
        let to_commit = self.state().revoke(topic_partitions(list));
        let lost = consumer.assignment_lost();
        tracing::info!(revoked = ?topic_partitions(list), lost, "partitions revoked");
        if to_commit.is_empty() || lost {
            return;
        }
        let offsets = offsets_list(to_commit.iter().map(|(tp, o)| (tp, *o)));
        match consumer.commit(&offsets, CommitMode::Async) {
            Ok(()) => tracing::info!(committing = ?to_commit, "committing the revoked partitions' progress"),
            // Not fatal: the new owner starts from the last commit and skips what has a result.
            Err(e) => tracing::warn!(error = %e, "commit on revoke failed; the new owner will redeliver"),
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let mut state = self.state();
                state.assign(topic_partitions(list));
                tracing::info!(assigned = ?topic_partitions(list), held = state.num_held(), "partitions assigned");
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }

    /// Commits are asynchronous; their outcome arrives here (during a poll).
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let accepted = offsets.elements().into_iter().filter_map(|e| match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(((e.topic().to_string(), e.partition()), o as u64)),
                    _ => None,
                });
                self.state().mark_committed(accepted.collect::<Vec<_>>());
            }
            // Offered again with the next commit; at worst, redelivery.
            Err(e) => tracing::warn!(error = %e, offsets = ?topic_partitions(offsets), "offset commit failed"),
        }
    }
}

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
        a.assign([tp(0), tp(1)]);
        let first = a.id_of("rma.items", 0).unwrap();
        a.revoke([tp(0)]);
        assert_eq!(a.id_of("rma.items", 0), None);
        assert_eq!(a.take_revoked(), vec![first]);
        a.assign([tp(0)]);
        let second = a.id_of("rma.items", 0).unwrap();
        assert_ne!(first, second, "work of the old assignment must not complete the new one");
        assert!(a.take_revoked().is_empty());
    }

    #[test]
    fn revoke_hands_back_what_is_done_but_not_committed() {
        let mut a = Assignments::default();
        a.assign([tp(0), tp(1), tp(2)]);
        let (p0, p1) = (a.id_of("rma.items", 0).unwrap(), a.id_of("rma.items", 1).unwrap());
        assert_ne!(p0, p1);
        let pending = a.record_done(&[(p0, 10), (p1, 7)]);
        assert_eq!(pending.len(), 2);
        // p1's commit went through; p0's did not.
        a.mark_committed(pending.into_iter().filter(|(tp, _)| tp.1 == 1));
        let to_commit = a.revoke([tp(0), tp(1), tp(2)]);
        assert_eq!(to_commit, vec![(tp(0), 10)]);
    }

    #[test]
    fn a_failed_commit_is_offered_again_and_revoked_ids_are_ignored() {
        let mut a = Assignments::default();
        a.assign([tp(0)]);
        let p0 = a.id_of("rma.items", 0).unwrap();
        assert_eq!(a.record_done(&[(p0, 3)]).len(), 1);
        // Not marked committed: offered again with the next report.
        assert_eq!(a.record_done(&[]), vec![(tp(0), 3)]);
        a.revoke([tp(0)]);
        assert!(a.record_done(&[(p0, 5)]).is_empty(), "a revoked id is no longer ours to commit");
    }
}

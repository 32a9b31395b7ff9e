//! The partitions the source has lost in a rebalance, shared between the source stage (which
//! hears of them) and the fetch stage (which drops their photos that are not fetched yet, so
//! a member that lets a partition go stops working on it at once). A photo already decoded
//! or in a batch finishes: its result is idempotent by key, and the new owner's lookup finds
//! it if it lands first (else the photo is classified twice, never lost).

use std::collections::HashSet;
use std::sync::RwLock;

use autorma_core::PartitionId;

#[derive(Debug, Default)]
pub(crate) struct RevokedPartitions(RwLock<HashSet<PartitionId>>);

impl RevokedPartitions {
    pub fn insert(&self, partition: PartitionId) {
        self.0.write().expect("revoked set poisoned").insert(partition);
    }

    pub fn contains(&self, partition: PartitionId) -> bool {
        self.0.read().expect("revoked set poisoned").contains(&partition)
    }
}

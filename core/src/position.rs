//! Where an event sits in its source: a partition and an offset, Kafka's model.
//!
//! The local folder source has one partition whose offsets are lines of its event log.

use serde::{Deserialize, Serialize};

pub type PartitionId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub partition: PartitionId,
    pub offset: u64,
}

impl Position {
    pub fn new(partition: PartitionId, offset: u64) -> Self {
        Self { partition, offset }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.partition, self.offset)
    }
}

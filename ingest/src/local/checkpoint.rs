//! `checkpoint.json`: the committed offset per partition, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autorma_core::{PartitionId, SourceError, fsutil};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "autorma.checkpoint/v1";

#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
    state: CheckpointState,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct CheckpointState {
    schema: String,
    /// Next offset to process per partition (every offset below it is done).
    partitions: BTreeMap<PartitionId, u64>,
}

impl CheckpointFile {
    /// Reads the file; a missing file is an empty checkpoint (nothing committed yet).
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let state = match std::fs::read(path) {
            Ok(bytes) => {
                let state: CheckpointState = serde_json::from_slice(&bytes)
                    .map_err(|e| SourceError::Corrupt { path: path.display().to_string(), detail: e.to_string() })?;
                if state.schema != SCHEMA {
                    return Err(SourceError::Corrupt {
                        path: path.display().to_string(),
                        detail: format!("schema `{}`, expected `{SCHEMA}`", state.schema),
                    });
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                CheckpointState { schema: SCHEMA.into(), partitions: BTreeMap::new() }
            }
            Err(source) => return Err(SourceError::State { path: path.display().to_string(), source }),
        };
        Ok(Self { path: path.to_path_buf(), state })
    }

    pub fn committed(&self, partition: PartitionId) -> u64 {
        self.state.partitions.get(&partition).copied().unwrap_or(0)
    }

    pub fn set(&mut self, partition: PartitionId, next_offset: u64) {
        self.state.partitions.insert(partition, next_offset);
    }

    /// Atomic replace (temp + fsync + rename + dir fsync): a crash leaves the old or the new.
    pub fn save(&self) -> Result<(), SourceError> {
        let bytes = serde_json::to_vec_pretty(&self.state).expect("checkpoint serialises");
        fsutil::atomic_write(&self.path, &bytes)
            .map_err(|source| SourceError::State { path: self.path.display().to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        let mut checkpoint = CheckpointFile::open(&path).unwrap();
        assert_eq!(checkpoint.committed(0), 0);
        checkpoint.set(0, 42);
        checkpoint.save().unwrap();
        assert_eq!(CheckpointFile::open(&path).unwrap().committed(0), 42);
    }

    #[test]
    fn a_torn_write_leaves_the_previous_checkpoint() {
        // A crash mid-save leaves only a temp file beside the real one: simulate that debris
        // and check the real checkpoint is still the previous complete one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        let mut checkpoint = CheckpointFile::open(&path).unwrap();
        checkpoint.set(0, 7);
        checkpoint.save().unwrap();
        std::fs::write(dir.path().join(format!(".checkpoint.json{}1-0", fsutil::TMP_MARKER)), b"{\"sche").unwrap();
        assert_eq!(CheckpointFile::open(&path).unwrap().committed(0), 7);
    }

    #[test]
    fn garbage_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.json");
        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(CheckpointFile::open(&path), Err(SourceError::Corrupt { .. })));
    }
}

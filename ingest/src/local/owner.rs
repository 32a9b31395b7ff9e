//! Who owns a state folder: one inbox, one process at a time.
//!
//! `source.json` records the inbox (canonical path) and bucket the event log describes: the
//! same output folder reused for another inbox would otherwise resolve old keys against the
//! wrong folder. `lock` is held (an advisory file lock) for the source's lifetime, so two
//! runs cannot interleave appends to one log.

use std::fs::File;
use std::path::{Path, PathBuf};

use autorma_core::{SourceError, fsutil};
use serde::{Deserialize, Serialize};

const SCHEMA: &str = "autorma.local-source/v1";

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Identity {
    schema: String,
    inbox: PathBuf,
    bucket: String,
}

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct StateOwner {
    _lock: File,
}

impl StateOwner {
    pub fn claim(state_dir: &Path, inbox: &Path, bucket: &str) -> Result<Self, SourceError> {
        let state_err = |path: &Path, source| SourceError::State { path: path.display().to_string(), source };
        let lock_path = state_dir.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| state_err(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SourceError::NotOwner {
                    path: state_dir.display().to_string(),
                    detail: "another `autorma run` is using this output folder".into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(state_err(&lock_path, e)),
        }

        let inbox = std::fs::canonicalize(inbox).map_err(|e| state_err(inbox, e))?;
        let wanted = Identity { schema: SCHEMA.into(), inbox, bucket: bucket.into() };
        let path = state_dir.join("source.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let found: Identity = serde_json::from_slice(&bytes)
                    .map_err(|e| SourceError::Corrupt { path: path.display().to_string(), detail: e.to_string() })?;
                if found != wanted {
                    return Err(SourceError::NotOwner {
                        path: path.display().to_string(),
                        detail: format!(
                            "this output folder belongs to inbox `{}` (bucket `{}`), not `{}` (bucket `{}`); use another output folder",
                            found.inbox.display(),
                            found.bucket,
                            wanted.inbox.display(),
                            wanted.bucket
                        ),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = serde_json::to_vec_pretty(&wanted).expect("identity serialises");
                fsutil::atomic_write(&path, &bytes).map_err(|e| state_err(&path, e))?;
            }
            Err(e) => return Err(state_err(&path, e)),
        }
        Ok(Self { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_inbox_and_one_process_per_state_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, state) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("state"));
        for d in [&a, &b, &state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let owner = StateOwner::claim(&state, &a, "local").unwrap();
        let err = StateOwner::claim(&state, &a, "local").unwrap_err().to_string();
        assert!(err.contains("another `autorma run`"), "{err}");
        drop(owner);
        let _owner = StateOwner::claim(&state, &a, "local").unwrap();
        drop(_owner);
        let err = StateOwner::claim(&state, &b, "local").unwrap_err().to_string();
        assert!(err.contains("belongs to inbox"), "{err}");
        let err = StateOwner::claim(&state, &a, "returns").unwrap_err().to_string();
        assert!(err.contains("bucket `local`"), "{err}");
    }
}

//! What feeds the results index, beside the pipeline: in embedded mode the output folder
//! ([`folder`]), in streaming mode the topics the workers publish to ([`topics`]), and on
//! demand the bucket ([`bucket`]). The folder and the topics announce what they index to the
//! `/v1/events` subscribers.

pub mod bucket;
mod error;
pub mod folder;
pub mod topics;

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use autorma_core::{DlqRecord, ResultRecord};
use serde::de::DeserializeOwned;

pub use error::FeedError;

/// What `/v1/events` announces.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    Result(Arc<ResultRecord>),
    DeadLetter(Arc<DlqRecord>),
}

/// The record in what was read from `at` (a file, or an object's key); `None`, and said, when
/// it could not be read or is not a record: the index skips it.
fn parse_record<T: DeserializeOwned, E: Display>(at: &str, read: Result<impl AsRef<[u8]>, E>) -> Option<T> {
    let record = match read {
        Ok(bytes) => serde_json::from_slice(bytes.as_ref()).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    record.inspect_err(|error| tracing::warn!(at, %error, "not indexed: unreadable record")).ok()
}

/// How the feed is doing, for `/readyz`.
#[derive(Debug, Default)]
pub struct FeedStatus {
    caught_up: AtomicBool,
    /// The last failure, until the next success.
    error: Mutex<Option<String>>,
}

impl FeedStatus {
    /// The index holds everything there was at start.
    pub fn set_caught_up(&self) {
        self.caught_up.store(true, Ordering::Relaxed);
    }

    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    pub fn failed(&self, error: String) {
        *self.error.lock().expect("poisoned") = Some(error);
    }

    pub fn succeeded(&self) {
        self.error.lock().expect("poisoned").take();
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().expect("poisoned").clone()
    }
}

//! What feeds the results index, beside the pipeline: in embedded mode the output folder
//! ([`folder`]), in streaming mode the topics the workers publish to ([`topics`]), and on
//! demand the bucket ([`bucket`]). The folder and the topics announce what they index to the
//! `/v1/events` subscribers.

pub mod bucket;
mod error;
pub mod folder;
pub mod topics;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use autorma_core::{DlqRecord, ResultRecord};

pub use error::FeedError;

/// What `/v1/events` announces.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    Result(Arc<ResultRecord>),
    DeadLetter(Arc<DlqRecord>),
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

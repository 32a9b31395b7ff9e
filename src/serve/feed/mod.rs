//! What feeds the results index, beside the pipeline: in embedded mode the output folder
//! ([`folder`]), in streaming mode the topics the workers publish to ([`topics`]), and on
//! demand the bucket ([`bucket`]). The folder and the topics announce what they index to the
//! `/v1/events` subscribers.

pub mod bucket;
pub mod folder;
pub mod topics;

use std::sync::Arc;

use autorma_core::{DlqRecord, ResultRecord};

/// What `/v1/events` announces.
#[derive(Debug, Clone)]
pub enum FeedEvent {
    Result(Arc<ResultRecord>),
    DeadLetter(Arc<DlqRecord>),
}

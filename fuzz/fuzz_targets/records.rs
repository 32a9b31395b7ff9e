//! The records other processes send: an ItemEvent (`rma.items`), a Result, a dead letter and a
//! correction (the topics the index follows, the bucket's objects).
#![no_main]

use autorma_core::{CorrectionRecord, DlqRecord, ItemEvent, ResultRecord};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = serde_json::from_slice::<ItemEvent>(bytes);
    let _ = serde_json::from_slice::<ResultRecord>(bytes);
    let _ = serde_json::from_slice::<DlqRecord>(bytes);
    let _ = serde_json::from_slice::<CorrectionRecord>(bytes);
});

//! An S3 bucket notification, as it arrives on `rma.uploads.raw`, in both key encodings.
#![no_main]

use autorma_ingest::notify::{KeyEncoding, NotificationFilter, parse_notification};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    for key_encoding in [KeyEncoding::Url, KeyEncoding::Raw] {
        let filter = NotificationFilter { key_encoding, inbox_prefix: "inbox/".into() };
        let _ = parse_notification(payload, &filter);
    }
});

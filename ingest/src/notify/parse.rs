//! S3 bucket notifications (the AWS "Records" JSON that AWS S3, MinIO and versitygw send)
//! into ItemEvents.
//!
//! What differs between servers, and is a setting rather than a guess: MinIO and AWS
//! URL-encode the object key (`+` for a space), versitygw sends it raw ([`KeyEncoding`]).
//! AWS names events `ObjectCreated:Put`, MinIO and versitygw `s3:ObjectCreated:Put`. The
//! `eTag` may keep its quotes; `size` is 0 in Copy and CompleteMultipartUpload events.

use std::str::FromStr;

use autorma_core::event::content_type_for_key;
use autorma_core::layout::is_inbox_object;
use autorma_core::{EventOrigin, ItemEvent};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// How the server writes object keys in its notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// URL-encoded, `+` for a space (AWS S3, MinIO).
    Url,
    /// As stored (versitygw).
    Raw,
}

impl FromStr for KeyEncoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "url" => Ok(KeyEncoding::Url),
            "raw" => Ok(KeyEncoding::Raw),
            other => Err(format!("unknown key encoding `{other}`: use `url` (AWS S3, MinIO) or `raw` (versitygw)")),
        }
    }
}

/// Which notifications become ItemEvents.
#[derive(Debug, Clone)]
pub struct NotificationFilter {
    pub key_encoding: KeyEncoding,
    /// Only keys under this prefix are photos to classify (`inbox/`).
    pub inbox_prefix: String,
}

/// What one notification record is to the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// A new photo under the inbox.
    Item(ItemEvent),
    /// A record that is fine but not ours to classify, and why (logged, counted).
    Skipped { key: String, why: &'static str },
    /// A record that cannot be read; the others of its message still count.
    Invalid(Malformed),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed notification: {0}")]
pub struct Malformed(pub String);

#[derive(Deserialize)]
struct Notification {
    /// Read one by one, so one bad record does not take its neighbours down with it.
    #[serde(rename = "Records")]
    records: Option<Vec<serde_json::Value>>,
    /// Present (as `s3:TestEvent`) in the message a server sends when it starts.
    #[serde(rename = "Event")]
    event: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: DateTime<Utc>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectEntity {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    e_tag: String,
    #[serde(default)]
    content_type: Option<String>,
}

/// Parses one notification message. A message without `Records` (the `s3:TestEvent` a server
/// sends at start) is no records at all; anything that is not this JSON is [`Malformed`]; a
/// record that cannot be read is [`Parsed::Invalid`] beside the others.
pub fn parse_notification(payload: &[u8], filter: &NotificationFilter) -> Result<Vec<Parsed>, Malformed> {
    let notification: Notification =
        serde_json::from_slice(payload).map_err(|e| Malformed(format!("not an S3 event JSON: {e}")))?;
    let Some(records) = notification.records else {
        return match notification.event.as_deref() {
            Some(event) if event.ends_with("TestEvent") => Ok(Vec::new()),
            _ => Err(Malformed("no `Records` array".into())),
        };
    };
    Ok(records
        .into_iter()
        .enumerate()
        .map(|(i, record)| {
            serde_json::from_value::<Record>(record)
                .map_err(|e| Malformed(format!("record {i}: {e}")))
                .and_then(|record| parse_record(record, filter))
                .unwrap_or_else(Parsed::Invalid)
        })
        .collect())
}

fn parse_record(record: Record, filter: &NotificationFilter) -> Result<Parsed, Malformed> {
    let key = match filter.key_encoding {
        KeyEncoding::Raw => record.s3.object.key,
        KeyEncoding::Url => url_decode_key(&record.s3.object.key)?,
    };
    let skipped = |why| Ok(Parsed::Skipped { key: key.clone(), why });
    let name = record.event_name.strip_prefix("s3:").unwrap_or(&record.event_name);
    if !name.starts_with("ObjectCreated:") {
        return skipped("not an ObjectCreated event");
    }
    if !key.starts_with(&filter.inbox_prefix) {
        return skipped("outside the inbox prefix");
    }
    if !is_inbox_object(&key) {
        return skipped("a folder marker, a temporary file or one of the system's own objects");
    }
    // Informative only: the worker decides from the bytes. versitygw sends no content type.
    let content_type = record.s3.object.content_type.filter(|t| !t.is_empty());
    let content_type = content_type.unwrap_or_else(|| content_type_for_key(&key).to_string());
    if record.s3.object.e_tag.is_empty() {
        return Err(Malformed(format!("record for `{key}` has no eTag")));
    }
    Ok(Parsed::Item(ItemEvent {
        bucket: record.s3.bucket.name,
        etag: autorma_core::store::s3::unquote_etag(&record.s3.object.e_tag).to_string(),
        key,
        size: record.s3.object.size,
        content_type,
        event_time: record.event_time,
        source: EventOrigin::Notification,
        claim: None,
        replay: None,
    }))
}

/// AWS's form encoding: `+` is a space, then percent-decoding; the result must be UTF-8.
pub fn url_decode_key(encoded: &str) -> Result<String, Malformed> {
    let plus_decoded = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| Malformed(format!("key `{encoded}` is not URL-encoded UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `notification` fuzz target's inputs parse or are refused as malformed, in both key
    /// encodings, without a panic; the seeds (real notifications) parse.
    #[test]
    fn the_notification_fuzz_inputs_parse_or_are_refused() {
        for (name, payload) in autorma_core::testsuite::fuzz_inputs("notification") {
            for key_encoding in [KeyEncoding::Url, KeyEncoding::Raw] {
                let parsed =
                    parse_notification(&payload, &NotificationFilter { key_encoding, inbox_prefix: "inbox/".into() });
                if name.starts_with("seeds/") {
                    assert!(parsed.is_ok(), "{name}: {parsed:?}");
                }
            }
        }
    }

    fn filter(key_encoding: KeyEncoding) -> NotificationFilter {
        NotificationFilter { key_encoding, inbox_prefix: "inbox/".into() }
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    fn only_item(parsed: Vec<Parsed>) -> ItemEvent {
        match parsed.as_slice() {
            [Parsed::Item(event)] => event.clone(),
            other => panic!("expected one item, got {other:?}"),
        }
    }

    #[test]
    fn minio_event_as_its_documentation_shows_it() {
        let event = only_item(parse_notification(&fixture("minio_put.json"), &filter(KeyEncoding::Url)).unwrap());
        assert_eq!(event.bucket, "returns");
        assert_eq!(event.key, "inbox/bench 3/café shoe.jpg");
        assert_eq!(event.etag, "00fc7c2e6f9f8a4fc30e1ab8e1e3a8d4");
        assert_eq!(event.size, 200436);
        assert_eq!(event.content_type, "image/jpeg");
        assert_eq!(event.source, EventOrigin::Notification);
        assert_eq!(event.event_time.to_rfc3339(), "2019-09-10T17:41:54+00:00");
    }

    #[test]
    fn versitygw_event_recorded_here() {
        let event = only_item(parse_notification(&fixture("versitygw_put.json"), &filter(KeyEncoding::Raw)).unwrap());
        assert!(event.key.starts_with("inbox/"), "{event:?}");
        assert!(!event.etag.contains('"'), "quotes are stripped: {event:?}");
        let special = only_item(
            parse_notification(&fixture("versitygw_put_special_key.json"), &filter(KeyEncoding::Raw)).unwrap(),
        );
        assert_eq!(special.key, "inbox/a b/é.jpg");
    }

    #[test]
    fn the_start_up_test_event_is_no_records() {
        let parsed = parse_notification(&fixture("versitygw_test_event.json"), &filter(KeyEncoding::Raw)).unwrap();
        assert!(parsed.is_empty());
    }

    #[test]
    fn url_decoding_is_a_setting_not_a_guess() {
        assert_eq!(url_decode_key("inbox/a+b%2Bc%C3%A9.jpg").unwrap(), "inbox/a b+cé.jpg");
        assert!(url_decode_key("inbox/%FF.jpg").is_err());
        // Raw keys are taken as they are, `+` and `%` included.
        let payload = br#"{"Records":[{"eventName":"s3:ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z",
            "s3":{"bucket":{"name":"returns"},"object":{"key":"inbox/a+b%20.jpg","size":1,"eTag":"\"e\""}}}]}"#;
        let event = only_item(parse_notification(payload, &filter(KeyEncoding::Raw)).unwrap());
        assert_eq!(event.key, "inbox/a+b%20.jpg");
        assert_eq!(event.etag, "e");
    }

    #[test]
    fn every_object_created_under_the_inbox_is_kept_whatever_its_name() {
        let record = |name: &str, key: &str, content_type: &str| {
            format!(
                r#"{{"eventName":"{name}","eventTime":"2026-01-01T00:00:00Z","s3":{{"bucket":{{"name":"returns"}},
                "object":{{"key":"{key}","size":0,"eTag":"e","contentType":"{content_type}"}}}}}}"#
            )
        };
        let payload = format!(
            r#"{{"Records":[{},{},{},{},{},{},{},{}]}}"#,
            record("ObjectCreated:CompleteMultipartUpload", "inbox/a.jpg", ""),
            record("s3:ObjectRemoved:Delete", "inbox/b.jpg", ""),
            record("s3:ObjectCreated:Put", "results/inbox/a.jpg.json", "application/json"),
            record("s3:ObjectCreated:Put", "inbox/notes.txt", "text/plain"),
            record("s3:ObjectCreated:Copy", "inbox/photo", "image/png"),
            record("s3:ObjectCreated:Put", "inbox/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b", ""),
            record("s3:ObjectCreated:Put", "inbox/dir/", ""),
            record("s3:ObjectCreated:Put", "inbox/.a.jpg.autorma-tmp-7-1", ""),
        );
        let parsed = parse_notification(payload.as_bytes(), &filter(KeyEncoding::Raw)).unwrap();
        let kept: Vec<(&str, &str)> = parsed
            .iter()
            .filter_map(|p| match p {
                Parsed::Item(e) => Some((e.key.as_str(), e.content_type.as_str())),
                Parsed::Skipped { .. } | Parsed::Invalid(_) => None,
            })
            .collect();
        // The content type is the declared one, else guessed from the name: informative only,
        // the worker reads the bytes.
        assert_eq!(
            kept,
            vec![
                ("inbox/a.jpg", "image/jpeg"),
                ("inbox/notes.txt", "text/plain"),
                ("inbox/photo", "image/png"),
                ("inbox/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b", "application/octet-stream"),
            ]
        );
    }

    #[test]
    fn malformed_messages_say_why() {
        let f = filter(KeyEncoding::Url);
        assert!(parse_notification(b"not json", &f).unwrap_err().0.contains("not an S3 event JSON"));
        assert!(parse_notification(b"{}", &f).unwrap_err().0.contains("Records"));
        // One record without a key beside a good one: the good one still counts.
        let payload = br#"{"Records":[{"eventName":"s3:ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"b"},"object":{}}},
            {"eventName":"s3:ObjectCreated:Put","eventTime":"2026-01-01T00:00:00Z","s3":{"bucket":{"name":"b"},"object":{"key":"inbox/a.jpg","eTag":"e"}}}]}"#;
        let parsed = parse_notification(payload, &f).unwrap();
        assert!(
            matches!(&parsed[0], Parsed::Invalid(m) if m.0.contains("record 0") && m.0.contains("key")),
            "{parsed:?}"
        );
        assert!(matches!(&parsed[1], Parsed::Item(e) if e.key == "inbox/a.jpg"), "{parsed:?}");
    }
}

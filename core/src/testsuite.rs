//! Test helpers for other crates' tests (feature `testsuite`): the contract every object store
//! keeps, to run against each implementation (local and memory here, S3 on a real server in
//! the streaming tests).

use bytes::Bytes;

use crate::claim::Metadata;
use crate::store::{ObjectInfo, ObjectStore, StoreError, WriteCondition, optional};

/// What every [`ObjectStore`] promises, checked on keys under `prefix` of `bucket` (which must
/// hold nothing there): afterwards `prefix` holds exactly `a/1.json`, `a/2.json` and `b.json`.
pub async fn object_store_contract(store: &impl ObjectStore, bucket: &str, prefix: &str) {
    let k = |key: &str| format!("{prefix}{key}");
    let json = "application/json";
    let body = Bytes::from_static;
    assert!(matches!(store.get(bucket, &k("a/1.json"), 100).await, Err(StoreError::NotFound { .. })));
    assert!(optional(store.get_tagged(bucket, &k("a/1.json"), 100).await).unwrap().is_none());

    // If-None-Match: the first write wins, the second changes nothing.
    assert!(store.put_if(bucket, &k("a/1.json"), body(b"one"), json, WriteCondition::IfAbsent).await.unwrap());
    assert!(!store.put_if(bucket, &k("a/1.json"), body(b"two"), json, WriteCondition::IfAbsent).await.unwrap());
    let (bytes, first) = store.get_tagged(bucket, &k("a/1.json"), 100).await.unwrap();
    assert_eq!(&bytes[..], b"one");

    // If-Match: the current etag swaps (same size, new etag); a stale one does not.
    let swap = WriteCondition::IfMatch(&first);
    assert!(store.put_if(bucket, &k("a/1.json"), body(b"uno"), json, swap).await.unwrap());
    assert!(!store.put_if(bucket, &k("a/1.json"), body(b"ein"), json, swap).await.unwrap());
    let (bytes, second) = store.get_tagged(bucket, &k("a/1.json"), 100).await.unwrap();
    assert_eq!(&bytes[..], b"uno");
    assert_ne!(first, second);
    let on_missing = WriteCondition::IfMatch(&second);
    assert!(!store.put_if(bucket, &k("missing.json"), body(b"x"), json, on_missing).await.unwrap());

    store.put(bucket, &k("a/2.json"), body(b"2"), json).await.unwrap();
    store.put(bucket, &k("b.json"), body(b"b"), json).await.unwrap();
    store.put(bucket, &k("c.json"), body(b"first"), json).await.unwrap();
    store.put(bucket, &k("c.json"), body(b"second"), json).await.unwrap();
    assert_eq!(&store.get(bucket, &k("c.json"), 100).await.unwrap()[..], b"second");

    // User metadata travels with the object, and a write replaces it with the object.
    let claim: Metadata = [("expected-label", "tops"), ("sku", "1163")].map(|(n, v)| (n.into(), v.into())).into();
    store.put_object(bucket, &k("c.json"), body(b"third"), json, &claim).await.unwrap();
    let object = store.get_object(bucket, &k("c.json"), 100).await.unwrap();
    assert_eq!((&object.bytes[..], &object.metadata), (&b"third"[..], &claim));
    store.put(bucket, &k("c.json"), body(b"second"), json).await.unwrap();
    assert_eq!(store.get_object(bucket, &k("c.json"), 100).await.unwrap().metadata, Metadata::new());
    let err = store.get(bucket, &k("c.json"), 5).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { size: 6, max_bytes: 5, .. }), "{err}");

    let keys = |objects: Vec<ObjectInfo>| {
        objects.into_iter().map(|o| o.key.strip_prefix(prefix).unwrap_or(&o.key).to_string()).collect::<Vec<_>>()
    };
    let listed = store.list(bucket, &k("a/")).await.unwrap();
    assert_eq!(listed[0].etag, second, "a listing's etag is the one a read gives");
    assert_eq!(listed[0].size, 3);
    assert_eq!(keys(listed), ["a/1.json", "a/2.json"]);
    assert_eq!(keys(store.list(bucket, &k("a/1")).await.unwrap()), ["a/1.json"]);
    assert_eq!(keys(store.list(bucket, prefix).await.unwrap()), ["a/1.json", "a/2.json", "b.json", "c.json"]);

    // Pages: the same listing, `max` at a time, after a key (any key, listed or not).
    let page = store.list_page(bucket, prefix, None, 2).await.unwrap();
    assert_eq!((keys(page.objects.clone()), page.complete), (vec!["a/1.json".into(), "a/2.json".into()], false));
    let page = store.list_page(bucket, prefix, page.next_start(), 2).await.unwrap();
    assert_eq!((keys(page.objects.clone()), page.complete), (vec!["b.json".into(), "c.json".into()], true));
    assert_eq!(page.next_start(), None);
    let page = store.list_page(bucket, prefix, Some(&k("a/1.json0")), 10).await.unwrap();
    assert_eq!(keys(page.objects), ["a/2.json", "b.json", "c.json"]);
    let page = store.list_page(bucket, &k("a/"), Some(&k("b")), 10).await.unwrap();
    assert_eq!((page.objects.len(), page.complete), (0, true), "nothing under the prefix sorts after `b`");
    let page = store.list_page(bucket, &k("b.json"), None, 1).await.unwrap();
    assert_eq!(keys(page.objects.clone()), ["b.json"], "a key equal to the prefix");
    // A server may call a full page truncated with nothing after it (versitygw does): the next
    // page is then empty and complete.
    if !page.complete {
        let next = store.list_page(bucket, &k("b.json"), page.next_start(), 1).await.unwrap();
        assert_eq!((next.objects.len(), next.complete), (0, true));
    }

    store.delete(bucket, &k("c.json")).await.unwrap();
    store.delete(bucket, &k("c.json")).await.unwrap();
    assert!(matches!(store.get(bucket, &k("c.json"), 100).await, Err(StoreError::NotFound { .. })));
    assert_eq!(keys(store.list(bucket, prefix).await.unwrap()), ["a/1.json", "a/2.json", "b.json"]);
}

/// The inputs kept for the fuzz target `target`: its seeds (`fuzz/seeds/<target>/`) and what
/// earlier runs found (`fuzz/regressions/<target>/`, fixed since), as (file name, bytes), for
/// the stable test that replays them through the same function the target calls.
pub fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else { continue };
        for entry in entries {
            let path = entry.expect("a readable fuzz folder").path();
            let name = format!("{kind}/{target}/{}", path.file_name().unwrap_or_default().to_string_lossy());
            inputs.push((name, std::fs::read(&path).expect("a readable fuzz input")));
        }
    }
    assert!(!inputs.is_empty(), "no inputs under fuzz/seeds/{target}/");
    inputs.sort();
    inputs
}

#[cfg(test)]
mod tests {
    use crate::{CorrectionRecord, DlqRecord, ItemEvent, ResultRecord};

    /// The `records` fuzz target's inputs decode or are refused, without a panic.
    #[test]
    fn the_records_fuzz_inputs_are_decoded_or_refused() {
        for (name, bytes) in super::fuzz_inputs("records") {
            let result = serde_json::from_slice::<ResultRecord>(&bytes);
            let _ = serde_json::from_slice::<ItemEvent>(&bytes);
            let _ = serde_json::from_slice::<DlqRecord>(&bytes);
            let _ = serde_json::from_slice::<CorrectionRecord>(&bytes);
            if name.starts_with("seeds/") {
                assert!(result.is_ok(), "{name}: the seed is a Result record");
            }
        }
    }
}

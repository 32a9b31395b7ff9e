//! The registry and the replay on the real engines: a promotion while photos stream, broken
//! versions refused, rollback, concurrent pushes, and the replay beside live photos.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::clients::{S3, TopicReader};
use crate::stack::{Stack, root, wait_until};
use crate::{bodies, percentile, serial, stack_with_workers, test_photos};

/// The model version named by each result object under `prefix`, by photo key.
fn versions_under(s3: &S3, prefix: &str) -> HashMap<String, String> {
    s3.list(&format!("results/{prefix}"))
        .into_iter()
        .map(|key| {
            let record = s3.get_json(&key);
            (
                record["item"]["key"].as_str().unwrap().to_string(),
                record["model"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `autorma model history --json`, as (action, version) pairs.
fn history(stack: &Stack) -> Vec<(String, u64)> {
    let output = stack.cli(&["model", "history", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let records: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    records.iter().map(|r| (r["action"].as_str().unwrap().to_string(), r["to"].as_u64().unwrap_or(0))).collect()
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes a version straight into the bucket, past `model push`'s checks (a corrupted or
/// hand-made upload): `model.json` edited by `edit`, `model.onnx` replaced by `onnx`.
fn upload_broken_version(s3: &S3, version: u32, onnx: Vec<u8>, edit: impl FnOnce(&mut serde_json::Value)) {
    let dir = root().join("models/fashion5");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&onnx))
    };
    manifest["onnx"]["sha256"] = sha.clone().into();
    // Only the classifier's graph is under test: no embedding file to upload beside it.
    manifest.as_object_mut().unwrap().remove("embedding");
    edit(&mut manifest);
    let prefix = format!("models/fashion5/versions/{version}");
    let record = serde_json::json!({
        "name": "fashion5", "version": version, "sha256": sha, "package_version": "broken",
        "files": ["model.onnx", "model.json"], "pushed_at": chrono::Utc::now(), "pushed_by": "test",
    });
    s3.put(&format!("{prefix}/version.json"), record.to_string().into_bytes());
    s3.put(&format!("{prefix}/model.onnx"), onnx);
    s3.put(&format!("{prefix}/model.json"), manifest.to_string().into_bytes());
}

#[test]
fn a_promotion_mid_stream_swaps_between_batches_and_broken_versions_are_refused() {
    let _serial = serial();
    let photos = test_photos();
    let (stack, results, s3) = stack_with_workers(&["worker-a"]);
    wait_until("the worker seeds the registry", Duration::from_secs(30), || {
        s3.list("models/fashion5/aliases/production.json").len() == 1
    });

    // Two pushes at once get two numbers (a conditional write claims each).
    let pushes: Vec<_> = (0..2)
        .map(|_| {
            stack
                .command(&["model", "push", "models/fashion5", "--reason", "concurrent"])
                .current_dir(root())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut push in pushes {
        assert!(push.wait().unwrap().success());
    }
    let list = ok(stack.cli(&["model", "list", "--json"]));
    let versions: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
    let numbers: Vec<u64> = versions.iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![1, 2, 3], "the seed, then two concurrent pushes with different numbers");

    // Stream the photos; promote version 2 once about a third has gone through.
    let uploads = bodies(&photos);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for (i, chunk) in uploads.chunks(25).enumerate() {
                // The last third waits for the swap, so some photos surely come after it
                // (the worker looks at the alias once a second).
                if i == 10 {
                    wait_until("the swap", Duration::from_secs(30), || stack.log("worker-a").contains("model swapped"));
                }
                s3.put_all(chunk.to_vec());
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        wait_until("a third of the results", Duration::from_secs(60), || results.num_distinct_keys() >= 125);
        ok(stack.cli(&["model", "promote", "2", "--reason", "mid-stream"]));
    });
    wait_until("a result per photo", Duration::from_secs(90), || results.num_distinct_keys() >= photos.len());
    let records = results.records();
    assert_eq!(records.len(), photos.len(), "one result per photo, none twice");
    // Results in the order the sink wrote them: version 1, then version 2. A photo keeps the
    // model it was given when its fetch started, so only the photos in flight at the swap (at
    // most the worker's 16 fetches) may finish on version 1 after the first one on version 2.
    let mut by_time: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r.value["processed_at"].as_str().unwrap().to_string(),
                r.value["model"]["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_time.sort();
    let sequence: Vec<&str> = by_time.iter().map(|(_, v)| v.as_str()).collect();
    let first_v2 = sequence.iter().position(|v| *v == "2").expect("some photos after the swap carry version 2");
    assert!(first_v2 > 0, "photos before the swap carry version 1");
    let late_v1 = sequence[first_v2..].iter().filter(|v| **v == "1").count();
    assert!(late_v1 <= 16, "{late_v1} photos went to version 1 after the swap: {sequence:?}");
    let last_v1 = sequence.iter().rposition(|v| *v == "1").unwrap();
    assert!(last_v1.saturating_sub(first_v2) < 32, "the swap is one boundary, not a mix: {sequence:?}");
    assert!(stack.log("worker-a").contains("model swapped"), "the worker logged the swap");

    // A package whose model does not load is refused by push...
    let broken_dir = stack.dir.path().join("broken");
    std::fs::create_dir_all(&broken_dir).unwrap();
    for file in ["model.json", "MODEL_CARD.md", "embedding.onnx"] {
        std::fs::copy(root().join("models/fashion5").join(file), broken_dir.join(file)).unwrap();
    }
    let garbage = b"this is not an ONNX graph".to_vec();
    std::fs::write(broken_dir.join("model.onnx"), &garbage).unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(broken_dir.join("model.json")).unwrap()).unwrap();
    manifest["onnx"]["sha256"] = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&garbage)).into()
    };
    std::fs::write(broken_dir.join("model.json"), manifest.to_string()).unwrap();
    let refused = stack.cli(&["model", "push", broken_dir.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refusing to push"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // ...and, if one reaches the bucket anyway, by the worker: version 4 does not load,
    // version 5's class list does not match its output. Version 2 keeps serving.
    upload_broken_version(&s3, 4, garbage, |_| {});
    let onnx = std::fs::read(root().join("models/fashion5/model.onnx")).unwrap();
    upload_broken_version(&s3, 5, onnx, |m| {
        m["classes"].as_array_mut().unwrap().pop();
        m["thresholds"].as_object_mut().unwrap().remove("watches");
    });
    for version in ["4", "5"] {
        ok(stack.cli(&["model", "promote", version]));
        wait_until(&format!("the worker refuses version {version}"), Duration::from_secs(30), || {
            history(&stack).contains(&("refused".to_string(), version.parse().unwrap()))
        });
    }
    let more = |tag: &str| -> Vec<(String, Vec<u8>)> {
        bodies(&photos[..10]).into_iter().map(|(k, b)| (k.replacen("inbox/", &format!("inbox/{tag}/"), 1), b)).collect()
    };
    s3.put_all(more("after-refusals"));
    wait_until("results after the refusals", Duration::from_secs(30), || {
        versions_under(&s3, "inbox/after-refusals/").len() == 10
    });
    assert!(versions_under(&s3, "inbox/after-refusals/").values().all(|v| v == "2"), "version 2 kept serving");

    // Rollback walks back: 5 -> 4 -> 2 -> 1, and the worker follows to version 1.
    for expected in ["version 4", "version 2", "version 1"] {
        assert!(ok(stack.cli(&["model", "rollback", "--reason", "test"])).contains(expected));
    }
    wait_until("the swap back to version 1", Duration::from_secs(30), || {
        stack.log("worker-a").matches("model swapped").count() >= 2
    });
    s3.put_all(more("after-rollback"));
    wait_until("results after the rollback", Duration::from_secs(30), || {
        versions_under(&s3, "inbox/after-rollback/").len() == 10
    });
    assert!(versions_under(&s3, "inbox/after-rollback/").values().all(|v| v == "1"), "back on version 1");
    let trail = history(&stack);
    assert_eq!(trail.iter().filter(|(a, _)| a == "rollback").count(), 3, "{trail:?}");
}

/// The upload-to-result times of `n` photos PUT one by one, `gap` apart, under `prefix`.
fn live_latencies(
    s3: &S3,
    results: &TopicReader,
    photos: &[(String, Vec<u8>)],
    prefix: &str,
    gap: Duration,
) -> Vec<f64> {
    let mut put_done = HashMap::new();
    for (key, body) in photos {
        let key = key.replacen("inbox/", prefix, 1);
        s3.put(&key, body.clone());
        put_done.insert(key, Instant::now());
        std::thread::sleep(gap);
    }
    wait_until("the live photos' results", Duration::from_secs(60), || {
        let seen = results.first_by_key();
        put_done.keys().all(|k| seen.contains_key(k))
    });
    let seen = results.first_by_key();
    let mut ms: Vec<f64> = put_done.iter().map(|(k, at)| (seen[k].seen - *at).as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

#[test]
fn a_replay_sends_what_the_current_version_did_not_classify_and_live_photos_go_first() {
    let _serial = serial();
    let photos = bodies(&test_photos());
    let (stack, results, s3) = stack_with_workers(&["worker-a"]);
    // 500 photos: 200 under inbox/first/, 300 under inbox/rest/, classified by version 1.
    let keyed = |prefix: &str, range: std::ops::Range<usize>| -> Vec<(String, Vec<u8>)> {
        range
            .map(|i| {
                (
                    format!("{prefix}{i:04}-{}", Path::new(&photos[i % 375].0).file_name().unwrap().to_string_lossy()),
                    photos[i % 375].1.clone(),
                )
            })
            .collect()
    };
    s3.put_all(keyed("inbox/first/", 0..200));
    s3.put_all(keyed("inbox/rest/", 200..500));
    wait_until("500 results by version 1", Duration::from_secs(120), || results.num_distinct_keys() >= 500);

    ok(stack.cli(&["model", "push", "models/fashion5", "--reason", "retrained"]));
    ok(stack.cli(&["model", "promote", "2"]));
    wait_until("the worker swaps to version 2", Duration::from_secs(30), || {
        stack.log("worker-a").contains("model swapped")
    });
    let out = ok(stack.cli(&["replay", "--prefix", "inbox/first/", "--no-progress"]));
    assert!(out.contains("listed 200 photos, skipped 0") && out.contains("sent 200"), "{out}");
    wait_until("inbox/first/ on version 2", Duration::from_secs(60), || {
        versions_under(&s3, "inbox/first/").values().filter(|v| *v == "2").count() == 200
    });
    let out = ok(stack.cli(&["replay", "--no-progress"]));
    assert!(out.contains("listed 500 photos, skipped 200") && out.contains("sent 300"), "{out}");
    wait_until("all 500 on version 2", Duration::from_secs(90), || {
        versions_under(&s3, "inbox/").values().filter(|v| *v == "2").count() == 500
    });

    // Live photos on an idle pipeline, then while a 2,000-photo replay runs.
    let live = &photos[..10];
    let idle = live_latencies(&s3, &results, live, "inbox/live-idle/", Duration::from_millis(300));
    s3.put_all(keyed("archive/", 0..2000));
    let out = ok(stack.cli(&["replay", "--prefix", "archive/", "--rate", "1000", "--no-progress"]));
    assert!(out.contains("sent 2000"), "{out}");
    let busy = live_latencies(&s3, &results, live, "inbox/live-busy/", Duration::from_millis(300));
    let archive_done_when_live_done = results.records().iter().filter(|r| r.key.starts_with("archive/")).count();
    eprintln!(
        "[replay] live upload-to-result: idle p50 {:.0} ms p95 {:.0} ms; during the replay p50 {:.0} ms p95 {:.0} ms \
         ({archive_done_when_live_done} of 2000 replayed when the last live photo was done)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.95),
        percentile(&busy, 0.5),
        percentile(&busy, 0.95)
    );
    assert!(archive_done_when_live_done < 2000, "the live photos did not wait for the backlog");
    assert!(
        stack.log("worker-a").contains("replay partitions paused"),
        "the replay backlog piled up in the worker, which paused the replay partitions"
    );
    // The replay lane, paused and resumed around the live photos, loses nothing.
    wait_until("the 2,000 replayed photos", Duration::from_secs(180), || {
        results.records().iter().filter(|r| r.key.starts_with("archive/")).count() >= 2000
    });
    assert_eq!(results.num_distinct_keys(), 500 + 20 + 2000);
}

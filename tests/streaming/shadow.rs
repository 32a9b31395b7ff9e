//! Shadow rollouts on the real engines: a version run as the shadow is compared with
//! production from `rma.shadow`, the gate refuses a bad one and lets a good one through, and
//! a bad version promoted without the gate is rolled back by the worker that watches it.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::clients::{S3, TopicReader};
use crate::stack::{Stack, root, wait_until};
use crate::{bodies, serial, test_photos};

/// `autorma model compare VERSION --json`.
fn compare(stack: &Stack, version: &str) -> serde_json::Value {
    let output = stack.cli(&["model", "compare", version, "--json", "--min-photos", "40"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn ok(output: std::process::Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// fashion5 with its class list rotated: the same probabilities under other names, so every
/// label is wrong while the confidences (and the review share) stay as they were.
fn permuted_package(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for file in ["model.onnx", "embedding.onnx", "MODEL_CARD.md"] {
        std::fs::copy(root().join("models/fashion5").join(file), dir.join(file)).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("models/fashion5/model.json")).unwrap()).unwrap();
    manifest["classes"].as_array_mut().unwrap().rotate_left(1);
    std::fs::write(dir.join("model.json"), manifest.to_string()).unwrap();
}

/// Uploads `n` test photos under `inbox/<tag>/` and waits for their results.
fn stream(s3: &S3, results: &TopicReader, photos: &[(String, std::path::PathBuf)], tag: &str, skip: usize, n: usize) {
    let uploads: Vec<(String, Vec<u8>)> = bodies(&photos[skip..skip + n])
        .into_iter()
        .map(|(key, body)| (key.replacen("inbox/", &format!("inbox/{tag}/"), 1), body))
        .collect();
    s3.put_all(uploads);
    let prefix = format!("inbox/{tag}/");
    wait_until(&format!("the results of {tag}"), Duration::from_secs(120), || {
        results.records().iter().filter(|r| r.key.starts_with(&prefix)).count() >= n
    });
}

#[test]
fn a_shadow_is_compared_and_gated_and_a_bad_promotion_is_rolled_back() {
    let _serial = serial();
    // The classes mixed: the test split by file name (catalogue ids), not by class folder.
    let mut photos = test_photos();
    photos.sort_by(|a, b| a.1.file_name().cmp(&b.1.file_name()));
    assert!(photos.len() >= 240, "{} photos", photos.len());
    let mut stack = Stack::start();
    let results = TopicReader::start(&stack.brokers, "rma.results");
    stack.spawn_ingest(&[]);
    stack.spawn_worker_with(
        "worker-a",
        &[("AUTORMA_SHADOW_SAMPLE", "1"), ("AUTORMA_WATCH_S", "300"), ("AUTORMA_WATCH_MIN_PHOTOS", "30")],
    );
    let s3 = S3::new(&stack);
    wait_until("the worker seeds the registry", Duration::from_secs(60), || {
        s3.list("models/fashion5/aliases/production.json").len() == 1
    });
    // Version 2: the same model (a retrained one that agrees); version 3: labels permuted.
    let permuted = stack.dir.path().join("permuted");
    permuted_package(&permuted);
    let fashion5 = root().join("models/fashion5");
    assert!(ok(stack.cli(&["model", "push", fashion5.to_str().unwrap()])).contains("as version 2"));
    assert!(ok(stack.cli(&["model", "push", permuted.to_str().unwrap()])).contains("as version 3"));

    // The gate stays shut without figures.
    let shut = stack.cli(&["model", "promote", "3", "--gate"]);
    assert!(!shut.status.success());
    assert!(String::from_utf8_lossy(&shut.stderr).contains("not yet: 0 photos compared"), "{shut:?}");

    // Version 3 as the shadow: its records say it disagrees, and the gate refuses it.
    ok(stack.cli(&["model", "promote", "3", "--alias", "shadow"]));
    wait_until("the shadow loads", Duration::from_secs(30), || stack.log("worker-a").contains("shadow model changed"));
    stream(&s3, &results, &photos, "shadow-3", 0, 60);
    wait_until("the shadow's records of version 3", Duration::from_secs(30), || {
        compare(&stack, "3")["photos"].as_u64().unwrap() >= 40
    });
    let figures = compare(&stack, "3");
    assert!(figures["agreement"].as_f64().unwrap() < 0.3, "{figures}");
    assert_eq!(figures["production_version"], 1);
    assert!(figures["shadow_ms_p50"].as_f64().unwrap() > 0.0, "{figures}");
    let refused = stack.cli(&["model", "promote", "3", "--gate", "--min-photos", "40"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("the gate is closed") && stderr.contains("agreement"), "{stderr}");
    // The photos' results are production's alone.
    assert!(results.records().iter().all(|r| r.value["model"]["version"] == "1"));

    // Version 2 as the shadow agrees, and goes through the gate.
    ok(stack.cli(&["model", "promote", "2", "--alias", "shadow"]));
    wait_until("the shadow moves to version 2", Duration::from_secs(30), || {
        stack.log("worker-a").matches("shadow model changed").count() >= 2
    });
    stream(&s3, &results, &photos, "shadow-2", 60, 60);
    wait_until("the shadow's records of version 2", Duration::from_secs(30), || {
        compare(&stack, "2")["photos"].as_u64().unwrap() >= 40
    });
    let figures = compare(&stack, "2");
    assert_eq!(figures["agreement"].as_f64().unwrap(), 1.0, "{figures}");
    assert_eq!(figures["gate"]["verdict"], "within", "{figures}");
    let gated = ok(stack.cli(&["model", "promote", "2", "--gate", "--min-photos", "40"]));
    assert!(gated.contains("agreement") && gated.contains("version 2 (was 1)"), "{gated}");
    let watches = || stack.log("worker-a").matches("watching the promoted version").count();
    wait_until("the swap to version 2, watched", Duration::from_secs(30), || watches() == 1);
    stream(&s3, &results, &photos, "production-2", 120, 40);

    // Version 3 promoted past the gate: the worker watching it rolls it back.
    let promoted = Instant::now();
    ok(stack.cli(&["model", "promote", "3", "--reason", "a bad release"]));
    wait_until("the swap to version 3, watched", Duration::from_secs(30), || watches() == 2);
    let uploads: Vec<(String, Vec<u8>)> = bodies(&photos[160..240])
        .into_iter()
        .map(|(key, body)| (key.replacen("inbox/", "inbox/bad/", 1), body))
        .collect();
    s3.put_all(uploads);
    wait_until("the automatic rollback", Duration::from_secs(120), || {
        stack.log("worker-a").contains("rolled the alias back")
    });
    let took = promoted.elapsed();
    eprintln!("promotion of the bad version to its automatic rollback: {:.1} s", took.as_secs_f64());
    let history: Vec<serde_json::Value> =
        serde_json::from_str(&ok(stack.cli(&["model", "history", "--json"]))).unwrap();
    let rollback = history.iter().rev().find(|r| r["action"] == "rollback").expect("a rollback in the audit trail");
    assert_eq!((rollback["from"].as_u64(), rollback["to"].as_u64()), (Some(3), Some(2)), "{rollback}");
    let reason = rollback["reason"].as_str().unwrap();
    assert!(reason.starts_with("automatic: version 3 against version 2") && reason.contains("agreement"), "{reason}");
    assert!(rollback["by"].as_str().unwrap().starts_with("worker@"), "{rollback}");
    // Every bad-batch photo has a result, and those after the rollback are version 2's again.
    wait_until("the results of the bad batch", Duration::from_secs(120), || {
        results.records().iter().filter(|r| r.key.starts_with("inbox/bad/")).count() >= 80
    });
    stream(&s3, &results, &photos, "after-rollback", 240, 20.min(photos.len() - 240));
    let after: Vec<_> = results.records().into_iter().filter(|r| r.key.starts_with("inbox/after-rollback/")).collect();
    assert!(!after.is_empty() && after.iter().all(|r| r.value["model"]["version"] == "2"), "back on version 2");
    let alias = s3.get_json("models/fashion5/aliases/production.json");
    assert_eq!(alias["version"], 2);
}

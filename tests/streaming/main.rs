//! The streaming system end to end on the real engines (Kafka 4.4 KRaft, versitygw 1.8),
//! started by `infra/engines/` for each test: photos PUT into the bucket with an ordinary S3
//! client come out as result objects and records on `rma.results`, whatever crashes.
//!
//! Needs `infra/setup/kafka.sh`, `infra/setup/versitygw.sh` and `infra/setup/onnxruntime.sh`
//! (what `infra/test.sh` runs first) and the fashion5 test split at
//! `../shared/datasets/fashion5/test`. The tests run one at a time: they share 2 cores.

mod chaos;
mod clients;
mod cost;
// Shared with the other tests; a part of each is used here.
#[path = "../common/engine.rs"]
#[allow(dead_code)]
mod engine;
#[path = "../common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../common/jaeger.rs"]
#[allow(dead_code)]
mod jaeger;
mod models;
#[path = "../common/prometheus.rs"]
#[allow(dead_code)]
mod prometheus;
mod serve;
mod shadow;
mod soak;
mod stack;
mod telemetry;
mod toxiproxy;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clients::{Metadata, S3, TopicReader};
use stack::{BUCKET, Stack, StackOptions, root, wait_until};

/// One stack at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The 375 photos of the fashion5 test split: (object key `inbox/<class>/<file>`, path).
fn test_photos() -> Vec<(String, PathBuf)> {
    let split = root().join("../shared/datasets/fashion5/test");
    let mut photos = Vec::new();
    for class in std::fs::read_dir(&split).unwrap_or_else(|e| panic!("the test split `{}`: {e}", split.display())) {
        let class = class.unwrap().path();
        for file in std::fs::read_dir(&class).unwrap() {
            let path = file.unwrap().path();
            let key = format!(
                "inbox/{}/{}",
                class.file_name().unwrap().to_string_lossy(),
                path.file_name().unwrap().to_string_lossy()
            );
            photos.push((key, path));
        }
    }
    photos.sort();
    assert_eq!(photos.len(), 375, "the fashion5 test split has 375 photos");
    photos
}

fn bodies(photos: &[(String, PathBuf)]) -> Vec<(String, Vec<u8>)> {
    photos.iter().map(|(key, path)| (key.clone(), std::fs::read(path).unwrap())).collect()
}

/// Labels of `autorma classify` (the path `autorma eval` measures) for the photos, by key.
fn reference_labels(photos: &[(String, PathBuf)]) -> HashMap<String, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_autorma"))
        .args(["classify", "--json"])
        .args(photos.iter().map(|(_, path)| path))
        .env("AUTORMA_MODEL", root().join("models/fashion5"))
        .env("AUTORMA_LOG", "warn")
        .env_remove("AUTORMA_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), photos.len());
    photos
        .iter()
        .zip(lines)
        .map(|((key, _), line)| (key.clone(), line["label"].as_str().unwrap().to_string()))
        .collect()
}

/// Result objects in the bucket, as photo keys.
fn result_keys(s3: &S3) -> Vec<String> {
    s3.list("results/")
        .into_iter()
        .map(|k| k.strip_prefix("results/").unwrap().strip_suffix(".json").unwrap().to_string())
        .collect()
}

/// Waits for a result object per photo (the sink writes the topic first, then the object),
/// then checks there is exactly one per photo and nothing else.
fn assert_one_result_each(s3: &S3, photos: &[(String, PathBuf)]) {
    wait_until("a result object per photo", Duration::from_secs(30), || result_keys(s3).len() >= photos.len());
    let mut keys = result_keys(s3);
    keys.sort();
    let mut expected: Vec<String> = photos.iter().map(|(k, _)| k.clone()).collect();
    expected.sort();
    assert_eq!(keys, expected, "a result object for every photo, and for nothing else");
}

/// A stack with `autorma ingest` and the named workers running, a reader of `rma.results`
/// from its start, and an S3 client.
fn stack_with_workers(workers: &[&str]) -> (Stack, TopicReader, S3) {
    let mut stack = Stack::start();
    let results = TopicReader::start(&stack.brokers, "rma.results");
    stack.spawn_ingest(&[]);
    for worker in workers {
        stack.spawn_worker(worker);
    }
    let s3 = S3::new(&stack);
    (stack, results, s3)
}

/// A stack with `autorma ingest`, `worker-a` holding its partitions and `serve --streaming`
/// ready, a reader of `rma.results` from its start, and an S3 client.
fn stack_with_serve(options: StackOptions, token: &str) -> (Stack, TopicReader, S3) {
    let mut stack = Stack::start_with(options);
    let results = TopicReader::start(&stack.brokers, "rma.results");
    stack.spawn_ingest(&[]);
    stack.spawn_worker("worker-a");
    stack.spawn_serve(0, token);
    wait_until("the worker to hold its partitions", Duration::from_secs(90), || {
        stack.log("worker-a").contains("held=8")
    });
    let s3 = S3::new(&stack);
    (stack, results, s3)
}

/// What the pipeline asked of the bucket for each new photo, counted at the S3 server before
/// the test reads anything back: the photo's GET and its result's PUT, and no lookup. The
/// server writes its access log line after answering, so a short wait lets the last ones in.
fn assert_two_bucket_requests_per_photo(stack: &Stack, photos: &[(String, PathBuf)], extra: &str) {
    // The operations as versitygw's access log names them.
    const GET: &str = "s3_GetObject";
    const PUT: &str = "s3_PutObject";
    let keys: Vec<&str> = photos.iter().map(|(k, _)| k.as_str()).chain([extra]).collect();
    let off = || {
        let requests = stack.s3_requests();
        let count = |method: &str, path: &str| requests.iter().filter(|(m, p, _)| m == method && p == path).count();
        let mut off: Vec<String> = Vec::new();
        for key in &keys {
            let per_photo = [
                (GET, format!("/{BUCKET}/{key}"), 1),
                (PUT, format!("/{BUCKET}/results/{key}.json"), 1),
                (GET, format!("/{BUCKET}/results/{key}.json"), 0),
                (GET, format!("/{BUCKET}/dlq/{key}.json"), 0),
            ];
            for (method, path, expected) in per_photo {
                let n = count(method, &path);
                if n != expected {
                    off.push(format!("{method} {path}: {n} (expected {expected})"));
                }
            }
        }
        let lookups =
            requests.iter().filter(|(m, p, _)| m == GET && (p.contains("/results/") || p.contains("/dlq/"))).count();
        (off, lookups)
    };
    let started = Instant::now();
    let (mut missing, mut lookups) = off();
    while !missing.is_empty() && started.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
        (missing, lookups) = off();
    }
    eprintln!(
        "[measured] bucket requests for {} new photos: {} off the expected 1 GET + 1 PUT, {lookups} lookups (GETs of \
         results/ or dlq/)",
        keys.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "two bucket requests per new photo; off: {missing:?}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn photos_put_in_the_bucket_come_out_as_results_and_broken_files_as_dead_letters() {
    let _serial = serial();
    let photos = test_photos();
    let expected_labels = reference_labels(&photos);
    let (stack, results, s3) = stack_with_workers(&["worker-a"]);
    let dlq = TopicReader::start(&stack.brokers, "rma.dlq");
    // The worker holds its partitions before the first photo: none of their events can have
    // been handled before, so none is looked up (counted below).
    wait_until("the worker to hold its partitions", Duration::from_secs(60), || {
        stack.log("worker-a").contains("held=8")
    });

    let truncated = std::fs::read(&photos[0].1).unwrap();
    let broken = vec![
        ("inbox/broken/truncated.jpg".to_string(), truncated[..truncated.len() / 3].to_vec(), "decode_error"),
        ("inbox/broken/empty.jpg".to_string(), Vec::new(), "not_an_image"),
        ("inbox/broken/notes.jpg".to_string(), b"this is a packing list, not a photo".to_vec(), "not_an_image"),
        (
            "inbox/broken/huge.png".to_string(),
            autorma_classifier::testsuite::png_header_only(20_000, 20_000),
            "too_large",
        ),
        // Named as upload apps name objects, with no extension: decided from the bytes.
        ("inbox/e2e/packing-list".to_string(), b"1 x handbag, returned unused".to_vec(), "not_an_image"),
    ];
    // A photo under a bare UUID, as phones' upload apps store them: it must be classified.
    let no_extension = "inbox/e2e/0b5e2c1a-77d4-4b8e-9a51-3f0c2a9d1e6b";
    let mut uploads = bodies(&photos);
    uploads.insert(200, (no_extension.to_string(), std::fs::read(&photos[1].1).unwrap()));
    // Broken files among the photos, not after them: the rest of their batches must go on.
    for (i, (key, body, _)) in broken.iter().enumerate() {
        uploads.insert(50 + i * 70, (key.clone(), body.clone()));
    }
    let processes = ["kafka", "versitygw", "ingest", "worker-a"];
    let cpu_before: Vec<f64> = processes.iter().map(|p| stack.cpu_secs(p)).collect();
    let first_put = Instant::now();
    s3.put_all(uploads);
    let put_secs = first_put.elapsed().as_secs_f64();
    wait_until("376 results and 5 dead letters", Duration::from_secs(240), || {
        results.num_distinct_keys() >= 376 && dlq.num_distinct_keys() >= 5
    });
    let last_result = results.records().iter().map(|r| r.seen).max().unwrap();
    let streaming_secs = (last_result - first_put).as_secs_f64();
    let cpu_ms_per_photo: Vec<String> = processes
        .iter()
        .zip(&cpu_before)
        .map(|(p, before)| format!("{p} {:.2}", (stack.cpu_secs(p) - before) * 1000.0 / 381.0))
        .collect();
    eprintln!(
        "[measured] CPU per photo from the first PUT to the last result (ms, idle not subtracted; the test's own \
         S3 client and Kafka readers not counted): {}",
        cpu_ms_per_photo.join(", ")
    );
    assert_two_bucket_requests_per_photo(&stack, &photos, no_extension);

    // Every photo has its result object, and the same label as `autorma classify`/`eval`.
    let mut all_photos = photos.clone();
    all_photos.push((no_extension.to_string(), photos[1].1.clone()));
    assert_one_result_each(&s3, &all_photos);
    let on_topic = results.first_by_key();
    assert_eq!(on_topic.len(), 376, "375 photos and the extensionless one on rma.results");
    assert_eq!(on_topic[no_extension].value["label"], expected_labels[&photos[1].0].as_str(), "{no_extension}");
    assert_eq!(s3.get_json(&format!("results/{no_extension}.json"))["label"], on_topic[no_extension].value["label"]);
    let mismatched: Vec<_> = photos
        .iter()
        .filter(|(key, _)| on_topic[key].value["label"] != expected_labels[key].as_str())
        .map(|(key, _)| key.clone())
        .collect();
    assert!(mismatched.is_empty(), "labels differ from `autorma classify` for {mismatched:?}");
    let object = s3.get_json(&format!("results/{}.json", photos[7].0));
    assert_eq!(object, on_topic[&photos[7].0].value, "the result object and the topic record are the same Result");
    assert_eq!(object["model"]["name"], "fashion5");
    assert_eq!(object["execution_provider"], "cpu");

    // One dead letter per broken file, with its reason in the headers and the body.
    let dead = dlq.first_by_key();
    assert_eq!(dead.len(), 5, "{:?}", dead.keys());
    for (key, _, reason) in &broken {
        let record = &dead[key];
        assert_eq!(record.headers["reason"], *reason, "{key}");
        assert_eq!(record.value["reason"], *reason, "{key}");
        assert!(record.headers.contains_key("attempts"));
        assert_eq!(s3.get_json(&format!("dlq/{key}.json"))["reason"], *reason);
    }
    let review = TopicReader::start(&stack.brokers, "rma.review");
    let num_review = on_topic.values().filter(|r| r.value["decision"] == "review").count();
    wait_until("the review records", Duration::from_secs(30), || review.num_distinct_keys() == num_review);

    // Latency at a steady 20 photos/s: from each PUT's return to its result on the topic.
    let steady: Vec<(String, Vec<u8>)> = bodies(&photos[..120])
        .into_iter()
        .map(|(key, body)| (key.replacen("inbox/", "inbox/steady/", 1), body))
        .collect();
    let mut put_done = HashMap::new();
    let start = Instant::now();
    for (i, (key, body)) in steady.into_iter().enumerate() {
        let due = start + Duration::from_millis(50 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        s3.put(&key, body);
        put_done.insert(key, Instant::now());
    }
    wait_until("the steady-rate photos' results", Duration::from_secs(60), || results.num_distinct_keys() >= 496);
    let seen = results.first_by_key();
    let mut latencies: Vec<f64> =
        put_done.iter().map(|(key, put)| (seen[key].seen - *put).as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);

    // The product check on the bucket's catalogue (catalogue/<sku>.jpg): a photo claimed as the
    // SKU whose catalogue photo it is matches; a SKU the catalogue lacks is recorded unchecked.
    let sample = std::fs::read(&photos[0].1).unwrap();
    s3.put("catalogue/SKU-77.jpg", sample.clone());
    let sku = |sku: &str| Metadata::from([("sku".to_string(), sku.to_string())]);
    s3.put_all_with_metadata(
        vec![
            ("inbox/claims/as-ordered.jpg".to_string(), sample.clone(), sku("SKU-77")),
            ("inbox/claims/unknown-sku.jpg".to_string(), sample, sku("SKU-404")),
        ],
        2,
    );
    wait_until("the claimed photos' results", Duration::from_secs(60), || results.num_distinct_keys() >= 498);
    let claimed = results.first_by_key();
    let product = |key: &str| claimed[key].value["claim"]["product"].clone();
    let as_ordered = product("inbox/claims/as-ordered.jpg");
    assert_eq!(as_ordered["outcome"], "match", "{as_ordered}");
    assert!(as_ordered["similarity"].as_f64().unwrap() > 0.99, "the same photo: {as_ordered}");
    let unknown = product("inbox/claims/unknown-sku.jpg");
    assert_eq!(unknown["outcome"], "uncertain", "{unknown}");
    assert!(unknown["detail"].as_str().unwrap().contains("no catalogue photo for SKU `SKU-404`"), "{unknown}");

    // The embedded pipeline on the same photos, for the throughput comparison.
    let out = stack.dir.path().join("embedded");
    let embedded_start = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_autorma"))
        .args(["run", "--no-progress", "--inbox"])
        .arg(root().join("../shared/datasets/fashion5/test"))
        .arg("--out")
        .arg(&out)
        .env("AUTORMA_MODEL", root().join("models/fashion5"))
        .env("AUTORMA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let embedded_secs = embedded_start.elapsed().as_secs_f64();
    eprintln!(
        "[measured] streaming: 376 photos + 5 broken from first PUT to last result in {streaming_secs:.2} s ({:.0} photos/s; \
         the PUTs alone took {put_secs:.2} s); autorma run on the same photos (process start to exit): {embedded_secs:.2} s ({:.0} photos/s)",
        381.0 / streaming_secs,
        375.0 / embedded_secs
    );
    eprintln!(
        "[measured] upload-to-result latency at 20 photos/s over {} photos: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        latencies.last().unwrap()
    );
    eprintln!(
        "[measured] resident memory: kafka {:.0} MiB, versitygw {:.0} MiB, autorma ingest {:.0} MiB, autorma worker {:.0} MiB",
        stack.rss_mib("kafka"),
        stack.rss_mib("versitygw"),
        stack.rss_mib("ingest"),
        stack.rss_mib("worker-a")
    );
}

#[test]
fn a_worker_killed_mid_stream_loses_and_duplicates_no_result() {
    let _serial = serial();
    let photos = test_photos();
    let (mut stack, results, s3) = stack_with_workers(&["worker-a"]);
    s3.put_all(bodies(&photos));
    wait_until("the first 100 results", Duration::from_secs(120), || results.num_distinct_keys() >= 100);
    let status = stack.signal("worker-a", libc::SIGKILL);
    assert!(!status.success());
    let at_kill = results.num_distinct_keys();
    stack.spawn_worker("worker-b");
    wait_until("all 375 results", Duration::from_secs(180), || results.num_distinct_keys() >= 375);
    // Let the new worker finish what it was redelivered before counting.
    std::thread::sleep(Duration::from_secs(3));
    assert_one_result_each(&s3, &photos);
    eprintln!(
        "[measured] kill -9 after {at_kill} results: {} records on rma.results for 375 photos",
        results.records().len()
    );
    assert_eq!(results.duplicates(), vec![], "a read_committed consumer sees each photo's result once");
}

#[test]
fn two_workers_split_the_partitions_and_one_stopping_loses_nothing() {
    let _serial = serial();
    let photos = test_photos();
    let (mut stack, results, s3) = stack_with_workers(&["worker-a", "worker-b"]);
    // Both members hold partitions before any photo comes (4 live + 4 replay partitions, 4 each).
    wait_until("both workers to hold partitions", Duration::from_secs(60), || {
        ["worker-a", "worker-b"].iter().all(|w| stack.log(w).contains("held=4"))
    });
    s3.put_all(bodies(&photos));
    wait_until("the first 100 results", Duration::from_secs(120), || results.num_distinct_keys() >= 100);
    let status = stack.signal("worker-b", libc::SIGTERM);
    assert!(status.success(), "a worker stops cleanly on SIGTERM");
    wait_until("all 375 results", Duration::from_secs(180), || results.num_distinct_keys() >= 375);
    assert_one_result_each(&s3, &photos);
    // The group gives worker-b's partitions to worker-a (once worker-b has left).
    wait_until("worker-a to hold all 8 partitions", Duration::from_secs(60), || {
        stack.log("worker-a").contains("held=8")
    });
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("[measured] two workers, one stopped mid-stream: {} records for 375 photos", results.records().len());
    assert_eq!(results.duplicates(), vec![], "a rebalance publishes no result twice");
}

#[test]
fn a_broker_outage_mid_stream_loses_no_photo() {
    let _serial = serial();
    let photos = test_photos();
    let mut stack = Stack::start();
    // Reconcile often in the test; the default is every 5 minutes with 2 minutes' grace.
    stack.spawn_ingest(&[("AUTORMA_RECONCILE_INTERVAL_S", "5"), ("AUTORMA_RECONCILE_GRACE_S", "3")]);
    stack.spawn_worker("worker-a");
    let s3 = S3::new(&stack);
    let uploads = bodies(&photos);
    let start = Instant::now();
    let mut stopped_at = None;
    let mut restarted = false;
    // 375 photos at about 6 per second (about 60 s); the broker is away from 10 s to 40 s.
    for (i, (key, body)) in uploads.into_iter().enumerate() {
        let due = start + Duration::from_millis(160 * i as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if stopped_at.is_none() && start.elapsed() >= Duration::from_secs(10) {
            stack.kafka("stop");
            stopped_at = Some(Instant::now());
        }
        if !restarted && stopped_at.is_some_and(|t| t.elapsed() >= Duration::from_secs(30)) {
            stack.kafka("start");
            restarted = true;
        }
        s3.put(&key, body);
    }
    assert!(restarted, "the broker was stopped and restarted mid-stream");
    let results = TopicReader::start(&stack.brokers, "rma.results");
    wait_until("all 375 results after the outage", Duration::from_secs(240), || results.num_distinct_keys() >= 375);
    assert_one_result_each(&s3, &photos);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        results.duplicates(),
        vec![],
        "an outage and the reconciliation's second events publish no result twice"
    );
    let items = TopicReader::start(&stack.brokers, "rma.items");
    wait_until("the item events", Duration::from_secs(30), || items.num_distinct_keys() >= 375);
    // No traces endpoint here: the events carry no trace context.
    assert!(items.records().iter().all(|r| !r.headers.contains_key("traceparent")), "a traceparent without tracing");
    // Photos whose notification never came (dropped while the broker was away) reached the
    // workers only through the reconciliation's listing.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in items.records() {
        sources.entry(record.key).or_default().push(record.value["source"].as_str().unwrap_or("?").to_string());
    }
    let only_reconciled = sources.values().filter(|s| s.iter().all(|s| s == "replay")).count();
    let both =
        sources.values().filter(|s| s.iter().any(|s| s == "replay") && s.iter().any(|s| s == "notification")).count();
    eprintln!(
        "[measured] broker stopped 30 s mid-stream: {only_reconciled} of 375 photos came only through the reconciliation \
         (their notifications were dropped), {both} had both a notification and a reconciliation event"
    );
    assert!(
        only_reconciled > 0,
        "notifications sent during the outage are dropped by the S3 server; the \
        reconciliation must have sent those photos"
    );
}

#[test]
fn the_s3_store_keeps_the_object_store_contract_on_a_real_s3_server() {
    let _serial = serial();
    let stack = Stack::start();
    let s3 = S3::new(&stack);
    let store = autorma_core::S3Store::from_client(s3.client.clone(), 8, &stack.endpoint);
    s3.rt.block_on(autorma_core::testsuite::object_store_contract(&store, stack::BUCKET, "contract/"));
}

#[test]
fn start_up_checks_say_what_is_wrong_and_how_to_fix_it() {
    let _serial = serial();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_autorma"))
            .args(args)
            .env_remove("AUTORMA_CONFIG")
            .env("AUTORMA_MODEL", root().join("models/fashion5"))
            .env("AUTORMA_LOG", "warn")
            .env("AWS_ACCESS_KEY_ID", stack::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", stack::SECRET_KEY)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} {env:?} must fail");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    // No broker there at all.
    let closed =
        format!("127.0.0.1:{}", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let err = run(&["worker"], &[("AUTORMA_KAFKA_BROKERS", &closed)]);
    assert!(err.contains("cannot reach Kafka") && err.contains(&closed), "{err}");

    let stack = Stack::start();
    let base = [("AUTORMA_KAFKA_BROKERS", stack.brokers.as_str()), ("AUTORMA_S3_ENDPOINT", stack.endpoint.as_str())];
    let with =
        |extra: &[(&'static str, &'static str)]| base.iter().copied().chain(extra.iter().copied()).collect::<Vec<_>>();
    let err = run(&["worker"], &with(&[("AUTORMA_BUCKET", "no-such-bucket")]));
    assert!(err.contains("bucket `no-such-bucket` does not exist"), "{err}");
    let err = run(&["ingest"], &with(&[("AWS_SECRET_ACCESS_KEY", "wrong")]));
    assert!(err.contains("refused") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    let err = run(&["ingest"], &with(&[("AUTORMA_KEY_ENCODING", "base64")]));
    assert!(err.contains("--key-encoding") && err.contains("unknown key encoding `base64`"), "{err}");
    let err =
        run(&["worker"], &[("AUTORMA_KAFKA_BROKERS", stack.brokers.as_str()), ("AUTORMA_S3_ENDPOINT", "127.0.0.1:9")]);
    assert!(err.contains("must be an http:// or https:// URL"), "{err}");
}

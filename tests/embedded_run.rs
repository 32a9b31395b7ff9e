//! End to end: the real `autorma` binary on a folder of synthetic photos plus broken files,
//! killed with SIGKILL mid-run and started again. Checks the promise of `autorma run`: one
//! result per good photo, one dead letter per broken file, nothing redone, nothing duplicated.
//!
//! Uses the tiny5 fixture model (classifier/tests/fixtures) and the ONNX Runtime library from
//! `infra/setup/onnxruntime.sh` (or `AUTORMA_ORT_LIBRARY`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use autorma_classifier::testsuite::png_header_only;
use image::{ImageEncoder, Rgb, RgbImage};

const NUM_GOOD: usize = 240;

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("classifier/tests/fixtures/tiny5")
}

fn autorma() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autorma"));
    cmd.env("AUTORMA_MODEL", model_dir()).env("AUTORMA_LOG", "warn").env_remove("AUTORMA_CONFIG");
    cmd
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img, img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(img, img.width(), img.height(), image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// Writes the inbox; returns the good keys and the broken keys with their expected reason.
fn make_inbox(inbox: &Path) -> (BTreeSet<String>, BTreeMap<String, &'static str>) {
    let mut good = BTreeSet::new();
    for i in 0..NUM_GOOD {
        let (w, h) = (300 + (i as u32 * 37) % 400, 200 + (i as u32 * 53) % 500);
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 3 + i as u32) as u8, (y * 5) as u8, (i * 40) as u8]));
        let key = if i % 3 == 0 { format!("png/{i:04}.png") } else { format!("jpg/sub{}/{i:04}.jpg", i % 4) };
        let path = inbox.join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, if key.ends_with(".png") { png(&img) } else { jpeg(&img) }).unwrap();
        good.insert(key);
    }
    let full = jpeg(&RgbImage::from_pixel(200, 200, Rgb([10, 200, 30])));
    let broken: BTreeMap<String, (Vec<u8>, &str)> = BTreeMap::from([
        ("broken/truncated.jpg".to_string(), (full[..full.len() / 2].to_vec(), "decode_error")),
        ("broken/empty.jpg".to_string(), (Vec::new(), "not_an_image")),
        ("broken/notes.jpg".to_string(), (b"this is a text file, not a photo\n".to_vec(), "not_an_image")),
        ("broken/bomb.png".to_string(), (png_header_only(20_000, 20_000), "too_large")),
    ]);
    for (key, (bytes, _)) in &broken {
        let path = inbox.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    (good, broken.into_iter().map(|(k, (_, reason))| (k, reason)).collect())
}

/// Kills the child if the test fails before it does, so no run outlives its temp folder.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Record files under `dir` by relative path (without the `.json`). Temp files of writes in
/// progress are skipped while a run is live (`allow_tmp`), and are an error afterwards.
fn record_keys(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    records(dir, false)
}

fn records(dir: &Path, allow_tmp: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if allow_tmp && rel.contains(".autorma-tmp-") {
                    continue;
                }
                assert!(rel.ends_with(".json"), "unexpected file {rel} (temp debris?)");
                out.insert(rel.trim_end_matches(".json").to_string(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Stops the child (SIGSTOP) and returns once it is stopped.
fn pause(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: plain syscalls on our own child; WUNTRACED reports the stop without reaping it.
    let stopped =
        unsafe { libc::kill(pid, libc::SIGSTOP) == 0 && libc::waitpid(pid, &mut status, libc::WUNTRACED) == pid };
    assert!(stopped && libc::WIFSTOPPED(status), "the run could not be paused (it ended?), status {status}");
}

/// The run's committed offset, once it has committed anything.
fn committed_offset(out: &Path) -> Option<usize> {
    let bytes = std::fs::read(out.join("state/checkpoint.json")).ok()?;
    let checkpoint: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    checkpoint["partitions"]["0"].as_u64().map(|offset| offset as usize)
}

#[test]
fn kill_9_mid_run_then_restart_gives_each_photo_exactly_one_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    let (good, broken) = make_inbox(&inbox);
    // Small batches and one fetch at a time make the run slow enough to kill in the middle.
    let throttled = ["--batch-size", "2", "--batch-wait-ms", "0", "--fetch-concurrency", "1", "--no-progress"];

    let mut child = KillOnDrop(
        autorma()
            .args(["run", "--inbox"])
            .arg(&inbox)
            .arg("--out")
            .arg(&out)
            .args(throttled)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once a checkpoint has been committed and more outcomes written after it, so the
    // restart has both a committed prefix and redelivered photos that are already done. The
    // run is paused while its output is read, so no commit lands between the look and the kill.
    let pid = child.0.id() as libc::pid_t;
    loop {
        assert!(Instant::now() < deadline, "no progress within 60 s");
        assert!(child.0.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        pause(pid);
        let written = records(&out.join("results"), true).len();
        let outcomes = written + records(&out.join("dlq"), true).len();
        if written >= 60 && committed_offset(&out).is_some_and(|committed| committed < outcomes) {
            break;
        }
        // Held paused a while: the run's clock goes on, so its commit interval (500 ms) passes
        // within a few of its photos however fast this machine classifies them.
        std::thread::sleep(Duration::from_millis(50));
        unsafe { libc::kill(pid, libc::SIGCONT) };
        std::thread::sleep(Duration::from_millis(5));
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    // Whatever the kill interrupted is temp debris; complete records are what counts.
    let before_restart = records(&out.join("results"), true);
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/checkpoint.json")).unwrap()).unwrap();
    eprintln!("killed with {} of {} results written, checkpoint {checkpoint}", before_restart.len(), good.len());
    let committed = checkpoint["partitions"]["0"].as_u64().unwrap() as usize;
    assert!(
        committed < before_restart.len() + broken.len(),
        "the kill should leave written results above the checkpoint (committed {committed})"
    );
    assert!(before_restart.len() < good.len(), "killed too late to test anything ({} results)", before_restart.len());

    let output =
        autorma().args(["run", "--inbox"]).arg(&inbox).arg("--out").arg(&out).args(throttled).output().unwrap();
    assert!(output.status.success(), "restart failed: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("restart: {stdout}");

    let results = record_keys(&out.join("results"));
    assert_eq!(results.keys().cloned().collect::<BTreeSet<_>>(), good, "one result per good photo");
    // Nothing written before the kill was redone: those files are byte for byte the same.
    for (key, bytes) in &before_restart {
        assert_eq!(&results[key], bytes, "{key} was classified again after the restart");
    }
    let dlq = record_keys(&out.join("dlq"));
    assert_eq!(
        dlq.keys().cloned().collect::<BTreeSet<_>>(),
        broken.keys().cloned().collect(),
        "one dead letter per broken file"
    );
    for (key, reason) in &broken {
        let record: serde_json::Value = serde_json::from_slice(&dlq[key]).unwrap();
        assert_eq!(record["reason"], *reason, "{key}: {record}");
        assert_eq!(record["event"]["key"], *key);
        assert!(record["attempts"].as_u64().unwrap() >= 1);
    }

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let keys: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(keys.len(), good.len(), "one csv row per result\n{stdout}");
    assert_eq!(keys.iter().collect::<BTreeSet<_>>().len(), keys.len(), "no duplicate csv rows");

    // A third run has nothing to do and changes nothing.
    let output =
        autorma().args(["run", "--inbox"]).arg(&inbox).arg("--out").arg(&out).arg("--no-progress").output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("classified 0 photos, dead-lettered 0"), "{stdout}");
    assert_eq!(record_keys(&out.join("results")), results);
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap().lines().count(), good.len() + 1);
}

#[test]
fn result_records_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    std::fs::create_dir_all(&inbox).unwrap();
    // tiny5 classifies by mean colour: a red square is casual_shoes with high confidence.
    std::fs::write(inbox.join("red.png"), png(&RgbImage::from_pixel(64, 64, Rgb([255, 0, 0])))).unwrap();
    std::fs::write(inbox.join("grey.png"), png(&RgbImage::from_pixel(64, 64, Rgb([128, 128, 128])))).unwrap();
    let output = autorma()
        .args(["run", "--bucket", "returns", "--no-progress", "--inbox"])
        .arg(&inbox)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let red: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/red.png.json")).unwrap()).unwrap();
    assert_eq!(red["item"]["bucket"], "returns");
    assert_eq!(red["item"]["key"], "red.png");
    assert_eq!(red["item"]["etag"].as_str().unwrap().len(), 32);
    assert_eq!(red["label"], "casual_shoes");
    assert_eq!(red["decision"], "auto");
    assert!(red["confidence"].as_f64().unwrap() > 0.9);
    let probabilities = red["probabilities"].as_object().unwrap();
    assert_eq!(probabilities.keys().collect::<Vec<_>>(), ["casual_shoes", "handbags", "shirts", "tops", "watches"]);
    assert_eq!(red["model"]["name"], "tiny5");
    assert_eq!(red["model"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(red["execution_provider"], "cpu");
    for stage in ["fetch", "decode", "batch_wait", "infer", "sink"] {
        assert!(red["timings_ms"][stage].as_f64().unwrap() >= 0.0, "timing {stage}");
    }
    chrono_like_rfc3339(red["processed_at"].as_str().unwrap());

    let grey: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/grey.png.json")).unwrap()).unwrap();
    assert_eq!(grey["decision"], "review", "equidistant from every class: a person decides");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("auto     1") && stdout.contains("review   1"), "{stdout}");
}

fn chrono_like_rfc3339(s: &str) {
    // 2026-01-02T03:04:05.123Z
    let b = s.as_bytes();
    assert!(s.len() >= 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':', "not RFC 3339: {s}");
}

#[test]
fn watch_picks_up_new_photos_and_sigterm_drains() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("first.png"), png(&RgbImage::from_pixel(32, 32, Rgb([0, 0, 255])))).unwrap();
    let child = autorma()
        .args(["run", "--watch", "--poll-interval-ms", "50", "--inbox"])
        .arg(&inbox)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |path: PathBuf| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{} never appeared", path.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(out.join("results/first.png.json"));
    // Written under a temp name and renamed in, as a careful uploader does; the watch's settle
    // time covers the careless ones.
    std::fs::write(inbox.join(".second.tmp"), png(&RgbImage::from_pixel(32, 32, Rgb([0, 255, 0])))).unwrap();
    std::fs::rename(inbox.join(".second.tmp"), inbox.join("second.png")).unwrap();
    wait_for(out.join("results/second.png.json"));

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "graceful stop exits 0: {:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("classified 2 photos"), "{stdout}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("state/checkpoint.json")).unwrap()).unwrap();
    assert_eq!(checkpoint["partitions"]["0"], 2, "everything done is committed on the way out");
}

#[test]
fn a_claims_file_sends_the_photo_that_is_not_what_was_claimed_to_review() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out, claims) = (dir.path().join("inbox"), dir.path().join("out"), dir.path().join("claims.csv"));
    std::fs::create_dir_all(inbox.join("rma")).unwrap();
    // The fixture model sees red as casual_shoes, with all its probability.
    let red = png(&RgbImage::from_pixel(30, 30, Rgb([255, 0, 0])));
    for name in ["rma/shoes.png", "rma/not-a-watch.png", "rma/sku-only.png", "plain.png"] {
        std::fs::write(inbox.join(name), &red).unwrap();
    }
    let run = |claims_file: &Path| {
        autorma()
            .args(["run", "--no-progress", "--inbox"])
            .arg(&inbox)
            .arg("--out")
            .arg(&out)
            .arg("--claims")
            .arg(claims_file)
            .output()
            .unwrap()
    };

    // A label the model does not know is refused before anything runs, with its line.
    std::fs::write(&claims, "key,expected_label\nrma/shoes.png,sneakers\n").unwrap();
    let refused = run(&claims);
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("line 2") && message.contains("`sneakers` is not a class"), "{message}");
    assert!(!out.join("results").exists(), "nothing classified");

    std::fs::write(
        &claims,
        "key,expected_label,sku,rma_id\nrma/shoes.png,casual_shoes,1163,R-1\nrma/not-a-watch.png,watches,,R-2\nrma/sku-only.png,,4711,\n",
    )
    .unwrap();
    let output = run(&claims);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result = |key: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("results").join(format!("{key}.json"))).unwrap()).unwrap()
    };
    let shoes = result("rma/shoes.png");
    assert_eq!(
        (&shoes["label"], &shoes["decision"], &shoes["claim"]["category"]),
        (&"casual_shoes".into(), &"auto".into(), &"match".into())
    );
    assert_eq!(shoes["claim"]["claim"]["rma_id"], "R-1");
    let wrong = result("rma/not-a-watch.png");
    assert_eq!(
        (&wrong["decision"], &wrong["review_reason"], &wrong["claim"]["category"]),
        (&"review".into(), &"wrong_item".into(), &"mismatch".into())
    );
    let sku_only = result("rma/sku-only.png");
    assert_eq!((&sku_only["decision"], &sku_only["claim"]["claim"]["sku"]), (&"auto".into(), &"4711".into()));
    assert!(sku_only["claim"].get("category").is_none(), "no label claimed, no category check");
    assert!(result("plain.png").get("claim").is_none());

    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with("rma/not-a-watch.png,")).unwrap();
    assert!(row.ends_with(",wrong_item,watches,mismatch,,R-2,,"), "{row}");
    let unchecked = &shoes["claim"]["product"];
    assert_eq!(unchecked["outcome"], "uncertain", "a SKU the model cannot compare: {shoes}");
    assert!(unchecked["detail"].as_str().unwrap().contains("no embedding graph"), "{unchecked}");
}

#[test]
fn a_return_unlike_its_products_catalogue_photo_goes_to_review_as_a_wrong_item() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out, catalogue) = (dir.path().join("inbox"), dir.path().join("out"), dir.path().join("catalogue"));
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&catalogue).unwrap();
    // tiny5-product's embedding is the direction of a photo's mean colour.
    let colour = |rgb: [u8; 3]| png(&RgbImage::from_pixel(30, 30, Rgb(rgb)));
    std::fs::write(catalogue.join("RED-1.png"), colour([250, 10, 10])).unwrap();
    std::fs::write(catalogue.join("BLUE-1.jpg"), jpeg(&RgbImage::from_pixel(30, 30, Rgb([10, 10, 250])))).unwrap();
    for name in ["as-ordered.png", "swapped.png", "no-photo.png", "twice.png"] {
        std::fs::write(inbox.join(name), colour([255, 0, 0])).unwrap();
    }
    let claims = dir.path().join("claims.csv");
    std::fs::write(
        &claims,
        "key,expected_label,sku\nas-ordered.png,casual_shoes,RED-1\nswapped.png,casual_shoes,BLUE-1\nno-photo.png,,GREEN-9\ntwice.png,,RED-1\n",
    )
    .unwrap();
    let output = autorma()
        .env("AUTORMA_MODEL", model_dir().with_file_name("tiny5-product"))
        .args(["run", "--no-progress", "--inbox"])
        .arg(&inbox)
        .arg("--out")
        .arg(&out)
        .arg("--claims")
        .arg(&claims)
        .arg("--catalogue")
        .arg(&catalogue)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result = |key: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("results").join(format!("{key}.json"))).unwrap()).unwrap()
    };
    for key in ["as-ordered.png", "twice.png"] {
        let r = result(key);
        assert_eq!((&r["decision"], &r["claim"]["product"]["outcome"]), (&"auto".into(), &"match".into()), "{r}");
        assert!(r["claim"]["product"]["similarity"].as_f64().unwrap() > 0.99, "{r}");
    }
    // The category is right (a red item, claimed as shoes), the product is not.
    let swapped = result("swapped.png");
    assert_eq!(
        (
            &swapped["decision"],
            &swapped["review_reason"],
            &swapped["claim"]["category"],
            &swapped["claim"]["product"]["outcome"]
        ),
        (&"review".into(), &"wrong_item".into(), &"match".into(), &"mismatch".into()),
        "{swapped}"
    );
    assert!(swapped["claim"]["product"]["similarity"].as_f64().unwrap() < 0.9);
    let unchecked = &result("no-photo.png")["claim"]["product"];
    assert_eq!(unchecked["outcome"], "uncertain");
    assert!(unchecked["detail"].as_str().unwrap().contains("no catalogue photo for SKU `GREEN-9`"), "{unchecked}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with("swapped.png,")).unwrap();
    assert!(row.contains(",wrong_item,casual_shoes,match,BLUE-1,,mismatch,"), "{row}");
}

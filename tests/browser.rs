//! The returns-bench page in real headless Chromium (Debian's `chromium`, driven by
//! Playwright through `playwright-core`): `tests/browser/returns_bench.mjs` against a real
//! `autorma serve` running its embedded pipeline. Needs `infra/setup/browser.sh` once (the
//! browser and the npm package); screenshots land in `target/browser-screenshots/`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{autorma, root, write_png};

/// Kills the server when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_returns_bench_page_uploads_shows_results_live_relabels_and_downloads_the_csv() {
    let modules = root().join("tests/browser/node_modules/playwright-core");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        modules.is_dir() && Path::new(&chromium).exists(),
        "the browser test needs Chromium at {chromium} and playwright-core: run infra/setup/browser.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let (photos, inbox, out) = (dir.path().join("photos"), dir.path().join("inbox"), dir.path().join("out"));
    std::fs::create_dir_all(&inbox).unwrap();
    // The fixture model is sure of the first three colours (auto) and unsure of the others.
    let colors = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [128, 0, 128], [0, 128, 128], [128, 128, 0]];
    for i in 0..9 {
        write_png(&photos.join(format!("return-{i:02}.png")), colors[i % colors.len()]);
    }
    // As a phone stores a portrait shot: 40 x 20 pixels with EXIF orientation 6, so 20 wide and
    // 40 tall upright. The page must show it upright, from the upload and from the server.
    let sideways = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 20, image::Rgb(colors[3])));
    let sideways = autorma_classifier::testsuite::encode(
        &sideways,
        image::ImageFormat::Jpeg,
        Some(autorma_classifier::testsuite::exif_orientation(6)),
    );
    std::fs::write(photos.join("return-09.jpg"), sideways).unwrap();
    // The product check's catalogue: one grey product, unlike every colour above (the
    // tiny5-product fixture's embedding is the direction of a photo's mean colour).
    let catalogue = dir.path().join("catalogue");
    write_png(&catalogue.join("GREY-1.png"), [128, 128, 128]);

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "bench-token-4711";
    let server = Killed(
        autorma()
            .env("AUTORMA_MODEL", root().join("classifier/tests/fixtures/tiny5-product"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", token])
            .arg("--catalogue")
            .arg(&catalogue)
            .arg("--inbox")
            .arg(&inbox)
            .arg("--out")
            .arg(&out)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "serve did not start listening");
        std::thread::sleep(Duration::from_millis(100));
    }

    let screenshots = root().join("target/browser-screenshots");
    let run = Command::new("node")
        .arg(root().join("tests/browser/returns_bench.mjs"))
        .env("BENCH_URL", format!("http://127.0.0.1:{port}/"))
        .env("BENCH_TOKEN", token)
        .env("BENCH_PHOTOS", &photos)
        .env("BENCH_SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .stderr(Stdio::inherit())
        .output()
        .expect("node runs (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "the browser test failed ({}): {stdout}", run.status);
    drop(server);

    // What the page did is on disk: 10 results, the correction beside them.
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let uploaded = report["uploaded"].as_array().unwrap();
    assert_eq!(uploaded.len(), 10);
    for photo in uploaded {
        let key = photo["key"].as_str().unwrap();
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("results/{key}.json"))).unwrap()).unwrap();
        assert_eq!(result["label"], photo["label"], "{key}");
    }
    let key = report["corrected"]["key"].as_str().unwrap();
    let correction: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("corrections/{key}.json"))).unwrap()).unwrap();
    assert_eq!(
        (&correction["label"], correction["by"].as_str()),
        (&report["corrected"]["label"], Some("returns-bench"))
    );
    // The wrong-item return: its result says why it went to review.
    let wrong = &report["wrong_item"];
    let key = wrong["key"].as_str().unwrap();
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("results/{key}.json"))).unwrap()).unwrap();
    assert_eq!((&result["review_reason"], &result["claim"]["category"]), (&"wrong_item".into(), &"mismatch".into()));
    assert_eq!((&result["claim"]["claim"]["expected_label"], &result["label"]), (&wrong["claimed"], &wrong["seen"]));
    // The wrong product of the right class: the product check caught it.
    let swapped = &report["wrong_product"];
    let key = swapped["key"].as_str().unwrap();
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("results/{key}.json"))).unwrap()).unwrap();
    assert_eq!(
        (&result["review_reason"], &result["claim"]["category"], &result["claim"]["product"]["outcome"]),
        (&"wrong_item".into(), &"match".into(), &"mismatch".into()),
        "{result}"
    );
    for shot in ["1-sign-in", "3-classified", "4-review-queue", "7-done", "8-wrong-item", "9-wrong-product"] {
        assert!(screenshots.join(format!("{shot}.png")).is_file(), "screenshot {shot}");
    }
}

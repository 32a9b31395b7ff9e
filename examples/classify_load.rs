//! Latency of `POST /v1/classify` under load: N clients, each sending one photo per request,
//! back to back, against a running `autorma serve`; prints p50/p95/p99 and requests/s per
//! client count, in one run (this machine is shared and noisy: compare counts, not runs).
//!
//! ```text
//! autorma serve --out /tmp/out --listen 127.0.0.1:8080 &
//! cargo run --release --example classify_load -- http://127.0.0.1:8080 PHOTO_DIR 1,16 [SECONDS]
//! ```
//! Photos are taken round-robin from PHOTO_DIR (`*.jpg`, `*.png`, `*.webp`, recursively);
//! `AUTORMA_API_TOKEN` is sent as the bearer token when set. The server is on this machine
//! (`127.0.0.1:PORT`), as the HTTP client of the tests assumes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "../tests/common/http.rs"]
// Shared with the other tests; a part is used here.
#[allow(dead_code)]
mod http;

use http::{Http, read_json};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: classify_load URL PHOTO_DIR CLIENTS[,CLIENTS...] [SECONDS per count, default 20]");
        std::process::exit(2);
    }
    let address = args[0].trim_start_matches("http://").trim_end_matches('/');
    let port = address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("URL: http://127.0.0.1:PORT");
    let mut photos = Vec::new();
    collect(Path::new(&args[1]), &mut photos);
    photos.sort();
    assert!(!photos.is_empty(), "no photos under {}", args[1]);
    let photos: Arc<Vec<Vec<u8>>> = Arc::new(photos.iter().map(|p| std::fs::read(p).unwrap()).collect());
    let counts: Vec<usize> = args[2].split(',').map(|c| c.parse().expect("CLIENTS: numbers")).collect();
    let seconds: u64 = args.get(3).map_or(20, |s| s.parse().expect("SECONDS: a number"));
    // Sent either way: a server without a token ignores it.
    let token = std::env::var("AUTORMA_API_TOKEN").unwrap_or_default();
    // Warm up: the first requests pay for lazy set-up.
    for photo in photos.iter().take(8) {
        request(&Http { port }, &token, photo);
    }
    println!("clients  requests  req/s    p50 ms   p95 ms   p99 ms   mean batch");
    for clients in counts {
        let next = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let (token, photos, next) = (token.clone(), photos.clone(), next.clone());
                std::thread::spawn(move || {
                    let mut samples = Vec::new();
                    while Instant::now() < deadline {
                        let photo = &photos[next.fetch_add(1, Ordering::Relaxed) % photos.len()];
                        let started = Instant::now();
                        let batch = request(&Http { port }, &token, photo);
                        samples.push((started.elapsed().as_secs_f64() * 1e3, batch));
                    }
                    samples
                })
            })
            .collect();
        let started = Instant::now();
        let samples: Vec<(f64, f64)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let elapsed = started.elapsed().as_secs_f64();
        let mut ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        let batch = samples.iter().map(|s| s.1).sum::<f64>() / samples.len() as f64;
        println!(
            "{clients:>7}  {:>8}  {:>6.1}  {:>7.1}  {:>7.1}  {:>7.1}  {batch:>10.1}",
            ms.len(),
            ms.len() as f64 / elapsed,
            pct(0.5),
            pct(0.95),
            pct(0.99)
        );
    }
}

/// One `POST /v1/classify` with a raw photo body; returns the batch size the answer reports.
fn request(http: &Http, token: &str, photo: &[u8]) -> f64 {
    let (status, answer) =
        read_json(&mut http.open_bytes("POST", "/v1/classify", "application/octet-stream", photo, token));
    assert_eq!(status, 200, "{answer}");
    answer["results"][0]["batch_size"].as_f64().unwrap_or(0.0)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| matches!(e.to_str(), Some("jpg" | "jpeg" | "png" | "webp"))) {
            out.push(path);
        }
    }
}

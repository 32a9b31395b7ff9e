//! `autorma serve` through the real binary: the API over an embedded run's output folder.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};

mod common;

use common::http::{Http, MULTIPART, multipart, read_json};
use common::serve::{Server, free_port};
use common::{autorma, encode_png, write_png};

fn run(inbox: &Path, out: &Path) {
    let status = autorma().args(["run", "--no-progress", "--inbox"]).arg(inbox).arg("--out").arg(out).status().unwrap();
    assert!(status.success());
}

fn start(out: &Path, token: &str) -> Server {
    let port = free_port();
    let mut serve = autorma();
    serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", token])
        .args(["--cors-origin", "http://bench.example"])
        .arg("--out")
        .arg(out);
    Server::spawn(serve, port, Some(token))
}

fn keys(page: &serde_json::Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|r| r["item"]["key"].as_str().unwrap().to_string()).collect()
}

#[test]
fn the_api_answers_queries_errors_and_tokens_and_a_rebuilt_index_answers_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    // The fixture model is sure of the first three (auto) and unsure of the rest (review).
    let colors = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [128, 0, 128], [0, 128, 128], [128, 128, 0]];
    for (i, color) in colors.into_iter().enumerate() {
        write_png(&inbox.join(format!("bench-{}/p{i}.png", i % 2)), color);
    }
    run(&inbox, &out);
    let token = "s3cret-token";
    let server = start(&out, token);

    // The token: needed everywhere but /healthz.
    assert_eq!(server.get("/healthz", None).0, 200);
    let (status, body) = server.get("/v1/results", None);
    assert_eq!(status, 401);
    assert!(body.contains("\"unauthorized\""), "{body}");
    assert_eq!(server.get("/v1/results", Some("wrong-token-value")).0, 401);

    // Pages, newest first.
    let (status, all) = server.json("/v1/results?per_page=500", token);
    assert_eq!((status, all["total"].as_u64()), (200, Some(6)));
    let times: Vec<&str> =
        all["items"].as_array().unwrap().iter().map(|r| r["processed_at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let (_, page3) = server.json("/v1/results?per_page=2&page=3", token);
    assert_eq!(keys(&page3), keys(&all)[4..6]);
    let (_, bench0) = server.json("/v1/results?prefix=bench-0/", token);
    assert_eq!(bench0["total"], 3);
    let label = all["items"][0]["label"].as_str().unwrap().to_string();
    let (_, by_label) = server.json(&format!("/v1/results?label={label}"), token);
    assert!(by_label["items"].as_array().unwrap().iter().all(|r| r["label"] == label.as_str()));

    // One result, by a key with a slash; errors as JSON with a code.
    let key = keys(&all)[0].clone();
    let (status, one) = server.json(&format!("/v1/results/{key}"), token);
    assert_eq!((status, one["item"]["key"].as_str()), (200, Some(key.as_str())));
    for (path, status, code) in [
        ("/v1/results/bench-0/nope.png", 404, "not_found"),
        ("/v1/results?decision=maybe", 400, "bad_request"),
        ("/v1/results?per_page=0", 400, "bad_request"),
        ("/v1/results?since=yesterday", 400, "bad_request"),
        ("/v1/results?colour=red", 400, "bad_request"),
        ("/v2/nothing", 404, "not_found"),
    ] {
        let (got, body) = server.json(path, token);
        assert_eq!((got, body["error"]["code"].as_str()), (status, Some(code)), "{path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // The CSV: a header and one row per result matching the filter.
    let (status, csv) = server.get("/v1/results.csv?prefix=bench-1/", Some(token));
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("key,etag,label,confidence,decision,p_"), "{}", lines[0]);
    assert_eq!(lines.len(), 1 + 3);
    assert!(lines[1..].iter().all(|l| l.starts_with("bench-1/")));

    // Every GET route the OpenAPI document lists answers (the event stream, the photos and the
    // catalogue photos have their own checks).
    let (_, openapi) = server.json("/openapi.json", token);
    let paths = openapi["paths"].as_object().unwrap();
    assert!(paths.len() >= 9, "{paths:?}");
    for (path, operations) in paths {
        if operations.get("get").is_none()
            || ["/v1/events", "/v1/photos/{key}", "/v1/catalogue/{sku}"].contains(&path.as_str())
        {
            continue;
        }
        let path = path.replace("{key}", &key);
        assert_eq!(server.get(&path, Some(token)).0, 200, "{path}");
    }

    // The review queue: the unsure ones; a person's label takes a photo out of it.
    let (_, queue) = server.json("/v1/review", token);
    assert_eq!(queue["total"], 3);
    assert!(queue["items"].as_array().unwrap().iter().all(|r| r["decision"] == "review"));
    let unsure = keys(&queue)[0].clone();
    let (status, correction) =
        server.post_json(&format!("/v1/review/{unsure}"), Some(token), r#"{"label": "tops", "by": "ann"}"#);
    assert_eq!(status, 200, "{correction}");
    assert_eq!((correction["label"].as_str(), correction["by"].as_str()), (Some("tops"), Some("ann")));
    assert_eq!(correction["model_label"], queue["items"][0]["label"]);
    assert!(out.join(format!("corrections/{unsure}.json")).is_file(), "stored beside the results");
    let (_, corrected) = server.json(&format!("/v1/results/{unsure}"), token);
    assert_eq!(
        (corrected["label"].clone(), corrected["correction"]["label"].as_str()),
        (queue["items"][0]["label"].clone(), Some("tops"))
    );
    assert_eq!(server.json("/v1/review", token).1["total"], 2);
    for (path, body, status, code) in [
        (format!("/v1/review/{unsure}"), r#"{"label": "socks"}"#, 400, "bad_request"),
        (format!("/v1/review/{unsure}"), r#"{"label": "#, 400, "bad_request"),
        ("/v1/review/bench-0/nope.png".to_string(), r#"{"label": "tops"}"#, 404, "not_found"),
    ] {
        let (got, answer) = server.post_json(&path, Some(token), body);
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{path} {body}: {answer}");
    }
    assert_eq!(server.post_json(&format!("/v1/review/{unsure}"), None, r#"{"label": "tops"}"#).0, 401);

    // Server-sent events: a result indexed later arrives on an open stream.
    let (mut events, mut seen) = server.subscribe(token, Duration::from_secs(20));
    // CORS: only the configured origin gets the browser's permission (the second server, with
    // no --cors-origin, gives none).
    let preflight = |origin: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        write!(stream, "OPTIONS /v1/results HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: authorization\r\nConnection: close\r\n\r\n", server.port).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.to_ascii_lowercase()
    };
    assert!(preflight("http://bench.example").contains("access-control-allow-origin: http://bench.example"));
    assert!(!preflight("http://evil.example").contains("access-control-allow-origin"));

    // The returns-bench page holds no data: it is served without the token.
    let (status, html) = server.get("/", None);
    assert_eq!(status, 200);
    assert!(html.contains("AutoRMA returns bench") && html.contains("/assets/app.js"), "{html}");
    assert_eq!(server.get("/assets/app.js", None).0, 200);
    // Without --inbox the server does not know where the photos are.
    let (status, answer) = server.json(&format!("/v1/photos/{key}"), token);
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("no_inbox")), "{answer}");

    // Without --inbox there is nowhere to put uploads.
    let (status, answer) = server.post_json("/v1/uploads?name=a.png", Some(token), "{}");
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("no_inbox")), "{answer}");
    let (_, model) = server.json("/v1/model", token);
    assert_eq!((model["name"].as_str(), model["execution_provider"].as_str()), (Some("tiny5"), Some("cpu")));

    // Classified in the request (no pipeline in this process: its own batcher and session),
    // exactly as the run classified the same bytes.
    let photo = std::fs::read(inbox.join("bench-0/p0.png")).unwrap();
    let (status, answer) =
        read_json(&mut server.open_bytes("POST", "/v1/classify?name=p0.png", "image/png", &photo, token));
    assert_eq!(status, 200, "{answer}");
    let (_, p0) = server.json("/v1/results/bench-0/p0.png", token);
    let classified = &answer["results"][0];
    assert_eq!((classified["name"].as_str(), &classified["label"]), (Some("p0.png"), &p0["label"]), "{answer}");
    let confidence = |v: &serde_json::Value| v["confidence"].as_f64().unwrap();
    assert!((confidence(classified) - confidence(&p0)).abs() < 1e-6, "{classified} vs {p0}");
    assert_eq!(classified["decision"], p0["decision"]);
    assert_eq!(classified["probabilities"].as_object().unwrap().len(), 5);
    assert_eq!(answer["model"]["name"], "tiny5");
    // Many photos: each answered in its place; one that does not decode gets its error there.
    // When none decodes, the request fails with that error.
    let broken = &photo[..photo.len() / 2];
    let body = multipart(&[("a.png", &photo), ("broken.png", broken), ("b.png", &photo)]);
    let (status, answer) = read_json(&mut server.open_bytes("POST", "/v1/classify", MULTIPART, &body, token));
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    let names: Vec<&str> = results.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.png", "broken.png", "b.png"]);
    assert_eq!([&results[0]["label"], &results[2]["label"]], [&p0["label"], &p0["label"]]);
    assert_eq!(results[1]["error"]["code"], "cannot_decode", "{answer}");
    for (name, bytes, status, code) in
        [("broken.png", broken, 422, "cannot_decode"), ("notes.png", &b"a packing list"[..], 415, "not_an_image")]
    {
        let path = format!("/v1/classify?name={name}");
        let (got, answer) = read_json(&mut server.open_bytes("POST", &path, "image/png", bytes, token));
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{answer}");
    }
    let (status, _) = read_json(&mut server.open_bytes("POST", "/v1/classify", "image/png", &photo, "wrong-token"));
    assert_eq!(status, 401);
    // At most 100 photos in one request.
    let many: Vec<(String, &[u8])> = (0..101).map(|i| (format!("p{i}.png"), photo.as_slice())).collect();
    let parts: Vec<(&str, &[u8])> = many.iter().map(|(name, bytes)| (name.as_str(), *bytes)).collect();
    let (status, answer) =
        read_json(&mut server.open_bytes("POST", "/v1/classify", MULTIPART, &multipart(&parts), token));
    assert_eq!((status, answer["error"]["code"].as_str()), (413, Some("too_many_photos")), "{answer}");

    // New results are followed as the run writes them, and announced.
    write_png(&inbox.join("bench-1/late.png"), [90, 200, 90]);
    run(&inbox, &out);
    Http::read_until(&mut events, &mut seen, |s| s.contains("event: result") && s.contains("bench-1/late.png"));
    drop(events);
    let started = Instant::now();
    while server.json("/v1/results", token).1["total"] != 7 {
        assert!(started.elapsed() < Duration::from_secs(10), "the new result was not indexed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, before) = server.json("/v1/results?per_page=500", token);
    let (_, queue_before) = server.json("/v1/review", token);
    drop(server);

    // Derived data: deleted, rebuilt at start, the same answers.
    std::fs::remove_file(out.join("state/index.sqlite")).unwrap();
    let server = start(&out, token);
    let (_, after) = server.json("/v1/results?per_page=500", token);
    assert_eq!(after, before);
    assert_eq!(server.json("/v1/review", token).1, queue_before, "corrections are rebuilt too");
}

fn png_bytes(color: [u8; 3], side: u32) -> Vec<u8> {
    encode_png(&RgbImage::from_fn(side, side, |x, y| Rgb([color[0] ^ (x as u8), color[1] ^ (y as u8), color[2]])))
}

#[test]
fn uploads_flow_through_the_pipeline_it_runs_and_bad_ones_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    std::fs::create_dir_all(&inbox).unwrap();
    let port = free_port();
    let mut serve = autorma();
    serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--max-body-bytes", "40000", "--token", "t"])
        .arg("--inbox")
        .arg(&inbox)
        .arg("--out")
        .arg(&out);
    let server = Server::spawn(serve, port, Some("t"));

    // A raw body, then a multipart request with two photos.
    let raw = png_bytes([200, 30, 30], 16);
    let mut stream = server.open_bytes("POST", "/v1/uploads?name=bench%20shoe.png", "image/png", &raw, "t");
    let (status, answer) = read_json(&mut stream);
    assert_eq!(status, 200, "{answer}");
    let mut uploaded: Vec<String> = vec![answer["uploads"][0]["key"].as_str().unwrap().to_string()];
    let (p0, p1) = (png_bytes([30, 200, 30], 16), png_bytes([128, 0, 128], 16));
    let body = multipart(&[("p0.png", &p0), ("p1.png", &p1)]);
    let (status, answer) = read_json(&mut server.open_bytes("POST", "/v1/uploads", MULTIPART, &body, "t"));
    assert_eq!(status, 200, "{answer}");
    uploaded.extend(answer["uploads"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap().to_string()));
    assert_eq!(uploaded.len(), 3);
    assert!(uploaded.iter().all(|k| k.starts_with("uploads/")), "{uploaded:?}");
    assert!(uploaded[0].ends_with("-bench_shoe.png"), "{}", uploaded[0]);

    // Each gets its result through the pipeline this process runs.
    for key in &uploaded {
        let started = Instant::now();
        while server.get(&format!("/v1/results/{key}"), Some("t")).0 != 200 {
            assert!(started.elapsed() < Duration::from_secs(30), "no result for the upload {key}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // Several requests at once while the pipeline runs, all answered (that they share its
    // batches is shown by classifier/tests/pipeline.rs).
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| read_json(&mut server.open_bytes("POST", "/v1/classify", "image/png", &raw, "t"))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, answer) in answers {
        assert_eq!(status, 200, "{answer}");
        assert!(answer["results"][0]["batch_size"].as_u64().is_some_and(|n| n >= 1), "{answer}");
    }

    // The photos behind the results (the page's thumbnails).
    let (status, photo) = server.get_bytes(&format!("/v1/photos/{}", uploaded[0]), "t");
    assert_eq!((status, photo), (200, raw.clone()));
    assert_eq!(server.get_bytes("/v1/photos/uploads/nope.png", "t").0, 404);

    // A photo that looks like a PNG but does not decode is dead-lettered, and announced.
    let (mut events, mut seen) = server.subscribe("t", Duration::from_secs(20));
    let (status, answer) =
        read_json(&mut server.open_bytes("POST", "/v1/uploads?name=torn.png", "image/png", &raw[..raw.len() / 2], "t"));
    assert_eq!(status, 200, "{answer}");
    let torn = answer["uploads"][0]["key"].as_str().unwrap();
    Http::read_until(&mut events, &mut seen, |s| {
        s.contains("event: dead_letter") && s.contains(torn) && s.contains("decode_error")
    });
    drop(events);

    // Refused whole: a non-image among images, a body over the limit.
    let files_before = std::fs::read_dir(inbox.join("uploads")).unwrap().count();
    let (status, answer) =
        read_json(&mut server.open_bytes("POST", "/v1/uploads?name=notes.png", "image/png", b"a packing list", "t"));
    assert_eq!((status, answer["error"]["code"].as_str()), (415, Some("not_an_image")), "{answer}");
    // Noise does not compress: well over the 40,000-byte limit.
    let mut seed = 7u32;
    let noise = RgbImage::from_fn(200, 200, |_, _| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        Rgb([(seed >> 24) as u8, (seed >> 16) as u8, (seed >> 8) as u8])
    });
    let big = encode_png(&noise);
    assert!(big.len() > 40_000);
    let (status, answer) =
        read_json(&mut server.open_bytes("POST", "/v1/uploads?name=big.png", "image/png", &big, "t"));
    assert_eq!((status, answer["error"]["code"].as_str()), (413, Some("too_large")), "{answer}");
    assert_eq!(std::fs::read_dir(inbox.join("uploads")).unwrap().count(), files_before, "nothing stored");

    // CORS is off by default: no browser permission for any origin.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(stream, "OPTIONS /v1/results HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: http://bench.example\r\nAccess-Control-Request-Method: GET\r\nConnection: close\r\n\r\n", server.port).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(!response.to_ascii_lowercase().contains("access-control-allow-origin"), "{response}");
    // ...and a browser's cross-site post (sent without asking first) is refused; the page's own
    // origin is not.
    let post_from = |origin: &str| {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        let body = r#"{"label": "tops"}"#;
        write!(stream, "POST /v1/review/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\nAuthorization: Bearer t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", uploaded[1], server.port, body.len()).unwrap();
        read_json(&mut stream)
    };
    let (status, answer) = post_from("http://evil.example");
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden_origin")), "{answer}");
    assert_eq!(post_from(&format!("http://127.0.0.1:{}", server.port)).0, 200);

    // Stopped with a page connected: the event stream ends, the pipeline drains, exit 0.
    let (_events, _) = server.subscribe("t", Duration::from_secs(20));
    let mut server = server;
    assert!(Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop within 20 s of SIGTERM with /v1/events open");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
}

fn export(out: &Path, results: &Path, inbox: &Path) -> std::process::Output {
    let mut cmd = autorma();
    cmd.args(["corrections", "export", "--out"]).arg(out).arg("--results").arg(results).arg("--inbox").arg(inbox);
    cmd.output().unwrap()
}

fn manifest_rows(export_dir: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(export_dir.join("manifest.csv")).unwrap();
    text.lines().map(|l| l.split(',').map(str::to_string).collect()).collect()
}

#[test]
fn corrections_export_as_a_class_folder_set_of_the_photos_people_saw() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out, set) = (dir.path().join("inbox"), dir.path().join("out"), dir.path().join("set"));
    for (i, color) in [[128, 0, 128], [0, 128, 128], [128, 128, 0]].into_iter().enumerate() {
        write_png(&inbox.join(format!("bench 1/p{i}.png")), color);
    }
    run(&inbox, &out);
    let server = start(&out, "t0ken");
    for (key, label) in [("bench 1/p0.png", "tops"), ("bench 1/p1.png", "shirts"), ("bench 1/p2.png", "tops")] {
        let path = format!("/v1/review/{}", key.replace(' ', "%20"));
        let (status, answer) =
            server.post_json(&path, Some("t0ken"), &format!(r#"{{"label": "{label}", "by": "ann"}}"#));
        assert_eq!(status, 200, "{answer}");
    }
    // After its correction, p2's file is replaced: its label was given to other bytes.
    write_png(&inbox.join("bench 1/p2.png"), [1, 2, 3]);

    let done = export(&set, &out, &inbox);
    let stdout = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success(), "{stdout}{}", String::from_utf8_lossy(&done.stderr));
    assert!(stdout.contains("exported 2 corrected photos") && stdout.contains("shirts 1, tops 1"), "{stdout}");
    assert!(stdout.contains("skipped 1") && stdout.contains("was replaced after it was corrected"), "{stdout}");
    assert_eq!(
        std::fs::read(set.join("tops/bench_1__p0.png")).unwrap(),
        std::fs::read(inbox.join("bench 1/p0.png")).unwrap()
    );
    assert!(set.join("shirts/bench_1__p1.png").is_file());
    let rows = manifest_rows(&set);
    assert_eq!(rows[0][..5], ["file", "label", "key", "etag", "by"]);
    assert_eq!(
        rows[1..].iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str(), r[4].as_str())).collect::<Vec<_>>(),
        [
            ("tops/bench_1__p0.png", "tops", "bench 1/p0.png", "ann"),
            ("shirts/bench_1__p1.png", "shirts", "bench 1/p1.png", "ann")
        ]
    );

    // A later correction moves the photo: the export is replaced whole, no stale copy is left.
    let (status, _) = server.post_json("/v1/review/bench%201/p0.png", Some("t0ken"), r#"{"label": "shirts"}"#);
    assert_eq!(status, 200);
    assert!(export(&set, &out, &inbox).status.success());
    assert!(!set.join("tops/bench_1__p0.png").exists() && set.join("shirts/bench_1__p0.png").is_file());
    assert_eq!(manifest_rows(&set).len(), 3);

    // A folder that is not an earlier export is never replaced, even one with a manifest.csv
    // (a data set's, as fashion5 has).
    let data_set = dir.path().join("data");
    write_png(&data_set.join("tops/1163.png"), [1, 1, 1]);
    std::fs::write(data_set.join("manifest.csv"), "split,class,id\n").unwrap();
    for folder in [&inbox, &data_set] {
        let refused = export(folder, &out, &inbox);
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("is not an earlier export"));
    }
    assert!(inbox.join("bench 1/p0.png").is_file() && data_set.join("tops/1163.png").is_file());
}

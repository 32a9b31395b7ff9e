//! `autorma serve` tried as an attacker on the same network or machine would, through the real
//! binary (`serve --inbox --out --token`). Each test is one finding of the serve-hardening
//! issue, numbered as there, with the response before its fix in its doc comment; each failed
//! against the build before the fix, run as
//! `AUTORMA_TEST_BIN=/path/to/old/autorma cargo test --test security`.
//! The README's API section states the threat model.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use image::{GrayImage, ImageEncoder, Rgb, RgbImage};

mod common;

use common::http::{Http, MULTIPART, multipart, read_json};
use common::serve::{Server, free_port};
use common::{autorma, encode_png, write_png};

const TOKEN: &str = "t0ken";
/// The pipeline's file limit and the body limit the server is started with.
const MAX_FILE_BYTES: usize = 1_000_000;
const MAX_BODY_BYTES: usize = 4_000_000;

struct Bench {
    server: Server,
    inbox: PathBuf,
    out: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// An embedded server with an inbox, its log (info) in a file; `prepare` fills the inbox first.
fn bench(prepare: impl FnOnce(&Path, &Path)) -> Bench {
    bench_with(&[], prepare)
}

/// [`bench`] with settings in the environment (a build that predates a setting ignores it,
/// where it would refuse an unknown flag).
fn bench_with(settings: &[(&str, &str)], prepare: impl FnOnce(&Path, &Path)) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out, log) = (dir.path().join("inbox"), dir.path().join("out"), dir.path().join("serve.log"));
    std::fs::create_dir_all(&inbox).unwrap();
    prepare(&inbox, dir.path());
    let port = free_port();
    let mut serve = autorma();
    serve
        .env("AUTORMA_LOG", "info")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--token", TOKEN])
        .args(["--max-file-bytes", &MAX_FILE_BYTES.to_string(), "--max-body-bytes", &MAX_BODY_BYTES.to_string()])
        .arg("--inbox")
        .arg(&inbox)
        .arg("--out")
        .arg(&out)
        .envs(settings.iter().copied())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    Bench { server: Server::spawn(serve, port, Some(TOKEN)), inbox, out, log, _dir: dir }
}

/// Whether `done` held within `timeout`.
fn waited(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn wait_for(what: &str, timeout: Duration, done: impl FnMut() -> bool) {
    assert!(waited(timeout, done), "waited {timeout:?} for {what}");
}

fn wait_result(http: &Http, key: &str) {
    wait_for(&format!("the result of {key:?}"), Duration::from_secs(30), || {
        http.get(&format!("/v1/results/{key}"), Some(TOKEN)).0 == 200
    });
}

fn png(color: [u8; 3]) -> Vec<u8> {
    encode_png(&RgbImage::from_fn(24, 24, |x, y| Rgb([color[0] ^ x as u8, color[1] ^ y as u8, color[2]])))
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .map(|path| if path.is_dir() { count_files(&path) } else { 1 })
        .sum()
}

/// A raw request with the given head lines, answered as (status, JSON body).
fn raw_request(port: u16, head: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).unwrap();
    let _ = stream.write_all(body);
    read_json(&mut stream)
}

fn error_code(answer: &serde_json::Value) -> Option<&str> {
    answer["error"]["code"].as_str()
}

/// Finding 1, before: a link in the inbox, classified, then pointed at a secret: 200 with the secret.
#[test]
fn finding_1_the_photo_route_serves_only_the_classified_image_inside_the_inbox() {
    let bench = bench(|inbox, dir| {
        std::fs::create_dir_all(inbox.join("real")).unwrap();
        std::fs::write(inbox.join("real/a.png"), png([200, 30, 30])).unwrap();
        std::fs::write(inbox.join("b.png"), png([30, 200, 30])).unwrap();
        // A link inside the inbox, and one to a photo elsewhere on the machine.
        std::os::unix::fs::symlink(inbox.join("real/a.png"), inbox.join("link.png")).unwrap();
        std::fs::write(dir.join("elsewhere.png"), png([30, 30, 200])).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere.png"), inbox.join("outside.png")).unwrap();
        std::fs::write(dir.join("secret.txt"), b"AWS_SECRET_ACCESS_KEY=hunter2").unwrap();
    });
    let (http, inbox) = (&bench.server.http, &bench.inbox);
    wait_result(http, "link.png");
    wait_result(http, "b.png");

    let secret = inbox.parent().unwrap().join("secret.txt");
    std::fs::remove_file(inbox.join("link.png")).unwrap();
    std::os::unix::fs::symlink(&secret, inbox.join("link.png")).unwrap();
    let (status, body) = http.get_bytes("/v1/photos/link.png", TOKEN);
    let body = String::from_utf8_lossy(&body);
    assert!(status == 404 && !body.contains("hunter2"), "the link re-pointed at a secret: {status} {body}");

    // A photo replaced by something else since it was classified: not served.
    std::fs::write(inbox.join("b.png"), b"not the photo that was classified").unwrap();
    let (status, body) = http.get_bytes("/v1/photos/b.png", TOKEN);
    let body = String::from_utf8_lossy(&body);
    assert!(matches!(status, 404 | 409) && !body.contains("not the photo"), "a replaced photo: {status} {body}");

    // A link that leaves the inbox is a dead letter with its reason, not a result.
    let dead = bench.out.join("dlq/outside.png.json");
    wait_for("the dead letter of outside.png", Duration::from_secs(30), || dead.is_file());
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&dead).unwrap()).unwrap();
    assert_eq!(record["reason"], "fetch_failed", "{record}");
    assert!(record["detail"].as_str().unwrap().contains("outside the folder"), "{record}");
    assert_eq!(http.get("/v1/results/outside.png", Some(TOKEN)).0, 404);
}

/// Finding 2, before: a good photo and then a 300-character name: 500 "File name too long", and the
/// good photo stored and classified.
#[test]
fn finding_2_an_upload_is_checked_whole_before_anything_is_stored() {
    let bench = bench(|_, _| {});
    let http = &bench.server.http;

    let long = format!("{}.png", "n".repeat(300));
    let body = multipart(&[("good.png", &png([1, 2, 3])), (&long, &png([4, 5, 6]))]);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/uploads", MULTIPART, &body, TOKEN));
    assert_eq!(status, 200, "a good photo and a long name: {answer}");
    let keys: Vec<&str> = answer["uploads"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    for key in &keys {
        assert!(key.rsplit('/').next().unwrap().len() < 130, "{key}");
        wait_result(http, key);
    }

    // A request with one photo that is not an image stores none of them.
    let stored = count_files(&bench.inbox);
    let body = multipart(&[("fine.png", &png([9, 9, 9])), ("list.png", b"a packing list")]);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/uploads", MULTIPART, &body, TOKEN));
    assert_eq!((status, error_code(&answer)), (415, Some("not_an_image")), "{answer}");
    assert_eq!(count_files(&bench.inbox), stored, "nothing stored");
}

/// Finding 3, before: a name with `.autorma-tmp-` in it was 200 with a key, and then never a result
/// nor a dead letter (the scan took it for a temporary file).
#[test]
fn finding_3_a_name_the_scan_would_skip_is_renamed_and_classified() {
    let bench = bench(|_, _| {});
    let http = &bench.server.http;
    let (status, answer) = read_json(&mut http.open_bytes(
        "POST",
        "/v1/uploads?name=a.autorma-tmp-1.png",
        "image/png",
        &png([7, 8, 9]),
        TOKEN,
    ));
    assert_eq!(status, 200, "{answer}");
    wait_result(http, answer["uploads"][0]["key"].as_str().unwrap());
}

/// Finding 4, before: `=HYPERLINK(...)`, `+1+1`, `@SUM(...)` went into the CSV as they were.
#[test]
fn finding_4_spreadsheet_formulas_in_file_names_stay_text_in_the_csv() {
    let names = ["=HYPERLINK(1).png", "+1+1.png", "@SUM(A1).png", "-2+3.png"];
    let bench = bench(|inbox, _| {
        for (i, name) in names.iter().enumerate() {
            write_png(&inbox.join(name), [i as u8 * 40, 90, 160]);
        }
    });
    let http = &bench.server.http;
    for name in names {
        wait_result(http, name);
    }
    let (status, csv) = http.get("/v1/results.csv", Some(TOKEN));
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let mut keys: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
    keys.sort();
    let mut expected: Vec<String> = names.iter().map(|n| format!("'{n}")).collect();
    expected.sort();
    assert_eq!(keys, expected, "{csv}");
}

/// Finding 5, before: an upload over the pipeline's file limit was 200 and then dead-lettered
/// `too_large`, where `/v1/classify` answered 413; a multipart body over the limit was 400.
#[test]
fn finding_5_uploads_and_classify_share_the_pipeline_limit_and_answer_413() {
    let bench = bench(|_, _| {});
    let http = &bench.server.http;
    let mut big = png([1, 1, 1]);
    big.resize(MAX_FILE_BYTES + 1, 0);
    for route in ["/v1/uploads?name=big.png", "/v1/classify?name=big.png"] {
        let (status, answer) = read_json(&mut http.open_bytes("POST", route, "image/png", &big, TOKEN));
        assert_eq!((status, error_code(&answer)), (413, Some("too_large")), "{route}: {answer}");
    }
    let mut huge = png([2, 2, 2]);
    huge.resize(MAX_BODY_BYTES + 1000, 0);
    let body = multipart(&[("huge.png", &huge)]);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/uploads", MULTIPART, &body, TOKEN));
    assert_eq!((status, error_code(&answer)), (413, Some("too_large")), "a multipart body over the limit: {answer}");
    assert_eq!(count_files(&bench.inbox), 0, "nothing stored");
}

/// Finding 6a, before: any `Host` was served, so a web page could reach the server by DNS rebinding.
#[test]
fn finding_6a_a_host_the_server_is_not_known_by_is_refused() {
    let bench = bench(|_, _| {});
    let port = bench.server.port;
    let (status, answer) = raw_request(
        port,
        &format!("GET /v1/results HTTP/1.1\r\nHost: evil.example:{port}\r\nAuthorization: Bearer {TOKEN}"),
        b"",
    );
    assert_eq!((status, error_code(&answer)), (403, Some("forbidden_host")), "{answer}");
    let (status, _) = raw_request(
        port,
        &format!("GET /v1/results HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {TOKEN}"),
        b"",
    );
    assert_eq!(status, 200);
}

/// Finding 6b, before: serve started on 0.0.0.0 with no token, with an INFO line, and served until
/// killed.
#[test]
fn finding_6b_a_server_other_machines_can_reach_needs_a_token_or_an_explicit_no() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut refused =
        autorma().args(["serve", "--listen", &listen, "--out"]).arg(&out).stderr(Stdio::piped()).spawn().unwrap();
    if !waited(Duration::from_secs(20), || refused.try_wait().unwrap().is_some()) {
        refused.kill().unwrap();
        panic!("serve started on {listen} with no token");
    }
    let refused = refused.wait_with_output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--token") && message.contains("--insecure-no-token"), "{message}");

    let mut serve = autorma();
    serve.args(["serve", "--listen", &listen, "--insecure-no-token", "--out"]).arg(&out);
    let server = Server::spawn(serve, port, None);
    assert_eq!(server.get("/v1/results", None).0, 200);
}

/// Finding 6c, before: an incomplete request head held its connection for over a minute (so
/// did a connection that sent nothing, and a body that stopped coming, as long as the client
/// liked).
#[test]
fn finding_6c_a_request_that_stops_coming_is_cut_off() {
    let bench = bench(|_, _| {});
    let port = bench.server.port;
    let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut slow_head = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(slow_head, "GET /v1/results HTTP/1.1\r\nHost: 127.0.0.1").unwrap();
    // Bodies that stop coming (uploads raw and multipart, a correction): the start and no more.
    let slow_body = |path: &str, content_type: &str, start: &[u8]| {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n"
        )
        .unwrap();
        stream.write_all(start).unwrap();
        stream
    };
    let raw = slow_body("/v1/uploads?name=a.png", "image/png", &png([3, 3, 3]));
    let whole = multipart(&[("a.png", &png([4, 4, 4]))]);
    let form = slow_body("/v1/uploads", MULTIPART, &whole[..whole.len() / 2]);
    let json = slow_body("/v1/review/a.png", "application/json", br#"{"label": "#);
    let started = Instant::now();
    // The server's limits are 10 s for a head and 30 s of silence within a body.
    let connections = [
        ("silent", silent, 15),
        ("head", slow_head, 15),
        ("raw body", raw, 40),
        ("multipart body", form, 40),
        ("json body", json, 40),
    ];
    for (what, mut stream, limit) in connections {
        stream.set_read_timeout(Some(Duration::from_secs(limit + 10))).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let open = started.elapsed();
        assert!(open < Duration::from_secs(limit), "the {what} connection stayed open {open:?}");
        if what.ends_with("body") {
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 408"), "a {what} that stopped coming: {answer}");
        }
    }
    assert_eq!(count_files(&bench.inbox), 0, "nothing stored");
}

/// Finding 6d, before: no cap on event streams (200 were held open).
#[test]
fn finding_6d_event_streams_are_capped() {
    const STREAMS: usize = 4;
    let bench = bench_with(&[("AUTORMA_MAX_EVENT_STREAMS", &STREAMS.to_string())], |_, _| {});
    let http = &bench.server.http;
    let streams: Vec<_> = (0..STREAMS).map(|_| http.subscribe(TOKEN, Duration::from_secs(20)).0).collect();
    let mut one_more = http.open("GET", "/v1/events", Some(TOKEN), None).unwrap();
    one_more.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (status, answer) = read_json(&mut one_more);
    assert_eq!((status, error_code(&answer)), (503, Some("too_many_streams")), "stream {}: {answer}", STREAMS + 1);
    drop(streams);
    wait_for("a stream after the others closed", Duration::from_secs(10), || {
        let mut stream = http.open("GET", "/v1/events", Some(TOKEN), None).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
    });
}

/// Finding 6e, before: one `/v1/classify` request of large PNGs was decoded whole (100 of them: 22 s
/// of CPU, 570 MB).
#[test]
fn finding_6e_pixels_per_classify_request_are_capped() {
    let bench = bench_with(&[("AUTORMA_MAX_REQUEST_PIXELS", "2000000")], |_, _| {});
    let large = {
        let mut out = Vec::new();
        let grey = GrayImage::from_pixel(1000, 1000, image::Luma([90]));
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&grey, 1000, 1000, image::ExtendedColorType::L8)
            .unwrap();
        out
    };
    let http = &bench.server.http;
    let body = multipart(&[("l1.png", &large), ("l2.png", &large), ("l3.png", &large)]);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/classify", MULTIPART, &body, TOKEN));
    assert_eq!((status, error_code(&answer)), (413, Some("too_many_pixels")), "3 megapixels: {answer}");
    let body = multipart(&[("l1.png", &large), ("l2.png", &large)]);
    let (status, answer) = read_json(&mut http.open_bytes("POST", "/v1/classify", MULTIPART, &body, TOKEN));
    assert_eq!(status, 200, "2 megapixels: {answer}");
}

/// Finding 6f, before: `by` was bounded only by the 2 MB JSON limit.
#[test]
fn finding_6f_who_corrected_is_a_short_name() {
    let bench = bench(|inbox, _| write_png(&inbox.join("a.png"), [10, 20, 30]));
    let http = &bench.server.http;
    wait_result(http, "a.png");
    for by in ["x".repeat(101), "ann\\u001b[31m".into()] {
        let correction = format!(r#"{{"label": "tops", "by": "{by}"}}"#);
        let (status, answer) = http.post_json("/v1/review/a.png", Some(TOKEN), &correction);
        assert_eq!(status, 400, "by {by:?}: {answer}");
    }
    let (status, answer) = http.post_json("/v1/review/a.png", Some(TOKEN), r#"{"label": "tops", "by": "ann"}"#);
    assert_eq!(status, 200, "{answer}");
}

/// Finding 6g, before: `bearer` in lower case was 401 (RFC 7235: the scheme is case-insensitive).
#[test]
fn finding_6g_the_bearer_scheme_is_case_insensitive() {
    let bench = bench(|_, _| {});
    let port = bench.server.port;
    for scheme in ["bearer", "BEARER"] {
        let (status, answer) = raw_request(
            port,
            &format!("GET /v1/results HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {scheme} {TOKEN}"),
            b"",
        );
        assert_eq!(status, 200, "{scheme}: {answer}");
    }
}

/// Finding 6h, before: a newline in a file name started a log line of its own; a FIFO in the inbox was
/// skipped with no log line.
#[test]
fn finding_6h_odd_inbox_entries_are_logged_and_cannot_forge_log_lines() {
    let bench = bench(|inbox, _| {
        // Not an image, so it is dead-lettered, and its key logged.
        std::fs::write(inbox.join("bad\nINFO forged.png"), b"a packing list").unwrap();
        assert!(std::process::Command::new("mkfifo").arg(inbox.join("pipe.png")).status().unwrap().success());
    });
    let dead = bench.out.join("dlq/bad\nINFO forged.png.json");
    wait_for("the dead letter", Duration::from_secs(30), || dead.is_file());
    let logged = || std::fs::read_to_string(&bench.log).unwrap_or_default();
    // Long enough for the scan that found the FIFO to have said so.
    waited(Duration::from_secs(10), || {
        let log = logged();
        log.contains("dead-lettered") && log.contains("FIFO")
    });
    let log = logged();
    assert!(!log.lines().any(|line| line.starts_with("INFO forged")), "a forged line: {log}");
    assert!(log.contains(r"bad\nINFO forged.png"), "{log}");
    assert!(log.lines().any(|l| l.contains("pipe.png") && l.contains("a FIFO")), "no line for the FIFO: {log}");
}

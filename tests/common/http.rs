//! A small HTTP/1.1 client for the tests of `autorma serve`: one request per connection, on
//! plain TCP, so a test sees exactly what the server sent.

use std::io::{Read, Write};
use std::net::TcpStream;

/// The server at `127.0.0.1:port`.
pub struct Http {
    pub port: u16,
}

impl Http {
    /// Status and body of a GET (HTTP/1.1, one request per connection).
    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("GET", path, token, None)
    }

    pub fn post_json(&self, path: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.request("POST", path, token, Some(body));
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
    }

    /// Opens a connection with the request sent, for a response read as it comes.
    pub fn open(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Option<TcpStream> {
        let port = self.port;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let body = body.map(|b| format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}", b.len()));
        let body = body.unwrap_or_else(|| "\r\n".into());
        write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n{body}")
            .unwrap();
        Some(stream)
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
        let Some(mut stream) = self.open(method, path, token, body) else { return (0, String::new()) };
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        (status, if chunked { dechunk(body) } else { body.to_string() })
    }

    pub fn json(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.get(path, Some(token));
        (status, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")))
    }

    pub fn get_bytes(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        let mut stream = self.open("GET", path, Some(token), None).unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&response[..split]);
        let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        (status, response[split + 4..].to_vec())
    }

    /// Waits (20 s at most) until `/readyz` answers 200.
    pub fn wait_ready(&self, token: Option<&str>) {
        let started = std::time::Instant::now();
        while self.get("/readyz", token).0 != 200 {
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "serve did not become ready");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Subscribes to `/v1/events`: returns once the server has answered (so whatever happens
    /// next is announced on the stream), with what it has sent of the body so far.
    pub fn subscribe(&self, token: &str, timeout: std::time::Duration) -> (TcpStream, String) {
        let mut stream = self.open("GET", "/v1/events", Some(token), None).unwrap();
        stream.set_read_timeout(Some(timeout)).unwrap();
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("\r\n\r\n") {
            let n = stream.read(&mut buf).expect("the event stream's headers");
            assert!(n > 0, "the event stream closed: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
        let body = seen.split_once("\r\n\r\n").unwrap().1.to_string();
        (stream, body)
    }

    /// Reads the event stream until `done` holds for what it has sent.
    pub fn read_until(stream: &mut TcpStream, seen: &mut String, done: impl Fn(&str) -> bool) {
        let mut buf = [0u8; 8192];
        while !done(seen) {
            let n = stream.read(&mut buf).unwrap_or_else(|e| panic!("waiting for events: {e}; got: {seen}"));
            assert!(n > 0, "the event stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    pub fn open_bytes(&self, method: &str, path: &str, content_type: &str, body: &[u8], token: &str) -> TcpStream {
        let port = self.port;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // The server may answer (413) before it has read everything.
        let _ = stream.write_all(body);
        stream
    }
}

/// A chunked body (`size\r\ndata\r\n`... `0\r\n\r\n`), joined.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub const MULTIPART: &str = "multipart/form-data; boundary=autorma-test-boundary";

/// A multipart body (boundary of [`MULTIPART`]) with one file field per photo.
pub fn multipart(photos: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, bytes) in photos {
        write!(body, "--autorma-test-boundary\r\nContent-Disposition: form-data; name=\"photos\"; filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").unwrap();
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    write!(body, "--autorma-test-boundary--\r\n").unwrap();
    body
}

pub fn read_json(stream: &mut TcpStream) -> (u16, serde_json::Value) {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}

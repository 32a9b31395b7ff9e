//! Toxiproxy's HTTP API (github.com/Shopify/toxiproxy, "HTTP API"): the proxies between the
//! workers and the engines, and the network faults ("toxics") the chaos suite puts on them.

use crate::engine::Engine;
use crate::http::Http;

pub struct Toxiproxy {
    api: Http,
    _engine: Engine,
}

/// A network fault on one proxy, in one direction (`downstream`: towards the client).
#[derive(Debug, Clone)]
pub struct Toxic {
    pub proxy: &'static str,
    /// Toxiproxy's type: `latency`, `timeout`, `reset_peer`, ...
    pub kind: &'static str,
    pub stream: &'static str,
    pub attributes: serde_json::Value,
}

impl Toxiproxy {
    pub fn new(engine: Engine) -> Toxiproxy {
        Toxiproxy { api: Http { port: engine.port("TOXIPROXY_PORT") }, _engine: engine }
    }

    /// A proxy `name` listening on `127.0.0.1:listen`, to `127.0.0.1:upstream`.
    pub fn proxy(&self, name: &str, listen: u16, upstream: u16) {
        let body = serde_json::json!({
            "name": name, "listen": format!("127.0.0.1:{listen}"), "upstream": format!("127.0.0.1:{upstream}"),
        });
        self.call("POST", "/proxies", Some(&body.to_string()), 201);
    }

    /// Adds `toxic` as `name` (one toxic of a name at a time per proxy).
    pub fn add(&self, name: &str, toxic: &Toxic) {
        let body = serde_json::json!({
            "name": name, "type": toxic.kind, "stream": toxic.stream, "toxicity": 1.0, "attributes": toxic.attributes,
        });
        self.call("POST", &format!("/proxies/{}/toxics", toxic.proxy), Some(&body.to_string()), 200);
    }

    pub fn remove(&self, proxy: &str, name: &str) {
        self.call("DELETE", &format!("/proxies/{proxy}/toxics/{name}"), None, 204);
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>, expected: u16) {
        let (status, answer) = self.api.request(method, path, None, body);
        assert_eq!(status, expected, "toxiproxy {method} {path}: {answer}");
    }
}

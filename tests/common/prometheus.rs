//! Prometheus 3.16 with its OTLP receiver (`infra/engines/prometheus.sh`), and its query API.

use std::path::Path;
use std::time::{Duration, Instant};

use super::engine::Engine;
use super::http::Http;

pub struct Prometheus {
    engine: Engine,
}

/// One series of a query's answer: its labels and its values (one for an instant query).
pub type Series = (serde_json::Value, Vec<f64>);

impl Prometheus {
    pub fn start(dir: &Path) -> Prometheus {
        Prometheus { engine: Engine::start("prometheus", dir, &["PROMETHEUS_PORT"], &[]) }
    }

    pub fn port(&self) -> u16 {
        self.engine.port("PROMETHEUS_PORT")
    }

    /// Where `autorma` sends its metrics: the base URL of `--otlp-endpoint`.
    pub fn otlp_base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v1/otlp", self.port())
    }

    pub fn http(&self) -> Http {
        Http { port: self.port() }
    }

    /// The samples of an instant query: (labels, value).
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        self.api(&format!("/api/v1/query?query={}", encode(promql)), promql)
            .into_iter()
            .map(|series| {
                let value = series["value"][1].as_str().unwrap().parse().unwrap();
                (series["metric"].clone(), value)
            })
            .collect()
    }

    /// A range query from `start` to `end` (Unix seconds) every `step_s`: each series' values.
    pub fn query_range(&self, promql: &str, start: f64, end: f64, step_s: f64) -> Vec<Series> {
        let path = format!("/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={step_s}", encode(promql));
        self.api(&path, promql)
            .into_iter()
            .map(|series| {
                let values = series["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|point| point[1].as_str().unwrap().parse().unwrap())
                    .collect();
                (series["metric"].clone(), values)
            })
            .collect()
    }

    /// The single value of `promql`, once it has one (pushed series take an export to arrive).
    pub fn value(&self, promql: &str) -> f64 {
        let started = Instant::now();
        loop {
            if let [(_, value)] = self.query(promql)[..] {
                return value;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no single value for {promql}: {:?}",
                self.query(promql)
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The `result` of a query; a query that does not parse fails the test (400 `bad_data`).
    fn api(&self, path: &str, promql: &str) -> Vec<serde_json::Value> {
        let (status, body) = self.http().get(path, None);
        assert_eq!(status, 200, "{promql}: {body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        answer["data"]["result"].as_array().unwrap().clone()
    }
}

fn encode(promql: &str) -> String {
    promql
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

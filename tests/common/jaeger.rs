//! Jaeger 2.13 (`infra/engines/jaeger.sh`): OTLP in, and its query API's traces.

use std::collections::HashMap;
use std::path::Path;

use super::engine::Engine;
use super::http::Http;

pub struct Jaeger {
    engine: Engine,
}

/// One span of a trace, as the query API gives it.
#[derive(Debug, Clone)]
pub struct Span {
    pub trace_id: String,
    pub span_id: String,
    /// The span it is a child of, if any.
    pub parent: Option<String>,
    pub name: String,
    pub service: String,
    pub tags: HashMap<String, serde_json::Value>,
    /// Microseconds since the epoch, and microseconds.
    pub start_us: u64,
    pub duration_us: u64,
}

impl Jaeger {
    pub fn start(dir: &Path) -> Jaeger {
        Jaeger {
            engine: Engine::start(
                "jaeger",
                dir,
                &["JAEGER_OTLP_PORT", "JAEGER_QUERY_PORT", "JAEGER_QUERY_GRPC_PORT"],
                &[],
            ),
        }
    }

    /// Where `autorma` sends its traces: the base URL of `--otlp-traces-endpoint`.
    pub fn otlp_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.engine.port("JAEGER_OTLP_PORT"))
    }

    /// The spans of every trace that has a span of `service` (the last hour's, up to `limit`
    /// traces), grouped by trace id.
    pub fn traces(&self, service: &str, limit: usize) -> HashMap<String, Vec<Span>> {
        let http = Http { port: self.engine.port("JAEGER_QUERY_PORT") };
        let (status, body) = http.get(&format!("/api/traces?service={service}&limit={limit}&lookback=1h"), None);
        assert_eq!(status, 200, "{body}");
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let mut traces = HashMap::new();
        for trace in answer["data"].as_array().into_iter().flatten() {
            let processes = &trace["processes"];
            let spans = trace["spans"]
                .as_array()
                .unwrap()
                .iter()
                .map(|span| Span {
                    trace_id: span["traceID"].as_str().unwrap().to_string(),
                    span_id: span["spanID"].as_str().unwrap().to_string(),
                    parent: span["references"]
                        .as_array()
                        .and_then(|refs| refs.iter().find(|r| r["refType"] == "CHILD_OF"))
                        .map(|r| r["spanID"].as_str().unwrap().to_string()),
                    name: span["operationName"].as_str().unwrap().to_string(),
                    service: processes[span["processID"].as_str().unwrap()]["serviceName"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    tags: span["tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|tag| (tag["key"].as_str().unwrap().to_string(), tag["value"].clone()))
                        .collect(),
                    start_us: span["startTime"].as_u64().unwrap(),
                    duration_us: span["duration"].as_u64().unwrap(),
                })
                .collect();
            traces.insert(trace["traceID"].as_str().unwrap().to_string(), spans);
        }
        traces
    }
}

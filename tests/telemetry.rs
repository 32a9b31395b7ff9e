//! Metrics by OTLP into a real Prometheus (3.16, its OTLP receiver; started by
//! `infra/engines/prometheus.sh` from the install of `infra/setup/prometheus.sh`): an embedded
//! run's photos, dead letters, stage times, batches and model show up under the names the
//! README documents.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::http::Http;
use common::prometheus::Prometheus;
use common::{autorma, root, write_png};

#[test]
fn an_embedded_runs_metrics_arrive_in_prometheus_under_the_documented_names() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(&dir.path().join("prometheus"));
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    // The fixture model: sure of the first three colours, unsure of the others.
    let colors = [[200, 30, 30], [30, 200, 30], [30, 30, 200], [128, 0, 128]];
    for i in 0..12 {
        write_png(&inbox.join(format!("p{i:02}.png")), colors[i % colors.len()]);
    }
    std::fs::write(inbox.join("notes.png"), b"a packing list, not a photo").unwrap();
    let status = autorma()
        .args(["run", "--no-progress", "--otlp-endpoint", &prometheus.otlp_base()])
        .arg("--inbox")
        .arg(&inbox)
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());

    let job = r#"job="autorma-run""#;
    assert_eq!(prometheus.value(&format!("sum(autorma_photos_processed_total{{{job}}})")), 12.0);
    assert_eq!(prometheus.value(&format!(r#"sum(autorma_photos_processed_total{{{job},decision="review"}})"#)), 3.0);
    assert_eq!(prometheus.value(&format!(r#"autorma_dead_letters_total{{{job},reason="not_an_image"}}"#)), 1.0);
    assert_eq!(prometheus.value(&format!(r#"sum(autorma_confidence_count{{{job}}})"#)), 12.0);
    for stage in ["fetch", "decode", "batch_wait", "infer", "sink"] {
        let count = format!(r#"autorma_stage_duration_seconds_count{{{job},stage="{stage}"}}"#);
        assert_eq!(prometheus.value(&count), 12.0, "{stage}");
    }
    assert_eq!(prometheus.value(&format!("autorma_upload_to_result_seconds_count{{{job}}}")), 12.0);
    assert_eq!(prometheus.value(&format!("sum(autorma_batch_size_sum{{{job}}})")), 12.0, "every photo in one batch");
    let model = prometheus.query(&format!("autorma_model_info{{{job}}}"));
    assert_eq!(model.len(), 1, "{model:?}");
    assert_eq!((model[0].0["name"].as_str(), model[0].0["execution_provider"].as_str()), (Some("tiny5"), Some("cpu")));
    assert_eq!(model[0].1, 1.0);
}

#[test]
fn serve_reports_its_requests_and_the_review_queue() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(&dir.path().join("prometheus"));
    let (inbox, out) = (dir.path().join("inbox"), dir.path().join("out"));
    for (i, color) in [[200, 30, 30], [128, 0, 128], [0, 128, 128]].into_iter().enumerate() {
        write_png(&inbox.join(format!("p{i}.png")), color);
    }
    assert!(
        autorma()
            .args(["run", "--no-progress", "--inbox"])
            .arg(&inbox)
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut serve = autorma()
        // Exported every half second, as well as at the end.
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--otlp-endpoint", &prometheus.otlp_base()])
        .arg("--out")
        .arg(&out)
        .spawn()
        .unwrap();
    let http = Http { port };
    http.wait_ready(None);
    for _ in 0..3 {
        assert_eq!(http.get("/v1/results?decision=review", None).0, 200);
    }
    assert_eq!(http.get("/v1/results/p9.png", None).0, 404);
    // The queue's size, measured once the index caught up, arrives with a periodic export.
    let job = r#"job="autorma-serve""#;
    let queue = format!("autorma_review_queue_size{{{job}}}");
    let started = Instant::now();
    while prometheus.query(&queue).first().map(|(_, v)| *v) != Some(2.0) {
        assert!(started.elapsed() < Duration::from_secs(30), "review queue: {:?}", prometheus.query(&queue));
        std::thread::sleep(Duration::from_millis(250));
    }
    // Stopped: the last export goes out on the way.
    assert!(Command::new("kill").args(["-TERM", &serve.id().to_string()]).status().unwrap().success());
    assert!(serve.wait().unwrap().success());

    let ok = format!(r#"autorma_http_server_requests_total{{{job},route="/v1/results",method="GET",status="200"}}"#);
    assert_eq!(prometheus.value(&ok), 3.0);
    let missing = format!(r#"autorma_http_server_requests_total{{{job},route="/v1/results/{{*key}}",status="404"}}"#);
    assert_eq!(prometheus.value(&missing), 1.0);
    assert!(prometheus.value(&format!(r#"sum(autorma_http_server_duration_seconds_count{{{job}}})"#)) >= 5.0);
}

/// Every PromQL expression of the Grafana dashboard (its variables given the values Grafana
/// would) and of the alerting rules (as Prometheus loaded them) is one Prometheus accepts, and
/// the dashboard is valid for Grafana's schema. That each returns data after a streaming run
/// is `tests/streaming/telemetry.rs`.
#[test]
fn the_dashboard_and_the_alert_rules_are_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(&dir.path().join("prometheus"));
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("infra/grafana/dashboards/autorma.json")).unwrap()).unwrap();
    let mut expressions: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| panel["targets"].as_array().unwrap().iter())
        .map(|target| {
            let expr = target["expr"].as_str().unwrap();
            expr.replace("$__rate_interval", "1m").replace("$__range", "1h").replace("$job", ".*")
        })
        .collect();
    assert!(expressions.len() >= 13, "{expressions:?}");
    let (status, body) = prometheus.http().get("/api/v1/rules", None);
    assert_eq!(status, 200, "{body}");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    let loaded: Vec<String> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .map(|rule| rule["query"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(loaded.len(), 5, "the five alerting rules are loaded: {rules}");
    expressions.extend(loaded);
    for expr in expressions {
        // An instant query of it: 400 `bad_data` when it does not parse.
        let _ = prometheus.query(&expr);
    }

    // The dashboard's structure, against Grafana's own schema (infra/grafana/check, in Go).
    let dashboard = root().join("infra/grafana/dashboards/autorma.json");
    let output = Command::new("go")
        .args(["run", "."])
        .arg(&dashboard)
        .current_dir(root().join("infra/grafana/check"))
        .output()
        .expect("go runs (the check is a Go program)");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && said.contains("valid (18 panels)"), "{said}");
}

//! Telemetry of a real streaming run: `autorma ingest`, a worker, `serve --streaming` and a
//! replay export their metrics to a real Prometheus (3.16, its OTLP receiver) and their
//! traces to a real Jaeger (2.13), through the standard `OTEL_EXPORTER_OTLP_*` variables.
//! Then every expression of the Grafana dashboard and of the alerting rules must return data,
//! the dashboard's figures must agree with what the test saw itself, and every photo must be
//! one trace from the ingest's send to the worker's sink.
//!
//! Needs `infra/setup/prometheus.sh` and `infra/setup/jaeger.sh` besides the streaming
//! engines (all run by `infra/test.sh`).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::clients::{Metadata, Record, S3, TopicReader};
use super::jaeger::{Jaeger, Span};
use super::prometheus::Prometheus;
use super::stack::{Stack, root, wait_until};
use super::{bodies, percentile, serial, test_photos};

const TOKEN: &str = "t0ken";
/// How often each process exports its metrics here (the deployment's default is 15 s).
const EXPORT_INTERVAL_S: f64 = 1.0;
/// Grafana's `$__rate_interval` for a data source scraped every EXPORT_INTERVAL_S, at a step
/// of one interval: four intervals.
const RATE_INTERVAL: &str = "4s";

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn a_streaming_run_fills_every_dashboard_panel_and_alert_and_each_photo_is_one_trace() {
    let _serial = serial();
    let photos = test_photos();
    let mut stack = Stack::start();
    let prometheus = Prometheus::start(&stack.dir.path().join("prometheus"));
    let jaeger = Jaeger::start(&stack.dir.path().join("jaeger"));
    stack.env = vec![
        ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", format!("{}/v1/metrics", prometheus.otlp_base())),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("{}/v1/traces", jaeger.otlp_base())),
        ("OTEL_METRIC_EXPORT_INTERVAL", format!("{}", EXPORT_INTERVAL_S * 1000.0)),
    ];
    let results = TopicReader::start(&stack.brokers, "rma.results");
    let dlq = TopicReader::start(&stack.brokers, "rma.dlq");
    stack.spawn_ingest(&[]);
    stack.spawn_worker("worker-a");
    let http = stack.spawn_serve(0, TOKEN);
    // The worker's photo counters start at zero before the first photo, so the first export's
    // photos count in rates and increases.
    assert_eq!(prometheus.value(r#"sum(autorma_photos_processed_total{job="autorma-worker"})"#), 0.0);
    // A shadow version (the same package again), so the shadow panels have data: the worker
    // runs its default 10 % sample on it.
    let pushed = stack.cli(&["model", "push", root().join("models/fashion5").to_str().unwrap()]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    assert!(stack.cli(&["model", "promote", "2", "--alias", "shadow"]).status.success());
    wait_until("the shadow loads", Duration::from_secs(30), || stack.log("worker-a").contains("shadow model changed"));

    let start = unix_now();
    let first_put = Instant::now();
    let mut uploads = bodies(&photos);
    uploads.insert(100, ("inbox/broken/notes.jpg".to_string(), b"a packing list, not a photo".to_vec()));
    // Every ninth photo carries a claim, as a returns desk sends it: its own class, or for every
    // third of them another (a wrong-item return), so the wrong-item panels and alert have data.
    let (claimed, plain): (Vec<_>, Vec<_>) = uploads.into_iter().enumerate().partition(|(i, _)| i % 9 == 4);
    let claimed = claimed
        .into_iter()
        .enumerate()
        .map(|(n, (_, (key, body)))| {
            let own = key.split('/').nth(1).unwrap().to_string();
            let label = if n % 3 == 0 { if own == "watches" { "tops".into() } else { "watches".into() } } else { own };
            (key, body, Metadata::from([("expected-label".to_string(), label)]))
        })
        .collect();
    let s3 = S3::new(&stack);
    let mut put_at = s3.put_all_with_metadata(claimed, 16);
    put_at.extend(s3.put_all(plain.into_iter().map(|(_, upload)| upload).collect()));
    wait_until("375 results and the dead letter", Duration::from_secs(240), || {
        results.num_distinct_keys() >= 375 && dlq.num_distinct_keys() >= 1
    });
    let on_topic = results.first_by_key();
    let last_result = on_topic.values().map(|r| r.seen).max().unwrap();
    let run_secs = (last_result - first_put).as_secs_f64();
    // From the start of each PUT, as the worker measures from the S3 event's time.
    let mut latencies: Vec<f64> =
        on_topic.iter().map(|(key, record)| (record.seen - put_at[key]).as_secs_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    let num_review = on_topic.values().filter(|r| r.value["decision"] == "review").count();

    // HTTP traffic over a few exports (a rate needs a series to grow after its first sample),
    // 404s among it.
    for i in 0..16 {
        let (path, status) = if i % 4 == 1 {
            ("/v1/results/inbox/no-such-photo.jpg", 404)
        } else {
            ("/v1/results?decision=review", 200)
        };
        assert_eq!(http.get(path, Some(TOKEN)).0, status, "{path}");
        std::thread::sleep(Duration::from_secs_f64(EXPORT_INTERVAL_S / 4.0));
    }
    // The replay job: every photo has its result from the served version but the dead letter.
    let replay = stack.cli(&["replay", "--no-progress"]);
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{}", String::from_utf8_lossy(&replay.stderr));
    assert!(said.contains("listed 376 photos, skipped 375") && said.contains("sent 1 "), "{said}");

    check_dashboard_and_rules(&prometheus, start);

    // What the dashboard shows for the run, beside what the test measured itself. The range
    // reaches 30 s before the run (the counters were at zero then), so the queries below,
    // evaluated a little later each, all still see its start.
    let range = format!("{}s", (unix_now() - start).ceil() + 30.0);
    let throughput = prometheus
        .query_range(
            &format!("sum(rate(autorma_photos_processed_total[{RATE_INTERVAL}]))"),
            start,
            unix_now(),
            EXPORT_INTERVAL_S,
        )
        .into_iter()
        .flat_map(|(_, values)| values)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let p95 = prometheus.value(&format!(
        "histogram_quantile(0.95, sum by (le) (increase(autorma_upload_to_result_seconds_bucket[{range}])))"
    ));
    let counted = prometheus.value(&format!("sum(increase(autorma_photos_processed_total[{range}]))"));
    let review_share = prometheus.value(&format!(
        r#"sum(increase(autorma_photos_processed_total{{decision="review"}}[{range}])) / sum(increase(autorma_photos_processed_total[{range}]))"#
    ));
    let (true_throughput, true_p95, true_share) =
        (375.0 / run_secs, percentile(&latencies, 0.95), num_review as f64 / 375.0);
    eprintln!(
        "[measured] dashboard for 375 photos: {counted:.1} photos counted, throughput peak {throughput:.0} photos/s \
         ({RATE_INTERVAL} rate), upload-to-result p95 {:.0} ms, review share {:.1} %; measured by the test: \
         {true_throughput:.0} photos/s (first PUT to last result, {run_secs:.2} s), PUT-to-result p95 {:.0} ms, \
         review share {:.1} %",
        p95 * 1e3,
        review_share * 100.0,
        true_p95 * 1e3,
        true_share * 100.0
    );
    // Every photo counted once (`increase` extrapolates a little to the range's ends).
    assert!((370.0..=385.0).contains(&counted), "{counted} photos counted");
    assert!(throughput >= 0.5 * true_throughput, "throughput peak {throughput} vs {true_throughput} photos/s");
    // A quantile is interpolated inside a bucket (1.33x apart here), and versitygw's event
    // times are whole seconds: the worker's upload-to-result reads up to 1 s high.
    assert!((0.7..=2.0).contains(&(p95 / true_p95)), "p95 {p95} s vs {true_p95} s");
    assert!((review_share - true_share).abs() < 0.02, "review share {review_share} vs {true_share}");

    check_traces(&jaeger, &on_topic, &dlq);
}

/// Every target of every dashboard panel, with Grafana's variables given the values it would
/// (all processes, the run's range), returns at least one finite value over the run; so does
/// every alerting rule as Prometheus loaded it, with its thresholds lowered to -Inf so it
/// would fire: each series it compares exists.
fn check_dashboard_and_rules(prometheus: &Prometheus, start: f64) {
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("infra/grafana/dashboards/autorma.json")).unwrap()).unwrap();
    let mut expressions: Vec<(String, String)> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap().to_string();
            expressions.push((title, target["expr"].as_str().unwrap().to_string()));
        }
    }
    let (status, body) = prometheus.http().get("/api/v1/rules", None);
    assert_eq!(status, 200, "{body}");
    let rules: serde_json::Value = serde_json::from_str(&body).unwrap();
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = format!("alert {}", rule["name"].as_str().unwrap());
            expressions.push((name, thresholds_at_minus_infinity(rule["query"].as_str().unwrap())));
        }
    }
    assert_eq!(expressions.len(), 30, "25 dashboard targets and 5 rules");

    // Pushed series take an export to arrive, and a rule's subquery needs two of its steps.
    let deadline = Instant::now() + Duration::from_secs(150);
    for (what, expr) in &expressions {
        loop {
            let range = format!("{}s", (unix_now() - start).ceil());
            let promql =
                expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", &range).replace("$job", ".*");
            let answer = prometheus.query_range(&promql, start, unix_now(), EXPORT_INTERVAL_S);
            if answer.iter().any(|(_, values)| values.iter().any(|v| v.is_finite())) {
                break;
            }
            assert!(Instant::now() < deadline, "`{what}` returns no data: {promql}\n{answer:?}");
            std::thread::sleep(Duration::from_secs(2));
        }
    }
}

/// `expr` with the number of every `>` or `>=` comparison replaced by `-Inf`.
fn thresholds_at_minus_infinity(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('>') {
        let operator = if rest[at + 1..].starts_with('=') { at + 2 } else { at + 1 };
        out.push_str(&rest[..operator]);
        rest = &rest[operator..];
        let trimmed = rest.trim_start();
        let number = trimmed.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(trimmed.len());
        if number > 0 {
            out.push_str(" -Inf");
            rest = &trimmed[number..];
        }
    }
    out.push_str(rest);
    out
}

/// Each photo is one trace: the ingest's `send rma.items` span, and under it the worker's
/// `classify photo` span with a child per stage, carrying the label and decision its result on
/// the topic has. The dead letter has a second trace: the replay job sent it again (it has no
/// result), and the worker found it already done.
fn check_traces(jaeger: &Jaeger, on_topic: &HashMap<String, Record>, dlq: &TopicReader) {
    let dead = dlq.first_by_key();
    let expected = on_topic.len() + 2 * dead.len();
    let mut photo_spans: Vec<(Span, Vec<Span>)> = Vec::new();
    wait_until("a trace per photo in Jaeger", Duration::from_secs(60), || {
        photo_spans = jaeger
            .traces("autorma-worker", 2 * expected)
            .into_values()
            .flat_map(|spans| {
                let photos: Vec<Span> = spans.iter().filter(|s| s.name == "classify photo").cloned().collect();
                photos.into_iter().map(move |photo| (photo, spans.clone()))
            })
            .collect();
        photo_spans.len() >= expected
    });
    assert_eq!(photo_spans.len(), expected, "one `classify photo` span per photo, two for the dead letter");
    let mut senders: HashMap<&str, Vec<String>> = HashMap::new();
    let mut num_spans = 0;
    for (photo, trace) in &photo_spans {
        let key = photo.tags["autorma.key"].as_str().unwrap();
        assert_eq!(photo.service, "autorma-worker");
        let parent = trace.iter().find(|s| Some(&s.span_id) == photo.parent.as_ref());
        let parent = parent.unwrap_or_else(|| panic!("{key}: the photo span's parent is not in its trace: {trace:#?}"));
        assert_eq!(parent.tags["messaging.kafka.message.key"], key, "{key}");
        assert!(parent.parent.is_none(), "{key}: the sender's span begins the trace");
        senders.entry(key).or_default().push(format!("{} {}", parent.service, parent.name));
        num_spans += trace.len();

        let mut stages: Vec<&Span> = trace.iter().filter(|s| s.parent.as_ref() == Some(&photo.span_id)).collect();
        stages.sort_by_key(|s| s.start_us);
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        for stage in &stages {
            assert!(
                stage.start_us + 1_000 >= photo.start_us
                    && stage.start_us + stage.duration_us <= photo.start_us + photo.duration_us + 1_000,
                "{key}: {} lies outside its photo span",
                stage.name
            );
        }
        if parent.service == "autorma-replay" {
            // The worker already dead-lettered it with the version the replay asked for.
            assert!(names.is_empty(), "{key}: {names:?}");
            assert_eq!(photo.tags["autorma.outcome"], "already_done", "{key}");
            continue;
        }
        match on_topic.get(key) {
            Some(result) => {
                assert_eq!(names, ["fetch", "decode", "batch_wait", "infer", "sink"], "{key}");
                assert_eq!(photo.tags["autorma.label"], result.value["label"], "{key}");
                assert_eq!(photo.tags["autorma.decision"], result.value["decision"], "{key}");
                let trigger = stages[3].tags["autorma.batch.trigger"].as_str().unwrap();
                assert!(
                    ["full", "deadline", "idle", "model_swap", "input_closed"].contains(&trigger),
                    "{key}: {trigger}"
                );
            }
            None => {
                assert!(dead.contains_key(key), "{key}: neither a result nor a dead letter");
                assert_eq!(names, ["fetch", "decode", "dead_letter"], "{key}");
                assert_eq!(photo.tags["autorma.dlq.reason"], "not_an_image", "{key}");
                assert_eq!(photo.tags["otel.status_code"], "ERROR", "{key}");
            }
        }
    }
    for (key, mut sent_by) in senders {
        sent_by.sort();
        let expected: &[&str] = if dead.contains_key(key) {
            &["autorma-ingest send rma.items", "autorma-replay send rma.items.replay"]
        } else {
            &["autorma-ingest send rma.items"]
        };
        assert_eq!(sent_by, expected, "{key}");
    }
    eprintln!(
        "[measured] traces: {expected} photos, each one trace from its sender to the worker's sink ({:.1} spans each)",
        num_spans as f64 / expected as f64
    );
}

#[test]
fn a_rules_thresholds_are_lowered_to_minus_infinity() {
    assert_eq!(
        thresholds_at_minus_infinity("sum(x) > 500\nand deriv(y[10m:1m]) >0 and z>=0.05"),
        "sum(x) > -Inf\nand deriv(y[10m:1m]) > -Inf and z>= -Inf"
    );
}

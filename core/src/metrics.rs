//! The metrics every AutoRMA process records, by the names a dashboard relies on (README,
//! "Telemetry"). They go through the OpenTelemetry API's global meter: nowhere until the binary
//! installs an exporter (OTLP, when an endpoint is configured), so libraries and tests record
//! freely at no cost.
//!
//! In Prometheus (its OTLP receiver) a name's dots become underscores, a counter gains
//! `_total` and a histogram in seconds `_seconds`: `autorma.stage.duration` is queried as
//! `autorma_stage_duration_seconds_bucket`.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram};

use crate::claim::CheckOutcome;
use crate::dlq::DlqReason;
use crate::result::{Decision, ModelRef, ResultRecord};
use crate::shadow::ShadowRecord;

/// Stage and latency histograms' buckets, in seconds: from half a millisecond (a decode on a
/// small photo) to five minutes (a photo waiting behind a backlog), finer from 0.5 s to 10 s,
/// where upload-to-result usually is (a quantile is interpolated within one bucket).
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0,
    15.0, 30.0, 60.0, 120.0, 300.0,
];
/// Confidence buckets: fine near 1, where the review thresholds are.
pub const CONFIDENCE_BUCKETS: &[f64] = &[0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0];
/// Batch-size buckets: powers of two up to the largest batch a GPU run uses.
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Why a sampled photo has no shadow record: the shadow's queue was full, its own preprocessing
/// refused the photo, its run failed, or the records' publisher was behind.
pub const SHADOW_SKIP_REASONS: [&str; 4] = ["busy", "decode_error", "inference_failed", "unpublished"];

pub struct Metrics {
    /// Photos classified, by `label` and `decision`.
    pub photos_processed: Counter<u64>,
    /// Photos dead-lettered, by `reason`.
    pub dead_letters: Counter<u64>,
    /// Confidence of each classified photo, by `label`.
    pub confidence: Histogram<f64>,
    /// Photos per inference batch, by `trigger` (why it was flushed: full, deadline, ...).
    pub batch_size: Histogram<u64>,
    /// Seconds per photo in each `stage`: fetch, decode, batch_wait, infer, sink.
    pub stage_duration: Histogram<f64>,
    /// Seconds from the photo's event (its upload) to its result being written.
    pub upload_to_result: Histogram<f64>,
    /// Records not yet consumed, by `topic` and `partition` (and `group`).
    pub consumer_lag: Gauge<i64>,
    /// 1 for the model being served (`name`, `version`, `sha256`, `execution_provider`), 0 for
    /// one swapped out.
    pub model_info: Gauge<u64>,
    /// Photos waiting for a person (the review queue of `autorma serve`).
    pub review_queue: Gauge<u64>,
    /// HTTP requests answered, by `route`, `method` and `status`.
    pub http_requests: Counter<u64>,
    /// Seconds per HTTP request, by `route`, `method` and `status`.
    pub http_duration: Histogram<f64>,
    /// Photos of a replay, by `outcome`: listed, skipped (already done by the version), sent.
    pub replay_photos: Counter<u64>,
    /// Photos whose claim named a class, by `claimed` and `seen` label and `outcome` (match,
    /// mismatch, uncertain); a claimed label the model does not know counts as `unknown`.
    pub claim_checks: Counter<u64>,
    pub product_checks: Counter<u64>,
    /// Photos a second model ran beside production, by `role` (shadow, guard), the candidate's
    /// `version` and `decision`, the `baseline_version`, the baseline's `label` and
    /// `baseline_decision`, and whether the two labels `agree`.
    pub shadow_photos: Counter<u64>,
    /// Seconds per photo of the shadow model's runs, by `role`.
    pub shadow_duration: Histogram<f64>,
    /// Sampled photos the shadow model did not run, by `reason` (busy, decode_error, ...).
    pub shadow_skipped: Counter<u64>,
    /// Aliases moved back by a worker watching a promotion, by `alias`.
    pub automatic_rollbacks: Counter<u64>,
}

/// The instruments, made on first use from the global meter: install the exporter first.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let meter = opentelemetry::global::meter("autorma");
        Metrics {
            photos_processed: meter
                .u64_counter("autorma.photos.processed")
                .with_description("Photos classified, by label and decision")
                .build(),
            dead_letters: meter
                .u64_counter("autorma.dead_letters")
                .with_description("Photos dead-lettered, by reason")
                .build(),
            confidence: meter
                .f64_histogram("autorma.confidence")
                .with_description("Confidence of each classified photo, by label")
                .with_boundaries(CONFIDENCE_BUCKETS.to_vec())
                .build(),
            batch_size: meter
                .u64_histogram("autorma.batch.size")
                .with_description("Photos per inference batch, by flush trigger")
                .with_boundaries(BATCH_BUCKETS.to_vec())
                .build(),
            stage_duration: meter
                .f64_histogram("autorma.stage.duration")
                .with_unit("s")
                .with_description("Time per photo in each pipeline stage")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            upload_to_result: meter
                .f64_histogram("autorma.upload_to_result")
                .with_unit("s")
                .with_description("From the photo's event (its upload) to its result")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            consumer_lag: meter
                .i64_gauge("autorma.consumer.lag")
                .with_description("Records not yet consumed, by topic and partition")
                .build(),
            model_info: meter.u64_gauge("autorma.model.info").with_description("1 for the model being served").build(),
            review_queue: meter
                .u64_gauge("autorma.review_queue.size")
                .with_description("Photos waiting for a person")
                .build(),
            http_requests: meter
                .u64_counter("autorma.http.server.requests")
                .with_description("HTTP requests answered, by route, method and status")
                .build(),
            http_duration: meter
                .f64_histogram("autorma.http.server.duration")
                .with_unit("s")
                .with_description("Time per HTTP request, by route, method and status")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            replay_photos: meter
                .u64_counter("autorma.replay.photos")
                .with_description("Photos of a replay, by outcome: listed, skipped, sent")
                .build(),
            claim_checks: meter
                .u64_counter("autorma.claim.checks")
                .with_description("Photos checked against their claimed class, by claimed and seen label and outcome")
                .build(),
            product_checks: meter
                .u64_counter("autorma.product.checks")
                .with_description(
                    "Photos checked against their claimed SKU's catalogue photo, by seen label and outcome",
                )
                .build(),
            shadow_photos: meter
                .u64_counter("autorma.shadow.photos")
                .with_description(
                    "Photos a second model ran beside production, by role, versions, labels and agreement",
                )
                .build(),
            shadow_duration: meter
                .f64_histogram("autorma.shadow.duration")
                .with_unit("s")
                .with_description("Time per photo of the shadow model's runs")
                .with_boundaries(SECONDS_BUCKETS.to_vec())
                .build(),
            shadow_skipped: meter
                .u64_counter("autorma.shadow.skipped")
                .with_description("Sampled photos the shadow model did not run, by reason")
                .build(),
            automatic_rollbacks: meter
                .u64_counter("autorma.model.automatic_rollbacks")
                .with_description("Aliases moved back by a worker watching a promotion")
                .build(),
        }
    })
}

impl Metrics {
    /// A result written: its count, confidence, claim check, stage times and upload-to-result
    /// latency.
    pub fn record_result(&self, record: &ResultRecord, since_upload: f64) {
        let label_kv = KeyValue::new("label", record.label.clone());
        self.photos_processed.add(1, &[label_kv.clone(), KeyValue::new("decision", record.decision.as_str())]);
        self.confidence.record(f64::from(record.confidence), &[label_kv]);
        let check = record.claim.as_ref().and_then(|c| Some((c.claim.expected_label.as_ref()?, c.category?)));
        if let Some((claimed, outcome)) = check {
            // The claim is the customer's text: only the model's classes become series.
            let claimed = if record.probabilities.contains_key(claimed) { claimed.clone() } else { "unknown".into() };
            self.claim_checks.add(1, &claim_attributes(claimed, record.label.clone(), outcome));
        }
        if let Some(product) = record.claim.as_ref().and_then(|c| c.product.as_ref()) {
            self.product_checks.add(1, &product_attributes(record.label.clone(), product.outcome));
        }
        let timings = &record.timings_ms;
        for (stage, ms) in [
            ("fetch", timings.fetch),
            ("decode", timings.decode),
            ("batch_wait", timings.batch_wait),
            ("infer", timings.infer),
            ("sink", timings.sink),
        ] {
            self.stage_duration.record(ms / 1e3, &[KeyValue::new("stage", stage)]);
        }
        // A clock ahead of ours (the S3 server's event time) is not a negative latency.
        self.upload_to_result.record(since_upload.max(0.0), &[]);
    }

    /// Puts the photo counters of every `label` (both decisions), of every dead-letter reason
    /// and of every claim and product check (claimed and seen label, outcome) at zero before the first photo: Prometheus takes a series' first sample as its
    /// start, so `rate` and `increase` would miss the photos counted in the first export.
    pub fn start_counts(&self, labels: &[String]) {
        for label in labels {
            for decision in [Decision::Auto, Decision::Review] {
                let attributes = [KeyValue::new("label", label.clone()), KeyValue::new("decision", decision.as_str())];
                self.photos_processed.add(0, &attributes);
            }
        }
        for reason in DlqReason::ALL {
            self.dead_letters.add(0, &[KeyValue::new("reason", reason.as_str())]);
        }
        for claimed in labels {
            for seen in labels {
                for outcome in [CheckOutcome::Match, CheckOutcome::Mismatch, CheckOutcome::Uncertain] {
                    self.claim_checks.add(0, &claim_attributes(claimed.clone(), seen.clone(), outcome));
                }
            }
            for outcome in [CheckOutcome::Match, CheckOutcome::Mismatch, CheckOutcome::Uncertain] {
                self.product_checks.add(0, &product_attributes(claimed.clone(), outcome));
            }
        }
    }

    /// Puts the shadow's skip counters (each reason) and `alias`'s automatic rollbacks at zero,
    /// as [`Self::start_counts`] does for photos.
    pub fn start_shadow_counts(&self, alias: &str) {
        for reason in SHADOW_SKIP_REASONS {
            self.shadow_skipped.add(0, &[KeyValue::new("reason", reason)]);
        }
        self.automatic_rollbacks.add(0, &[KeyValue::new("alias", alias.to_string())]);
    }

    /// A sampled photo the shadow model did not run, and why (one of [`SHADOW_SKIP_REASONS`]).
    pub fn record_shadow_skipped(&self, reason: &'static str, n: usize) {
        debug_assert!(SHADOW_SKIP_REASONS.contains(&reason));
        self.shadow_skipped.add(n as u64, &[KeyValue::new("reason", reason)]);
    }

    pub fn record_dead_letter(&self, reason: DlqReason) {
        self.dead_letters.add(1, &[KeyValue::new("reason", reason.as_str())]);
    }

    pub fn record_batch(&self, size: usize, trigger: &'static str) {
        self.batch_size.record(size as u64, &[KeyValue::new("trigger", trigger)]);
    }

    pub fn record_consumer_lag(&self, group: &str, topic: &str, partition: i32, lag: i64) {
        let attributes = [
            KeyValue::new("group", group.to_string()),
            KeyValue::new("topic", topic.to_string()),
            KeyValue::new("partition", i64::from(partition)),
        ];
        self.consumer_lag.record(lag, &attributes);
    }

    /// One HTTP request answered (for a stream: when its headers went out).
    pub fn record_http(&self, route: String, method: String, status: u16, seconds: f64) {
        let attributes = [
            KeyValue::new("route", route),
            KeyValue::new("method", method),
            KeyValue::new("status", i64::from(status)),
        ];
        self.http_requests.add(1, &attributes);
        self.http_duration.record(seconds, &attributes);
    }

    /// `n` more photos of a replay were `outcome` (listed, skipped, sent).
    pub fn record_replay(&self, outcome: &'static str, n: usize) {
        self.replay_photos.add(n as u64, &[KeyValue::new("outcome", outcome)]);
    }

    /// A photo the shadow model ran (see [`ShadowRecord`]).
    pub fn record_shadow(&self, record: &ShadowRecord) {
        let (candidate, baseline) = record.sides();
        let attributes = [
            KeyValue::new("role", record.role.as_str()),
            KeyValue::new("version", candidate.model.version.clone()),
            KeyValue::new("decision", candidate.decision.as_str()),
            KeyValue::new("baseline_version", baseline.model.version.clone()),
            KeyValue::new("label", baseline.label.clone()),
            KeyValue::new("baseline_decision", baseline.decision.as_str()),
            KeyValue::new("agree", record.agree),
        ];
        self.shadow_photos.add(1, &attributes);
        self.shadow_duration.record(record.shadow_ms / 1e3, &[KeyValue::new("role", record.role.as_str())]);
    }

    /// `model` is served (`serving`) or no longer is, on `execution_provider`.
    pub fn record_model(&self, model: &ModelRef, execution_provider: &'static str, serving: bool) {
        let attributes = [
            KeyValue::new("name", model.name.clone()),
            KeyValue::new("version", model.version.clone()),
            KeyValue::new("sha256", model.sha256.clone()),
            KeyValue::new("execution_provider", execution_provider),
        ];
        self.model_info.record(u64::from(serving), &attributes);
    }
}

fn product_attributes(seen: String, outcome: CheckOutcome) -> [KeyValue; 2] {
    [KeyValue::new("seen", seen), KeyValue::new("outcome", outcome.as_str())]
}

fn claim_attributes(claimed: String, seen: String, outcome: CheckOutcome) -> [KeyValue; 3] {
    [KeyValue::new("claimed", claimed), KeyValue::new("seen", seen), KeyValue::new("outcome", outcome.as_str())]
}

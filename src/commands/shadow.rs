//! `autorma model compare` and `promote --gate`: a shadow version's records on `rma.shadow`
//! against the version an alias names now, and the gate's verdict on them.

use std::time::Duration;

use anyhow::Context;
use autorma_core::kafka::KafkaConfig;
use autorma_core::shadow::{Bounds, Comparison, ShadowRole, Verdict};
use autorma_registry::Registry;
use serde_json::json;

/// Longest a read of `rma.shadow` may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The shadow `candidate` against `baseline`, over every record of that pair on `rma.shadow`.
pub async fn comparison(
    kafka: &KafkaConfig,
    registry: &Registry,
    candidate: u32,
    baseline: u32,
) -> anyhow::Result<Comparison> {
    let kafka = kafka.clone();
    let records = tokio::task::spawn_blocking(move || autorma_sink::shadow::read_all(&kafka, READ_TIMEOUT))
        .await
        .expect("reading rma.shadow panicked")
        .context("cannot read the shadow's records")?;
    let (candidate, baseline) = (candidate.to_string(), baseline.to_string());
    let mut comparison = Comparison::default();
    for record in records.iter().filter(|r| {
        r.role == ShadowRole::Shadow
            && r.shadow.model.name == registry.name()
            && r.shadow.model.version == candidate
            && r.production.model.version == baseline
    }) {
        comparison.add(record);
    }
    Ok(comparison)
}

/// The version `alias` names now.
pub async fn alias_version(registry: &Registry, alias: &str) -> anyhow::Result<u32> {
    let record =
        registry.alias(alias).await?.with_context(|| format!("{} has no alias `{alias}`", registry.describe()))?;
    Ok(record.version)
}

/// The verdict in one line.
pub fn verdict_line(verdict: &Verdict) -> String {
    match verdict {
        Verdict::TooFew { photos, needed } => format!("not yet: {photos} photos compared, {needed} needed"),
        Verdict::Within => "within the bounds".to_string(),
        Verdict::Outside(broken) => format!("outside the bounds: {}", broken.join("; ")),
    }
}

/// The figures, for a person.
pub fn print(comparison: &Comparison, candidate: u32, baseline: u32, alias: &str, bounds: &Bounds) {
    let c = comparison;
    let pct = |v: f64| format!("{:.1} %", 100.0 * v);
    println!("shadow version {candidate} against `{alias}` version {baseline}, on {} photos (rma.shadow)", c.photos);
    if c.photos == 0 {
        println!(
            "no records yet: is version {candidate} the shadow alias's, with workers running (--shadow-sample > 0)?"
        );
        return;
    }
    println!("  agreement        {}", pct(c.agreement()));
    println!(
        "  review share     {} (version {baseline}: {})",
        pct(c.candidate_review_share()),
        pct(c.baseline_review_share())
    );
    println!("  label mix moved  {}", pct(c.label_shift()));
    if let (Some(p50), Some(p95)) = (c.candidate_ms_quantile(0.5), c.candidate_ms_quantile(0.95)) {
        println!("  shadow time      {p50:.1} ms per photo at the median, {p95:.1} ms at p95");
    }
    println!("  {:<16} {:>7}  {:>9}  {:>12}  {:>12}", "by label", "photos", "agreement", "shadow says", "prod. says");
    for (label, class) in &c.per_class {
        let shadow = c.candidate_labels.get(label).copied().unwrap_or(0);
        let production = c.baseline_labels.get(label).copied().unwrap_or(0);
        println!("  {label:<16} {:>7}  {:>9}  {shadow:>12}  {production:>12}", class.photos, pct(class.agreement()));
    }
    println!(
        "gate (--min-photos {} --min-agreement {} --max-review-increase {} --max-label-shift {}): {}",
        bounds.min_photos,
        bounds.min_agreement,
        bounds.max_review_increase,
        bounds.max_label_shift,
        verdict_line(&bounds.check(c))
    );
}

/// The figures as JSON.
pub fn to_json(comparison: &Comparison, candidate: u32, baseline: u32, bounds: &Bounds) -> serde_json::Value {
    let c = comparison;
    let verdict = match bounds.check(c) {
        Verdict::TooFew { .. } => json!({"verdict": "too_few", "broken": []}),
        Verdict::Within => json!({"verdict": "within", "broken": []}),
        Verdict::Outside(broken) => json!({"verdict": "outside", "broken": broken}),
    };
    json!({
        "shadow_version": candidate,
        "production_version": baseline,
        "photos": c.photos,
        "agreement": c.agreement(),
        "shadow_review_share": c.candidate_review_share(),
        "production_review_share": c.baseline_review_share(),
        "label_shift": c.label_shift(),
        "shadow_ms_p50": c.candidate_ms_quantile(0.5),
        "shadow_ms_p95": c.candidate_ms_quantile(0.95),
        "per_class": c.per_class,
        "shadow_labels": c.candidate_labels,
        "production_labels": c.baseline_labels,
        "gate": verdict,
    })
}

//! A second model run beside the one whose results count, on a sample of the same photos: the
//! record of each such photo (`rma.shadow`), the figures over many ([`Comparison`]) and the
//! bounds a model must stay within ([`Bounds`]).
//!
//! Two roles use it. A **shadow** is a candidate (the registry's `shadow` alias) run beside
//! production before anyone promotes it; `autorma model compare` and `promote --gate` read its
//! records. A **guard** is the reverse, after a promotion: the version production held before
//! runs beside the new one for a while, and a worker rolls the alias back when the new one
//! strays past the bounds. Either way one side is the *candidate* (the shadow; the newly
//! promoted version) and the other the *baseline* it is measured against, so one check serves
//! both.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::result::{Decision, ItemRef, ModelRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowRole {
    /// `shadow` is the candidate, `production` the baseline.
    Shadow,
    /// `production` (just promoted) is the candidate, `shadow` (the version before) the baseline.
    Guard,
}

impl ShadowRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowRole::Shadow => "shadow",
            ShadowRole::Guard => "guard",
        }
    }
}

/// One model's answer for the photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowSide {
    pub model: ModelRef,
    pub label: String,
    pub confidence: f32,
    /// By the model's own per-class thresholds (claims play no part in a comparison).
    pub decision: Decision,
}

/// One sampled photo on `rma.shadow` (key = object key). Never a Result: nothing downstream
/// acts on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowRecord {
    pub item: ItemRef,
    pub role: ShadowRole,
    /// The model whose result the photo got.
    pub production: ShadowSide,
    /// The model run beside it.
    pub shadow: ShadowSide,
    pub agree: bool,
    /// Time of the shadow model's run, per photo (its batch's time over its size).
    pub shadow_ms: f64,
    pub at: DateTime<Utc>,
}

impl ShadowRecord {
    pub fn new(item: ItemRef, role: ShadowRole, production: ShadowSide, shadow: ShadowSide, shadow_ms: f64) -> Self {
        let agree = production.label == shadow.label;
        Self { item, role, production, shadow, agree, shadow_ms, at: Utc::now() }
    }

    /// (candidate, baseline), by the role.
    pub fn sides(&self) -> (&ShadowSide, &ShadowSide) {
        match self.role {
            ShadowRole::Shadow => (&self.shadow, &self.production),
            ShadowRole::Guard => (&self.production, &self.shadow),
        }
    }
}

/// Agreement on the photos the baseline gave one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassAgreement {
    pub photos: u64,
    pub agreed: u64,
}

impl ClassAgreement {
    pub fn agreement(&self) -> f64 {
        ratio(self.agreed, self.photos)
    }
}

/// A candidate against its baseline over the same photos.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub photos: u64,
    pub agreed: u64,
    pub candidate_review: u64,
    pub baseline_review: u64,
    /// Photos the candidate sent to review and the baseline did not, and the reverse: the
    /// paired differences the review share's change is judged on.
    pub review_up: u64,
    pub review_down: u64,
    /// By the baseline's label.
    pub per_class: BTreeMap<String, ClassAgreement>,
    pub candidate_labels: BTreeMap<String, u64>,
    pub baseline_labels: BTreeMap<String, u64>,
    /// The candidate's time per photo, for its quantiles.
    #[serde(skip)]
    candidate_ms: Vec<f64>,
    /// (key, etag) already counted: a record delivered twice counts once.
    #[serde(skip)]
    seen: HashSet<(String, String)>,
}

impl Comparison {
    /// Counts `record` (once per photo). The caller keeps each comparison to one pair of
    /// versions and one role.
    pub fn add(&mut self, record: &ShadowRecord) {
        if !self.seen.insert((record.item.key.clone(), record.item.etag.clone())) {
            return;
        }
        let (candidate, baseline) = record.sides();
        self.photos += 1;
        self.agreed += u64::from(record.agree);
        let (candidate_review, baseline_review) =
            (candidate.decision == Decision::Review, baseline.decision == Decision::Review);
        self.candidate_review += u64::from(candidate_review);
        self.baseline_review += u64::from(baseline_review);
        self.review_up += u64::from(candidate_review && !baseline_review);
        self.review_down += u64::from(baseline_review && !candidate_review);
        let class = self.per_class.entry(baseline.label.clone()).or_default();
        class.photos += 1;
        class.agreed += u64::from(record.agree);
        *self.candidate_labels.entry(candidate.label.clone()).or_default() += 1;
        *self.baseline_labels.entry(baseline.label.clone()).or_default() += 1;
        if record.role == ShadowRole::Shadow {
            self.candidate_ms.push(record.shadow_ms);
        }
    }

    pub fn agreement(&self) -> f64 {
        ratio(self.agreed, self.photos)
    }

    pub fn candidate_review_share(&self) -> f64 {
        ratio(self.candidate_review, self.photos)
    }

    pub fn baseline_review_share(&self) -> f64 {
        ratio(self.baseline_review, self.photos)
    }

    /// How far the label mix moved: half the sum of the differences of each label's share
    /// (total variation distance, 0 = the same mix, 1 = no label in common).
    pub fn label_shift(&self) -> f64 {
        let labels: std::collections::BTreeSet<&String> =
            self.candidate_labels.keys().chain(self.baseline_labels.keys()).collect();
        let share =
            |counts: &BTreeMap<String, u64>, label: &String| ratio(*counts.get(label).unwrap_or(&0), self.photos);
        labels
            .into_iter()
            .map(|l| (share(&self.candidate_labels, l) - share(&self.baseline_labels, l)).abs())
            .sum::<f64>()
            / 2.0
    }

    /// The candidate's time per photo at quantile `q` (0..=1), in ms; `None` without any
    /// (a guard's candidate is production, timed by the pipeline's own metrics).
    pub fn candidate_ms_quantile(&self, q: f64) -> Option<f64> {
        let mut ms = self.candidate_ms.clone();
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        Some(ms[((ms.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize])
    }
}

fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// What a candidate must show over the same photos as its baseline: for `promote --gate`, and
/// for a promoted version watched by the workers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Photos compared before any verdict.
    pub min_photos: u64,
    /// Least share of photos given the baseline's label.
    pub min_agreement: f64,
    /// Most the candidate's review share may exceed the baseline's (absolute, 0.05 = 5 points).
    pub max_review_increase: f64,
    /// Most the label mix may move ([`Comparison::label_shift`]).
    pub max_label_shift: f64,
}

impl Bounds {
    /// `promote --gate`'s defaults: a person's decision, on a few hundred photos.
    pub const GATE: Bounds =
        Bounds { min_photos: 200, min_agreement: 0.9, max_review_increase: 0.05, max_label_shift: 0.1 };
    /// A worker's watch of a promotion: an automatic rollback on fewer photos, so looser.
    pub const WATCH: Bounds =
        Bounds { min_photos: 50, min_agreement: 0.8, max_review_increase: 0.1, max_label_shift: 0.15 };
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fewer than `min_photos` compared so far.
    TooFew {
        photos: u64,
        needed: u64,
    },
    Within,
    /// Each bound it broke, in words with the figures.
    Outside(Vec<String>),
}

/// The two-sided 95 % normal quantile, for the confident check's intervals.
const Z: f64 = 1.96;

/// Figures as the checks see them: a point estimate, or the end of its 95 % interval nearest
/// to passing.
struct Measured {
    agreement: f64,
    review_increase: f64,
    label_shift: f64,
}

impl Measured {
    fn point(c: &Comparison) -> Self {
        Self {
            agreement: c.agreement(),
            review_increase: c.candidate_review_share() - c.baseline_review_share(),
            label_shift: c.label_shift(),
        }
    }

    /// Agreement's upper Wilson bound; the paired review increase's lower bound (the mean of
    /// each photo's +1/0/-1 minus Z standard errors); the label shift's lower Wilson bound,
    /// taking it as the share of photos whose label would have to change.
    fn favourable(c: &Comparison) -> Self {
        let n = c.photos as f64;
        let increase = c.candidate_review_share() - c.baseline_review_share();
        let variance = ((c.review_up + c.review_down) as f64 / n.max(1.0) - increase * increase).max(0.0);
        Self {
            agreement: wilson(c.agreement(), n).1,
            review_increase: increase - Z * (variance / n.max(1.0)).sqrt(),
            label_shift: wilson(c.label_shift(), n).0,
        }
    }
}

/// The Wilson score interval of a share `p` measured on `n` photos, at 95 %.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    if n == 0.0 {
        return (0.0, 1.0);
    }
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    (centre - half, centre + half)
}

impl Bounds {
    /// The figures as measured against the bounds: for a person's decision (`promote --gate`,
    /// once, on enough photos).
    pub fn check(&self, c: &Comparison) -> Verdict {
        self.judge(c, Measured::point(c))
    }

    /// Outside only where a bound is broken beyond the photos' sampling noise (the figure's
    /// 95 % interval is past it): for a watch that looks after every photo and acts alone.
    pub fn check_confident(&self, c: &Comparison) -> Verdict {
        self.judge(c, Measured::favourable(c))
    }

    fn judge(&self, c: &Comparison, m: Measured) -> Verdict {
        if c.photos < self.min_photos {
            return Verdict::TooFew { photos: c.photos, needed: self.min_photos };
        }
        let mut broken = Vec::new();
        if m.agreement < self.min_agreement {
            broken.push(format!(
                "agreement {:.1} % is under {:.1} %",
                100.0 * c.agreement(),
                100.0 * self.min_agreement
            ));
        }
        if m.review_increase > self.max_review_increase {
            broken.push(format!(
                "review share {:.1} % against {:.1} % rose more than {:.1} points",
                100.0 * c.candidate_review_share(),
                100.0 * c.baseline_review_share(),
                100.0 * self.max_review_increase
            ));
        }
        if m.label_shift > self.max_label_shift {
            broken.push(format!(
                "label mix moved {:.1} % (more than {:.1} %)",
                100.0 * c.label_shift(),
                100.0 * self.max_label_shift
            ));
        }
        if broken.is_empty() { Verdict::Within } else { Verdict::Outside(broken) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(version: &str, label: &str, decision: Decision) -> ShadowSide {
        let model = ModelRef { name: "m".into(), version: version.into(), sha256: "s".into() };
        ShadowSide { model, label: label.into(), confidence: 0.9, decision }
    }

    fn record(key: &str, role: ShadowRole, production: ShadowSide, shadow: ShadowSide) -> ShadowRecord {
        let item = ItemRef { bucket: "b".into(), key: key.into(), etag: "e".into() };
        ShadowRecord::new(item, role, production, shadow, 2.0)
    }

    const BOUNDS: Bounds =
        Bounds { min_photos: 4, min_agreement: 0.75, max_review_increase: 0.1, max_label_shift: 0.2 };

    #[test]
    fn a_candidate_that_agrees_is_within_and_duplicates_count_once() {
        let mut c = Comparison::default();
        for (i, label) in ["shoe", "bag", "watch", "shoe"].iter().enumerate() {
            let r = record(
                &i.to_string(),
                ShadowRole::Shadow,
                side("1", label, Decision::Auto),
                side("2", label, Decision::Auto),
            );
            c.add(&r);
            c.add(&r);
        }
        assert_eq!((c.photos, c.agreed), (4, 4));
        assert_eq!(c.per_class["shoe"], ClassAgreement { photos: 2, agreed: 2 });
        assert_eq!(c.label_shift(), 0.0);
        assert_eq!(BOUNDS.check(&c), Verdict::Within);
        assert_eq!(c.candidate_ms_quantile(0.5), Some(2.0));
    }

    #[test]
    fn the_confident_check_waits_out_noise_that_the_point_check_acts_on() {
        // 80 % agreement measured on 50 photos: under a 0.85 bound, but not beyond its noise.
        let mut c = Comparison::default();
        for i in 0..50 {
            let shadow = if i % 5 == 0 { "bag" } else { "shoe" };
            let r = record(
                &i.to_string(),
                ShadowRole::Guard,
                side("2", shadow, Decision::Auto),
                side("1", "shoe", Decision::Auto),
            );
            c.add(&r);
        }
        let bounds = Bounds { min_photos: 50, min_agreement: 0.85, max_review_increase: 0.1, max_label_shift: 0.5 };
        assert!(matches!(bounds.check(&c), Verdict::Outside(_)));
        assert_eq!(bounds.check_confident(&c), Verdict::Within);
        // No agreement, every photo to review, every label moved: beyond any noise.
        let mut c = Comparison::default();
        for i in 0..50 {
            let r = record(
                &i.to_string(),
                ShadowRole::Guard,
                side("2", "bag", Decision::Review),
                side("1", "shoe", Decision::Auto),
            );
            c.add(&r);
        }
        let Verdict::Outside(broken) = bounds.check_confident(&c) else { panic!("within") };
        assert_eq!(broken.len(), 3, "{broken:?}");
    }

    #[test]
    fn wilson_intervals_hold_the_share_and_narrow_with_photos() {
        let (low, high) = wilson(0.8, 50.0);
        assert!((0.66..0.7).contains(&low) && (0.88..0.9).contains(&high), "{low} {high}");
        let (low, high) = wilson(0.8, 5000.0);
        assert!(high - low < 0.03);
        assert_eq!(wilson(0.5, 0.0), (0.0, 1.0));
    }

    #[test]
    fn too_few_photos_give_no_verdict() {
        let mut c = Comparison::default();
        c.add(&record("a", ShadowRole::Shadow, side("1", "shoe", Decision::Auto), side("2", "bag", Decision::Auto)));
        assert_eq!(BOUNDS.check(&c), Verdict::TooFew { photos: 1, needed: 4 });
    }

    #[test]
    fn permuted_labels_break_agreement_and_a_guard_measures_the_new_version() {
        // A guard: production is the new version (candidate), shadow the old one (baseline).
        let mut c = Comparison::default();
        let pairs = [("shoe", "bag"), ("bag", "shoe"), ("watch", "watch"), ("shoe", "bag")];
        for (i, (new, old)) in pairs.iter().enumerate() {
            let review = if i < 2 { Decision::Review } else { Decision::Auto };
            c.add(&record(&i.to_string(), ShadowRole::Guard, side("5", new, review), side("4", old, Decision::Auto)));
        }
        assert_eq!(c.agreement(), 0.25);
        assert_eq!((c.candidate_review_share(), c.baseline_review_share()), (0.5, 0.0));
        assert_eq!(c.per_class["bag"], ClassAgreement { photos: 2, agreed: 0 }, "by the baseline's label");
        // shoe 2/4 vs 1/4, bag 1/4 vs 2/4: (0.25 + 0.25) / 2.
        assert!((c.label_shift() - 0.25).abs() < 1e-9);
        assert_eq!(c.candidate_ms_quantile(0.5), None, "a guard's candidate is timed elsewhere");
        let Verdict::Outside(broken) = BOUNDS.check(&c) else { panic!("within bounds") };
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken[0].contains("agreement 25.0 % is under 75.0 %"), "{broken:?}");
    }
}

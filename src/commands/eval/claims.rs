//! `autorma eval --claims`: the category check judged on a simulated claim set.
//!
//! Each photo of the class-folder set gets a claim: its own class (an honest return), or for a
//! `--wrong-rate` share of them another class (a wrong-item return). The set is built from the
//! photos' relative paths alone, so the same split (catalogue or bench-style) gets the same
//! claims on every run and machine. Each prediction is then judged as the pipeline judges it
//! ([`judge`]), and a `mismatch` is a flag.

use autorma_classifier::inference::{Prediction, judge};
use autorma_core::{CheckOutcome, Claim};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One photo's simulated claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulatedClaim {
    /// The class claimed (an index into the model's classes).
    pub claimed: usize,
    /// Whether the claim is not the photo's own class.
    pub wrong: bool,
}

/// Claims for photos `(relative path, true class)`: the `round(rate * n)` photos whose path
/// hashes lowest claim another class (chosen by the hash too), the rest their own.
pub fn simulate(photos: &[(String, usize)], classes: usize, rate: f64) -> Vec<SimulatedClaim> {
    let hash = |path: &str| -> u64 {
        let digest = Sha256::digest(path.as_bytes());
        u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    };
    let mut order: Vec<usize> = (0..photos.len()).collect();
    order.sort_by_key(|&i| (hash(&photos[i].0), i));
    let wrong = ((photos.len() as f64) * rate).round() as usize;
    let mut claims: Vec<SimulatedClaim> =
        photos.iter().map(|&(_, class)| SimulatedClaim { claimed: class, wrong: false }).collect();
    for &i in order.iter().take(wrong) {
        let (path, own) = &photos[i];
        // One of the other classes, uniformly.
        let other = (hash(&format!("other:{path}")) % (classes as u64 - 1)) as usize;
        claims[i] = SimulatedClaim { claimed: if other >= *own { other + 1 } else { other }, wrong: true };
    }
    claims
}

/// Thresholds the report also tries, to choose the package's `claim_threshold` on val.
pub const SWEEP: &[f32] = &[0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3];
/// The targets a threshold must meet to be chosen: at most this share of honest returns
/// flagged, and at least this precision.
pub const MAX_HONEST_FLAG_RATE: f64 = 0.005;
pub const MIN_PRECISION: f64 = 0.95;

/// The check at the package's threshold, and over [`SWEEP`].
#[derive(Debug, Serialize)]
pub struct ClaimsEval {
    pub at_package_threshold: ClaimsReport,
    pub sweep: Vec<ClaimsReport>,
    /// Of the sweep's thresholds that meet [`MAX_HONEST_FLAG_RATE`] and [`MIN_PRECISION`] on
    /// this set, the one with the highest recall, the smallest on a tie (the fewest honest
    /// returns at risk for the same catch); meaningful on val, where it is chosen.
    pub chosen: Option<f32>,
}

/// [`score`] at the package's threshold and over the sweep.
pub fn evaluate(
    predictions: &[&Prediction],
    claims: &[SimulatedClaim],
    classes: &[String],
    threshold: f32,
    rate: f64,
) -> ClaimsEval {
    let sweep: Vec<ClaimsReport> = SWEEP.iter().map(|&t| score(predictions, claims, classes, t, rate)).collect();
    let chosen = sweep
        .iter()
        .filter(|r| r.honest_flag_rate <= MAX_HONEST_FLAG_RATE && r.precision >= MIN_PRECISION)
        .min_by(|a, b| b.recall.total_cmp(&a.recall).then(a.threshold.total_cmp(&b.threshold)))
        .map(|r| r.threshold);
    ClaimsEval { at_package_threshold: score(predictions, claims, classes, threshold, rate), sweep, chosen }
}

/// The category check's figures on a claim set.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClaimsReport {
    pub threshold: f32,
    pub wrong_rate: f64,
    pub honest: usize,
    pub wrong: usize,
    /// Photos whose check was `mismatch`, and of those, wrong-item ones.
    pub flagged: usize,
    pub flagged_wrong: usize,
    /// Flagged wrong-item returns over flagged ones (1.0 when none is flagged).
    pub precision: f64,
    /// Flagged wrong-item returns over wrong-item ones.
    pub recall: f64,
    /// Flagged honest returns over honest ones.
    pub honest_flag_rate: f64,
    /// Checks that were `uncertain`: honest and wrong-item returns (they go to review only when
    /// the model is unsure anyway).
    pub uncertain_honest: usize,
    pub uncertain_wrong: usize,
}

/// Judges each prediction against its claim.
pub fn score(
    predictions: &[&Prediction],
    claims: &[SimulatedClaim],
    classes: &[String],
    threshold: f32,
    rate: f64,
) -> ClaimsReport {
    let mut outcomes = Vec::with_capacity(claims.len());
    for (prediction, simulated) in predictions.iter().zip(claims) {
        let claim = Claim { expected_label: Some(classes[simulated.claimed].clone()), ..Claim::default() };
        let verdict = judge(prediction, classes, threshold, Some(&claim), None);
        let outcome = verdict.claim.and_then(|c| c.category).expect("a claimed label is always checked");
        outcomes.push((outcome, simulated.wrong));
    }
    let count = |outcome: CheckOutcome, wrong: bool| outcomes.iter().filter(|&&o| o == (outcome, wrong)).count();
    let wrong = claims.iter().filter(|c| c.wrong).count();
    let honest = claims.len() - wrong;
    let (flagged_wrong, flagged_honest) = (count(CheckOutcome::Mismatch, true), count(CheckOutcome::Mismatch, false));
    let flagged = flagged_wrong + flagged_honest;
    let ratio = |a: usize, b: usize, none: f64| if b == 0 { none } else { a as f64 / b as f64 };
    ClaimsReport {
        threshold,
        wrong_rate: rate,
        honest,
        wrong,
        flagged,
        flagged_wrong,
        precision: ratio(flagged_wrong, flagged, 1.0),
        recall: ratio(flagged_wrong, wrong, 0.0),
        honest_flag_rate: ratio(flagged_honest, honest, 0.0),
        uncertain_honest: count(CheckOutcome::Uncertain, false),
        uncertain_wrong: count(CheckOutcome::Uncertain, true),
    }
}

#[cfg(test)]
mod tests {
    use autorma_classifier::inference::decide;

    use super::*;

    fn photos(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("c{}/{i}.jpg", i % 5), i % 5)).collect()
    }

    #[test]
    fn the_claim_set_is_deterministic_exact_and_wrong_claims_name_another_class() {
        let photos = photos(375);
        let claims = simulate(&photos, 5, 0.1);
        assert_eq!(claims, simulate(&photos, 5, 0.1));
        assert_eq!(claims.iter().filter(|c| c.wrong).count(), 38);
        for (claim, (_, own)) in claims.iter().zip(&photos) {
            assert_eq!(claim.wrong, claim.claimed != *own);
            assert!(claim.claimed < 5);
        }
        let others: std::collections::BTreeSet<usize> = claims.iter().filter(|c| c.wrong).map(|c| c.claimed).collect();
        assert_eq!(others.len(), 5, "every class is claimed wrongly somewhere");
        assert!(simulate(&photos, 5, 0.0).iter().all(|c| !c.wrong));
    }

    #[test]
    fn flags_are_counted_against_the_truth() {
        let classes: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let thresholds = [0.9, 0.9];
        let sure_a = decide(&[0.95, 0.05], &thresholds);
        let unsure_a = decide(&[0.6, 0.4], &thresholds);
        let honest_a = SimulatedClaim { claimed: 0, wrong: false };
        let wrong_b = SimulatedClaim { claimed: 1, wrong: true };
        // A photo of a, sure: claimed b -> flagged (right); photo of b seen as a, sure, claimed
        // b honestly -> flagged (an honest return flagged); unsure a claimed b (0.4, over the
        // threshold) -> uncertain.
        let honest_b = SimulatedClaim { claimed: 1, wrong: false };
        let predictions = [&sure_a, &sure_a, &unsure_a, &sure_a];
        let report = score(&predictions, &[wrong_b, honest_b, wrong_b, honest_a], &classes, 0.1, 0.5);
        assert_eq!(report.threshold, 0.1);
        assert_eq!((report.honest, report.wrong, report.flagged, report.flagged_wrong), (2, 2, 2, 1));
        assert_eq!((report.precision, report.recall, report.honest_flag_rate), (0.5, 0.5, 0.5));
        assert_eq!((report.uncertain_honest, report.uncertain_wrong), (0, 1));

        // The sweep's choice: the highest recall within the targets, then the smallest t.
        let eval = evaluate(&predictions, &[wrong_b, honest_a, wrong_b, honest_a], &classes, 0.1, 0.5);
        assert_eq!(eval.at_package_threshold.threshold, 0.1);
        // Under 0.05 nothing is flagged (recall 0); from 0.1 the sure photo is (recall 0.5, no
        // honest return flagged); the unsure one's 0.4 is past the sweep: 0.1 is chosen.
        assert_eq!(eval.chosen, Some(0.1));
    }
}

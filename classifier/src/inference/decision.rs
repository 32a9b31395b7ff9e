//! Probabilities -> label, confidence and decision (models/PACKAGE.md, "Outputs and decisions").

use autorma_core::Decision;

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index into the package's `classes`.
    pub label: usize,
    pub confidence: f32,
    pub decision: Decision,
    /// One per class, in the package's class order.
    pub probabilities: Vec<f32>,
}

/// `label = argmax` (the first one on a tie), `confidence = max`, `auto` iff
/// `confidence >= thresholds[label]`.
pub fn decide(probabilities: &[f32], thresholds: &[f32]) -> Prediction {
    assert_eq!(probabilities.len(), thresholds.len(), "one threshold per class");
    let mut label = 0;
    for (i, p) in probabilities.iter().enumerate() {
        // `>` keeps the first maximum; a NaN never wins.
        if *p > probabilities[label] || probabilities[label].is_nan() {
            label = i;
        }
    }
    let confidence = probabilities[label];
    let decision = if confidence >= thresholds[label] { Decision::Auto } else { Decision::Review };
    Prediction { label, confidence, decision, probabilities: probabilities.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_inclusive_and_per_label() {
        let p = decide(&[0.1, 0.9, 0.0], &[0.5, 0.9, 0.5]);
        assert_eq!((p.label, p.decision), (1, Decision::Auto));
        let p = decide(&[0.1, 0.89, 0.01], &[0.5, 0.9, 0.5]);
        assert_eq!((p.label, p.decision), (1, Decision::Review));
        let p = decide(&[0.4, 0.2, 0.4], &[0.3, 0.9, 0.9]);
        assert_eq!((p.label, p.decision), (0, Decision::Auto), "ties go to the first class");
    }
}

//! Probabilities -> label, confidence and decision (models/PACKAGE.md, "Outputs and decisions"),
//! then that prediction judged against the photo's claim, if it has one.

use autorma_core::{CheckOutcome, Claim, ClaimCheck, Decision, ProductCheck, ReviewReason};

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

/// What a Result records of a prediction and the photo's claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub review_reason: Option<ReviewReason>,
    pub claim: Option<ClaimCheck>,
}

/// The prediction's decision, unless the photo is not what its claim says: when the model
/// gives the claimed class a probability under `claim_threshold` (the package's, chosen on
/// val), or the product check (`product`, for a claim with a SKU) found the photo unlike the
/// SKU's catalogue photo, the photo goes to review as `wrong_item`, whatever its confidence.
/// The probabilities are calibrated, so the first is the model being confident the photo shows
/// another class, even when it is unsure which (a shirt or a top, claimed as a watch).
pub fn judge(
    prediction: &Prediction,
    classes: &[String],
    claim_threshold: f32,
    claim: Option<&Claim>,
    product: Option<ProductCheck>,
) -> Verdict {
    let category = claim.and_then(|c| c.expected_label.as_deref()).map(|expected| {
        match classes.iter().position(|class| class == expected) {
            Some(claimed) if claimed == prediction.label => CheckOutcome::Match,
            Some(claimed) if prediction.probabilities[claimed] < claim_threshold => CheckOutcome::Mismatch,
            // Unsure, or a class this model does not know: no reason to doubt the customer.
            _ => CheckOutcome::Uncertain,
        }
    });
    let wrong_item = category == Some(CheckOutcome::Mismatch)
        || product.as_ref().is_some_and(|p| p.outcome == CheckOutcome::Mismatch);
    let (decision, review_reason) = match (prediction.decision, wrong_item) {
        (_, true) => (Decision::Review, Some(ReviewReason::WrongItem)),
        (Decision::Review, false) => (Decision::Review, Some(ReviewReason::LowConfidence)),
        (Decision::Auto, false) => (Decision::Auto, None),
    };
    let claim = claim.map(|claim| ClaimCheck { claim: claim.clone(), category, product });
    Verdict { decision, review_reason, claim }
}

/// The product check of a photo whose embedding is `similarity` (cosine) from its claimed
/// SKU's catalogue photo's: a mismatch under the package's embedding `threshold`.
pub fn product_check(similarity: f32, threshold: f32) -> ProductCheck {
    let outcome = if similarity < threshold { CheckOutcome::Mismatch } else { CheckOutcome::Match };
    ProductCheck { outcome, similarity: Some(similarity), detail: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(label: &str) -> Claim {
        Claim { expected_label: Some(label.into()), ..Claim::default() }
    }

    #[test]
    fn a_claim_is_checked_against_the_confident_class() {
        let classes: Vec<String> = ["shirts", "tops", "watches"].map(String::from).to_vec();
        let thresholds = [0.9, 0.9, 0.9];
        let confident_tops = decide(&[0.02, 0.95, 0.03], &thresholds);
        let unsure_tops = decide(&[0.4, 0.5, 0.1], &thresholds);
        let outcome = |p: &Prediction, claim: Option<&Claim>| {
            let v = judge(p, &classes, 0.05, claim, None);
            (v.decision, v.review_reason, v.claim.and_then(|c| c.category))
        };
        use {CheckOutcome::*, Decision::*, ReviewReason::*};
        assert_eq!(outcome(&confident_tops, None), (Auto, None, None));
        assert_eq!(outcome(&confident_tops, Some(&claimed("tops"))), (Auto, None, Some(Match)));
        assert_eq!(outcome(&confident_tops, Some(&claimed("shirts"))), (Review, Some(WrongItem), Some(Mismatch)));
        assert_eq!(outcome(&unsure_tops, Some(&claimed("shirts"))), (Review, Some(LowConfidence), Some(Uncertain)));
        // Unsure between shirts and tops, but sure it is no watch.
        let shirt_or_top = decide(&[0.55, 0.44, 0.01], &thresholds);
        assert_eq!(outcome(&shirt_or_top, Some(&claimed("watches"))), (Review, Some(WrongItem), Some(Mismatch)));
        assert_eq!(outcome(&unsure_tops, Some(&claimed("tops"))), (Review, Some(LowConfidence), Some(Match)));
        assert_eq!(outcome(&confident_tops, Some(&claimed("hats"))), (Auto, None, Some(Uncertain)));
        let sku_only = Claim { sku: Some("1163".into()), ..Claim::default() };
        let v = judge(&confident_tops, &classes, 0.05, Some(&sku_only), None);
        assert_eq!((v.decision, v.claim.unwrap().category), (Auto, None));
    }

    #[test]
    fn a_product_unlike_its_catalogue_photo_is_a_wrong_item() {
        let classes: Vec<String> = ["shirts", "tops"].map(String::from).to_vec();
        let confident_tops = decide(&[0.05, 0.95], &[0.9, 0.9]);
        let claim = Claim { expected_label: Some("tops".into()), sku: Some("1163".into()), ..Claim::default() };
        let check = |similarity: Result<f32, &str>| {
            let product = similarity.map_or_else(|why| ProductCheck::unchecked(why.into()), |s| product_check(s, 0.4));
            let v = judge(&confident_tops, &classes, 0.05, Some(&claim), Some(product));
            let product = v.claim.unwrap().product.unwrap();
            (v.decision, v.review_reason, product.outcome, product.detail)
        };
        use {CheckOutcome::*, Decision::*, ReviewReason::*};
        assert_eq!(check(Ok(0.8)), (Auto, None, Match, None));
        assert_eq!(check(Ok(0.4)), (Auto, None, Match, None), "the threshold itself passes");
        assert_eq!(check(Ok(0.39)), (Review, Some(WrongItem), Mismatch, None));
        let none = check(Err("no catalogue photo for SKU 1163"));
        assert_eq!((none.0, none.2), (Auto, Uncertain));
        assert_eq!(none.3.as_deref(), Some("no catalogue photo for SKU 1163"));
    }

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

//! `autorma eval --claims --catalogue DIR`: the product check judged on a class-folder set
//! against catalogue photos. A photo's SKU is its file name's stem (fashion5's product id);
//! each photo is compared with its own product's catalogue photo (an honest return) and with
//! the catalogue photo of every other product of its class in the set (a wrong item of the same
//! class: the hard case, which the category check cannot see).

use std::collections::HashMap;

use autorma_classifier::inference::cosine;
use serde::Serialize;

/// The share of honest returns a threshold may flag for the recall the report quotes.
pub const FLAG_RATE: f64 = 0.01;

#[derive(Debug, Serialize, PartialEq)]
pub struct ProductEval {
    pub catalogue: String,
    /// The package's embedding threshold (a return below it is flagged).
    pub threshold: f32,
    /// The probability that an honest pair is more similar than a wrong one (ties count half).
    pub roc_auc: f64,
    pub honest_pairs: usize,
    pub wrong_pairs: usize,
    /// At the package's threshold: the share of honest returns flagged, and of wrong ones.
    pub honest_flag_rate: f64,
    pub recall: f64,
    /// The recall at the threshold that flags [`FLAG_RATE`] of this set's honest returns.
    pub recall_at_flag_rate: f64,
    pub flag_rate: f64,
    /// Photos whose SKU has no catalogue photo: not judged.
    pub without_catalogue_photo: usize,
}

/// One classified photo: its SKU, its true class, its embedding.
pub struct Embedded {
    pub sku: String,
    pub class: usize,
    pub embedding: Vec<f32>,
}

/// The figures for `photos` against `catalogue` (embeddings by SKU).
pub fn evaluate(
    photos: &[Embedded],
    catalogue: &HashMap<String, Vec<f32>>,
    threshold: f32,
    catalogue_name: String,
) -> ProductEval {
    let judged: Vec<&Embedded> = photos.iter().filter(|p| catalogue.contains_key(&p.sku)).collect();
    let (mut honest, mut wrong) = (Vec::new(), Vec::new());
    for photo in &judged {
        honest.push(cosine(&photo.embedding, &catalogue[&photo.sku]));
        for other in judged.iter().filter(|o| o.class == photo.class && o.sku != photo.sku) {
            wrong.push(cosine(&photo.embedding, &catalogue[&other.sku]));
        }
    }
    let share_below = |values: &[f32], t: f32| {
        if values.is_empty() { 0.0 } else { values.iter().filter(|&&v| v < t).count() as f64 / values.len() as f64 }
    };
    let at_rate = quantile(&honest, FLAG_RATE);
    ProductEval {
        catalogue: catalogue_name,
        threshold,
        roc_auc: roc_auc(&honest, &wrong),
        honest_pairs: honest.len(),
        wrong_pairs: wrong.len(),
        honest_flag_rate: share_below(&honest, threshold),
        recall: share_below(&wrong, threshold),
        recall_at_flag_rate: share_below(&wrong, at_rate),
        flag_rate: FLAG_RATE,
        without_catalogue_photo: photos.len() - judged.len(),
    }
}

/// P(an honest similarity > a wrong one), ties half: the Mann-Whitney U over both counts.
fn roc_auc(honest: &[f32], wrong: &[f32]) -> f64 {
    if honest.is_empty() || wrong.is_empty() {
        return f64::NAN;
    }
    let mut sorted = wrong.to_vec();
    sorted.sort_by(f32::total_cmp);
    let wins: f64 = honest
        .iter()
        .map(|&h| {
            let below = sorted.partition_point(|&w| w < h);
            let ties = sorted[below..].partition_point(|&w| w <= h);
            below as f64 + ties as f64 / 2.0
        })
        .sum();
    wins / (honest.len() as f64 * wrong.len() as f64)
}

/// The `q` quantile of `values`, interpolated linearly between order statistics (numpy's
/// default), so the Python study and this report cut at the same place.
fn quantile(values: &[f32], q: f64) -> f32 {
    if values.is_empty() {
        return f32::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f32::total_cmp);
    let position = q * (sorted.len() - 1) as f64;
    let (lo, frac) = (position.floor() as usize, position.fract() as f32);
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + frac * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_ties_half() {
        // Honest 0.9 beats all 3, 0.8 beats 2 and ties none, 0.3 ties one (0.3) and beats 0.1.
        assert_eq!(roc_auc(&[0.9, 0.8, 0.3], &[0.1, 0.3, 0.85]), (3.0 + 2.0 + 1.5) / 9.0);
        assert_eq!(quantile(&[4.0, 1.0, 2.0, 3.0], 0.5), 2.5);
        assert_eq!(quantile(&[4.0, 1.0, 2.0, 3.0], 0.0), 1.0);
    }

    #[test]
    fn each_photo_meets_its_own_product_and_the_others_of_its_class() {
        let photo = |sku: &str, class, x: f32| Embedded { sku: sku.into(), class, embedding: vec![x, 1.0 - x] };
        let photos = [photo("a", 0, 1.0), photo("b", 0, 0.0), photo("c", 1, 1.0), photo("d", 1, 1.0)];
        let catalogue: HashMap<String, Vec<f32>> =
            [("a", vec![1.0, 0.0]), ("b", vec![0.0, 1.0]), ("c", vec![1.0, 0.0])]
                .map(|(k, v)| (k.to_string(), v))
                .into();
        let r = evaluate(&photos, &catalogue, 0.5, "cat".into());
        assert_eq!((r.honest_pairs, r.wrong_pairs, r.without_catalogue_photo), (3, 2, 1));
        assert_eq!((r.roc_auc, r.honest_flag_rate, r.recall), (1.0, 0.0, 1.0));
    }
}

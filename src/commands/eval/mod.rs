//! `autorma eval --data DIR`: accuracy, per-class precision/recall/F1, the confusion matrix
//! and the review figures (share sent to a person, accuracy of the photos accepted
//! automatically) on a class-folder data set, through the same preprocessing, ONNX Runtime
//! session and thresholds as production; with `--claims`, the category check on a simulated
//! claim set (`claims.rs`).

mod claims;
mod product;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use autorma_classifier::inference::{EmbeddingSession, ModelSession, Prediction};
use autorma_classifier::preprocess::Preprocessor;
use autorma_core::Decision;
use serde::Serialize;

use super::{list_files, model_setup, preprocess_files};
use crate::cli::EvalArgs;

#[derive(Debug, Serialize)]
pub struct EvalReport {
    pub data: String,
    pub model: autorma_core::ModelRef,
    /// `fp32`, or `int8` for a quantized package.
    pub precision: &'static str,
    pub execution_provider: &'static str,
    /// Photos that were classified (the metrics' denominator).
    pub num_images: usize,
    pub accuracy: f64,
    /// `metrics.test.accuracy` from model.json, to compare against.
    pub recorded_test_accuracy: Option<f64>,
    pub per_class: BTreeMap<String, ClassMetrics>,
    pub confusion: Confusion,
    /// Under the package's per-class thresholds, as the pipeline decides.
    pub review: Review,
    /// `metrics.test.review.share_sent_to_review` from model.json, to compare against.
    pub recorded_test_review_share: Option<f64>,
    /// Photos that could not be classified, with the reason (they are not in the metrics).
    pub failed: Vec<FailedPhoto>,
    /// The category check on simulated claims (`--claims`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<claims::ClaimsEval>,
    /// The product check against catalogue photos (`--claims --catalogue DIR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<product::ProductEval>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// `matrix[true][predicted]`, both indexed by `classes`.
#[derive(Debug, Serialize)]
pub struct Confusion {
    pub classes: Vec<String>,
    pub matrix: Vec<Vec<usize>>,
}

/// Field names as in the Python evaluation's `review` (metrics.review_report).
#[derive(Debug, Serialize, PartialEq)]
pub struct Review {
    pub share_sent_to_review: f64,
    pub accepted: usize,
    /// 1.0 when nothing was accepted (no accepted photo is wrong).
    pub accepted_accuracy: f64,
}

#[derive(Debug, Serialize)]
pub struct FailedPhoto {
    pub file: String,
    pub reason: &'static str,
    pub detail: String,
}

pub async fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let (settings, package) = model_setup(&args.pipeline)?;
    let classes = package.classes().to_vec();
    let labelled = labelled_files(&args.data, &classes)?;
    let runtime = settings.pipeline.runtime.clone();
    let batch_size = settings.pipeline.batcher.max_batch_size;
    let limits = settings.pipeline.limits;
    let data = args.data.display().to_string();
    let wrong_rate = args.claims.then_some(args.wrong_rate);
    let root = args.data.clone();
    // The product check: each photo's catalogue photo (by its SKU, the file name's stem),
    // read here where the store can be awaited.
    let catalogue = match (&settings.pipeline.catalogue, args.claims) {
        (Some(catalogue), true) => {
            let Some(threshold) = package.manifest.embedding.as_ref().map(|e| e.threshold) else {
                bail!(
                    "--catalogue: model {} v{} has no embedding graph for the product check (models/PACKAGE.md, `embedding`)",
                    package.manifest.name,
                    package.manifest.version
                );
            };
            let mut photos = HashMap::new();
            for (path, _) in &labelled {
                let sku = sku_of(path);
                if let Some(object) = catalogue
                    .photo(&sku, limits.max_bytes)
                    .await
                    .with_context(|| format!("cannot read {}", catalogue.describe()))?
                {
                    photos.insert(sku, object.bytes);
                }
            }
            Some((catalogue.describe(), threshold, photos))
        }
        _ => None,
    };
    let report = tokio::task::spawn_blocking(move || -> anyhow::Result<EvalReport> {
        let mut session = ModelSession::new(&package, &runtime)?;
        let mut embedder = match catalogue {
            Some(_) => EmbeddingSession::new(&package, &runtime)?,
            None => None,
        };
        let mut embeddings = Vec::new();
        let preprocessor = Preprocessor::for_package(&package, limits);
        let files: Vec<PathBuf> = labelled.iter().map(|(p, _)| p.clone()).collect();
        let tensors = preprocess_files(&files, &preprocessor);
        // (photo index, prediction) for each photo classified.
        let mut predicted = Vec::new();
        let mut failed = Vec::new();
        let mut batch_idx = Vec::new();
        let mut batch = Vec::new();
        let mut flush = |batch_idx: &mut Vec<usize>,
                         batch: &mut Vec<f32>,
                         predicted: &mut Vec<(usize, Prediction)>|
         -> anyhow::Result<()> {
            if batch_idx.is_empty() {
                return Ok(());
            }
            if let Some(embedder) = embedder.as_mut() {
                embeddings.extend(embedder.embed(batch)?);
            }
            predicted.extend(batch_idx.drain(..).zip(session.predict(batch)?));
            batch.clear();
            Ok(())
        };
        for (i, tensor) in tensors.into_iter().enumerate() {
            match tensor {
                Ok(t) => {
                    batch.extend(t);
                    batch_idx.push(i);
                    if batch_idx.len() == batch_size {
                        flush(&mut batch_idx, &mut batch, &mut predicted)?;
                    }
                }
                Err(e) => failed.push(FailedPhoto {
                    file: files[i].display().to_string(),
                    reason: e.reason.as_str(),
                    detail: e.detail,
                }),
            }
        }
        flush(&mut batch_idx, &mut batch, &mut predicted)?;
        let pairs: Vec<(usize, usize)> = predicted.iter().map(|(i, p)| (labelled[*i].1, p.label)).collect();
        let accepted: Vec<bool> = predicted.iter().map(|(_, p)| p.decision == Decision::Auto).collect();
        let (accuracy, per_class, matrix) = metrics(&pairs, &classes);
        let review = review(&pairs, &accepted);
        // Claims for every photo, so a photo that failed to decode changes no other's claim.
        let claims = wrong_rate.map(|rate| {
            // Paths relative to the set, so a copy of it elsewhere gets the same claims.
            let photos: Vec<(String, usize)> = labelled
                .iter()
                .map(|(path, class)| (path.strip_prefix(&root).unwrap_or(path).to_string_lossy().into_owned(), *class))
                .collect();
            let simulated = claims::simulate(&photos, classes.len(), rate);
            let (predictions, claims): (Vec<&Prediction>, Vec<claims::SimulatedClaim>) =
                predicted.iter().map(|(i, p)| (p, simulated[*i])).unzip();
            claims::evaluate(&predictions, &claims, &classes, package.manifest.claim_threshold, rate)
        });
        let product = match (catalogue, embedder.as_mut()) {
            (Some((name, threshold, photos)), Some(embedder)) => {
                let mut by_sku = HashMap::new();
                for (sku, bytes) in photos {
                    let tensor = preprocessor
                        .preprocess(&bytes)
                        .with_context(|| format!("the catalogue photo of SKU `{sku}` cannot be used"))?;
                    by_sku.insert(sku, embedder.embed(&tensor)?.remove(0));
                }
                let embedded: Vec<product::Embedded> = predicted
                    .iter()
                    .zip(embeddings)
                    .map(|((i, _), embedding)| product::Embedded {
                        sku: sku_of(&labelled[*i].0),
                        class: labelled[*i].1,
                        embedding,
                    })
                    .collect();
                Some(product::evaluate(&embedded, &by_sku, threshold, name))
            }
            _ => None,
        };
        Ok(EvalReport {
            data,
            model: session.model().clone(),
            precision: package.manifest.precision.as_str(),
            execution_provider: session.execution_provider(),
            num_images: pairs.len(),
            accuracy,
            recorded_test_accuracy: package.recorded_test_metric("/accuracy"),
            per_class,
            confusion: Confusion { classes, matrix },
            review,
            recorded_test_review_share: package.recorded_test_metric("/review/share_sent_to_review"),
            failed,
            claims,
            product,
        })
    })
    .await??;

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// A photo's SKU in an evaluation: its file name's stem (fashion5's product id).
fn sku_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `(file, true class index)` for every photo under `<data>/<class>/`; a folder that is not a
/// class of the model is an error (it would silently count as wrong otherwise).
fn labelled_files(data: &Path, classes: &[String]) -> anyhow::Result<Vec<(PathBuf, usize)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(data).with_context(|| format!("cannot read data set `{}`", data.display()))?;
    let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Some(class) = classes.iter().position(|c| *c == name) else {
            bail!("`{}` is not a class of the model (classes: {})", dir.display(), classes.join(", "));
        };
        out.extend(list_files(&dir)?.into_iter().map(|f| (f, class)));
    }
    if out.is_empty() {
        bail!("no photos under `{}` (expected <data>/<class>/<photo>)", data.display());
    }
    Ok(out)
}

/// Accuracy, per-class metrics and the confusion matrix from `(true, predicted)` pairs.
pub fn metrics(pairs: &[(usize, usize)], classes: &[String]) -> (f64, BTreeMap<String, ClassMetrics>, Vec<Vec<usize>>) {
    let n = classes.len();
    let mut matrix = vec![vec![0usize; n]; n];
    for &(t, p) in pairs {
        matrix[t][p] += 1;
    }
    let correct: usize = (0..n).map(|i| matrix[i][i]).sum();
    let accuracy = if pairs.is_empty() { 0.0 } else { correct as f64 / pairs.len() as f64 };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(i, class)| {
            let tp = matrix[i][i];
            let support: usize = matrix[i].iter().sum();
            let predicted: usize = matrix.iter().map(|row| row[i]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            (class.clone(), ClassMetrics { precision, recall, f1, support })
        })
        .collect();
    (accuracy, per_class, matrix)
}

/// The review figures from `(true, predicted)` pairs and whether each was accepted.
pub fn review(pairs: &[(usize, usize)], accepted: &[bool]) -> Review {
    let right: Vec<bool> = pairs.iter().zip(accepted).filter(|(_, a)| **a).map(|((t, p), _)| t == p).collect();
    let share = if pairs.is_empty() { 0.0 } else { 1.0 - right.len() as f64 / pairs.len() as f64 };
    let accepted_accuracy =
        if right.is_empty() { 1.0 } else { right.iter().filter(|r| **r).count() as f64 / right.len() as f64 };
    Review { share_sent_to_review: share, accepted: right.len(), accepted_accuracy }
}

fn print_table(r: &EvalReport) {
    println!(
        "model {} v{} ({}) on {} ({} photos, {})",
        r.model.name, r.model.version, r.precision, r.data, r.num_images, r.execution_provider
    );
    print!("accuracy {:.4}", r.accuracy);
    if let Some(recorded) = r.recorded_test_accuracy {
        print!("  (model.json test accuracy {recorded:.4})");
    }
    println!();
    print!(
        "sent to review {:.2} %, accepted {} photos, {:.2} % of them right",
        r.review.share_sent_to_review * 100.0,
        r.review.accepted,
        r.review.accepted_accuracy * 100.0
    );
    if let Some(recorded) = r.recorded_test_review_share {
        print!("  (model.json test review {:.2} %)", recorded * 100.0);
    }
    println!();
    println!("{:<14} {:>9} {:>9} {:>9} {:>8}", "class", "precision", "recall", "f1", "support");
    for (class, m) in &r.per_class {
        println!("{class:<14} {:>9.4} {:>9.4} {:>9.4} {:>8}", m.precision, m.recall, m.f1, m.support);
    }
    println!("confusion (rows: true, columns: predicted; order: {})", r.confusion.classes.join(", "));
    for (class, row) in r.confusion.classes.iter().zip(&r.confusion.matrix) {
        println!("{class:<14} {}", row.iter().map(|v| format!("{v:>5}")).collect::<String>());
    }
    for f in &r.failed {
        println!("failed: {} ({}: {})", f.file, f.reason, f.detail);
    }
    if let Some(c) = &r.claims {
        let a = &c.at_package_threshold;
        println!(
            "claims: {} honest, {} wrong-item ({:.0} %); a claimed class under probability t is flagged",
            a.honest,
            a.wrong,
            a.wrong_rate * 100.0
        );
        println!(
            "{:>8} {:>8} {:>9} {:>8} {:>14} {:>10}",
            "t", "flagged", "precision", "recall", "honest flagged", "uncertain"
        );
        for (row, mark) in c.sweep.iter().map(|r| (r, "")).chain([(a, "  (the package's)")]) {
            println!(
                "{:>8} {:>8} {:>9.4} {:>8.4} {:>14.4} {:>10}{mark}",
                row.threshold,
                row.flagged,
                row.precision,
                row.recall,
                row.honest_flag_rate,
                row.uncertain_honest + row.uncertain_wrong
            );
        }
        match c.chosen {
            Some(t) => println!(
                "chosen on this set (at most {:.1} % of honest returns flagged, precision at least {:.0} %, \
                 then the highest recall, then the smallest t): {t}",
                claims::MAX_HONEST_FLAG_RATE * 100.0,
                claims::MIN_PRECISION * 100.0
            ),
            None => println!("no t of the sweep meets the targets on this set"),
        }
    }
    if let Some(p) = &r.product {
        println!(
            "product check against {}: {} honest pairs (each photo with its own product's catalogue photo), {} \
             wrong (with the other products of its class); {} photos without a catalogue photo",
            p.catalogue, p.honest_pairs, p.wrong_pairs, p.without_catalogue_photo
        );
        println!(
            "ROC AUC {:.4}; at the package's threshold {}: {:.2} % of honest returns flagged, {:.2} % of wrong ones \
             caught; at a {:.0} % flag rate on honest returns: {:.2} % caught",
            p.roc_auc,
            p.threshold,
            p.honest_flag_rate * 100.0,
            p.recall * 100.0,
            p.flag_rate * 100.0,
            p.recall_at_flag_rate * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_a_hand_computed_example() {
        let classes: Vec<String> = ["a", "b"].map(String::from).to_vec();
        // true a: 3 (2 right, 1 as b); true b: 1 (right).
        let (acc, per_class, matrix) = metrics(&[(0, 0), (0, 0), (0, 1), (1, 1)], &classes);
        assert_eq!(acc, 0.75);
        assert_eq!(matrix, vec![vec![2, 1], vec![0, 1]]);
        assert_eq!(per_class["a"], ClassMetrics { precision: 1.0, recall: 2.0 / 3.0, f1: 0.8, support: 3 });
        let b = &per_class["b"];
        assert_eq!((b.precision, b.recall, b.support), (0.5, 1.0, 1));
    }

    #[test]
    fn review_counts_only_the_accepted_photos() {
        let pairs = [(0, 0), (0, 1), (1, 1), (1, 1)];
        // Accepted: one right, one wrong; two sent to review.
        let r = review(&pairs, &[true, true, false, false]);
        assert_eq!(r, Review { share_sent_to_review: 0.5, accepted: 2, accepted_accuracy: 0.5 });
        let none = review(&pairs, &[false; 4]);
        assert_eq!(none, Review { share_sent_to_review: 1.0, accepted: 0, accepted_accuracy: 1.0 });
    }
}

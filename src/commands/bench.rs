//! `autorma bench --data DIR`: two throughputs measured in one run on the same photos:
//! end-to-end (`autorma run`'s whole path: scan, fetch, decode, batch, infer, write results)
//! and model-only (ONNX Runtime on preprocessed tensors, fixed batch size). The two are
//! measured in interleaved rounds and reported as medians, so a busy neighbour on a shared
//! machine slows both alike and their ratio stays meaningful.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use autorma_classifier::inference::ModelSession;
use autorma_classifier::preprocess::Preprocessor;
use autorma_classifier::{PipelineModel, PipelineStats};
use serde::Serialize;

use super::run::{EmbeddedRun, run_embedded};
use super::{list_files, model_setup, preprocess_files};
use crate::cli::BenchArgs;
use crate::config::FileConfig;

#[derive(Debug, Serialize)]
struct BenchReport {
    data: String,
    num_images: usize,
    execution_provider: String,
    rounds: usize,
    end_to_end: EndToEnd,
    model_only: ModelOnly,
    /// Median end-to-end over median model-only throughput.
    end_to_end_over_model_only: f64,
}

#[derive(Debug, Serialize)]
struct EndToEnd {
    /// Median over the rounds.
    images_per_second: f64,
    per_round: Vec<f64>,
    classified: u64,
    dead_lettered: u64,
    workers: usize,
    intra_threads: usize,
    max_batch_size: usize,
    mean_batch_size: f64,
}

#[derive(Debug, Serialize)]
struct ModelOnly {
    /// Median over the rounds.
    images_per_second: f64,
    per_round: Vec<f64>,
    batch_size: usize,
    intra_threads: usize,
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 }
}

pub async fn bench(args: BenchArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.model_batch_size == 0 {
        bail!("--model-batch-size must be at least 1");
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    let (settings, package) = model_setup(&args.pipeline, file, file_path)?;
    let files = list_files(&args.data)?;
    if files.is_empty() {
        bail!("no files under `{}`", args.data.display());
    }
    let pipeline_config = settings.pipeline.clone();

    // Model only: the same photos, preprocessed once up front, through one session. All cores
    // go to the one session, as the model would get them on a dedicated machine.
    let mut runtime = pipeline_config.runtime.clone();
    runtime.intra_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let model_intra_threads = runtime.intra_threads;
    let batch_size = args.model_batch_size;
    let limits = pipeline_config.limits;
    let model_package = package.clone();
    let (session, tensors, per_item) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut session = ModelSession::new(&model_package, &runtime)?;
        let preprocessor = Preprocessor::for_package(&model_package, limits);
        let tensors: Vec<f32> = preprocess_files(&files, &preprocessor).into_iter().flatten().flatten().collect();
        let per_item = preprocessor.tensor_len();
        if tensors.is_empty() {
            bail!("none of the files is a usable photo");
        }
        // Warm-up: the first run allocates and picks kernels.
        session.predict(&tensors[..per_item * (tensors.len() / per_item).min(batch_size)])?;
        Ok((session, tensors, per_item))
    })
    .await??;
    let provider = session.execution_provider().to_string();
    let mut session = Some(session);
    let tensors = Arc::new(tensors);

    let (mut e2e_rates, mut model_rates) = (Vec::new(), Vec::new());
    let mut last_summary = None;
    for round in 0..args.rounds {
        // End to end, into a throwaway output folder (fresh, so nothing is skipped).
        let out = tempfile::tempdir()?;
        let run = EmbeddedRun {
            inbox: args.data.clone(),
            out: out.path().to_path_buf(),
            bucket: "bench".into(),
            watch: false,
            poll_interval: Duration::from_millis(500),
        };
        let stats = Arc::new(PipelineStats::default());
        let summary = run_embedded(
            &run,
            settings.clone(),
            PipelineModel::Package(package.clone()),
            None,
            stats,
            std::future::pending(),
        )
        .await?;
        e2e_rates.push(summary.items_per_second());

        let mut s = session.take().expect("session is put back after each round");
        let t = tensors.clone();
        let (s, rate) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let n = t.len() / per_item;
            let started = Instant::now();
            for chunk in t.chunks(per_item * batch_size) {
                s.predict(chunk)?;
            }
            Ok((s, n as f64 / started.elapsed().as_secs_f64()))
        })
        .await??;
        session = Some(s);
        model_rates.push(rate);
        tracing::info!(round, end_to_end = e2e_rates[round], model_only = rate, "bench round");
        last_summary = Some(summary);
    }
    let summary = last_summary.expect("at least one round");

    let end_to_end = EndToEnd {
        images_per_second: median(&e2e_rates),
        per_round: e2e_rates,
        classified: summary.classified(),
        dead_lettered: summary.dlq,
        workers: pipeline_config.num_workers,
        intra_threads: pipeline_config.runtime.intra_threads,
        max_batch_size: pipeline_config.batcher.max_batch_size,
        mean_batch_size: summary.batched_items as f64 / summary.batches.max(1) as f64,
    };
    let model_only = ModelOnly {
        images_per_second: median(&model_rates),
        per_round: model_rates,
        batch_size,
        intra_threads: model_intra_threads,
    };
    let report = BenchReport {
        data: args.data.display().to_string(),
        num_images: (end_to_end.classified + end_to_end.dead_lettered) as usize,
        execution_provider: provider,
        rounds: args.rounds,
        end_to_end_over_model_only: end_to_end.images_per_second / model_only.images_per_second,
        end_to_end,
        model_only,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let e = &report.end_to_end;
        let m = &report.model_only;
        println!(
            "{} photos from {} on {}, median of {} interleaved rounds",
            report.num_images, report.data, report.execution_provider, report.rounds
        );
        println!(
            "end-to-end (autorma run): {:>8.1} img/s  ({} worker(s) x {} intra threads, batches up to {}, mean {:.1})",
            e.images_per_second, e.workers, e.intra_threads, e.max_batch_size, e.mean_batch_size
        );
        println!(
            "model only (batch {}):    {:>8.1} img/s  ({} intra threads)",
            m.batch_size, m.images_per_second, m.intra_threads
        );
        println!("end-to-end / model-only:  {:>8.2}", report.end_to_end_over_model_only);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}

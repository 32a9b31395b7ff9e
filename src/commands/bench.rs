//! `autorma bench --data DIR`: two throughputs measured in one run on the same photos:
//! end-to-end (`autorma run`'s whole path: scan, fetch, decode, batch, infer, write results)
//! and model-only (ONNX Runtime on preprocessed tensors, fixed batch size).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use autorma_classifier::PipelineStats;
use autorma_classifier::inference::ModelSession;
use autorma_classifier::preprocess::Preprocessor;
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
    end_to_end: EndToEnd,
    model_only: ModelOnly,
}

#[derive(Debug, Serialize)]
struct EndToEnd {
    images_per_second: f64,
    seconds: f64,
    classified: u64,
    dead_lettered: u64,
    workers: usize,
    intra_threads: usize,
    max_batch_size: usize,
    mean_batch_size: f64,
}

#[derive(Debug, Serialize)]
struct ModelOnly {
    images_per_second: f64,
    seconds: f64,
    batch_size: usize,
    intra_threads: usize,
}

pub async fn bench(args: BenchArgs, file: &FileConfig, file_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    if args.model_batch_size == 0 {
        bail!("--model-batch-size must be at least 1");
    }
    let (settings, package) = model_setup(&args.pipeline, file, file_path)?;
    let files = list_files(&args.data)?;
    if files.is_empty() {
        bail!("no files under `{}`", args.data.display());
    }

    // 1. End to end, into a throwaway output folder (fresh, so nothing is skipped).
    let out = tempfile::tempdir()?;
    let run = EmbeddedRun {
        inbox: args.data.clone(),
        out: out.path().to_path_buf(),
        bucket: "bench".into(),
        watch: false,
        poll_interval: Duration::from_millis(500),
    };
    let pipeline_config = settings.pipeline.clone();
    let summary = run_embedded(
        &run,
        settings.clone(),
        package.clone(),
        Arc::new(PipelineStats::default()),
        std::future::pending(),
    )
    .await?;
    let end_to_end = EndToEnd {
        images_per_second: summary.items_per_second(),
        seconds: summary.elapsed.as_secs_f64(),
        classified: summary.classified(),
        dead_lettered: summary.dlq,
        workers: pipeline_config.num_workers,
        intra_threads: pipeline_config.runtime.intra_threads,
        max_batch_size: pipeline_config.batcher.max_batch_size,
        mean_batch_size: summary.batched_items as f64 / summary.batches.max(1) as f64,
    };

    // 2. Model only: the same photos, preprocessed up front, through one session. All cores
    //    go to the one session, as the model would get them on a dedicated machine.
    let mut runtime = pipeline_config.runtime.clone();
    runtime.intra_threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let batch_size = args.model_batch_size;
    let limits = pipeline_config.limits;
    let (model_only, provider) = tokio::task::spawn_blocking(move || -> anyhow::Result<(ModelOnly, String)> {
        let mut session = ModelSession::new(&package, &runtime)?;
        let preprocessor = Preprocessor::for_package(&package, limits);
        let tensors: Vec<f32> = preprocess_files(&files, &preprocessor).into_iter().flatten().flatten().collect();
        let per_item = preprocessor.tensor_len();
        let n = tensors.len() / per_item;
        if n == 0 {
            bail!("none of the files is a usable photo");
        }
        // Warm-up: the first run allocates and picks kernels.
        session.predict(&tensors[..per_item * n.min(batch_size)])?;
        let started = Instant::now();
        for chunk in tensors.chunks(per_item * batch_size) {
            session.predict(chunk)?;
        }
        let seconds = started.elapsed().as_secs_f64();
        let report = ModelOnly {
            images_per_second: n as f64 / seconds,
            seconds,
            batch_size,
            intra_threads: runtime.intra_threads,
        };
        Ok((report, session.execution_provider().to_string()))
    })
    .await??;

    let report = BenchReport {
        data: args.data.display().to_string(),
        num_images: (end_to_end.classified + end_to_end.dead_lettered) as usize,
        execution_provider: provider,
        end_to_end,
        model_only,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let e = &report.end_to_end;
        let m = &report.model_only;
        println!("{} photos from {} on {}", report.num_images, report.data, report.execution_provider);
        println!(
            "end-to-end (autorma run): {:>8.1} img/s  ({:.2} s; {} worker(s) x {} intra threads, batches up to {}, mean {:.1})",
            e.images_per_second, e.seconds, e.workers, e.intra_threads, e.max_batch_size, e.mean_batch_size
        );
        println!(
            "model only (batch {}):    {:>8.1} img/s  ({:.2} s; {} intra threads)",
            m.batch_size, m.images_per_second, m.seconds, m.intra_threads
        );
    }
    Ok(ExitCode::SUCCESS)
}

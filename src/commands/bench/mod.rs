//! `autorma bench --data DIR`: two throughputs measured in one run on the same photos:
//! end-to-end (`autorma run`'s whole path: scan, fetch, decode, batch, infer, write results)
//! and model-only (ONNX Runtime on preprocessed tensors, fixed batch size). The two are
//! measured in interleaved rounds and reported as medians, so a busy neighbour on a shared
//! machine slows both alike and their ratio stays meaningful.
//!
//! With `--shadow-sample`, a third kind of round runs end-to-end with a shadow model beside
//! production on that share of the photos (the same package under another version), and the
//! report gives what the shadow costs the production path's throughput.
//!
//! Then it explains the gap: the CPU time per photo of each stage alone ([`stages`]), the
//! ceiling those allow on this machine's cores, and the peak resident memory of the run.

mod stages;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use autorma_classifier::inference::ModelSession;
use autorma_classifier::preprocess::Preprocessor;
use autorma_classifier::serving::{ServingModel, ShadowHandle};
use autorma_classifier::{PipelineModel, PipelineStats, ShadowConfig};
use serde::Serialize;
use stages::{StageCpu, cpu_ms_per_item, ms_per_item, peak_rss_mib, process_cpu};

use super::run::{EmbeddedRun, run_embedded};
use super::{list_files, model_setup, preprocess_files};
use crate::cli::BenchArgs;
use crate::config::ModelSettings;

#[derive(Debug, Serialize)]
struct BenchReport {
    data: String,
    num_images: usize,
    /// The package's `precision`: `fp32`, or `int8` for a quantized one.
    precision: &'static str,
    execution_provider: String,
    cores: usize,
    rounds: usize,
    end_to_end: EndToEnd,
    model_only: ModelOnly,
    /// Median end-to-end over median model-only throughput.
    end_to_end_over_model_only: f64,
    /// CPU milliseconds per photo of each stage, timed alone (see `stages.rs`).
    cpu_ms_per_photo: StageCpu,
    /// Photos/s the cores could reach if decode, resize + normalise and inference were all
    /// they did (`cores / CPU per photo`), and the same with read and sink too.
    ceiling_images_per_second: f64,
    ceiling_with_read_and_sink_images_per_second: f64,
    /// Photos/s the cores could read, decode, resize and record if inference cost them
    /// nothing: what they can feed a GPU, whatever its speed.
    feed_ceiling_images_per_second: f64,
    /// Median end-to-end over that ceiling.
    end_to_end_over_ceiling: f64,
    /// End-to-end with a shadow model (`--shadow-sample`).
    shadow: Option<ShadowRounds>,
}

#[derive(Debug, Serialize)]
struct ShadowRounds {
    sample: f64,
    /// Median over the rounds.
    images_per_second: f64,
    per_round: Vec<f64>,
    /// Photos the shadow ran, per round.
    shadowed_per_round: Vec<u64>,
    /// Each round's throughput over the plain end-to-end round before it: pairs taken on the
    /// same machine a moment apart; the median of those ratios.
    over_end_to_end: f64,
}

#[derive(Debug, Serialize)]
struct EndToEnd {
    /// Median over the rounds.
    images_per_second: f64,
    per_round: Vec<f64>,
    /// CPU milliseconds per photo of the whole run, all threads (median over the rounds):
    /// beyond the stages' sum, what scanning, session start, scheduling and copies cost.
    cpu_ms_per_photo: f64,
    /// The bench process's peak resident memory after its first end-to-end round, before it
    /// loads anything for the model-only rounds: what `autorma run` on these photos takes.
    peak_rss_mib: Option<f64>,
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

/// One end-to-end round into a throwaway output folder (fresh, so nothing is skipped): its
/// summary, and its CPU milliseconds per photo.
async fn end_to_end_round(
    args: &BenchArgs,
    settings: &ModelSettings,
    package: &Arc<autorma_registry::ModelPackage>,
    shadow: Option<&Arc<ServingModel>>,
) -> anyhow::Result<(autorma_classifier::PipelineSummary, f64, u64)> {
    let mut settings = settings.clone();
    // The shadow's records are counted, as a worker's publisher would take them.
    let shadowed = shadow.map(|model| {
        let models = ShadowHandle::default();
        models.set_candidate(Some(model.clone()));
        let (records, mut queue) = tokio::sync::mpsc::channel(256);
        settings.pipeline.shadow = Some(ShadowConfig { models, sample: args.shadow_sample, records });
        tokio::spawn(async move {
            let mut n = 0;
            while queue.recv().await.is_some() {
                n += 1;
            }
            n
        })
    });
    let out = tempfile::tempdir()?;
    let run = EmbeddedRun {
        inbox: args.data.clone(),
        out: out.path().to_path_buf(),
        bucket: "bench".into(),
        watch: false,
        poll_interval: Duration::from_millis(500),
        claims: Arc::default(),
    };
    let stats = Arc::new(PipelineStats::default());
    let started = process_cpu();
    let model = PipelineModel::Package(package.clone());
    let summary = run_embedded(&run, settings, model, None, stats, std::future::pending()).await?;
    let photos = (summary.classified() + summary.dlq) as usize;
    let shadowed = match shadowed {
        Some(counting) => counting.await.expect("counting shadow records panicked"),
        None => 0,
    };
    Ok((summary, ms_per_item(process_cpu() - started, photos), shadowed))
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (settings, package) = model_setup(&args.pipeline)?;
    let files = list_files(&args.data)?;
    if files.is_empty() {
        bail!("no files under `{}`", args.data.display());
    }
    let pipeline_config = settings.pipeline.clone();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // The first end-to-end round comes before anything else is loaded, so the process's peak
    // memory then is the run's.
    let (mut e2e_rates, mut e2e_cpu) = (Vec::new(), Vec::new());
    let (first, cpu, _) = end_to_end_round(&args, &settings, &package, None).await?;
    let peak_rss = peak_rss_mib();
    e2e_rates.push(first.items_per_second());
    e2e_cpu.push(cpu);
    let mut last_summary = first;

    // Model only: the same photos, preprocessed once up front, through one session. All cores
    // go to the one session, as the model would get them on a dedicated machine.
    let mut runtime = pipeline_config.runtime.clone();
    runtime.intra_threads = cores;
    let model_intra_threads = runtime.intra_threads;
    let batch_size = args.model_batch_size as usize;
    let preprocessor = Preprocessor::for_package(&package, pipeline_config.limits);
    let (model_package, model_files, model_preprocessor) = (package.clone(), files.clone(), preprocessor.clone());
    let (session, tensors, per_item) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut session = ModelSession::new(&model_package, &runtime)?;
        let tensors: Vec<f32> =
            preprocess_files(&model_files, &model_preprocessor).into_iter().flatten().flatten().collect();
        let per_item = model_preprocessor.tensor_len();
        if tensors.is_empty() {
            bail!("none of the files is a usable photo");
        }
        // Warm-up: the first run allocates and picks kernels.
        session.predict(&tensors[..per_item * (tensors.len() / per_item).min(batch_size)])?;
        Ok((session, tensors, per_item))
    })
    .await??;
    let provider = session.execution_provider().to_string();
    let model_ref = session.model().clone();
    let mut session = Some(session);
    let tensors = Arc::new(tensors);
    let shadow_model = match args.shadow_sample {
        0.0 => None,
        _ => Some(shadow_model(&package, &pipeline_config).await?),
    };
    let (mut shadow_rates, mut shadow_ratios, mut shadowed) = (Vec::new(), Vec::new(), Vec::new());

    let (mut model_rates, mut model_cpu) = (Vec::new(), Vec::new());
    for round in 0..args.rounds as usize {
        if round > 0 {
            let (summary, cpu, _) = end_to_end_round(&args, &settings, &package, None).await?;
            e2e_rates.push(summary.items_per_second());
            e2e_cpu.push(cpu);
            last_summary = summary;
        }
        if let Some(model) = &shadow_model {
            let (summary, _, n) = end_to_end_round(&args, &settings, &package, Some(model)).await?;
            shadow_rates.push(summary.items_per_second());
            shadow_ratios.push(summary.items_per_second() / e2e_rates[round]);
            shadowed.push(n);
        }
        let mut s = session.take().expect("session is put back after each round");
        let t = tensors.clone();
        let (s, rate, cpu) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let n = t.len() / per_item;
            let started = Instant::now();
            let (done, cpu) =
                cpu_ms_per_item(n, || t.chunks(per_item * batch_size).try_for_each(|c| s.predict(c).map(drop)));
            done?;
            Ok((s, n as f64 / started.elapsed().as_secs_f64(), cpu))
        })
        .await??;
        session = Some(s);
        model_rates.push(rate);
        model_cpu.push(cpu);
        tracing::info!(round, end_to_end = e2e_rates[round], model_only = rate, "bench round");
    }
    let summary = last_summary;

    // Each stage alone, on one thread.
    let mut cpu = {
        let (files, preprocessor) = (files.clone(), preprocessor.clone());
        tokio::task::spawn_blocking(move || stages::preprocessing(&files, &preprocessor)).await??
    };
    cpu.inference = median(&model_cpu);
    let sink_concurrency = settings.pipeline.sink_concurrency;
    cpu.sink =
        stages::sink(tensors.len() / per_item, sink_concurrency, &model_ref, package.classes(), &provider).await?;
    // Photos/s the cores reach when each photo costs them `ms` of CPU.
    let on_the_cores = |ms: f64| cores as f64 * 1e3 / ms;
    let ceiling = on_the_cores(cpu.essential());

    let end_to_end = EndToEnd {
        images_per_second: median(&e2e_rates),
        per_round: e2e_rates,
        cpu_ms_per_photo: median(&e2e_cpu),
        peak_rss_mib: peak_rss,
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
        precision: package.manifest.precision.as_str(),
        execution_provider: provider,
        cores,
        rounds: args.rounds as usize,
        end_to_end_over_model_only: end_to_end.images_per_second / model_only.images_per_second,
        ceiling_images_per_second: ceiling,
        ceiling_with_read_and_sink_images_per_second: on_the_cores(cpu.total()),
        feed_ceiling_images_per_second: on_the_cores(cpu.feeding()),
        end_to_end_over_ceiling: end_to_end.images_per_second / ceiling,
        shadow: shadow_model.map(|_| ShadowRounds {
            sample: args.shadow_sample,
            images_per_second: median(&shadow_rates),
            per_round: shadow_rates,
            shadowed_per_round: shadowed,
            over_end_to_end: median(&shadow_ratios),
        }),
        cpu_ms_per_photo: cpu,
        end_to_end,
        model_only,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// The package again as a shadow: one session, under another version name (a shadow of the
/// serving model itself is never run).
async fn shadow_model(
    package: &Arc<autorma_registry::ModelPackage>,
    config: &autorma_classifier::PipelineConfig,
) -> anyhow::Result<Arc<ServingModel>> {
    let (package, runtime, limits) = (package.clone(), config.runtime.clone(), config.limits);
    let mut model = tokio::task::spawn_blocking(move || ServingModel::load(package, &runtime, limits, 1))
        .await
        .expect("loading the shadow panicked")?;
    model.model.version = format!("{}-shadow", model.model.version);
    Ok(Arc::new(model))
}

fn print_report(report: &BenchReport) {
    let (e, m, c) = (&report.end_to_end, &report.model_only, &report.cpu_ms_per_photo);
    println!(
        "{} photos from {}, {} model on {} ({} cores), median of {} interleaved rounds",
        report.num_images, report.data, report.precision, report.execution_provider, report.cores, report.rounds
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
    if let Some(shadow) = &report.shadow {
        println!(
            "end-to-end with a shadow on {:.0} % of photos: {:>8.1} img/s, {:.3} of end-to-end's (median of the rounds' ratios; a cost of {:.1} %), {:?} photos shadowed per round",
            100.0 * shadow.sample,
            shadow.images_per_second,
            shadow.over_end_to_end,
            100.0 * (1.0 - shadow.over_end_to_end),
            shadow.shadowed_per_round
        );
    }
    println!("CPU per photo, each stage alone (ms; inference from the model-only rounds):");
    for (stage, ms) in [
        ("read", c.read),
        ("decode", c.decode),
        ("resize + normalise", c.resize_normalise),
        ("inference", c.inference),
        ("sink", c.sink),
    ] {
        println!("  {stage:<20} {ms:>7.2}");
    }
    println!("  {:<20} {:>7.2}  (the whole run, all threads)", "end-to-end", e.cpu_ms_per_photo);
    println!(
        "ceiling (decode + resize + inference on {} cores): {:.1} img/s; with read and sink: {:.1}; end-to-end reaches {:.0} %",
        report.cores,
        report.ceiling_images_per_second,
        report.ceiling_with_read_and_sink_images_per_second,
        report.end_to_end_over_ceiling * 100.0
    );
    println!(
        "feed ceiling (read + decode + resize + sink, inference elsewhere): {:.1} img/s",
        report.feed_ceiling_images_per_second
    );
    match e.peak_rss_mib {
        Some(mib) => println!("peak resident memory of the run: {mib:.0} MiB"),
        None => println!("peak resident memory of the run: unknown (no /proc/self/status)"),
    }
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

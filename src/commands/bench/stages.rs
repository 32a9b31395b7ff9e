//! Where a photo's CPU time goes, stage by stage: read, decode and resize + normalise timed
//! per photo on one thread (that thread's CPU time); inference from the model-only rounds
//! (the process's CPU time: all of ONNX Runtime's threads, at the model-only batch size); the
//! sink as results written with the pipeline's sink concurrency (the process's CPU time).
//! Their sum per photo bounds what the cores can reach.

use std::path::PathBuf;
use std::time::Duration;

use autorma_classifier::preprocess::{Preprocessor, decode_rgb, letterbox_resize, normalise_into};
use autorma_core::{Decision, ItemRef, ModelRef, ResultRecord, ResultSink, StageTimings};
use autorma_sink::LocalSink;
use futures::StreamExt;
use serde::Serialize;

/// CPU milliseconds per photo in each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageCpu {
    /// Reading the file (the page cache warm).
    pub read: f64,
    /// Bytes to RGB pixels.
    pub decode: f64,
    /// Letterbox, resize to the input size, normalise to the f32 tensor.
    pub resize_normalise: f64,
    /// The model in the model-only rounds: their batch size, all of its threads.
    pub inference: f64,
    /// One result written by the embedded sink (its JSON file).
    pub sink: f64,
}

impl StageCpu {
    /// Decode, preprocess and inference: what no pipeline can avoid.
    pub fn essential(&self) -> f64 {
        self.decode + self.resize_normalise + self.inference
    }

    pub fn total(&self) -> f64 {
        self.read + self.essential() + self.sink
    }

    /// Everything but inference: what the cores spend per photo feeding a model that runs
    /// elsewhere (a GPU).
    pub fn feeding(&self) -> f64 {
        self.total() - self.inference
    }
}

/// CPU time this process has used so far, all threads.
pub fn process_cpu() -> Duration {
    cpu_clock(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// CPU time the calling thread has used so far.
fn thread_cpu() -> Duration {
    cpu_clock(libc::CLOCK_THREAD_CPUTIME_ID)
}

fn cpu_clock(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into; the clock ids are constants Linux knows.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime({clock}) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Milliseconds per item of `total` spread over `n` items.
pub fn ms_per_item(total: Duration, n: usize) -> f64 {
    total.as_secs_f64() * 1e3 / n.max(1) as f64
}

/// CPU milliseconds per item of `work` over `n` items, all threads.
pub fn cpu_ms_per_item<T>(n: usize, work: impl FnOnce() -> T) -> (T, f64) {
    let started = process_cpu();
    let out = work();
    (out, ms_per_item(process_cpu() - started, n))
}

/// Times read, decode and resize + normalise of each photo of `files` on this thread, one
/// photo in memory at a time; files that do not read or decode are left out of every stage.
/// Run after the end-to-end rounds, so the page cache holds the files.
pub fn preprocessing(files: &[PathBuf], preprocessor: &Preprocessor) -> anyhow::Result<StageCpu> {
    let (mut read, mut decode, mut resize_normalise, mut n) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    let mut tensor = vec![0.0; preprocessor.tensor_len()];
    for file in files {
        let started = thread_cpu();
        let Ok(bytes) = std::fs::read(file) else { continue };
        let was_read = thread_cpu();
        let Ok(image) = decode_rgb(&bytes, &preprocessor.limits, preprocessor.background, preprocessor.size) else {
            continue;
        };
        let decoded = thread_cpu();
        let square = letterbox_resize(&image, preprocessor.size, preprocessor.background);
        normalise_into(&square, preprocessor.scale, preprocessor.mean, preprocessor.std, &mut tensor);
        let done = thread_cpu();
        (read, decode, resize_normalise, n) =
            (read + (was_read - started), decode + (decoded - was_read), resize_normalise + (done - decoded), n + 1);
    }
    if n == 0 {
        anyhow::bail!("none of the files is a usable photo");
    }
    Ok(StageCpu {
        read: ms_per_item(read, n),
        decode: ms_per_item(decode, n),
        resize_normalise: ms_per_item(resize_normalise, n),
        ..StageCpu::default()
    })
}

/// Times `n` results written by the embedded sink, into a throwaway folder.
pub async fn sink(
    n: usize,
    concurrency: usize,
    model: &ModelRef,
    classes: &[String],
    execution_provider: &str,
) -> anyhow::Result<f64> {
    let out = tempfile::tempdir()?;
    let sink = LocalSink::open(out.path())?;
    let records: Vec<ResultRecord> = (0..n)
        .map(|i| ResultRecord {
            item: ItemRef { bucket: "bench".into(), key: format!("photos/{i:06}.jpg"), etag: format!("{i:032x}") },
            label: classes[i % classes.len()].clone(),
            confidence: 0.9,
            probabilities: classes.iter().map(|c| (c.clone(), 1.0 / classes.len() as f32)).collect(),
            decision: Decision::Auto,
            review_reason: None,
            claim: None,
            model: model.clone(),
            execution_provider: execution_provider.to_string(),
            timings_ms: StageTimings::default(),
            processed_at: chrono::Utc::now(),
            read_at: None,
        })
        .collect();
    let started = process_cpu();
    // As many writes in flight as the pipeline's sink stage keeps.
    let mut writes = futures::stream::iter(records.iter().map(|record| sink.write_result(record)))
        .buffer_unordered(concurrency.max(1));
    while let Some(written) = writes.next().await {
        written?;
    }
    sink.flush().await?;
    Ok(ms_per_item(process_cpu() - started, n))
}

/// The highest resident memory of this process so far, in MiB (Linux's VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

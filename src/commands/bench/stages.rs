//! Where a photo's CPU time goes: each stage of `autorma run`'s path timed alone, one photo
//! after another on one thread, in process CPU time (so the ONNX Runtime threads of the
//! inference count too). Their sum per photo bounds what the cores can reach.

use std::path::PathBuf;
use std::time::Duration;

use autorma_classifier::preprocess::{Preprocessor, decode_rgb, letterbox_resize, normalise_into};
use autorma_core::{Decision, ItemRef, ModelRef, ResultRecord, ResultSink, StageTimings};
use autorma_sink::LocalSink;
use serde::Serialize;

/// CPU milliseconds per photo in each stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageCpu {
    /// Reading the file (the page cache warm, as in the bench's rounds).
    pub read: f64,
    /// Bytes to RGB pixels.
    pub decode: f64,
    /// Letterbox, resize to the input size, normalise to the f32 tensor.
    pub resize_normalise: f64,
    /// The model, at the model-only batch size, all its threads.
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
}

/// CPU time this process has used so far, all threads.
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec to write into; the clock id is a constant Linux knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// CPU milliseconds per item of `work` over `n` items.
pub fn cpu_ms_per_item<T>(n: usize, work: impl FnOnce() -> T) -> (T, f64) {
    let started = process_cpu();
    let out = work();
    (out, (process_cpu() - started).as_secs_f64() * 1e3 / n.max(1) as f64)
}

/// Times read, decode and resize + normalise over `files` (the photos that decode; the
/// others are left out of every stage). Run after the end-to-end rounds: the page cache
/// holds the files, as it does for a run on photos just written.
pub fn preprocessing(files: &[PathBuf], preprocessor: &Preprocessor) -> anyhow::Result<StageCpu> {
    let decodes = |b: &[u8]| decode_rgb(b, &preprocessor.limits, preprocessor.background).is_ok();
    let photos: Vec<&PathBuf> = files.iter().filter(|f| std::fs::read(f).is_ok_and(|b| decodes(&b))).collect();
    let n = photos.len();
    if n == 0 {
        anyhow::bail!("none of the files is a usable photo");
    }
    let (bytes, read) = cpu_ms_per_item(n, || photos.iter().map(std::fs::read).collect::<Result<Vec<_>, _>>());
    let bytes = bytes?;
    let (images, decode) = cpu_ms_per_item(n, || {
        bytes
            .iter()
            .map(|b| decode_rgb(b, &preprocessor.limits, preprocessor.background).expect("decoded before"))
            .collect::<Vec<_>>()
    });
    let mut tensor = vec![0.0; preprocessor.tensor_len()];
    let (_, resize_normalise) = cpu_ms_per_item(n, || {
        for image in &images {
            let square = letterbox_resize(image, preprocessor.size, preprocessor.background);
            normalise_into(&square, preprocessor.scale, preprocessor.mean, preprocessor.std, &mut tensor);
        }
    });
    Ok(StageCpu { read, decode, resize_normalise, ..StageCpu::default() })
}

/// Times `n` results written by the embedded sink, into a throwaway folder.
pub async fn sink(n: usize, model: &ModelRef, classes: &[String], execution_provider: &str) -> anyhow::Result<f64> {
    let out = tempfile::tempdir()?;
    let sink = LocalSink::open(out.path())?;
    let records: Vec<ResultRecord> = (0..n)
        .map(|i| ResultRecord {
            item: ItemRef { bucket: "bench".into(), key: format!("photos/{i:06}.jpg"), etag: format!("{i:032x}") },
            label: classes[i % classes.len()].clone(),
            confidence: 0.9,
            probabilities: classes.iter().map(|c| (c.clone(), 1.0 / classes.len() as f32)).collect(),
            decision: Decision::Auto,
            model: model.clone(),
            execution_provider: execution_provider.to_string(),
            timings_ms: StageTimings::default(),
            processed_at: chrono::Utc::now(),
        })
        .collect();
    let started = process_cpu();
    for record in &records {
        sink.write_result(record).await?;
    }
    sink.flush().await?;
    Ok((process_cpu() - started).as_secs_f64() * 1e3 / n.max(1) as f64)
}

/// The highest resident memory of this process so far, in MiB (Linux's VmHWM).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

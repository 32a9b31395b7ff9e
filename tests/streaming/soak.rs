//! The soak: photos PUT at a steady rate through the streaming system (Kafka, versitygw, ingest,
//! one worker, `serve --streaming`) for a while, with a line every sample interval: each
//! process's resident memory, the backlog (photos PUT and not yet on `rma.results`) and the
//! upload-to-result p95 of the interval. At the end every photo must have come out, and, for a
//! run of 10 minutes or more, each process's memory (the median of three samples) must be
//! within 10 % of its value at 5 minutes and the backlog bounded (at most 10 seconds of photos
//! at the last sample).
//!
//! CI runs 20 s at 10 photos/s (every photo out, the lines printed); `infra/soak.sh` runs 30
//! minutes at 50 photos/s. AUTORMA_SOAK_SECS, AUTORMA_SOAK_RATE and AUTORMA_SOAK_SAMPLE_SECS
//! set the size.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::stack::{StackOptions, wait_until};
use super::{percentile, serial, stack_with_serve, test_photos};

const PROCESSES: [&str; 5] = ["kafka", "versitygw", "ingest", "worker-a", "serve"];
const TOKEN: &str = "soak";
/// When the memory a later sample is held to was taken.
const SETTLED: Duration = Duration::from_secs(300);

fn env_or(name: &str, default: f64) -> f64 {
    std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e}")))
}

#[test]
fn a_steady_stream_keeps_memory_and_backlog_flat() {
    let _serial = serial();
    let run = Duration::from_secs_f64(env_or("AUTORMA_SOAK_SECS", 20.0));
    let rate = env_or("AUTORMA_SOAK_RATE", 10.0);
    let sample = Duration::from_secs_f64(env_or("AUTORMA_SOAK_SAMPLE_SECS", 5.0));
    let split: Vec<Vec<u8>> = test_photos().iter().map(|(_, path)| std::fs::read(path).unwrap()).collect();

    let (stack, results, s3) = stack_with_serve(StackOptions::default(), TOKEN);
    eprintln!(
        "[soak] {:.0} s at {rate}/s; every {:.0} s: elapsed, resident MiB of {}, backlog, p95 ms",
        run.as_secs_f64(),
        sample.as_secs_f64(),
        PROCESSES.join(", ")
    );

    let start = Instant::now();
    let mut put_at: HashMap<String, Instant> = HashMap::new();
    let mut next_sample = start + sample;
    // (elapsed, resident MiB by process, backlog)
    let mut samples: Vec<(Duration, Vec<f64>, usize)> = Vec::new();
    let mut window: Vec<String> = Vec::new();
    for i in 0.. {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if due >= start + run {
            break;
        }
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let key = format!("inbox/soak/{i:07}.jpg");
        s3.put(&key, split[i % split.len()].clone());
        put_at.insert(key.clone(), Instant::now());
        window.push(key);
        if Instant::now() >= next_sample {
            let seen = results.first_by_key();
            let mut latencies: Vec<f64> = window
                .iter()
                .filter_map(|k| seen.get(k).map(|r| (r.seen - put_at[k]).as_secs_f64() * 1000.0))
                .collect();
            latencies.sort_by(f64::total_cmp);
            let memory: Vec<f64> = PROCESSES.iter().map(|p| stack.rss_mib(p)).collect();
            let backlog = put_at.keys().filter(|k| !seen.contains_key(*k)).count();
            eprintln!(
                "[soak] {:6.0} s  {}  backlog {backlog}  p95 {:.0} ms",
                start.elapsed().as_secs_f64(),
                memory.iter().map(|m| format!("{m:.0}")).collect::<Vec<_>>().join(" "),
                if latencies.is_empty() { f64::NAN } else { percentile(&latencies, 0.95) }
            );
            samples.push((start.elapsed(), memory, backlog));
            window.clear();
            next_sample += sample;
        }
    }
    let total = put_at.len();
    wait_until("every photo's result", Duration::from_secs(120), || results.num_distinct_keys() >= total);
    assert_eq!(results.duplicates(), vec![], "each photo's result once");

    // Over a long run: memory flat after the first 5 minutes, and the backlog bounded.
    if run >= Duration::from_secs(600) {
        // Each the median of three samples: a garbage-collected process (versitygw is Go)
        // swings by several MiB between two samples, and one sample would judge the swing.
        let first = samples.iter().position(|(at, _, _)| *at >= SETTLED).expect("a sample after 5 minutes");
        let median = |from: usize, process: usize| {
            let mut three: Vec<f64> =
                samples[from..(from + 3).min(samples.len())].iter().map(|s| s.1[process]).collect();
            three.sort_by(f64::total_cmp);
            three[three.len() / 2]
        };
        let (_, _, backlog) = samples.last().unwrap();
        for (i, process) in PROCESSES.iter().enumerate() {
            let (settled, last) = (median(first, i), median(samples.len().saturating_sub(3), i));
            let growth = last / settled - 1.0;
            eprintln!("[measured] soak: {process} resident {settled:.0} MiB at 5 min, {last:.0} MiB at the end");
            assert!(growth.abs() <= 0.10, "{process}: resident memory moved {:.0} % after 5 minutes", growth * 100.0);
        }
        assert!(*backlog as f64 <= rate * 10.0, "a backlog of {backlog} photos at the end of the run");
    }
}

//! What a photo costs the streaming system, measured the way issue 26 measured it: photos PUT
//! 8 at a time into the bucket, each process's CPU time read from `/proc/PID/stat` before and
//! after, less its idle rate (10 s with nothing to do); and the requests the broker answered
//! per photo, by API, from its request log (`KAFKA_REQUEST_LOG`), for the clients of the
//! pipeline (`client.id` `autorma`) and for versitygw's notifications. The worker is set
//! against `autorma run` on the same photos (its CPU as a child process).
//!
//! Two bursts: the first on the freshly started stack (the measurement, where the
//! broker's JIT compiler is still at work), the second once it is warm. The figures are
//! printed: they depend on the machine. What is asserted is that every photo came out, and
//! that the pipeline's requests per photo stay under a bound that a per-photo send, commit or
//! fetch would break (each costs the broker a request per photo at least). CI runs 375 photos
//! a burst; `infra/cost.sh` 750 (AUTORMA_COST_PHOTOS).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::stack::{Stack, StackOptions, root, wait_until};
use super::{serial, stack_with_serve, test_photos};

const PROCESSES: [&str; 5] = ["kafka", "versitygw", "ingest", "worker-a", "serve"];
/// What a pipeline that batches its requests stays under (measured 1.3 to 1.9 in a burst of 750
/// on 2 cores); a transaction per photo would cost 5 or more.
const MAX_PIPELINE_REQUESTS_PER_PHOTO: f64 = 3.0;
const TOKEN: &str = "cost";

/// CPU seconds of each process so far.
fn cpu(stack: &Stack) -> Vec<f64> {
    PROCESSES.iter().map(|p| stack.cpu_secs(p)).collect()
}

/// CPU time of the waited-for children of this process, in seconds.
fn children_cpu_secs() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[test]
fn what_a_photo_costs_the_broker_the_bucket_and_the_worker() {
    let _serial = serial();
    let count: usize = std::env::var("AUTORMA_COST_PHOTOS").map_or(375, |v| v.parse().expect("AUTORMA_COST_PHOTOS"));
    let split = test_photos();
    let options = StackOptions { broker_request_log: true, ..StackOptions::default() };
    let (stack, results, s3) = stack_with_serve(options, TOKEN);

    // The idle rate: what each process burns with nothing to do (heartbeats, fetch waits).
    std::thread::sleep(Duration::from_secs(2));
    let (idle_from, idle_start) = (cpu(&stack), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let idle_secs = idle_start.elapsed().as_secs_f64();
    let idle_rate: Vec<f64> = cpu(&stack).iter().zip(&idle_from).map(|(a, b)| (a - b) / idle_secs).collect();

    // The same photos through `autorma run`, for the worker's overhead.
    let inbox = stack.dir.path().join("run-inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    for i in 0..count {
        std::fs::copy(&split[i % split.len()].1, inbox.join(format!("{i:05}.jpg"))).unwrap();
    }
    let run_before = children_cpu_secs();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_autorma"))
        .args(["run", "--no-progress", "--inbox"])
        .arg(&inbox)
        .arg("--out")
        .arg(stack.dir.path().join("run-out"))
        .env("AUTORMA_MODEL", root().join("models/fashion5"))
        .env("AUTORMA_LOG", "warn")
        .env_remove("AUTORMA_CONFIG")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let run_ms = (children_cpu_secs() - run_before) * 1000.0 / count as f64;

    for (burst, what) in [(0, "the freshly started stack"), (1, "the same stack, warm")] {
        let photos: Vec<(String, Vec<u8>)> = (0..count)
            .map(|i| (format!("inbox/cost/{burst}/{i:05}.jpg"), std::fs::read(&split[i % split.len()].1).unwrap()))
            .collect();
        let requests_before = stack.broker_requests();
        let (before, start) = (cpu(&stack), Instant::now());
        s3.put_all_at(photos, 8);
        let done = count * (burst + 1);
        wait_until("a result per photo", Duration::from_secs(300), || results.num_distinct_keys() >= done);
        // The last transactions and fetches of the burst.
        std::thread::sleep(Duration::from_secs(1));
        let secs = start.elapsed().as_secs_f64();
        let after = cpu(&stack);
        let requests = stack.broker_requests();

        let per_photo_ms: Vec<f64> = (0..PROCESSES.len())
            .map(|i| ((after[i] - before[i]) - idle_rate[i] * secs).max(0.0) * 1000.0 / count as f64)
            .collect();
        let by_api: BTreeMap<&(String, String), f64> = requests
            .iter()
            .map(|(key, n)| (key, (n - requests_before.get(key).copied().unwrap_or(0)) as f64 / count as f64))
            .collect();
        let pipeline: f64 = by_api.iter().filter(|((client, _), _)| client == "autorma").map(|(_, n)| n).sum();
        let listed: Vec<String> = by_api
            .iter()
            .filter(|(_, n)| **n >= 0.005)
            .map(|((client, api), n)| format!("{} {api} {n:.2}", if client.is_empty() { "versitygw" } else { client }))
            .collect();
        eprintln!(
            "[measured] {count} photos PUT 8 at a time on {what} ({secs:.1} s, {:.0} photos/s); CPU per photo, idle \
             rate subtracted (ms): {}; `autorma run` on the same photos {run_ms:.2} (worker/run {:.2})",
            count as f64 / secs,
            PROCESSES.iter().zip(&per_photo_ms).map(|(p, ms)| format!("{p} {ms:.2}")).collect::<Vec<_>>().join(", "),
            per_photo_ms[3] / run_ms
        );
        eprintln!(
            "[measured] broker requests per photo on {what}: {pipeline:.2} from the pipeline's processes; by client \
             and API: {}",
            listed.join(", ")
        );
        assert!(
            pipeline <= MAX_PIPELINE_REQUESTS_PER_PHOTO,
            "the pipeline made {pipeline:.2} broker requests per photo (at most {MAX_PIPELINE_REQUESTS_PER_PHOTO}): {listed:?}"
        );
    }
}

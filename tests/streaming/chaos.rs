//! The chaos suite: the whole streaming system (Kafka, versitygw, `autorma ingest`, two workers,
//! `serve --streaming`) while photos stream into the bucket and faults come at moments drawn
//! from a seed: `kill -9` of a worker or the ingest (restarted a moment later), a broker
//! restart, an S3 server restart, and network faults between the workers and Kafka or S3
//! through Toxiproxy (latency, connections stalled then cut, connections reset, S3 stalled).
//!
//! Checked by a client that reads only the documented interfaces (the bucket, `read_committed`
//! topics, the group's committed offsets, serve's API): every photo has exactly one result
//! object; a `read_committed` consumer of `rma.results` sees exactly one record per photo; the
//! workers' group never committed an offset past an item event whose photo had no outcome
//! (checked at every kill, while the victim is down, and at the end); serve's index holds every
//! photo; no dead letter is left in the bucket (every photo is a good one); no process died
//! by itself. A process restarted while an engine is away refuses to
//! start (its start-up checks cannot reach Kafka or the bucket) and is started again a second
//! later, as the compose file's `restart: unless-stopped` does; any other exit fails the test.
//!
//! CI runs a small size. `infra/chaos.sh` runs the full one (4,000 photos, 20 kills); the
//! environment sets the size: AUTORMA_CHAOS_PHOTOS, AUTORMA_CHAOS_KILLS, AUTORMA_CHAOS_RATE
//! (photos per second), AUTORMA_CHAOS_SEED (printed, to replay a run's moments).

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::json;

use super::clients::{S3, TopicReader, committed_offsets};
use super::stack::{Stack, wait_until};
use super::toxiproxy::Toxic;
use super::{serial, test_photos};

const TOKEN: &str = "chaos";
const WORKERS: [&str; 2] = ["worker-a", "worker-b"];
const PROCESSES: [&str; 4] = ["worker-a", "worker-b", "ingest", "serve"];
/// The workers' consumer group (`autorma worker --group`'s default).
const GROUP: &str = "autorma-workers";
const ITEM_TOPICS: [&str; 2] = ["rma.items", "rma.items.replay"];
/// The ingest reconciles often here: notifications sent while the broker is away are lost.
const INGEST_ENV: [(&str, &str); 2] = [("AUTORMA_RECONCILE_INTERVAL_S", "5"), ("AUTORMA_RECONCILE_GRACE_S", "3")];
const BROKER_DOWN: Duration = Duration::from_secs(8);
const S3_DOWN: Duration = Duration::from_secs(3);

struct Size {
    photos: usize,
    kills: usize,
    rate: f64,
    seed: u64,
}

impl Size {
    /// CI's size unless the environment says otherwise.
    fn from_env() -> Size {
        let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0);
        Size {
            photos: env_or("AUTORMA_CHAOS_PHOTOS", 300),
            kills: env_or("AUTORMA_CHAOS_KILLS", 4),
            rate: env_or("AUTORMA_CHAOS_RATE", 8.0),
            seed: env_or("AUTORMA_CHAOS_SEED", seed),
        }
    }

    fn upload_time(&self) -> Duration {
        Duration::from_secs_f64(self.photos as f64 / self.rate)
    }
}

fn env_or<T: FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Debug,
{
    std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|e| panic!("{name}={v}: {e:?}")))
}

/// SplitMix64: the moments and victims of a run, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration between the fractions `low` and `high` of `of`.
    fn within(&mut self, of: Duration, low: f64, high: f64) -> Duration {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        of.mul_f64(low + (high - low) * unit)
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// `kill -9` of the process, restarted after the given time.
    Kill(&'static str, Duration),
    Restart(&'static str),
    Broker(&'static str),
    S3Server(&'static str),
    AddToxic(String, Toxic),
    RemoveToxic(String, &'static str),
}

/// The network faults, each for a while: (name, toxic, how long).
fn network_faults() -> Vec<(&'static str, Toxic, Duration)> {
    let toxic = |proxy, kind, stream, attributes| Toxic { proxy, kind, stream, attributes };
    vec![
        ("kafka-latency", toxic("kafka", "latency", "downstream", json!({"latency": 300, "jitter": 100})), secs(6)),
        // Nothing gets through, then the connection is closed.
        ("kafka-cut", toxic("kafka", "timeout", "upstream", json!({"timeout": 3000})), secs(4)),
        ("kafka-reset", toxic("kafka", "reset_peer", "downstream", json!({"timeout": 0})), secs(2)),
        ("s3-latency", toxic("s3", "latency", "downstream", json!({"latency": 500, "jitter": 200})), secs(6)),
        ("s3-reset", toxic("s3", "reset_peer", "downstream", json!({"timeout": 0})), secs(3)),
        // Requests hang until the client gives up on them.
        ("s3-stall", toxic("s3", "timeout", "downstream", json!({"timeout": 0})), secs(8)),
    ]
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// When each fault starts and ends, from the start of the uploads. The broker's outage comes in
/// the first half and the S3 server's in the second: versitygw does not start without a broker.
fn plan(size: &Size, rng: &mut Rng) -> Vec<(Duration, Action)> {
    let t = size.upload_time();
    let mut plan = Vec::new();
    for _ in 0..size.kills {
        let at = rng.within(t, 0.05, 0.9);
        let victim = rng.pick(&["worker-a", "worker-b", "ingest"]);
        plan.push((at, Action::Kill(victim, rng.within(secs(3), 0.15, 1.0))));
    }
    let broker_at = rng.within(t, 0.1, 0.35);
    plan.push((broker_at, Action::Broker("stop")));
    plan.push((broker_at + BROKER_DOWN, Action::Broker("start")));
    let s3_at = rng.within(t, 0.55, 0.85).max(broker_at + BROKER_DOWN + secs(1));
    plan.push((s3_at, Action::S3Server("stop")));
    plan.push((s3_at + S3_DOWN, Action::S3Server("start")));
    for round in 0..(size.photos / 1000).max(1) {
        for (name, toxic, lasts) in network_faults() {
            let at = rng.within(t, 0.05, 0.85);
            let name = format!("{name}-{round}");
            plan.push((at, Action::AddToxic(name.clone(), toxic.clone())));
            plan.push((at + lasts, Action::RemoveToxic(name, toxic.proxy)));
        }
    }
    plan
}

/// The run's state while faults come and go.
struct Chaos {
    stack: Stack,
    /// Where serve listens, the same after a restart.
    serve_port: u16,
    s3: S3,
    items: Vec<TopicReader>,
    start: Instant,
    plan: Vec<(Duration, Action)>,
    /// Processes and engines down now.
    down: HashSet<&'static str>,
    /// What happened, by kind, for the report.
    counts: BTreeMap<String, usize>,
    /// Item events checked below a committed offset of the workers' group.
    checked: usize,
}

impl Chaos {
    /// Runs every action due by now, in time order. A restart waits while the broker or the S3
    /// server is away: a process's start-up checks (rightly) refuse to start without them. A
    /// kill waits while its victim is down, so every kill drawn happens.
    fn run_due(&mut self) {
        self.supervise();
        loop {
            let now = self.start.elapsed();
            let Some(next) = (0..self.plan.len()).filter(|&i| self.plan[i].0 <= now).min_by_key(|&i| self.plan[i].0)
            else {
                return;
            };
            let (at, action) = self.plan.remove(next);
            let waits = match &action {
                Action::Restart(_) => self.down.contains("kafka") || self.down.contains("s3"),
                Action::Kill(victim, _) => self.down.contains(victim),
                _ => false,
            };
            if waits {
                self.plan.push((at + secs(1), action));
                continue;
            }
            self.act(action);
        }
    }

    /// Starts again, a second later, a process that refused to start because an engine was
    /// away; any other exit is a failure.
    fn supervise(&mut self) {
        for (name, status) in self.stack.take_exited() {
            let log = self.stack.log(&name);
            let said = log.lines().rev().find(|l| l.starts_with("error: ")).unwrap_or_default().to_string();
            assert!(
                said.contains("cannot reach") || said.contains("cannot use the bucket"),
                "{name} exited ({status}) by itself: {said}"
            );
            let name = PROCESSES.into_iter().find(|p| *p == name).expect("a process of the suite");
            *self.counts.entry(format!("{name} refused to start, an engine away")).or_default() += 1;
            self.down.insert(name);
            self.plan.push((self.start.elapsed() + secs(1), Action::Restart(name)));
        }
    }

    fn act(&mut self, action: Action) {
        eprintln!("[chaos {:6.1} s] {action:?}", self.start.elapsed().as_secs_f64());
        let what = match &action {
            Action::Kill(name, restart_after) => {
                self.stack.signal(name, libc::SIGKILL);
                self.down.insert(*name);
                self.plan.push((self.start.elapsed() + *restart_after, Action::Restart(name)));
                // The victim's transaction is cut short: still, nothing committed lacks its outcome.
                if !self.down.contains("kafka") && !self.down.contains("s3") {
                    self.check_committed_outcomes();
                }
                format!("kill -9 {name}")
            }
            Action::Restart(name) if self.down.remove(name) => {
                match *name {
                    "ingest" => self.stack.spawn_ingest(&INGEST_ENV),
                    "serve" => {
                        self.stack.spawn_serve(self.serve_port, TOKEN);
                    }
                    worker => self.stack.spawn_proxied_worker(worker),
                }
                "restart".to_string()
            }
            // Up again already (started by `supervise`): this restart is moot.
            Action::Restart(_) => return,
            Action::Broker(step) => {
                self.stack.kafka(step);
                self.mark("kafka", step);
                format!("broker {step}")
            }
            Action::S3Server(step) => {
                self.stack.s3_server(step);
                self.mark("s3", step);
                format!("s3 server {step}")
            }
            Action::AddToxic(name, toxic) => {
                self.toxiproxy().add(name, toxic);
                format!("{} {} on {}", toxic.kind, toxic.stream, toxic.proxy)
            }
            Action::RemoveToxic(name, proxy) => {
                self.toxiproxy().remove(proxy, name);
                return;
            }
        };
        *self.counts.entry(what).or_default() += 1;
    }

    fn mark(&mut self, engine: &'static str, step: &str) {
        if step == "stop" {
            self.down.insert(engine);
        } else {
            self.down.remove(engine);
        }
    }

    fn toxiproxy(&self) -> &super::toxiproxy::Toxiproxy {
        &self.stack.proxied.as_ref().expect("a proxied stack").toxiproxy
    }

    /// Every item event below an offset the workers' group has committed has its photo's
    /// outcome in the bucket (a result or a dead letter): the objects are written before the
    /// transaction that commits past their event. Offsets first, then the bucket.
    fn check_committed_outcomes(&mut self) {
        let committed: Vec<BTreeMap<i32, i64>> =
            ITEM_TOPICS.iter().map(|topic| committed_offsets(&self.stack.brokers, GROUP, topic)).collect();
        let outcomes: HashSet<String> = ["results/", "dlq/"]
            .iter()
            .flat_map(|prefix| self.s3.list(prefix).into_iter().map(move |k| k[prefix.len()..].to_string()))
            .filter_map(|k| k.strip_suffix(".json").map(String::from))
            .collect();
        for (reader, committed) in self.items.iter().zip(&committed) {
            for record in reader.records() {
                if record.offset < committed.get(&record.partition).copied().unwrap_or(0) {
                    assert!(
                        outcomes.contains(&record.key),
                        "offset {} of partition {} is committed, and photo {} has no outcome",
                        record.offset,
                        record.partition,
                        record.key
                    );
                    self.checked += 1;
                }
            }
        }
    }
}

#[test]
fn chaos_kills_restarts_and_network_faults_lose_and_duplicate_no_result() {
    let _serial = serial();
    let size = Size::from_env();
    eprintln!(
        "[chaos] {} photos at {}/s, {} kills, seed {} (AUTORMA_CHAOS_SEED replays the moments)",
        size.photos, size.rate, size.kills, size.seed
    );
    let mut rng = Rng(size.seed);
    let plan = plan(&size, &mut rng);
    // The test split's photos under new keys, as many as asked for.
    let split: Vec<Vec<u8>> = test_photos().iter().map(|(_, path)| std::fs::read(path).unwrap()).collect();
    let photos: Vec<(String, &[u8])> =
        (0..size.photos).map(|i| (format!("inbox/chaos/{i:05}.jpg"), split[i % split.len()].as_slice())).collect();

    let mut stack = Stack::start_proxied();
    let results = TopicReader::start(&stack.brokers, "rma.results");
    let items = ITEM_TOPICS.iter().map(|topic| TopicReader::start(&stack.brokers, topic)).collect();
    stack.spawn_ingest(&INGEST_ENV);
    for worker in WORKERS {
        stack.spawn_proxied_worker(worker);
    }
    let http = stack.spawn_serve(0, TOKEN);
    let s3 = S3::new(&stack);
    let mut chaos = Chaos {
        stack,
        serve_port: http.port,
        s3,
        items,
        start: Instant::now(),
        plan,
        down: HashSet::new(),
        counts: BTreeMap::new(),
        checked: 0,
    };

    let mut put_retries = 0;
    for (i, (key, body)) in photos.iter().enumerate() {
        let due = chaos.start + Duration::from_secs_f64(i as f64 / size.rate);
        while Instant::now() < due {
            chaos.run_due();
            std::thread::sleep(due.saturating_duration_since(Instant::now()).min(Duration::from_millis(50)));
        }
        chaos.run_due();
        // An uploader retries while the S3 server is away, as any would.
        let first_try = Instant::now();
        while let Err(e) = chaos.s3.try_put(key, body.to_vec()) {
            assert!(first_try.elapsed() < secs(120), "{e}");
            put_retries += 1;
            std::thread::sleep(Duration::from_millis(200));
            chaos.run_due();
        }
    }
    // The faults still to come, until every process is back and every toxic removed.
    while !chaos.plan.is_empty() || !chaos.down.is_empty() {
        chaos.run_due();
        std::thread::sleep(Duration::from_millis(50));
    }
    let faults_over = Instant::now();
    let kills: usize = chaos.counts.iter().filter(|(what, _)| what.starts_with("kill -9")).map(|(_, n)| n).sum();
    assert_eq!(kills, size.kills, "every kill drawn happened");
    wait_until("a result on rma.results for every photo", secs(300), || results.num_distinct_keys() >= size.photos);
    let drained = faults_over.elapsed();

    // Exactly one result object per photo, and nothing else under results/.
    let keys: Vec<String> = photos.iter().map(|(k, _)| k.clone()).collect();
    let mut objects: Vec<String> = chaos
        .s3
        .list("results/")
        .into_iter()
        .map(|k| k["results/".len()..].strip_suffix(".json").unwrap().to_string())
        .collect();
    objects.sort();
    assert_eq!(objects, keys, "one result object per photo");
    // Late records of an aborted or duplicated publication would come now.
    std::thread::sleep(secs(3));
    assert_eq!(results.duplicates(), vec![], "a read_committed consumer sees each photo's result once");
    let seen: HashSet<String> = results.records().into_iter().map(|r| r.key).collect();
    assert_eq!(seen, keys.iter().cloned().collect::<HashSet<_>>(), "a record per photo, and no other");
    chaos.check_committed_outcomes();
    wait_until("serve's index to hold every photo", secs(60), || {
        let (status, body) = http.json("/v1/results?per_page=1", TOKEN);
        status == 200 && body["total"] == size.photos
    });
    chaos.supervise();
    assert!(chaos.down.is_empty(), "a process refused to start after the faults: {:?}", chaos.down);

    // Every photo is a good one: a dead letter is a fault the pipeline gave up on.
    let dead_letters: Vec<String> = chaos
        .s3
        .list("dlq/")
        .iter()
        .map(|key| {
            let letter = chaos.s3.get_json(key);
            format!("{key}: {} ({})", letter["reason"], letter["detail"])
        })
        .collect();
    eprintln!(
        "[measured] chaos: {} photos, seed {}: {:?}; {} PUT retries; drained {:.1} s after the last fault; \
         {} records on rma.results; {} committed item events checked for an outcome; dead letters: {dead_letters:?}",
        size.photos,
        size.seed,
        chaos.counts,
        put_retries,
        drained.as_secs_f64(),
        results.records().len(),
        chaos.checked
    );
    assert!(chaos.checked > 0, "the committed offsets were checked against the outcomes");
    // A dead letter left beside a photo's result (the store failed one of its events) is
    // deleted by the next reconciliation (every 5 s here).
    wait_until("no dead letter left in the bucket", secs(30), || chaos.s3.list("dlq/").is_empty());
}

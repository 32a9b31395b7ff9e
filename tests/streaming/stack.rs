//! The real engines for one test: Kafka (KRaft) and versitygw on free loopback ports in a
//! temporary folder, started and stopped by the project's own `infra/engines/` scripts, and
//! the `autorma ingest` / `worker` processes. Everything is stopped by PID on drop; when the
//! test failed, the logs' tails are printed first and the folder is copied to
//! `$TMPDIR/autorma-failed-<test>-<pid>`. `AUTORMA_TEST_KAFKA_PROPERTIES` gives every process
//! more librdkafka properties: `debug=cgrp,eos` puts those debug lines in the logs (with
//! `AUTORMA_TEST_LOG=info,librdkafka=debug`, the processes' log filter), `linger.ms=1` tries a
//! setting.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::engine::{Engine, free_ports};
use crate::http::Http;
use crate::toxiproxy::Toxiproxy;

pub const ACCESS_KEY: &str = "autorma-test";
pub const SECRET_KEY: &str = "autorma-test-secret";
pub const BUCKET: &str = "returns";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Stack {
    pub brokers: String,
    pub endpoint: String,
    processes: Vec<(String, Child)>,
    /// More environment for every `autorma` process started from now on (telemetry endpoints).
    pub env: Vec<(&'static str, String)>,
    /// Toxiproxy between some clients and the engines (the chaos suite), with its own
    /// addresses of the broker and the S3 server: [`Stack::start_proxied`].
    pub proxied: Option<Proxied>,
    // Held for their drop, in this order, after `Drop::drop` stopped the `autorma` processes:
    // the gateway, the broker, then the folder that held their state.
    versitygw: Engine,
    kafka: Engine,
    pub dir: tempfile::TempDir,
}

/// What a test needs beyond Kafka and versitygw.
#[derive(Debug, Default, Clone, Copy)]
pub struct StackOptions {
    /// Toxiproxy between some clients and the engines (the chaos suite): the broker gets a
    /// second listener that advertises its proxy, so that a client bootstrapped there stays on it.
    pub proxied: bool,
    /// The broker logs every request it answers ([`Stack::broker_requests`]); it costs the
    /// broker CPU.
    pub broker_request_log: bool,
}

/// The broker and the S3 server as seen through Toxiproxy's proxies `kafka` and `s3`.
pub struct Proxied {
    pub toxiproxy: Toxiproxy,
    pub brokers: String,
    pub endpoint: String,
}

impl Stack {
    /// Kafka, the topics, then versitygw (it exits at start when the topic is missing).
    pub fn start() -> Stack {
        Self::start_with(StackOptions::default())
    }

    /// [`Stack::start`], and Toxiproxy with a proxy to each engine.
    pub fn start_proxied() -> Stack {
        Self::start_with(StackOptions { proxied: true, ..StackOptions::default() })
    }

    pub fn start_with(options: StackOptions) -> Stack {
        let StackOptions { proxied, broker_request_log } = options;
        let dir = tempfile::tempdir().unwrap();
        let timed = |what: &str, start: &dyn Fn() -> Engine| {
            let started = Instant::now();
            let engine = start();
            eprintln!("[stack] {what} started ({:.1} s)", started.elapsed().as_secs_f64());
            engine
        };
        let proxy_ports = if proxied { free_ports(&["kafka", "s3"]) } else { Vec::new() };
        let mut ports = vec!["KAFKA_PORT", "KAFKA_CONTROLLER_PORT"];
        let mut env = Vec::new();
        if let Some((_, proxy)) = proxy_ports.first() {
            ports.push("KAFKA_PROXIED_PORT");
            env.push(("KAFKA_PROXIED_ADVERTISE", format!("127.0.0.1:{proxy}")));
        }
        if broker_request_log {
            env.push(("KAFKA_REQUEST_LOG", dir.path().join("kafka-requests.log").display().to_string()));
        }
        let kafka = timed("kafka", &|| Engine::start("kafka", &dir.path().join("kafka"), &ports, &env));
        let brokers = format!("127.0.0.1:{}", kafka.port("KAFKA_PORT"));
        let output =
            Command::new("bash").arg(root().join("infra/engines/topics.sh")).args([&brokers, "4"]).output().unwrap();
        assert!(
            output.status.success(),
            "infra/engines/topics.sh failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let versitygw = timed("versitygw", &|| {
            Engine::start(
                "versitygw",
                &dir.path().join("s3"),
                &["S3_PORT"],
                &[
                    ("S3_BUCKET", BUCKET.to_string()),
                    ("KAFKA_BROKER", brokers.clone()),
                    ("S3_ACCESS_KEY", ACCESS_KEY.to_string()),
                    ("S3_SECRET_KEY", SECRET_KEY.to_string()),
                    ("S3_ACCESS_LOG", dir.path().join("s3-access.log").display().to_string()),
                ],
            )
        });
        let endpoint = format!("http://127.0.0.1:{}", versitygw.port("S3_PORT"));
        let proxied = (proxied).then(|| {
            let toxiproxy = timed("toxiproxy", &|| {
                Engine::start("toxiproxy", &dir.path().join("toxiproxy"), &["TOXIPROXY_PORT"], &[])
            });
            let toxiproxy = Toxiproxy::new(toxiproxy);
            let (kafka_proxy, s3_proxy) = (proxy_ports[0].1, proxy_ports[1].1);
            toxiproxy.proxy("kafka", kafka_proxy, kafka.port("KAFKA_PROXIED_PORT"));
            toxiproxy.proxy("s3", s3_proxy, versitygw.port("S3_PORT"));
            Proxied {
                toxiproxy,
                brokers: format!("127.0.0.1:{kafka_proxy}"),
                endpoint: format!("http://127.0.0.1:{s3_proxy}"),
            }
        });
        Stack { endpoint, brokers, processes: Vec::new(), env: Vec::new(), proxied, versitygw, kafka, dir }
    }

    /// `infra/engines/kafka.sh stop|start` on the same ports and data (a broker outage).
    pub fn kafka(&self, action: &str) {
        self.kafka.run(action);
    }

    /// `infra/engines/versitygw.sh stop|start` on the same port and folder (an S3 outage).
    pub fn s3_server(&self, action: &str) {
        self.versitygw.run(action);
    }

    /// Runs an `autorma` command against this stack to its end.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let output = self.command(args).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        eprintln!("[autorma {}] {}", args.join(" "), stdout.lines().next().unwrap_or_default());
        output
    }

    /// `autorma args` with the environment every `autorma` process of this stack gets.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_autorma"));
        command
            .args(args)
            .env_remove("AUTORMA_CONFIG")
            .env("AUTORMA_MODEL", root().join("models/fashion5"))
            .env("AUTORMA_LOG", std::env::var("AUTORMA_TEST_LOG").unwrap_or("info,autorma_ingest=debug".into()))
            .env("AUTORMA_KAFKA_BROKERS", &self.brokers)
            .env("AUTORMA_S3_ENDPOINT", &self.endpoint)
            .env("AUTORMA_BUCKET", BUCKET)
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AUTORMA_MODEL_CACHE", self.dir.path().join("model-cache"))
            // Promotions are seen within a second (the default is 30 s).
            .env("AUTORMA_MODEL_POLL_S", "1")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        // More librdkafka properties for every process, `name=value;...` (see the module's doc).
        if let Ok(properties) = std::env::var("AUTORMA_TEST_KAFKA_PROPERTIES") {
            let file = self.dir.path().join("kafka-properties.toml");
            let lines: String = properties
                .split(';')
                .filter_map(|p| p.split_once('='))
                .map(|(name, value)| format!("{name:?} = {value:?}\n"))
                .collect();
            std::fs::write(&file, format!("[kafka_properties]\n{lines}")).unwrap();
            command.env("AUTORMA_CONFIG", file);
        }
        command
    }

    /// Starts `autorma ARGS`, its output appended to `<log_name>.log` (a restarted process
    /// keeps its earlier log).
    fn autorma(&self, args: &[&str], log_name: &str, env: &[(&str, &str)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{log_name}.log")))
            .unwrap();
        self.command(args).envs(env.iter().copied()).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap()
    }

    /// Starts `autorma ingest` (versitygw sends raw keys).
    pub fn spawn_ingest(&mut self, env: &[(&str, &str)]) {
        let mut env = env.to_vec();
        env.push(("AUTORMA_KEY_ENCODING", "raw"));
        let child = self.autorma(&["ingest"], "ingest", &env);
        self.processes.push(("ingest".into(), child));
    }

    /// Starts `autorma ARGS` as the process `name` (its log: `<name>.log`).
    pub fn spawn(&mut self, name: &str, args: &[&str]) {
        let child = self.autorma(args, name, &[]);
        self.processes.push((name.into(), child));
    }

    pub fn spawn_worker(&mut self, name: &str) {
        self.spawn_worker_with(name, &[]);
    }

    /// Starts `autorma serve --streaming` as `serve` on `port` (0: a free one), its index in
    /// the stack's folder (a restart on the same port resumes it), and waits until it is ready.
    pub fn spawn_serve(&mut self, port: u16, token: &str) -> Http {
        let port = if port == 0 {
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        } else {
            port
        };
        let (listen, index) = (format!("127.0.0.1:{port}"), self.dir.path().join("index.sqlite").display().to_string());
        self.spawn("serve", &["serve", "--streaming", "--listen", &listen, "--token", token, "--index", &index]);
        let http = Http { port };
        wait_until("serve to be ready", Duration::from_secs(90), || http.get("/readyz", Some(token)).0 == 200);
        http
    }

    /// A worker that reaches Kafka and S3 through Toxiproxy ([`Stack::start_proxied`]).
    pub fn spawn_proxied_worker(&mut self, name: &str) {
        let proxied = self.proxied.as_ref().expect("a stack started with start_proxied");
        let (brokers, endpoint) = (proxied.brokers.clone(), proxied.endpoint.clone());
        self.spawn_worker_with(name, &[("AUTORMA_KAFKA_BROKERS", &brokers), ("AUTORMA_S3_ENDPOINT", &endpoint)]);
    }

    /// A worker with `env` besides the stack's.
    pub fn spawn_worker_with(&mut self, name: &str, env: &[(&str, &str)]) {
        let mut env = env.to_vec();
        env.push(("AUTORMA_BATCH_WAIT_MS", "10"));
        let child = self.autorma(&["worker"], name, &env);
        self.processes.push((name.into(), child));
    }

    /// The `autorma` processes that exited without being signalled, with how they ended; they
    /// are forgotten (a name can be started again).
    pub fn take_exited(&mut self) -> Vec<(String, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        self.processes.retain_mut(|(name, child)| match child.try_wait().unwrap() {
            Some(status) => {
                exited.push((name.clone(), status));
                false
            }
            None => true,
        });
        exited
    }

    pub fn pid(&self, name: &str) -> u32 {
        self.processes.iter().find(|(n, _)| n == name).map(|(_, c)| c.id()).unwrap()
    }

    /// Sends `signal` to the named process and waits for it to exit (a minute at most: a
    /// process that hangs on its way out fails the test instead of hanging it).
    pub fn signal(&mut self, name: &str, signal: i32) -> std::process::ExitStatus {
        let index = self.processes.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.processes.remove(index);
        unsafe { libc::kill(child.id() as i32, signal) };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not exit within 60 s of signal {signal}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every object request the S3 server answered so far, as (operation, `/bucket/key`,
    /// status), from its access log (S3's format: owner, bucket, `[time zone]`, client,
    /// requester, request id, operation, key, URI, status, ...; keys here have no spaces).
    pub fn s3_requests(&self) -> Vec<(String, String, u16)> {
        let log = std::fs::read_to_string(self.dir.path().join("s3-access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let status = fields.get(10)?.parse().ok()?;
                Some((fields.get(7)?.to_string(), format!("/{}/{}", fields.get(1)?, fields.get(8)?), status))
            })
            .collect()
    }

    /// The requests the broker answered so far, by client id and API (`Fetch`, `Produce`,
    /// `EndTxn`, ...), from its request log ([`StackOptions::broker_request_log`]): one JSON
    /// line per request after "Completed request:".
    pub fn broker_requests(&self) -> BTreeMap<(String, String), u64> {
        let log = std::fs::read_to_string(self.dir.path().join("kafka-requests.log")).unwrap_or_default();
        let mut counts = BTreeMap::new();
        for line in log.lines() {
            let Some(json) = line.find('{').and_then(|at| serde_json::from_str::<serde_json::Value>(&line[at..]).ok())
            else {
                continue;
            };
            let header = &json["requestHeader"];
            let client = header["clientId"].as_str().unwrap_or("?").to_string();
            let api =
                header["requestApiKeyName"].as_str().map_or_else(|| header["requestApiKey"].to_string(), String::from);
            *counts.entry((client, api)).or_default() += 1;
        }
        counts
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The pid of an engine (from its pid file) or an `autorma` process.
    fn any_pid(&self, name: &str) -> u32 {
        match name {
            "kafka" | "versitygw" => {
                let file =
                    self.dir.path().join(if name == "kafka" { "kafka" } else { "s3" }).join(format!("{name}.pid"));
                std::fs::read_to_string(file).unwrap().trim().parse::<u32>().unwrap()
            }
            _ => self.pid(name),
        }
    }

    /// CPU time (user + system) an engine or an `autorma` process has used so far, in seconds.
    pub fn cpu_secs(&self, name: &str) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.any_pid(name))).unwrap();
        // Fields after the command name (which is in parentheses and may hold spaces).
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }

    /// Resident memory of an engine (from its pid file) or an `autorma` process, in MiB.
    pub fn rss_mib(&self, name: &str) -> f64 {
        let pid = self.any_pid(name);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    fn print_logs(&self) {
        let mut files = vec![self.dir.path().join("kafka/kafka.log"), self.dir.path().join("s3/versitygw.log")];
        if self.proxied.is_some() {
            files.push(self.dir.path().join("toxiproxy/toxiproxy.log"));
        }
        for entry in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                files.push(entry.path());
            }
        }
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("----- {} (last 60 lines) -----", file.display());
            for line in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{line}");
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
            // The whole folder (every log, the engines' data) outlives the test.
            let kept = std::env::temp_dir().join(format!(
                "autorma-failed-{}-{}",
                std::thread::current().name().unwrap_or("test").replace("::", "-"),
                std::process::id()
            ));
            let copied = Command::new("cp").arg("-r").arg(self.dir.path()).arg(&kept).status();
            if copied.is_ok_and(|s| s.success()) {
                eprintln!("the stack's folder is kept at {}", kept.display());
            }
        }
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The engines stop by their pid files as the fields drop, whatever state the test left
        // them in.
    }
}

/// Waits until `done` holds, checking every 200 ms; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

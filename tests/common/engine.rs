//! An engine of `infra/engines/` (Kafka, versitygw, Prometheus, Jaeger) for one test: started by
//! its script on free loopback ports with its state in a folder, stopped by its pid file on drop.
//! Every engine start of the tests goes through [`Engine::start`].

use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Engine {
    /// `infra/engines/<name>.sh`.
    script: String,
    dir: PathBuf,
    /// The port variables the script reads, with the free ports picked for them.
    ports: Vec<(&'static str, u16)>,
    /// More environment for the script (e.g. the broker versitygw publishes to).
    env: Vec<(&'static str, String)>,
}

/// Starts tried before a test gives up. The cause of the one unexplained failure seen (a check
/// that read the engine's command line while it was being exec'd) is fixed in
/// `infra/engines/lib.sh`; a second start on new ports stays for a port another test's engine
/// took between the pick and the bind, and says why it was needed.
const START_ATTEMPTS: usize = 2;

impl Engine {
    /// `infra/engines/<name>.sh start DIR` with `env`; panics with the script's output when the
    /// last attempt fails.
    pub fn start(
        name: &'static str,
        dir: &Path,
        port_variables: &[&'static str],
        env: &[(&'static str, String)],
    ) -> Engine {
        let script = format!("infra/engines/{name}.sh");
        for attempt in 1..=START_ATTEMPTS {
            let engine = Engine {
                script: script.clone(),
                dir: dir.to_path_buf(),
                ports: free_ports(port_variables),
                env: env.to_vec(),
            };
            let output = engine.script("start");
            if output.status.success() {
                return engine;
            }
            let said =
                format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            assert!(attempt < START_ATTEMPTS, "{script} start failed (run infra/setup/{name}.sh first):\n{said}");
            eprintln!(
                "[engine] {script} start failed on ports {:?} ({}), trying new ports:\n{said}",
                engine.ports, output.status
            );
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn port(&self, variable: &str) -> u16 {
        self.ports.iter().find(|(var, _)| *var == variable).map(|(_, port)| *port).unwrap()
    }

    /// `infra/engines/<name>.sh ACTION DIR` on the same ports (a stop and a start in a test);
    /// panics with the script's output when it fails.
    pub fn run(&self, action: &str) {
        let output = self.script(action);
        assert!(
            output.status.success(),
            "{} {action} failed ({}):\n{}\n{}",
            self.script,
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn script(&self, action: &str) -> Output {
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(&self.script))
            .args([action, &self.dir.display().to_string()])
            .envs(self.ports.iter().map(|(var, port)| (*var, port.to_string())))
            .envs(self.env.iter().map(|(var, value)| (*var, value.as_str())))
            .output()
            .unwrap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

/// One free loopback port for each variable, all different, drawn below the kernel's ephemeral
/// range: a port there (what binding port 0 gives) can be taken as the local end of any outgoing
/// connection (a Kafka client's, an S3 client's) between this pick and the engine's bind.
pub fn free_ports(variables: &[&'static str]) -> Vec<(&'static str, u16)> {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (low, high) = (10_000u16, ephemeral_low.max(10_001));
    let random = RandomState::new();
    // Held until all are picked, so no two are the same.
    let mut held: Vec<TcpListener> = Vec::new();
    for draw in 0u64.. {
        if held.len() == variables.len() {
            break;
        }
        assert!(draw < 10_000, "no free loopback port in {low}..{high}");
        let port = low + (random.hash_one(draw) % u64::from(high - low)) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    variables.iter().zip(&held).map(|(var, l)| (*var, l.local_addr().unwrap().port())).collect()
}

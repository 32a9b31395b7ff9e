//! An engine of `infra/engines/` (Prometheus, Jaeger) for one test: started by its script on
//! free loopback ports with its state in a folder, stopped by its pid file on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Engine {
    /// `infra/engines/<name>.sh`.
    script: String,
    dir: PathBuf,
    /// The port variables the script reads, with the free ports picked for them.
    ports: Vec<(&'static str, u16)>,
}

impl Engine {
    /// `infra/engines/<name>.sh start DIR`; panics with the script's output when it fails.
    pub fn start(name: &'static str, dir: &Path, port_variables: &[&'static str]) -> Engine {
        // Held until all are picked, so no two are the same.
        let listeners: Vec<_> =
            port_variables.iter().map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports =
            port_variables.iter().zip(&listeners).map(|(var, l)| (*var, l.local_addr().unwrap().port())).collect();
        drop(listeners);
        let script = format!("infra/engines/{name}.sh");
        let engine = Engine { script: script.clone(), dir: dir.to_path_buf(), ports };
        let mut output = engine.script("start");
        if !output.status.success() {
            // Seen twice in about 30 starts: the process exits at once with an empty log. Said,
            // and tried once more.
            eprintln!("[engine] {script} start failed, trying again:\n{}", String::from_utf8_lossy(&output.stderr));
            output = engine.script("start");
        }
        assert!(
            output.status.success(),
            "{script} start failed (run infra/setup/{name}.sh first):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        engine
    }

    pub fn port(&self, variable: &str) -> u16 {
        self.ports.iter().find(|(var, _)| *var == variable).map(|(_, port)| *port).unwrap()
    }

    fn script(&self, action: &str) -> Output {
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(&self.script))
            .args([action, &self.dir.display().to_string()])
            .envs(self.ports.iter().map(|(var, port)| (*var, port.to_string())))
            .output()
            .unwrap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

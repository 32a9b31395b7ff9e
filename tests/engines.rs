//! `infra/engines/lib.sh`, the helpers every engine start goes through (the tests' and
//! `infra/stack.sh`'s): a started process is seen as running from the moment `start_detached`
//! returns, and one that ends leaves how it ended in its log.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `script` in bash, in `dir`, with `lib.sh` sourced.
fn run_with_lib(dir: &Path, script: &str) -> Output {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/engines/lib.sh");
    Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; ENGINE=test; source '{}'; {script}", lib.display()))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `run_with_lib`'s stdout, or a panic with both streams when the script failed.
fn with_lib(dir: &Path, script: &str) -> String {
    let output = run_with_lib(dir, script);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{script}\nfailed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn a_started_process_is_running_as_soon_as_start_detached_returns() {
    // The check that follows each start in the engine scripts. It once read the command line while
    // the kernel was swapping the program in (empty), and a healthy gateway was reported as
    // exited; the cores kept busy make that window wider.
    let dir = tempfile::tempdir().unwrap();
    let out = with_lib(
        dir.path(),
        r#"
        for _ in 1 2; do (end=$((SECONDS + 20)); while ((SECONDS < end)); do :; done) & done
        seen=0
        for i in $(seq 1 40); do
          start_detached p.pid p.log sleep 30
          pid="$(read_pid p.pid)"
          pid_running "${pid}" "sleep 30" && seen=$((seen + 1))
          IFS= read -r -d '' argv0 < "/proc/${pid}/cmdline" || true
          [[ "${argv0}" == sleep ]] || echo "start ${i}: argv0 is '${argv0}'"
          stop_pidfile p.pid "sleep 30" 5 >/dev/null
        done
        kill $(jobs -p) 2>/dev/null || true
        echo "running right after start: ${seen} of 40"
        "#,
    );
    assert_eq!(out, "running right after start: 40 of 40\n");
}

#[test]
fn how_a_process_ended_is_in_its_log() {
    let dir = tempfile::tempdir().unwrap();
    with_lib(
        dir.path(),
        r#"
        start_detached quits.pid quits.log bash -c 'echo "before any logger" >&2; exit 3'
        start_detached killed.pid killed.log sleep 30
        kill -KILL "$(read_pid killed.pid)"
        start_detached stopped.pid stopped.log sleep 30
        stop_pidfile stopped.pid "sleep 30" 5
        sleep 1
        "#,
    );
    let log = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    let quits = log("quits.log");
    assert!(quits.contains("before any logger") && quits.contains("bash (pid "), "{quits}");
    assert!(quits.trim_end().ends_with("exited with status 3"), "{quits}");
    assert!(log("killed.log").trim_end().ends_with("killed by SIGKILL (status 137)"), "{}", log("killed.log"));
    assert!(log("stopped.log").trim_end().ends_with("killed by SIGTERM (status 143)"), "{}", log("stopped.log"));
}

#[test]
fn a_failed_start_names_who_holds_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let output = run_with_lib(dir.path(), &format!("require_port_free {port} TEST_PORT"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains(&format!("127.0.0.1:{port} (TEST_PORT) is already in use")), "{stderr}");
    // ss names the listening process: this test.
    assert!(stderr.contains(&format!("pid={}", std::process::id())), "{stderr}");
}

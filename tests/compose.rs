//! `docker-compose.yml` without a Docker engine: it is a valid Compose file (loaded by
//! compose-go, the Compose specification's own loader, in `infra/compose/check`), every
//! `AUTORMA_*` variable it or the `Dockerfile` gives `autorma` is one the command reads (its
//! `--help` lists it), the others are standard ones the SDKs read, and every path it mounts is
//! in the repository.

use std::process::Command;

mod common;

use common::{autorma, root};

/// Variables read by the libraries `autorma` uses rather than by its own options: the AWS SDK's
/// credentials and region, OpenTelemetry's exporter settings, the cache location.
const STANDARD: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "XDG_CACHE_HOME",
];

/// The environment variables `autorma ARGS --help` documents (`[env: NAME=...]`).
fn documented(args: &[String]) -> Vec<String> {
    let output = autorma().args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "autorma {args:?} --help");
    let help = String::from_utf8(output.stdout).unwrap();
    help.split("[env: ").skip(1).map(|rest| rest.split(['=', ']']).next().unwrap().to_string()).collect()
}

/// The check program over the compose file, with `token` as AUTORMA_API_TOKEN.
fn check_compose(token: Option<&str>) -> std::process::Output {
    let mut check = Command::new("go");
    check.args(["run", "."]).arg(root().join("docker-compose.yml")).current_dir(root().join("infra/compose/check"));
    match token {
        Some(token) => check.env("AUTORMA_API_TOKEN", token),
        None => check.env_remove("AUTORMA_API_TOKEN"),
    };
    check.output().expect("go runs (the check is a Go program)")
}

#[test]
fn the_compose_file_will_not_start_serve_without_a_token() {
    let output = check_compose(None);
    assert!(!output.status.success(), "loaded without AUTORMA_API_TOKEN");
    assert!(String::from_utf8_lossy(&output.stderr).contains("set AUTORMA_API_TOKEN"));
}

#[test]
fn the_compose_file_is_valid_and_gives_autorma_only_what_it_reads() {
    let output = check_compose(Some("compose-test-token"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();

    let services = report["autorma"].as_object().unwrap();
    let mut names: Vec<&String> = services.keys().collect();
    names.sort();
    assert_eq!(names, ["ingest", "serve", "worker"]);
    // The image's own settings (Dockerfile ENV) apply to every command.
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut image_env = Vec::new();
    for env in dockerfile.split("\nENV ").skip(1) {
        // The instruction's lines: up to the first that does not continue (`\`).
        for line in env.lines() {
            image_env
                .extend(line.split_whitespace().filter_map(|w| w.split_once('=')).map(|(name, _)| name.to_string()));
            if !line.trim_end().ends_with('\\') {
                break;
            }
        }
    }
    assert!(image_env.contains(&"AUTORMA_MODEL".to_string()), "{image_env:?}");
    let known = |variable: &str, reads: &[String]| {
        if variable.starts_with("AUTORMA_") {
            reads.iter().any(|r| r == variable)
        } else {
            STANDARD.contains(&variable)
        }
    };
    let mut read_by_some = Vec::new();
    for (name, service) in services {
        let command: Vec<String> =
            service["command"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let reads = documented(&command[..1]);
        for variable in service["environment"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()) {
            assert!(known(variable, &reads), "{name}: `{variable}` is not read by `autorma {}`", command[0]);
        }
        read_by_some.extend(reads);
    }
    // The image's settings are for whichever command needs them (ingest runs no model).
    for variable in &image_env {
        assert!(known(variable, &read_by_some), "Dockerfile: `{variable}` is read by none of the commands");
    }
    for mount in report["mounts"].as_array().unwrap() {
        let path = mount.as_str().unwrap();
        assert!(std::path::Path::new(path).exists(), "mounted but not in the repository: {path}");
    }
    assert!(root().join("Dockerfile").is_file());
}

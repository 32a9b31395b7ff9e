//! The other commands through the real binary: classify, eval (on a synthetic class-folder
//! set, and on the real test split when the real model and data are present), and the
//! start-up validation messages.

use std::process::Command;

mod common;

use common::{autorma, root, write_png};

#[test]
fn classify_prints_label_confidence_and_decision() {
    let dir = tempfile::tempdir().unwrap();
    let (red, text) = (dir.path().join("red.png"), dir.path().join("notes.jpg"));
    write_png(&red, [255, 0, 0]);
    std::fs::write(&text, "not a photo").unwrap();

    let output = autorma().arg("classify").arg(&red).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let row: Vec<&str> = stdout.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!((row[1], row[3]), ("casual_shoes", "auto"), "{stdout}");
    assert!(row[2].parse::<f32>().unwrap() > 0.9);

    // A bad file is reported with its reason and makes the exit status non-zero.
    let output = autorma().args(["classify", "--json"]).arg(&red).arg(&text).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines[0]["label"], "casual_shoes");
    assert_eq!(lines[1]["error"], "not_an_image");

    // A file that cannot be read is `fetch_failed`, as in `run`, not a verdict on its bytes.
    let output = autorma().args(["classify", "--json"]).arg(dir.path().join("missing.jpg")).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["error"], "fetch_failed", "{line}");
}

#[test]
fn eval_reports_accuracy_per_class_and_confusion() {
    let dir = tempfile::tempdir().unwrap();
    // tiny5 knows colours: pure ones are right; a red "watches" photo is wrong on purpose.
    let colours = [
        ("casual_shoes", [255, 0, 0]),
        ("handbags", [0, 255, 0]),
        ("shirts", [0, 0, 255]),
        ("tops", [255, 255, 255]),
        ("watches", [0, 0, 0]),
    ];
    for (class, colour) in colours {
        for i in 0..3 {
            write_png(&dir.path().join(class).join(format!("{i}.png")), colour);
        }
    }
    write_png(&dir.path().join("watches/wrong.png"), [255, 0, 0]);

    let output = autorma().args(["eval", "--json", "--data"]).arg(dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["num_images"], 16);
    assert!((report["accuracy"].as_f64().unwrap() - 15.0 / 16.0).abs() < 1e-9);
    assert_eq!(report["confusion"]["classes"][4], "watches");
    assert_eq!(report["confusion"]["matrix"][4], serde_json::json!([1, 0, 0, 0, 3]), "rows are true classes");
    assert_eq!(report["confusion"]["matrix"][0], serde_json::json!([3, 0, 0, 0, 0]));
    assert_eq!(report["per_class"]["casual_shoes"]["precision"], 0.75);
    assert_eq!(report["per_class"]["watches"]["recall"], 0.75);
    assert_eq!(report["per_class"]["watches"]["support"], 4);
    assert_eq!(report["execution_provider"], "cpu");

    // A folder that is not a class is an error, not a silent miscount.
    write_png(&dir.path().join("socks/0.png"), [1, 1, 1]);
    let output = autorma().args(["eval", "--data"]).arg(dir.path()).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not a class of the model"));
}

/// The bar: Rust accuracy on the real test split within 0.3 points of the figure the
/// model package records, for the fp32 package and its INT8 copy. Runs only where the real
/// models and the data set are present.
#[test]
fn eval_on_the_real_test_split_matches_the_model_package() {
    let data = root().join("../shared/datasets/fashion5/test");
    for (package, precision) in [("fashion5", "fp32"), ("fashion5-int8", "int8")] {
        let model = root().join("models").join(package);
        if !model.join("model.json").exists() || !data.exists() {
            eprintln!("SKIPPED: needs models/{package} and ../shared/datasets/fashion5/test");
            continue;
        }
        let output =
            autorma().env("AUTORMA_MODEL", &model).args(["eval", "--json", "--data"]).arg(&data).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["precision"], precision);
        let rust = report["accuracy"].as_f64().unwrap();
        let recorded = report["recorded_test_accuracy"].as_f64().expect("model.json records metrics.test.accuracy");
        eprintln!("{package}: rust accuracy {rust:.4}, model.json {recorded:.4}");
        assert_eq!(report["num_images"], 375);
        assert!(
            (rust - recorded).abs() * 100.0 <= 0.3,
            "{package}: rust {rust} vs recorded {recorded}: more than 0.3 points apart"
        );
        // The thresholds decide the same way here: a decode difference may move a borderline
        // photo or two across its threshold, not more (1 point = 3.75 photos).
        let share = report["review"]["share_sent_to_review"].as_f64().unwrap();
        let recorded_share =
            report["recorded_test_review_share"].as_f64().expect("model.json records the test review share");
        eprintln!("{package}: rust review share {share:.4}, model.json {recorded_share:.4}");
        assert!(
            (share - recorded_share).abs() * 100.0 <= 1.0,
            "{package}: review share {share} vs recorded {recorded_share}"
        );
    }
}

#[test]
fn bad_configuration_is_refused_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("a.png");
    write_png(&photo, [0, 0, 0]);
    let stderr = |cmd: &mut Command| {
        let output = cmd.output().unwrap();
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };

    let err = stderr(autorma().arg("classify").arg(&photo).env("AUTORMA_BATCH_SIZE", "0"));
    assert!(err.contains("--batch-size") && err.contains("1..=1024"), "{err}");

    let config = dir.path().join("autorma.toml");
    std::fs::write(&config, "batch_sise = 8\n").unwrap();
    let err = stderr(autorma().arg("--config").arg(&config).arg("classify").arg(&photo));
    assert!(err.contains("unknown key `batch_sise`") && err.contains("autorma.toml"), "{err}");
    std::fs::write(&config, "[classify]\nbatch_size = 0\n").unwrap();
    let err = stderr(autorma().arg("classify").arg(&photo).env("AUTORMA_CONFIG", &config));
    assert!(err.contains("`classify.batch_size` = 0") && err.contains("1..=1024"), "{err}");

    let err = stderr(autorma().arg("classify").arg(&photo).args(["--ort-library", "/nonexistent/libonnxruntime.so"]));
    assert!(err.contains("infra/setup/onnxruntime.sh"), "{err}");

    let err = stderr(autorma().arg("classify").arg(&photo).args(["--model", "/nonexistent/model"]));
    assert!(err.contains("/nonexistent/model") && err.contains("model.json"), "{err}");

    let err = stderr(autorma().arg("classify").arg(&photo).args(["--execution-provider", "cuda"]));
    if !cfg!(feature = "cuda") {
        assert!(err.contains("execution provider `cuda` is not available"), "{err}");
    }
}

#[test]
fn model_registry_in_a_folder_and_the_embedded_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (inbox, out, registry) = (dir.path().join("inbox"), dir.path().join("out"), dir.path().join("registry"));
    for (i, color) in [[200, 30, 30], [30, 200, 30], [30, 30, 200], [240, 240, 240]].into_iter().enumerate() {
        write_png(&inbox.join(format!("p{i}.png")), color);
    }
    let run = |args: &[&str]| {
        let output = autorma().args(args).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success(), "autorma {args:?}: {stdout}\n{stderr}");
        stdout.into_owned()
    };
    let (inbox_s, out_s, reg_s) = (inbox.to_str().unwrap(), out.to_str().unwrap(), registry.to_str().unwrap());
    run(&["run", "--inbox", inbox_s, "--out", out_s, "--no-progress"]);

    // The fixture as version 1 of `production` in a folder registry.
    let fixture = root().join("classifier/tests/fixtures/tiny5");
    let pushed = run(&["model", "--registry", reg_s, "--model-name", "tiny5", "push", fixture.to_str().unwrap()]);
    assert!(pushed.contains("as version 1"), "{pushed}");
    run(&["model", "--registry", reg_s, "--model-name", "tiny5", "promote", "1", "--by", "ann", "--reason", "first"]);
    let history = run(&["model", "--registry", reg_s, "--model-name", "tiny5", "history"]);
    assert!(history.contains("promote") && history.contains("ann") && history.contains("first"), "{history}");

    // The run's results name the package's own version; the replay re-classifies them all
    // with the registry's version 1, and a second replay finds nothing left to do.
    let replay = ["replay", "--out", out_s, "--inbox", inbox_s, "--registry", reg_s, "--model-name", "tiny5"];
    let first = run(&replay);
    assert!(first.contains("4 results") && first.contains("re-classified 4"), "{first}");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results/p0.png.json")).unwrap()).unwrap();
    assert_eq!(result["model"]["version"], "1");
    let again = run(&replay);
    assert!(again.contains("4 already from tiny5 v1") && again.contains("re-classified 0"), "{again}");
    // --all classifies them again all the same.
    let all = run(&[&replay[..], &["--all"]].concat());
    assert!(all.contains("re-classified 4"), "{all}");
}

#[test]
fn the_built_in_model_serves_from_any_folder() {
    // No --model, no AUTORMA_MODEL, run from a folder with no models/ in it.
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("inbox/red.png");
    write_png(&photo, [255, 0, 0]);
    let run = |args: &[&str]| {
        autorma()
            .env_remove("AUTORMA_MODEL")
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .current_dir(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let output = run(&["run", "--inbox", "inbox", "--out", "out"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/results/red.png.json")).unwrap()).unwrap();
    let shipped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("models/fashion5/model.json")).unwrap()).unwrap();
    assert_eq!(result["model"]["sha256"], shipped["onnx"]["sha256"], "{result}");
    let unpacked = dir.path().join("cache/autorma/models/builtin");
    assert_eq!(std::fs::read_dir(&unpacked).unwrap().count(), 1, "unpacked once, under the cache folder");
    let output = run(&["classify", "inbox/red.png"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_dir(&unpacked).unwrap().count(), 1, "and used again");
}

//! `autorma classify FILE...`: the model on a few photos, printed.

use std::process::ExitCode;

use autorma_classifier::inference::ModelSession;
use autorma_classifier::preprocess::Preprocessor;

use super::{model_setup, preprocess_files};
use crate::cli::ClassifyArgs;

pub async fn classify(args: ClassifyArgs) -> anyhow::Result<ExitCode> {
    let (settings, package) = model_setup(&args.pipeline)?;
    let runtime = settings.pipeline.runtime.clone();
    let batch_size = settings.pipeline.batcher.max_batch_size;
    let limits = settings.pipeline.limits;
    let (lines, failures) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<String>, usize)> {
        let mut session = ModelSession::new(&package, &runtime)?;
        let preprocessor = Preprocessor::for_package(&package, limits);
        let tensors = preprocess_files(&args.files, &preprocessor);
        let ok: Vec<usize> = (0..tensors.len()).filter(|&i| tensors[i].is_ok()).collect();
        let mut predictions = vec![None; tensors.len()];
        for chunk in ok.chunks(batch_size) {
            let input: Vec<f32> = chunk.iter().flat_map(|&i| tensors[i].as_ref().unwrap().iter().copied()).collect();
            for (&i, p) in chunk.iter().zip(session.predict(&input)?) {
                predictions[i] = Some(p);
            }
        }
        let classes = package.classes();
        let mut lines = Vec::new();
        let mut failures = 0;
        for ((path, tensor), prediction) in args.files.iter().zip(&tensors).zip(predictions) {
            let name = path.display().to_string();
            match (tensor, prediction) {
                (_, Some(p)) => lines.push(if args.json {
                    serde_json::json!({
                        "file": name, "label": classes[p.label], "confidence": p.confidence, "decision": p.decision.as_str(),
                        "probabilities": classes.iter().zip(&p.probabilities).map(|(c, v)| (c.clone(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
                        "execution_provider": session.execution_provider(),
                    })
                    .to_string()
                } else {
                    format!("{name}\t{}\t{:.4}\t{}", classes[p.label], p.confidence, p.decision.as_str())
                }),
                (Err(e), None) => {
                    failures += 1;
                    lines.push(if args.json {
                        serde_json::json!({"file": name, "error": e.reason.as_str(), "detail": e.detail}).to_string()
                    } else {
                        format!("{name}\t{}\t{}", e.reason, e.detail)
                    });
                }
                (Ok(_), None) => unreachable!("every decoded photo was predicted"),
            }
        }
        Ok((lines, failures))
    })
    .await??;
    if !args.json {
        println!("file\tlabel\tconfidence\tdecision");
    }
    for line in lines {
        println!("{line}");
    }
    // Like `cp` or `ls`: output for what worked, a failing status if anything did not.
    Ok(if failures == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

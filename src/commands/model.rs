//! `autorma model ...`: push, list, show, promote (gated or not), compare, rollback, history.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use autorma_classifier::inference::{RuntimeConfig, default_library_path};
use autorma_classifier::preprocess::DecodeLimits;
use autorma_classifier::serving::ServingModel;
use autorma_core::shadow::Verdict;
use autorma_registry::{ModelPackage, short_sha};

use super::registry::{actor, open_registry};
use super::shadow;
use crate::cli::{ModelAction, ModelArgs};
use crate::config::{self, ConfigFile};

pub async fn model(args: ModelArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let streaming = config::resolve_streaming(&args.streaming, file)?;
    let registry = open_registry(&args.registry, &streaming, None).await?;
    match args.action {
        ModelAction::Push { dir, change, ort_library } => {
            let package =
                Arc::new(ModelPackage::load(&dir).with_context(|| format!("cannot push `{}`", dir.display()))?);
            let library = ort_library.unwrap_or_else(default_library_path);
            let checked = package.clone();
            tokio::task::spawn_blocking(move || {
                ServingModel::load(checked, &RuntimeConfig::new(library), DecodeLimits::default(), 1)
            })
            .await
            .expect("model check panicked")
            .with_context(|| format!("refusing to push `{}`", dir.display()))?;
            let version = registry.push(&package, &actor(&change)).await?;
            println!("pushed {} as version {version} of {}", dir.display(), registry.describe());
            println!("serve it with: autorma model promote {version} --alias production");
        }
        ModelAction::List { json } => {
            let versions = registry.versions().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else if versions.is_empty() {
                println!("{} has no versions yet: autorma model push DIR", registry.describe());
            } else {
                println!(
                    "{:>7}  {:<12}  {:<20}  {:<12}  {:<10}  aliases",
                    "version", "sha256", "pushed at", "by", "state"
                );
                for v in versions {
                    let r = &v.record;
                    println!(
                        "{:>7}  {:<12}  {:<20}  {:<12}  {:<10}  {}",
                        r.version,
                        short_sha(&r.sha256),
                        r.pushed_at.format("%Y-%m-%d %H:%M:%S"),
                        r.pushed_by,
                        if v.complete { "complete" } else { "incomplete" },
                        v.aliases.join(",")
                    );
                }
            }
        }
        ModelAction::Show { version } => {
            let info = registry.version(version).await?;
            let manifest = if info.complete { registry.manifest(version).await? } else { serde_json::Value::Null };
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "version": info, "model_json": manifest }))?
            );
            match &info.record.tracking {
                Some(run) => eprintln!(
                    "made by {} run {} (experiment `{}`, store {})",
                    run.tool, run.run_id, run.experiment, run.tracking_uri
                ),
                None => eprintln!("its model.json names no tracking run (training.tracking)"),
            }
        }
        ModelAction::Promote { version, alias, gate, bounds, change } => {
            let mut actor = actor(&change);
            if gate {
                let bounds = bounds.bounds();
                let production = shadow::alias_version(&registry, &alias).await?;
                let comparison = shadow::comparison(&streaming.kafka, &registry, version, production).await?;
                shadow::print(&comparison, version, production, &alias, &bounds);
                let verdict = bounds.check(&comparison);
                if verdict != Verdict::Within {
                    eprintln!("not promoted: the gate is closed ({})", shadow::verdict_line(&verdict));
                    return Ok(ExitCode::FAILURE);
                }
                let gate = format!(
                    "gate: agreement {:.1} %, review share {:.1} % against {:.1} %, on {} photos",
                    100.0 * comparison.agreement(),
                    100.0 * comparison.candidate_review_share(),
                    100.0 * comparison.baseline_review_share(),
                    comparison.photos
                );
                actor.why = Some(actor.why.map_or(gate.clone(), |why| format!("{why}; {gate}")));
            }
            let record = registry.promote(version, &alias, &actor).await?;
            println!(
                "{} `{alias}` -> version {} (was {}); workers following it swap within their poll interval",
                registry.describe(),
                record.version,
                record.previous.last().map_or("unset".to_string(), u32::to_string)
            );
        }
        ModelAction::Compare { version, alias, shadow_alias, bounds, json } => {
            let candidate = match version {
                Some(version) => version,
                None => shadow::alias_version(&registry, &shadow_alias).await?,
            };
            let production = shadow::alias_version(&registry, &alias).await?;
            let comparison = shadow::comparison(&streaming.kafka, &registry, candidate, production).await?;
            let bounds = bounds.bounds();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&shadow::to_json(&comparison, candidate, production, &bounds))?
                );
            } else {
                shadow::print(&comparison, candidate, production, &alias, &bounds);
            }
        }
        ModelAction::Rollback { alias, change } => {
            let record = registry.rollback(&alias, &actor(&change)).await?;
            println!("{} `{alias}` rolled back to version {}", registry.describe(), record.version);
        }
        ModelAction::History { json } => {
            let history = registry.history().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            }
            for r in history.iter().filter(|_| !json) {
                let version = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                println!(
                    "{}  {:<8}  {:<11}  {:>4} -> {:<4}  {:<24}  {}",
                    r.at.format("%Y-%m-%d %H:%M:%S"),
                    r.action.as_str(),
                    r.alias.as_deref().unwrap_or("-"),
                    version(r.from),
                    version(r.to),
                    r.by,
                    r.reason.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

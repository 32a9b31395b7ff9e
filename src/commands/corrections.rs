//! `autorma corrections export`: the review queue's corrections as a class-folder training set.

use std::process::ExitCode;

use anyhow::Context;
use autorma_api::export::{ExportSource, export_corrections};
use autorma_core::{LocalStore, Store};

use super::streaming::connect_bucket;
use crate::cli::{CorrectionsAction, CorrectionsArgs};
use crate::config::{self, ConfigFile};

/// The bucket name an embedded run records (`run`'s and `serve`'s default).
const EMBEDDED_BUCKET: &str = "local";

pub async fn corrections(args: CorrectionsArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let CorrectionsAction::Export(args) = args.action;
    let max_photo_bytes = args.file_limit.max_file_bytes;
    let source = match (&args.results, &args.inbox) {
        (Some(results), Some(inbox)) => {
            for (flag, dir) in [("--results", results), ("--inbox", inbox)] {
                anyhow::ensure!(dir.is_dir(), "{flag} `{}` is not a folder", dir.display());
            }
            let bucket = args.streaming.bucket.clone().unwrap_or_else(|| EMBEDDED_BUCKET.into());
            ExportSource {
                corrections: Store::Local(LocalStore::new(bucket.clone(), results)),
                photos: Store::Local(LocalStore::new(bucket.clone(), inbox)),
                bucket,
                max_photo_bytes,
            }
        }
        _ => {
            let streaming = config::resolve_streaming(&args.streaming, file)?;
            let store = Store::S3(connect_bucket(&streaming).await?);
            ExportSource { corrections: store.clone(), photos: store, bucket: streaming.bucket, max_photo_bytes }
        }
    };
    let where_from = source.corrections.describe(&source.bucket);
    let summary = export_corrections(&source, &args.out)
        .await
        .with_context(|| format!("cannot export the corrections of {where_from}"))?;
    let by_label: Vec<String> = summary.exported.iter().map(|(label, n)| format!("{label} {n}")).collect();
    println!(
        "exported {} corrected photos from {where_from} to {} ({}); skipped {}",
        summary.total(),
        args.out.display(),
        if by_label.is_empty() { "none".to_string() } else { by_label.join(", ") },
        summary.skipped.len()
    );
    for (object, reason) in &summary.skipped {
        println!("  skipped {}: {reason}", object.escape_debug());
    }
    Ok(ExitCode::SUCCESS)
}

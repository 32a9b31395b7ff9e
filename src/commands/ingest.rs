//! `autorma ingest`: bucket notifications -> ItemEvents, with the reconciliation.

use std::process::ExitCode;

use anyhow::anyhow;
use autorma_core::kafka::topics;
use autorma_ingest::notify::{IngestConfig, KeyEncoding, NotificationFilter, run_ingest};

use super::run::shutdown_signal;
use super::streaming::connect;
use crate::cli::IngestArgs;
use crate::config::{self, FileConfig};

pub async fn ingest(args: IngestArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let settings = config::resolve_streaming(&args.streaming, file)?;
    let key_encoding = args
        .key_encoding
        .or(file.key_encoding.clone())
        .map_or(Ok(KeyEncoding::Url), |v| v.parse::<KeyEncoding>())
        .map_err(|e| anyhow!("invalid `key_encoding`: {e} (--key-encoding, AUTORMA_KEY_ENCODING)"))?;
    let inbox_prefix = args.inbox_prefix.or(file.inbox_prefix.clone()).unwrap_or_else(|| "inbox/".into());
    let config = IngestConfig {
        kafka: settings.kafka.clone(),
        group_id: args.group.or(file.ingest_group.clone()).unwrap_or_else(|| "autorma-ingest".into()),
        filter: NotificationFilter { key_encoding, inbox_prefix },
        bucket: settings.bucket.clone(),
        reconcile_interval: config::seconds(
            "reconcile_interval_s",
            args.reconcile_interval_s,
            file.reconcile_interval_s,
            300,
            1..=86_400,
        )?,
        reconcile_grace: config::seconds(
            "reconcile_grace_s",
            args.reconcile_grace_s,
            file.reconcile_grace_s,
            120,
            0..=86_400,
        )?,
    };
    let store = connect(&settings, &[topics::UPLOADS_RAW, topics::ITEMS, topics::DLQ]).await?;
    let summary = run_ingest(config, store, shutdown_signal()).await?;
    println!(
        "ingest stopped: {} notifications, {} item events, {} skipped, {} malformed, {} sent by reconciliation",
        summary.notifications, summary.items, summary.skipped, summary.malformed, summary.reconciled
    );
    Ok(ExitCode::SUCCESS)
}

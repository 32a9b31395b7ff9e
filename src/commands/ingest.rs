//! `autorma ingest`: bucket notifications -> ItemEvents, with the reconciliation, and the
//! scheduled replay (cron, and after promotions).

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use autorma_core::kafka::topics;
use autorma_ingest::notify::{IngestConfig, KeyEncoding, NotificationFilter, ReconcileConfig, run_ingest};
use autorma_ingest::replay::{ReplayFilter, ReplayJob, ReplaySchedule, run_replay_schedule};

use super::registry::open_registry;
use super::replay::replay_rate;
use super::streaming::connect;
use crate::cli::IngestArgs;
use crate::config::{self, FileConfig};
use crate::shutdown::shutdown_signal;

pub async fn ingest(args: IngestArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let settings = config::resolve_streaming(&args.streaming, file)?;
    let key_encoding = args
        .key_encoding
        .or(file.key_encoding.clone())
        .map_or(Ok(KeyEncoding::Url), |v| v.parse::<KeyEncoding>())
        .map_err(|e| anyhow!("invalid `key_encoding`: {e} (--key-encoding, AUTORMA_KEY_ENCODING)"))?;
    let inbox_prefix = args.inbox_prefix.or(file.inbox_prefix.clone()).unwrap_or_else(|| "inbox/".into());
    let reconcile = ReconcileConfig {
        bucket: settings.bucket.clone(),
        inbox_prefix: inbox_prefix.clone(),
        interval: config::seconds(
            "reconcile_interval_s",
            args.reconcile_interval_s,
            file.reconcile_interval_s,
            300,
            1..=86_400,
        )?,
        grace: config::seconds("reconcile_grace_s", args.reconcile_grace_s, file.reconcile_grace_s, 120, 0..=86_400)?,
    };
    let config = IngestConfig {
        kafka: settings.kafka.clone(),
        group_id: args.group.or(file.ingest_group.clone()).unwrap_or_else(|| "autorma-ingest".into()),
        filter: NotificationFilter { key_encoding, inbox_prefix },
        reconcile,
    };
    let store = connect(&settings, &[topics::UPLOADS_RAW, topics::ITEMS, topics::ITEMS_REPLAY, topics::DLQ]).await?;
    let schedule = match args.replay_schedule.clone().or(file.replay_schedule.clone()) {
        Some(off) if off == "off" => None,
        expression => {
            let expression = expression.unwrap_or_else(|| "0 2 * * *".into());
            let tz = args.replay_tz.clone().or(file.replay_tz.clone()).unwrap_or_else(|| "UTC".into());
            Some(
                ReplaySchedule::parse(&expression, &tz)
                    .map_err(|e| anyhow!("invalid `replay_schedule`/`replay_tz`: {e}"))?,
            )
        }
    };
    let poll_interval = config::seconds("model_poll_s", args.follow.model_poll_s, file.model_poll_s, 30, 1..=86_400)?;
    let promotion_poll = args.replay_on_promotion.then_some(poll_interval);
    let replays = if schedule.is_some() || promotion_poll.is_some() {
        let job = ReplayJob {
            producer: settings.kafka.producer().context("cannot create the Kafka producer")?,
            bucket: settings.bucket.clone(),
            registry: open_registry(&args.follow.registry, file, &settings, Some(&store)).await?,
            store: store.clone(),
            alias: args.follow.alias.clone().or(file.model_alias.clone()).unwrap_or_else(|| "production".into()),
            filter: ReplayFilter { prefix: config.filter.inbox_prefix.clone(), since: None, until: None },
            all: false,
            rate: replay_rate(args.replay_rate, file)?,
        };
        Some(tokio::spawn(run_replay_schedule(job, schedule, promotion_poll, std::future::pending())))
    } else {
        None
    };
    let summary = run_ingest(config, store, shutdown_signal()).await;
    if let Some(replays) = replays {
        replays.abort();
    }
    let summary = summary?;
    println!(
        "ingest stopped: {} notifications, {} item events, {} skipped, {} malformed, {} sent by reconciliation",
        summary.notifications, summary.items, summary.skipped, summary.malformed, summary.reconciled
    );
    Ok(ExitCode::SUCCESS)
}

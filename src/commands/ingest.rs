//! `autorma ingest`: bucket notifications -> ItemEvents, with the reconciliation, and the
//! scheduled replay (cron, and after promotions).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use autorma_core::topics;
use autorma_ingest::notify::{IngestConfig, NotificationFilter, ReconcileConfig, run_ingest};
use autorma_ingest::replay::{ReplayFilter, ReplayJob, ReplaySchedule, run_replay_schedule};

use super::registry::open_registry;
use super::streaming::connect;
use crate::cli::IngestArgs;
use crate::config::{self, ConfigFile};
use crate::shutdown::shutdown_signal;

pub async fn ingest(args: IngestArgs, file: &ConfigFile) -> anyhow::Result<ExitCode> {
    let settings = config::resolve_streaming(&args.streaming, file)?;
    let key_encoding = args.key_encoding;
    let inbox_prefix = args.inbox_prefix.clone();
    let reconcile = ReconcileConfig {
        bucket: settings.bucket.clone(),
        inbox_prefix: inbox_prefix.clone(),
        interval: Duration::from_secs(args.reconcile_interval_s),
        grace: Duration::from_secs(args.reconcile_grace_s),
    };
    let config = IngestConfig {
        kafka: settings.kafka.clone(),
        group_id: args.group.clone(),
        filter: NotificationFilter { key_encoding, inbox_prefix },
        reconcile,
    };
    let store = connect(&settings, &[topics::UPLOADS_RAW, topics::ITEMS, topics::ITEMS_REPLAY, topics::DLQ]).await?;
    let schedule = match args.replay_schedule.as_str() {
        "off" => None,
        expression => Some(
            ReplaySchedule::parse(expression, &args.replay_tz)
                .map_err(|e| anyhow!("invalid `replay_schedule`/`replay_tz`: {e}"))?,
        ),
    };
    let poll_interval = Duration::from_secs(args.follow.model_poll_s);
    let promotion_poll = args.replay_on_promotion.then_some(poll_interval);
    let replays = if schedule.is_some() || promotion_poll.is_some() {
        let job = ReplayJob {
            producer: settings.kafka.producer().context("cannot create the Kafka producer")?,
            bucket: settings.bucket.clone(),
            registry: open_registry(&args.follow.registry, &settings, Some(&store)).await?,
            store: store.clone(),
            alias: args.follow.alias.clone(),
            filter: ReplayFilter { prefix: config.filter.inbox_prefix.clone(), since: None, until: None },
            all: false,
            rate: args.replay_rate,
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

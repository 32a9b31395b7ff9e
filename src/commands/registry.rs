//! Opening the model registry named by `--registry`, shared by `model`, `worker`, `ingest`,
//! `replay` and `serve`; following its alias (`worker`, `serve --streaming`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use autorma_classifier::serving::{AliasFollower, FollowConfig, LoadError, ModelHandle};
use autorma_core::{LocalStore, RetryConfig, S3Store, Store};
use autorma_registry::{Actor, ModelPackage, Registry, RegistryError};

use super::cache_dir;
use crate::cli::{ChangeArgs, FollowArgs, RegistryArgs};
use crate::config::{ModelSettings, StreamingSettings};

/// The registry `args` name (`s3://BUCKET` or a folder; the streaming bucket by default).
/// `store` is reused when the registry is in the bucket it already reaches.
pub async fn open_registry(
    args: &RegistryArgs,
    streaming: &StreamingSettings,
    store: Option<&S3Store>,
) -> anyhow::Result<Registry> {
    let location = args.registry.clone().unwrap_or_else(|| format!("s3://{}", streaming.bucket));
    let name = &args.model_name;
    let (store, bucket) = match location.strip_prefix("s3://") {
        Some(bucket) => {
            let bucket = bucket.trim_end_matches('/');
            if bucket.is_empty() || bucket.contains('/') {
                bail!("invalid `registry` = `{location}`: expected s3://BUCKET (set --registry or AUTORMA_REGISTRY)");
            }
            let store = match store {
                Some(store) => store.clone(),
                None => {
                    let store = S3Store::connect(&streaming.s3).await;
                    store
                        .check_bucket(bucket)
                        .await
                        .with_context(|| format!("cannot use the registry `{location}`"))?;
                    store
                }
            };
            (Store::S3(store), bucket)
        }
        None if location.contains("://") => {
            bail!(
                "invalid `registry` = `{location}`: expected s3://BUCKET or a folder (set --registry or AUTORMA_REGISTRY)"
            )
        }
        None => (Store::Local(LocalStore::new(LOCAL_REGISTRY_BUCKET, location.as_str())), LOCAL_REGISTRY_BUCKET),
    };
    Ok(Registry::new(store, bucket, name)?)
}

/// The name a folder registry's one bucket goes by (it appears in no key or message).
const LOCAL_REGISTRY_BUCKET: &str = "registry";

/// Who makes a change: `--by`, else the user name.
pub fn actor(change: &ChangeArgs) -> Actor {
    let who = change.by.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into());
    Actor { who, why: change.reason.clone() }
}

/// How a process names itself in the audit trail: `worker@host:pid`.
pub fn process_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{role}@{host}:{}", std::process::id())
}

/// Start-up reads of the registry wait out a store that blips (a reset connection, a restart)
/// for 6 tries (4 to 8 s of backoff, besides the S3 client's own retries); then the process
/// exits saying it cannot reach the registry, for whatever supervises it to start it again.
const STARTUP_RETRY: RetryConfig =
    RetryConfig { max_attempts: 6, initial_backoff: Duration::from_millis(250), max_backoff: Duration::from_secs(4) };

/// A start-up error, named as unreachable when the store was away for every try.
fn start_up_error(registry: &str, transient: bool, e: impl Into<anyhow::Error>, tries: u32) -> anyhow::Error {
    let e = e.into();
    if transient { e.context(format!("cannot reach the model registry at {registry} ({tries} tries)")) } else { e }
}

/// Seeds a fresh registry with the shipped package, loads the version the alias names, and
/// returns the handle the pipeline serves from with the follower that keeps it current
/// (woken at once by SIGHUP).
pub async fn follow_registry(
    role: &str,
    follow: &FollowArgs,
    model_cache: Option<PathBuf>,
    streaming: &StreamingSettings,
    store: &S3Store,
    settings: &ModelSettings,
    package: Arc<ModelPackage>,
) -> anyhow::Result<(ModelHandle, AliasFollower)> {
    let registry = open_registry(&follow.registry, streaming, Some(store)).await?;
    let alias = follow.alias.clone();
    let worker_id = process_id(role);
    let seeder = Actor { who: worker_id.clone(), why: Some("first start: seeded with the shipped package".into()) };
    let seeded = STARTUP_RETRY.run(
        "seeding the registry",
        || registry.seed(&package, &alias, &seeder),
        RegistryError::is_transient,
    );
    let described = registry.describe();
    let seeded = seeded.await.map_err(|(e, tries)| start_up_error(&described, e.is_transient(), e, tries))?.0;
    if let Some(version) = seeded {
        tracing::info!(registry = %registry.describe(), %alias, version, dir = %package.dir.display(),
            "the registry had no `{alias}`: seeded it with the shipped package");
    }
    let follower = AliasFollower::new(
        registry,
        FollowConfig {
            poll_interval: Duration::from_secs(follow.model_poll_s),
            cache_dir: model_cache.unwrap_or_else(|| cache_dir().join("models")),
            runtime: settings.pipeline.runtime.clone(),
            limits: settings.pipeline.limits,
            workers: settings.pipeline.num_workers,
            worker_id,
            alias: alias.clone(),
            shadow: None,
        },
    );
    let loaded = STARTUP_RETRY.run("loading the model", || follower.load_current(), LoadError::is_transient).await;
    let handle = loaded
        .map_err(|(e, tries)| start_up_error(&described, e.is_transient(), e, tries))
        .with_context(|| format!("cannot serve the model `{alias}` names"))?
        .0;
    let waker = follower.waker();
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
        while hangups.recv().await.is_some() {
            waker.notify_one();
        }
    });
    Ok((handle, follower))
}

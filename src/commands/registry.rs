//! Opening the model registry named by `--registry`, shared by `model`, `worker`, `ingest` and
//! `replay`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use autorma_core::S3Store;
use autorma_registry::{Actor, Registry, RegistryStore};

use crate::cli::{ChangeArgs, RegistryArgs};
use crate::config::{FileConfig, StreamingSettings};

/// The registry `args` name (`s3://BUCKET` or a folder; the streaming bucket by default).
/// `store` is reused when the registry is in the bucket it already reaches.
pub async fn open_registry(
    args: &RegistryArgs,
    file: &FileConfig,
    streaming: &StreamingSettings,
    store: Option<&S3Store>,
) -> anyhow::Result<Registry> {
    let location =
        args.registry.clone().or(file.registry.clone()).unwrap_or_else(|| format!("s3://{}", streaming.bucket));
    let name = args.model_name.clone().or(file.model_name.clone()).unwrap_or_else(|| "fashion5".into());
    let store = match location.strip_prefix("s3://") {
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
            RegistryStore::S3 { store, bucket: bucket.to_string() }
        }
        None if location.contains("://") => {
            bail!(
                "invalid `registry` = `{location}`: expected s3://BUCKET or a folder (set --registry or AUTORMA_REGISTRY)"
            )
        }
        None => RegistryStore::Local { root: PathBuf::from(location) },
    };
    Ok(Registry::new(store, &name)?)
}

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

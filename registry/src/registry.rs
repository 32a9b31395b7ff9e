//! One model's versions, aliases and audit trail in a bucket of a [`Store`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use autorma_core::store::optional;
use autorma_core::{ObjectStore, Store, WriteCondition};
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::RegistryError;
use crate::package::ModelPackage;
use crate::records::{Actor, AliasRecord, AuditAction, AuditRecord, VersionInfo, VersionRecord};

/// Every registry key starts with this (defined beside the other bucket prefixes).
pub use autorma_core::layout::REGISTRY_PREFIX;
/// Records are small; anything larger is not ours.
const MAX_RECORD_BYTES: u64 = 1 << 20;
/// Largest object the registry reads (a model file).
const MAX_OBJECT_BYTES: u64 = 2 << 30;
/// Conditional writes that lose a race are tried again this many times.
const MAX_RACES: u32 = 32;
/// How long `seed` waits for another process seeding the same registry.
const SEED_WAIT_STEPS: u32 = 60;
const SEED_WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct Registry {
    /// The bucket in streaming mode, a local folder in embedded mode (`<folder>/models/...`).
    store: Store,
    bucket: String,
    name: String,
}

impl Registry {
    /// The registry of model `name` (letters, digits, `-`, `_`, `.`) in `bucket` of `store`.
    pub fn new(store: Store, bucket: &str, name: &str) -> Result<Self, RegistryError> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(RegistryError::Usage(format!(
                "model name `{name}` must be letters, digits, `-`, `_` or `.` (e.g. `fashion5`)"
            )));
        }
        Ok(Self { store, bucket: bucket.to_string(), name: name.to_string() })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it lives, for messages.
    pub fn describe(&self) -> String {
        format!("{}/{REGISTRY_PREFIX}{}", self.store.describe(&self.bucket), self.name)
    }

    /// Stores a validated package as the next version and returns its number. The number is
    /// claimed by a conditional write of its `version.json`, so concurrent pushes get
    /// different numbers; the files follow, `model.json` last.
    pub async fn push(&self, package: &ModelPackage, actor: &Actor) -> Result<u32, RegistryError> {
        let next = self.version_numbers().await?.last().map_or(1, |n| n + 1);
        let version = self.push_from(package, actor, next, MAX_RACES).await?;
        version.ok_or_else(|| RegistryError::Conflict(format!("could not claim a version number for `{}`", self.name)))
    }

    /// Pushes as the first free number from `first` on, trying `tries` numbers; `None` when
    /// all were taken.
    async fn push_from(
        &self,
        package: &ModelPackage,
        actor: &Actor,
        first: u32,
        tries: u32,
    ) -> Result<Option<u32>, RegistryError> {
        if package.manifest.name != self.name {
            return Err(RegistryError::Usage(format!(
                "the package is model `{}`, this registry holds `{}`: push it with --model-name {}",
                package.manifest.name, self.name, package.manifest.name
            )));
        }
        let files = package.files();
        let mut version = first;
        let record = loop {
            let record = VersionRecord {
                name: self.name.clone(),
                version,
                sha256: package.manifest.onnx.sha256.to_ascii_lowercase(),
                package_version: package.manifest.version.clone(),
                files: files.clone(),
                pushed_at: Utc::now(),
                pushed_by: actor.who.clone(),
                reason: actor.why.clone(),
                tracking: package.tracking(),
            };
            if self
                .write_json(&self.version_key(version, "version.json"), &record, Some(WriteCondition::IfAbsent))
                .await?
            {
                break record;
            }
            tracing::debug!(version, "version number taken by a concurrent push; trying the next");
            version += 1;
            if version >= first + tries {
                return Ok(None);
            }
        };
        for file in &record.files {
            let path = package.dir.join(file);
            let bytes = tokio::fs::read(&path).await.map_err(|source| RegistryError::Read { path, source })?;
            self.write(&self.version_key(version, file), Bytes::from(bytes), None).await?;
        }
        self.audit(AuditAction::Push, actor, None, None, Some(version)).await;
        tracing::info!(model = %self.name, version, sha256 = %record.sha256, registry = %self.store.describe(&self.bucket), "pushed");
        Ok(Some(version))
    }

    /// Every version, oldest first, with the aliases pointing at each. A version whose record
    /// cannot be read is left out with a warning, so one bad object does not hide the rest.
    pub async fn versions(&self) -> Result<Vec<VersionInfo>, RegistryError> {
        let keys = self.keys(&self.versions_prefix()).await?;
        let aliases = self.aliases().await?;
        let mut out = Vec::new();
        for n in version_numbers(&keys, &self.versions_prefix()) {
            match self.read_json::<VersionRecord>(&self.version_key(n, "version.json")).await {
                Ok(Some(record)) => out.push(version_info(record, &keys, &aliases, &self.version_key(n, "model.json"))),
                Ok(None) => {}
                Err(e) => tracing::warn!(version = n, error = %e, "skipping a version whose record is unreadable"),
            }
        }
        Ok(out)
    }

    /// One version, or an error naming the versions there are.
    pub async fn version(&self, version: u32) -> Result<VersionInfo, RegistryError> {
        let keys = self.keys(&self.version_key(version, "")).await?;
        let Some(record) = self.read_json::<VersionRecord>(&self.version_key(version, "version.json")).await? else {
            return Err(RegistryError::NoSuchVersion {
                model: self.describe(),
                version,
                known: self.version_numbers().await?,
            });
        };
        Ok(version_info(record, &keys, &self.aliases().await?, &self.version_key(version, "model.json")))
    }

    /// The version's `model.json` as stored.
    pub async fn manifest(&self, version: u32) -> Result<serde_json::Value, RegistryError> {
        self.read_json(&self.version_key(version, "model.json"))
            .await?
            .ok_or_else(|| RegistryError::Incomplete { model: self.describe(), version })
    }

    pub async fn alias(&self, alias: &str) -> Result<Option<AliasRecord>, RegistryError> {
        Ok(self.read_alias(alias).await?.map(|(record, _)| record))
    }

    pub async fn aliases(&self) -> Result<Vec<AliasRecord>, RegistryError> {
        let prefix = format!("{REGISTRY_PREFIX}{}/aliases/", self.name);
        let mut out = Vec::new();
        for key in self.keys(&prefix).await? {
            if let Some(record) = self.read_json::<AliasRecord>(&key).await? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Points `alias` at `version` (which must be complete); the version it held before is
    /// kept for `rollback`.
    pub async fn promote(&self, version: u32, alias: &str, actor: &Actor) -> Result<AliasRecord, RegistryError> {
        check_alias_name(alias)?;
        let info = self.version(version).await?;
        if !info.complete {
            return Err(RegistryError::Incomplete { model: self.describe(), version });
        }
        let record = self
            .update_alias(
                alias,
                |current| {
                    let mut previous = current.map(|c| c.previous.clone()).unwrap_or_default();
                    match current {
                        Some(c) if c.version == version => {
                            return Err(RegistryError::Usage(format!(
                                "alias `{alias}` already points at version {version}"
                            )));
                        }
                        Some(c) => previous.push(c.version),
                        None => {}
                    }
                    Ok((version, previous))
                },
                AuditAction::Promote,
                actor,
            )
            .await?;
        self.audit(AuditAction::Promote, actor, Some(alias), record.previous.last().copied(), Some(version)).await;
        Ok(record)
    }

    /// Points `alias` back at the version it held before the last promotion.
    pub async fn rollback(&self, alias: &str, actor: &Actor) -> Result<AliasRecord, RegistryError> {
        self.rollback_if(alias, None, actor).await
    }

    /// As [`Self::rollback`], only while `alias` still names `from`; else
    /// [`RegistryError::AliasMoved`] and nothing changes. For a worker that found `from` wanting:
    /// another worker, or a person, may have moved the alias already.
    pub async fn rollback_from(&self, alias: &str, from: u32, actor: &Actor) -> Result<AliasRecord, RegistryError> {
        self.rollback_if(alias, Some(from), actor).await
    }

    async fn rollback_if(
        &self,
        alias: &str,
        expected: Option<u32>,
        actor: &Actor,
    ) -> Result<AliasRecord, RegistryError> {
        let mut from = None;
        let record = self
            .update_alias(
                alias,
                |current| {
                    let current = current
                        .ok_or_else(|| RegistryError::NoAlias { model: self.describe(), alias: alias.into() })?;
                    if let Some(expected) = expected.filter(|v| *v != current.version) {
                        return Err(RegistryError::AliasMoved {
                            alias: alias.into(),
                            expected,
                            found: current.version,
                        });
                    }
                    let mut previous = current.previous.clone();
                    let back = previous.pop().ok_or_else(|| {
                        RegistryError::Usage(format!(
                            "alias `{alias}` has held only version {}: there is nothing to roll back to",
                            current.version
                        ))
                    })?;
                    from = Some(current.version);
                    Ok((back, previous))
                },
                AuditAction::Rollback,
                actor,
            )
            .await?;
        self.audit(AuditAction::Rollback, actor, Some(alias), from, Some(record.version)).await;
        Ok(record)
    }

    /// Records that a worker refused the version an alias names, and why.
    pub async fn record_refusal(&self, version: u32, alias: &str, by: &str, reason: &str) {
        let actor = Actor { who: by.to_string(), why: Some(reason.to_string()) };
        self.audit(AuditAction::Refused, &actor, Some(alias), None, Some(version)).await;
    }

    /// The audit trail, oldest first.
    pub async fn history(&self) -> Result<Vec<AuditRecord>, RegistryError> {
        let mut out = Vec::new();
        for key in self.keys(&format!("{REGISTRY_PREFIX}{}/audit/", self.name)).await? {
            if let Some(record) = self.read_json::<AuditRecord>(&key).await? {
                out.push(record);
            }
        }
        out.sort_by_key(|r| r.at);
        Ok(out)
    }

    /// A version as a loaded package: in place for a local registry, else downloaded once
    /// into `cache` (re-used while its checksum holds). The package's `version` becomes the
    /// registry's number, which is what results name.
    pub async fn fetch(&self, version: u32, cache: &Path) -> Result<ModelPackage, RegistryError> {
        let info = self.version(version).await?;
        if !info.complete {
            return Err(RegistryError::Incomplete { model: self.describe(), version });
        }
        let prefix = self.version_key(version, "");
        let mut package = match self.store.local_path(prefix.trim_end_matches('/')) {
            Some(dir) => blocking(move || ModelPackage::load(&dir)).await?,
            None => self.download(&info.record, cache).await?,
        };
        if package.manifest.onnx.sha256.to_ascii_lowercase() != info.record.sha256 {
            return Err(RegistryError::Invalid {
                path: package.dir.clone(),
                detail: format!("model.json's sha256 differs from version {version}'s record"),
            });
        }
        package.manifest.version = version.to_string();
        Ok(package)
    }

    /// For a fresh registry (no version yet): stores `package` as version 1 and points `alias`
    /// at it. Returns the version it set, or `None` when the alias exists or another process
    /// seeded it meanwhile. A registry with versions but without the alias is not seeded (a
    /// mistyped alias must not quietly serve the shipped model): after a wait for a seeding
    /// process to finish, that is an error.
    pub async fn seed(&self, package: &ModelPackage, alias: &str, actor: &Actor) -> Result<Option<u32>, RegistryError> {
        check_alias_name(alias)?;
        if self.alias(alias).await?.is_some() {
            return Ok(None);
        }
        if self.version_numbers().await?.is_empty() && self.push_from(package, actor, 1, 1).await? == Some(1) {
            let record = AliasRecord {
                name: self.name.clone(),
                alias: alias.to_string(),
                version: 1,
                previous: Vec::new(),
                change: Some(AuditAction::Promote),
                updated_at: Utc::now(),
                updated_by: actor.who.clone(),
                reason: actor.why.clone(),
            };
            if self.write_json(&self.alias_key(alias), &record, Some(WriteCondition::IfAbsent)).await? {
                self.audit(AuditAction::Promote, actor, Some(alias), None, Some(1)).await;
                return Ok(Some(1));
            }
            return Ok(None);
        }
        for _ in 0..SEED_WAIT_STEPS {
            if self.alias(alias).await?.is_some() {
                return Ok(None);
            }
            tokio::time::sleep(SEED_WAIT_STEP).await;
        }
        Err(RegistryError::NoAlias { model: self.describe(), alias: alias.to_string() })
    }

    /// Read-modify-write of an alias as a compare-and-swap on its etag, retried on a race.
    async fn update_alias(
        &self,
        alias: &str,
        mut next: impl FnMut(Option<&AliasRecord>) -> Result<(u32, Vec<u32>), RegistryError>,
        change: AuditAction,
        actor: &Actor,
    ) -> Result<AliasRecord, RegistryError> {
        for _ in 0..MAX_RACES {
            let current = self.read_alias(alias).await?;
            let (version, previous) = next(current.as_ref().map(|(record, _)| record))?;
            let record = AliasRecord {
                name: self.name.clone(),
                alias: alias.to_string(),
                version,
                previous,
                change: Some(change),
                updated_at: Utc::now(),
                updated_by: actor.who.clone(),
                reason: actor.why.clone(),
            };
            let condition = match &current {
                Some((_, etag)) => WriteCondition::IfMatch(etag),
                None => WriteCondition::IfAbsent,
            };
            if self.write_json(&self.alias_key(alias), &record, Some(condition)).await? {
                tracing::info!(model = %self.name, alias, version, "alias updated");
                return Ok(record);
            }
        }
        Err(RegistryError::Conflict(format!("alias `{alias}` kept changing under this update; try again")))
    }

    async fn read_alias(&self, alias: &str) -> Result<Option<(AliasRecord, String)>, RegistryError> {
        let key = self.alias_key(alias);
        let Some((bytes, etag)) = self.read(&key, MAX_RECORD_BYTES).await? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(&bytes).map_err(|source| RegistryError::BadRecord { key, source })?;
        Ok(Some((record, etag)))
    }

    async fn audit(&self, action: AuditAction, actor: &Actor, alias: Option<&str>, from: Option<u32>, to: Option<u32>) {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let at = Utc::now();
        let id = format!(
            "{}-{}-{}",
            at.format("%Y%m%dT%H%M%S%.6fZ"),
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let record = AuditRecord {
            at,
            by: actor.who.clone(),
            action,
            alias: alias.map(str::to_string),
            from,
            to,
            reason: actor.why.clone(),
        };
        // The change itself is done: a trail that cannot be written is a warning, not a
        // failure that would make the caller try a done change again.
        if let Err(e) = self.write_json(&format!("{REGISTRY_PREFIX}{}/audit/{id}.json", self.name), &record, None).await
        {
            tracing::warn!(action = action.as_str(), error = %e, "could not write the audit record");
        }
    }

    /// The version's package from the cache, fetched into it first unless a copy there
    /// checks out.
    async fn download(&self, record: &VersionRecord, cache: &Path) -> Result<ModelPackage, RegistryError> {
        let dir = cache.join(&self.name).join(format!("{}-{}", record.version, short_sha(&record.sha256)));
        let (held, sha256) = (dir.clone(), record.sha256.clone());
        if let Some(package) = blocking(move || Ok(held_package(&held, &sha256))).await? {
            return Ok(package);
        }
        let mut files = Vec::new();
        for file in &record.files {
            let key = self.version_key(record.version, file);
            let (bytes, _) = self
                .read(&key, MAX_OBJECT_BYTES)
                .await?
                .ok_or_else(|| RegistryError::Incomplete { model: self.describe(), version: record.version })?;
            files.push((file.clone(), bytes));
        }
        let sha256 = record.sha256.clone();
        blocking(move || place_package(&dir, &files, &sha256)).await
    }

    async fn version_numbers(&self) -> Result<Vec<u32>, RegistryError> {
        Ok(version_numbers(&self.keys(&self.versions_prefix()).await?, &self.versions_prefix()))
    }

    /// The object and its etag, `None` when there is none.
    async fn read(&self, key: &str, max_bytes: u64) -> Result<Option<(Bytes, String)>, RegistryError> {
        Ok(optional(self.store.get_tagged(&self.bucket, key, max_bytes).await)?)
    }

    /// Writes `bytes` at `key` if `condition` holds (always when `None`); `Ok(false)` when it
    /// did not and nothing was written.
    async fn write(
        &self,
        key: &str,
        bytes: Bytes,
        condition: Option<WriteCondition<'_>>,
    ) -> Result<bool, RegistryError> {
        let content_type = if key.ends_with(".json") { "application/json" } else { "application/octet-stream" };
        let written = match condition {
            None => self.store.put(&self.bucket, key, bytes, content_type).await.map(|()| true),
            Some(condition) => self.store.put_if(&self.bucket, key, bytes, content_type, condition).await,
        };
        Ok(written?)
    }

    /// Every key under `prefix`.
    async fn keys(&self, prefix: &str) -> Result<Vec<String>, RegistryError> {
        Ok(self.store.list(&self.bucket, prefix).await?.into_iter().map(|o| o.key).collect())
    }

    async fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RegistryError> {
        let Some((bytes, _)) = self.read(key, MAX_RECORD_BYTES).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|source| RegistryError::BadRecord { key: key.into(), source })
    }

    async fn write_json<T: Serialize>(
        &self,
        key: &str,
        record: &T,
        condition: Option<WriteCondition<'_>>,
    ) -> Result<bool, RegistryError> {
        let bytes = serde_json::to_vec_pretty(record).expect("records serialise");
        self.write(key, Bytes::from(bytes), condition).await
    }

    fn versions_prefix(&self) -> String {
        format!("{REGISTRY_PREFIX}{}/versions/", self.name)
    }

    fn version_key(&self, version: u32, file: &str) -> String {
        format!("{}{version}/{file}", self.versions_prefix())
    }

    fn alias_key(&self, alias: &str) -> String {
        format!("{REGISTRY_PREFIX}{}/aliases/{alias}.json", self.name)
    }
}

/// The first 12 hex digits, for names and tables (the whole text if shorter).
pub fn short_sha(sha256: &str) -> &str {
    sha256.get(..12).unwrap_or(sha256)
}

/// The package in `dir`, when one there checks out and its model.onnx has `sha256`.
fn held_package(dir: &Path, sha256: &str) -> Option<ModelPackage> {
    ModelPackage::load(dir).ok().filter(|p| p.manifest.onnx.sha256.eq_ignore_ascii_case(sha256))
}

/// Makes `dir` the package folder of `files` (name, bytes) unless a copy there already checks
/// out, and loads it: written into a temporary folder beside it, then renamed into place, so
/// no reader sees half a package. Another process on this machine may place the same package
/// meanwhile: whichever copy checks out is kept, and none that another process may be loading
/// is removed.
pub(crate) fn place_package(
    dir: &Path,
    files: &[(impl AsRef<str>, impl AsRef<[u8]>)],
    sha256: &str,
) -> Result<ModelPackage, RegistryError> {
    if let Some(package) = held_package(dir, sha256) {
        return Ok(package);
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RegistryError::Write { path, source }
    };
    let tmp = dir.with_extension(format!("download-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(write_err(&tmp))?;
    for (name, bytes) in files {
        std::fs::write(tmp.join(name.as_ref()), bytes.as_ref()).map_err(write_err(&tmp))?;
    }
    if std::fs::rename(&tmp, dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        return held_package(dir, sha256).ok_or_else(|| RegistryError::Invalid {
            path: dir.to_path_buf(),
            detail: "a cached copy of this package does not check out: delete the folder".into(),
        });
    }
    ModelPackage::load(dir)
}

/// Runs file work (reading, hashing, writing packages) on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f).await.expect("package file work panicked")
}

fn version_info(record: VersionRecord, keys: &[String], aliases: &[AliasRecord], manifest_key: &str) -> VersionInfo {
    let aliases = aliases.iter().filter(|a| a.version == record.version).map(|a| a.alias.clone()).collect();
    VersionInfo { complete: keys.iter().any(|k| k == manifest_key), record, aliases }
}

fn check_alias_name(alias: &str) -> Result<(), RegistryError> {
    if alias.is_empty() || !alias.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) {
        return Err(RegistryError::Usage(format!(
            "alias `{alias}` must be letters, digits, `-` or `_` (e.g. `production`)"
        )));
    }
    Ok(())
}

/// The distinct version numbers among `keys` (`<prefix><n>/...`), ascending.
fn version_numbers(keys: &[String], prefix: &str) -> Vec<u32> {
    let mut numbers: Vec<u32> =
        keys.iter().filter_map(|k| k.strip_prefix(prefix)?.split_once('/')?.0.parse().ok()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../classifier/tests/fixtures/tiny5");

    fn actor(who: &str) -> Actor {
        Actor { who: who.into(), why: Some("test".into()) }
    }

    fn local(dir: &Path) -> Registry {
        Registry::new(Store::Local(autorma_core::LocalStore::new("local", dir)), "local", "tiny5").unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_pushes_take_different_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        let pushes = (0..6).map(|i| {
            let (registry, package) = (local(dir.path()), package.clone());
            tokio::spawn(async move { registry.push(&package, &actor(&format!("p{i}"))).await.unwrap() })
        });
        let mut numbers: Vec<u32> = futures_join(pushes).await;
        numbers.sort_unstable();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
        let versions = local(dir.path()).versions().await.unwrap();
        assert!(versions.iter().all(|v| v.complete), "{versions:?}");
    }

    async fn futures_join(handles: impl Iterator<Item = tokio::task::JoinHandle<u32>>) -> Vec<u32> {
        let mut out = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            out.push(handle.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn promote_and_rollback_walk_the_alias_history_and_leave_an_audit_trail() {
        let dir = tempfile::tempdir().unwrap();
        let registry = local(dir.path());
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        for _ in 0..3 {
            registry.push(&package, &actor("ann")).await.unwrap();
        }
        assert_eq!(registry.promote(1, "production", &actor("ann")).await.unwrap().version, 1);
        assert_eq!(registry.promote(3, "production", &actor("bob")).await.unwrap().version, 3);
        let err = registry.promote(3, "production", &actor("bob")).await.unwrap_err().to_string();
        assert!(err.contains("already points at version 3"), "{err}");
        let err = registry.promote(9, "production", &actor("bob")).await.unwrap_err().to_string();
        assert!(err.contains("no version 9"), "{err}");
        let back = registry.rollback("production", &actor("cy")).await.unwrap();
        assert_eq!((back.version, back.previous.clone()), (1, vec![]));
        let err = registry.rollback("production", &actor("cy")).await.unwrap_err().to_string();
        assert!(err.contains("nothing to roll back to"), "{err}");
        assert!(registry.rollback("staging", &actor("cy")).await.unwrap_err().to_string().contains("no alias"));
        registry.promote(2, "production", &actor("dee")).await.unwrap();
        let moved = registry.rollback_from("production", 3, &actor("worker")).await.unwrap_err();
        assert!(matches!(moved, RegistryError::AliasMoved { expected: 3, found: 2, .. }), "{moved}");
        assert_eq!(registry.rollback_from("production", 2, &actor("worker")).await.unwrap().version, 1);

        let history = registry.history().await.unwrap();
        let trail: Vec<_> = history.iter().map(|r| (r.action, r.from, r.to, r.by.as_str())).collect();
        assert_eq!(
            trail,
            vec![
                (AuditAction::Push, None, Some(1), "ann"),
                (AuditAction::Push, None, Some(2), "ann"),
                (AuditAction::Push, None, Some(3), "ann"),
                (AuditAction::Promote, None, Some(1), "ann"),
                (AuditAction::Promote, Some(1), Some(3), "bob"),
                (AuditAction::Rollback, Some(3), Some(1), "cy"),
                (AuditAction::Promote, Some(1), Some(2), "dee"),
                (AuditAction::Rollback, Some(2), Some(1), "worker"),
            ]
        );
        let versions = registry.versions().await.unwrap();
        assert_eq!(versions[0].aliases, vec!["production".to_string()]);
        assert!(versions[1].aliases.is_empty() && versions[2].aliases.is_empty());
    }

    #[tokio::test]
    async fn fetch_names_the_registry_version_and_seed_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = local(dir.path());
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        assert_eq!(registry.seed(&package, "production", &actor("w1")).await.unwrap(), Some(1));
        assert_eq!(registry.seed(&package, "production", &actor("w2")).await.unwrap(), None);
        assert_eq!(registry.versions().await.unwrap().len(), 1, "a second seed pushes nothing");
        let fetched = registry.fetch(1, dir.path()).await.unwrap();
        assert_eq!(fetched.manifest.version, "1");
        assert_eq!(fetched.manifest.onnx.sha256, package.manifest.onnx.sha256);
    }

    #[tokio::test]
    async fn an_incomplete_version_cannot_be_promoted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = local(dir.path());
        let package = ModelPackage::load(Path::new(FIXTURE)).unwrap();
        registry.push(&package, &actor("ann")).await.unwrap();
        std::fs::remove_file(dir.path().join("models/tiny5/versions/1/model.json")).unwrap();
        let err = registry.promote(1, "production", &actor("ann")).await.unwrap_err();
        assert!(matches!(err, RegistryError::Incomplete { version: 1, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_push_records_the_training_run_model_json_names() {
        let dir = tempfile::tempdir().unwrap();
        let package_dir = dir.path().join("package");
        std::fs::create_dir(&package_dir).unwrap();
        for file in ["model.onnx", "model.json"] {
            std::fs::copy(Path::new(FIXTURE).join(file), package_dir.join(file)).unwrap();
        }
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(package_dir.join("model.json")).unwrap()).unwrap();
        let run = serde_json::json!({"tool": "mlflow", "run_id": "0123456789abcdef0123456789abcdef",
            "experiment": "autorma-tiny5", "tracking_uri": "sqlite:////runs/mlflow.db"});
        manifest["training"]["tracking"] = run.clone();
        std::fs::write(package_dir.join("model.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();

        let registry = local(&dir.path().join("registry"));
        let plain = registry.push(&ModelPackage::load(Path::new(FIXTURE)).unwrap(), &actor("ann")).await.unwrap();
        let tracked = registry.push(&ModelPackage::load(&package_dir).unwrap(), &actor("ann")).await.unwrap();
        assert_eq!(registry.version(plain).await.unwrap().record.tracking, None);
        let recorded = registry.version(tracked).await.unwrap().record.tracking.expect("the run is recorded");
        assert_eq!(serde_json::to_value(recorded).unwrap(), run);
    }

    #[test]
    fn version_numbers_are_read_from_keys() {
        let keys =
            ["p/2/model.json", "p/10/version.json", "p/2/version.json", "p/x/version.json", "p/3"].map(String::from);
        assert_eq!(version_numbers(&keys, "p/"), vec![2, 10]);
    }
}

//! Following a registry alias: notice when it names another version (a poll, or at once when
//! woken), load that version beside the one serving, check it, and swap it in. A version that
//! fails to load or check is refused: logged, recorded in the registry's audit trail, and not
//! tried again; the serving model goes on. A replayed photo that asks for a newer version than
//! the one served wakes the follower too (see [`ModelHandle::wait_for_version`]).
//!
//! With a shadow slot ([`ShadowFollow`]) it also keeps the slot on the version the `shadow`
//! alias names, and after a promotion it runs the version production held before beside the
//! new one for a while (a guard): if the new one strays past the bounds, it rolls the alias
//! back (the audit record says why) and serves the old one again at once.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use autorma_core::metrics::metrics;
use autorma_core::shadow::Verdict;
use autorma_registry::{Actor, AliasRecord, AuditAction, Registry, RegistryError};
use tokio::sync::Notify;

use super::shadow::{ShadowHandle, Tripped, WatchConfig};
use super::{ModelHandle, ServingModel};
use crate::inference::{InferenceError, RuntimeConfig};
use crate::preprocess::DecodeLimits;

#[derive(Debug, Clone)]
pub struct FollowConfig {
    pub alias: String,
    pub poll_interval: Duration,
    /// Where versions downloaded from a bucket are kept.
    pub cache_dir: PathBuf,
    pub runtime: RuntimeConfig,
    pub limits: DecodeLimits,
    /// Sessions per model: one per inference worker.
    pub workers: usize,
    /// Who a refusal (or an automatic rollback) is recorded as (host and process).
    pub worker_id: String,
    /// The shadow slot to keep, when the pipeline runs one.
    pub shadow: Option<ShadowFollow>,
}

#[derive(Debug, Clone)]
pub struct ShadowFollow {
    pub handle: ShadowHandle,
    /// The alias whose version runs as the candidate (`shadow`); unset: none runs.
    pub alias: String,
    pub watch: WatchConfig,
}

/// What the follower's loop remembers between two looks.
#[derive(Default)]
struct FollowState {
    /// A guard's finding whose rollback has not been written yet (the store was away).
    pending_rollback: Option<Tripped>,
    /// Shadow versions this worker could not load: not tried again.
    refused_shadows: std::collections::HashSet<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Inference(#[from] InferenceError),
}

impl LoadError {
    /// The store was away: the version is not at fault, try it again (at the next poll).
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::Registry(e) if e.is_transient())
    }
}

pub struct AliasFollower {
    registry: Registry,
    config: FollowConfig,
    wake: Arc<Notify>,
}

impl AliasFollower {
    pub fn new(registry: Registry, config: FollowConfig) -> Self {
        Self { registry, config, wake: Arc::default() }
    }

    /// Also keeps `shadow`'s slot (the shadow alias's version, and the watch of promotions).
    pub fn with_shadow(mut self, shadow: Option<ShadowFollow>) -> Self {
        self.config.shadow = shadow;
        self
    }

    /// Notify it to look at the alias now rather than at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The version the alias names now, loaded and checked, as the handle to serve from. If
    /// it is refused, the versions the alias named before are tried, newest first, so a
    /// restart never stops a fleet that was serving: a refusal is recorded either way.
    pub async fn load_current(&self) -> Result<ModelHandle, LoadError> {
        let alias = &self.config.alias;
        let record = self
            .registry
            .alias(alias)
            .await?
            .ok_or_else(|| RegistryError::NoAlias { model: self.registry.describe(), alias: alias.clone() })?;
        let mut refused: Vec<u32> = Vec::new();
        let mut first_error = None;
        for version in std::iter::once(record.version).chain(record.previous.iter().rev().copied()) {
            match self.load(version, self.config.workers).await {
                Ok(model) => {
                    if first_error.is_some() {
                        tracing::error!(%alias, named = record.version, serving = version,
                            "the alias names a version this worker refused; serving the one it named before");
                    }
                    let handle = ModelHandle::new(model);
                    for version in refused {
                        handle.refuse(&version.to_string());
                    }
                    return Ok(handle);
                }
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => {
                    self.refuse(version, alias, &e).await;
                    refused.push(version);
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.expect("the alias names at least one version"))
    }

    /// Logs a refusal and records it in the registry's audit trail.
    async fn refuse(&self, version: u32, alias: &str, error: &LoadError) {
        tracing::error!(version, alias, %error, "refused this model version");
        self.registry.record_refusal(version, alias, &self.config.worker_id, &error.to_string()).await;
    }

    /// The version, with `workers` sessions.
    async fn load(&self, version: u32, workers: usize) -> Result<ServingModel, LoadError> {
        let package = Arc::new(self.registry.fetch(version, &self.config.cache_dir).await?);
        let (runtime, limits) = (self.config.runtime.clone(), self.config.limits);
        let model = tokio::task::spawn_blocking(move || ServingModel::load(package, &runtime, limits, workers))
            .await
            .expect("loading a model panicked")?;
        Ok(model)
    }

    /// Keeps `handle` on the alias's version (and the shadow slot on the shadow's) until
    /// `shutdown` completes.
    pub async fn run(self, handle: ModelHandle, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let alias = self.config.alias.clone();
        let wanted = handle.wanted();
        let tripped = self.config.shadow.as_ref().map(|s| s.handle.tripped());
        let mut state = FollowState::default();
        self.follow_shadow(&handle, &mut state).await;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.config.poll_interval) => {}
                () = self.wake.notified() => tracing::info!(%alias, "asked to look at the alias now"),
                () = wanted.notified() => tracing::info!(%alias, "a replayed photo asks for a newer version; looking now"),
                () = notified(tripped.as_deref()) => {}
            }
            self.roll_back_if_tripped(&handle, &mut state).await;
            self.follow_production(&handle, &mut state).await;
            self.follow_shadow(&handle, &mut state).await;
        }
    }

    /// Swaps to the version the alias names, if it is new and not refused; a promotion starts
    /// a guard when there is a shadow slot.
    async fn follow_production(&self, handle: &ModelHandle, state: &mut FollowState) {
        let alias = &self.config.alias;
        let record = match self.registry.alias(alias).await {
            Ok(Some(record)) => record,
            Ok(None) => {
                tracing::warn!(%alias, registry = %self.registry.describe(), "the alias is gone; serving on");
                return;
            }
            Err(e) => {
                tracing::warn!(%alias, error = %e, "cannot read the alias; serving on");
                return;
            }
        };
        let version = record.version;
        let serving = handle.current().model.version.clone();
        if serving == version.to_string() || handle.is_refused(&version.to_string()) {
            return;
        }
        tracing::info!(%alias, from_version = %serving, to_version = version, "the alias names a new version; loading it");
        match self.load(version, self.config.workers).await {
            Ok(model) => {
                let old = handle.swap(Arc::new(model));
                let Some(shadow) = &self.config.shadow else { return };
                // A guard watched the version just replaced: its watch, and any rollback of it
                // not yet written, are over.
                state.pending_rollback = None;
                if shadow.handle.end_guard().is_some() {
                    tracing::info!(from_version = %serving, "the alias moved on during the watch; the watch ends");
                }
                if shadow.watch.window.is_zero() {
                    return;
                }
                if promoted_from(&record, &old.model.version) {
                    shadow.handle.start_guard(old, &version.to_string(), shadow.watch);
                } else if record.change != Some(AuditAction::Rollback) {
                    tracing::info!(%alias, from_version = %serving, to_version = version, previous = ?record.previous,
                        "not watching this version: the alias moved more than once since this worker's last look, \
                         so a rollback would not return to the version it could compare with");
                }
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(version, error = %e, "could not fetch the new version; trying again at the next poll");
            }
            Err(e) => {
                tracing::error!(serving_version = %serving, "the serving model goes on");
                handle.refuse(&version.to_string());
                self.refuse(version, alias, &e).await;
            }
        }
    }

    /// Ends a guard whose window has passed, else keeps the slot on the shadow alias's version.
    async fn follow_shadow(&self, handle: &ModelHandle, state: &mut FollowState) {
        let Some(shadow) = &self.config.shadow else { return };
        if shadow.handle.guarding() {
            let Some((measured, verdict)) = shadow.handle.end_guard_if_over() else { return };
            let version = handle.current().model.version.clone();
            let outcome = match verdict {
                Verdict::TooFew { .. } => "too few photos to judge it; it stays",
                _ => "within its bounds; it stays",
            };
            tracing::info!(%version, photos = measured.photos, agreement = measured.agreement(),
                review_share = measured.candidate_review_share(),
                previous_review_share = measured.baseline_review_share(), label_shift = measured.label_shift(),
                "the watch of the promoted version ends: {outcome}");
        }
        let wanted = match self.registry.alias(&shadow.alias).await {
            Ok(record) => record.map(|r| r.version),
            Err(e) => {
                tracing::warn!(alias = %shadow.alias, error = %e, "cannot read the shadow alias; the shadow stays as it is");
                return;
            }
        };
        let production = handle.current().model.version.clone();
        let wanted = wanted.filter(|v| v.to_string() != production && !state.refused_shadows.contains(v));
        let running = shadow.handle.current().map(|m| m.model.model.version.clone());
        if wanted.map(|v| v.to_string()) == running {
            return;
        }
        let Some(version) = wanted else {
            shadow.handle.set_candidate(None);
            return;
        };
        // One session: the shadow thread is its only user.
        match self.load(version, 1).await {
            Ok(model) => shadow.handle.set_candidate(Some(Arc::new(model))),
            Err(e) if e.is_transient() => {
                tracing::warn!(version, error = %e, "could not fetch the shadow version; trying again at the next poll")
            }
            Err(e) => {
                state.refused_shadows.insert(version);
                self.refuse(version, &shadow.alias, &e).await;
            }
        }
    }

    /// When a guard found the promoted version past its bounds: rolls the alias back from it
    /// (unless someone moved it meanwhile) and serves the version before at once.
    async fn roll_back_if_tripped(&self, handle: &ModelHandle, state: &mut FollowState) {
        let Some(shadow) = &self.config.shadow else { return };
        if let Some(tripped) = shadow.handle.take_trip() {
            state.pending_rollback = Some(tripped);
        }
        let Some(tripped) = state.pending_rollback.take() else { return };
        if !shadow.handle.is_guarding(&tripped) {
            return;
        }
        let alias = &self.config.alias;
        let Ok(from) = tripped.candidate.parse::<u32>() else { return };
        let reason = rollback_reason(&tripped);
        let actor = Actor { who: self.config.worker_id.clone(), why: Some(reason.clone()) };
        match self.registry.rollback_from(alias, from, &actor).await {
            Ok(record) => {
                tracing::error!(%alias, from_version = from, to_version = record.version, %reason,
                    "rolled the alias back: the promoted version strayed past its bounds");
                metrics().automatic_rollbacks.add(1, &[opentelemetry::KeyValue::new("alias", alias.clone())]);
            }
            Err(RegistryError::AliasMoved { found, .. }) => {
                tracing::info!(%alias, from_version = from, now = found, "the alias moved on meanwhile: no rollback needed");
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(%alias, error = %e, "could not roll the alias back; trying again at the next poll");
                state.pending_rollback = Some(tripped);
                return;
            }
            Err(e) => {
                // The alias keeps naming it: this worker stays off it rather than flap.
                tracing::error!(%alias, error = %e, version = from, "could not roll the alias back; this worker refuses the version");
                handle.refuse(&tripped.candidate);
            }
        }
        // Back to the version before, already loaded as the guard, whatever the alias says
        // now: the next look at the alias follows it from there.
        if let Some(previous) = shadow.handle.current().filter(|m| m.model.model.version == tripped.baseline) {
            handle.swap(previous.model.clone());
        }
        shadow.handle.end_guard();
    }
}

/// Whether the alias moved to its version from `old` by one promotion, so that a rollback
/// returns to `old`: not after a rollback, nor when it moved twice since the worker looked.
fn promoted_from(record: &AliasRecord, old: &str) -> bool {
    record.change != Some(AuditAction::Rollback) && record.previous.last().is_some_and(|v| v.to_string() == old)
}

/// The audit trail's reason for an automatic rollback, with the figures.
fn rollback_reason(tripped: &Tripped) -> String {
    format!(
        "automatic: version {} against version {} on {} photos: {}",
        tripped.candidate,
        tripped.baseline,
        tripped.photos,
        tripped.broken.join("; ")
    )
}

/// Waits for `notify`, or forever without one.
async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(version: u32, previous: &[u32], change: AuditAction) -> AliasRecord {
        AliasRecord {
            name: "m".into(),
            alias: "production".into(),
            version,
            previous: previous.to_vec(),
            change: Some(change),
            updated_at: chrono::Utc::now(),
            updated_by: "ann".into(),
            reason: None,
        }
    }

    #[test]
    fn one_promotion_is_watched_and_a_rollback_or_a_double_move_is_not() {
        use AuditAction::{Promote, Rollback};
        assert!(promoted_from(&alias(2, &[1], Promote), "1"));
        assert!(!promoted_from(&alias(3, &[1, 2], Promote), "1"), "two promotions within one poll");
        // 1 -> 2 -> 1 -> 2, then 2 rolled back to 1: 2 is still on the list, but a rollback
        // is not watched (a guard would roll the bad version back in).
        assert!(!promoted_from(&alias(1, &[1, 2], Rollback), "2"));
        assert!(!promoted_from(&alias(1, &[], Promote), "1"));
    }
}

//! The model run beside production on a sample of photos (`autorma_core::shadow`): a candidate
//! from the registry's `shadow` alias, or, for a while after a promotion, the version
//! production held before, as a guard that watches the new one. Its answers are never a
//! Result; they go to `rma.shadow` and the metrics.
//!
//! The pipeline reads the slot once per sampled photo; the follower (`follow.rs`) fills it.
//! While a guard watches, the slot is the guard's: the shadow alias waits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use autorma_core::shadow::{Bounds, Comparison, ShadowRecord, ShadowRole, Verdict};
use tokio::sync::{Notify, watch};

use super::ServingModel;

/// The other model, in its role.
#[derive(Debug)]
pub struct ShadowModel {
    pub model: Arc<ServingModel>,
    pub role: ShadowRole,
}

/// How a promotion is watched by the workers that were serving when it came.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatchConfig {
    /// How long after the swap the new version is watched; zero: not watched.
    pub window: Duration,
    pub bounds: Bounds,
}

/// What a guard found past its bounds: the alias should go back to `baseline`.
#[derive(Debug, Clone)]
pub struct Tripped {
    pub candidate: String,
    pub baseline: String,
    pub broken: Vec<String>,
    /// Photos compared when it tripped.
    pub photos: u64,
}

#[derive(Debug)]
struct Guard {
    candidate: String,
    baseline: String,
    bounds: Bounds,
    /// When the watch ends.
    until: Instant,
    comparison: Comparison,
    tripped: bool,
}

#[derive(Debug, Clone)]
pub struct ShadowHandle {
    current: Arc<watch::Sender<Option<Arc<ShadowModel>>>>,
    guard: Arc<Mutex<Option<Guard>>>,
    trips: Arc<Mutex<Option<Tripped>>>,
    tripped: Arc<Notify>,
}

impl Default for ShadowHandle {
    fn default() -> Self {
        Self {
            current: Arc::new(watch::Sender::new(None)),
            guard: Arc::default(),
            trips: Arc::default(),
            tripped: Arc::default(),
        }
    }
}

impl ShadowHandle {
    /// The model sampled photos are run on now, if any.
    pub fn current(&self) -> Option<Arc<ShadowModel>> {
        self.current.borrow().clone()
    }

    /// Whether a guard holds the slot.
    pub fn guarding(&self) -> bool {
        self.guard.lock().expect("guard poisoned").is_some()
    }

    /// Runs `model` as the candidate beside production (`None`: no shadow), unless a guard
    /// holds the slot.
    pub fn set_candidate(&self, model: Option<Arc<ServingModel>>) {
        if self.guarding() {
            return;
        }
        let new = model.map(|model| Arc::new(ShadowModel { model, role: ShadowRole::Shadow }));
        let describe = |m: &Option<Arc<ShadowModel>>| m.as_ref().map(|m| m.model.model.version.clone());
        let old = self.current.send_replace(new.clone());
        if describe(&old) != describe(&new) {
            tracing::info!(from_version = ?describe(&old), to_version = ?describe(&new), "shadow model changed");
        }
    }

    /// Runs `previous` beside the newly promoted `candidate` version, for `watch`'s window,
    /// measured against its bounds.
    pub fn start_guard(&self, previous: Arc<ServingModel>, candidate: &str, watch: WatchConfig) {
        let baseline = previous.model.version.clone();
        *self.guard.lock().expect("guard poisoned") = Some(Guard {
            candidate: candidate.to_string(),
            baseline: baseline.clone(),
            bounds: watch.bounds,
            until: Instant::now() + watch.window,
            comparison: Comparison::default(),
            tripped: false,
        });
        // A trip of an earlier guard is not this one's.
        self.take_trip();
        self.current.send_replace(Some(Arc::new(ShadowModel { model: previous, role: ShadowRole::Guard })));
        tracing::info!(candidate, baseline, "watching the promoted version against the one before it");
    }

    /// Ends the guard (the slot is empty until the follower sets a candidate); returns what it
    /// measured.
    pub fn end_guard(&self) -> Option<(Comparison, Verdict)> {
        let guard = self.guard.lock().expect("guard poisoned").take()?;
        self.take_trip();
        self.current.send_replace(None);
        let verdict = guard.bounds.check_confident(&guard.comparison);
        Some((guard.comparison, verdict))
    }

    /// Ends the guard if its window has passed: what [`Self::end_guard`] returns; `None` while
    /// it runs, or without one.
    pub fn end_guard_if_over(&self) -> Option<(Comparison, Verdict)> {
        let over = self.guard.lock().expect("guard poisoned").as_ref().is_some_and(|g| Instant::now() >= g.until);
        if over { self.end_guard() } else { None }
    }

    /// Whether the guard running now is the one that measured `tripped`.
    pub fn is_guarding(&self, tripped: &Tripped) -> bool {
        let guard = self.guard.lock().expect("guard poisoned");
        guard.as_ref().is_some_and(|g| g.candidate == tripped.candidate && g.baseline == tripped.baseline)
    }

    /// Counts a guard's record; the first time its figures go past the bounds, wakes
    /// [`Self::tripped`].
    pub fn observe(&self, record: &ShadowRecord) {
        if record.role != ShadowRole::Guard {
            return;
        }
        let mut guard = self.guard.lock().expect("guard poisoned");
        let Some(guard) = guard.as_mut() else { return };
        if guard.tripped
            || record.production.model.version != guard.candidate
            || record.shadow.model.version != guard.baseline
        {
            return;
        }
        guard.comparison.add(record);
        // Checked after every photo, by every worker: only a bound broken beyond the sampling
        // noise of the photos so far trips, or repeated looks would roll back good versions.
        if let Verdict::Outside(broken) = guard.bounds.check_confident(&guard.comparison) {
            guard.tripped = true;
            *self.trips.lock().expect("trips poisoned") = Some(Tripped {
                candidate: guard.candidate.clone(),
                baseline: guard.baseline.clone(),
                broken,
                photos: guard.comparison.photos,
            });
            self.tripped.notify_one();
        }
    }

    /// Woken when a guard's figures go past its bounds.
    pub fn tripped(&self) -> Arc<Notify> {
        self.tripped.clone()
    }

    pub fn take_trip(&self) -> Option<Tripped> {
        self.trips.lock().expect("trips poisoned").take()
    }
}

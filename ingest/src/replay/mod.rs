//! The bulk replay: classify again, with the model now behind an alias, what another model
//! classified.
//!
//! [`plan`] lists the bucket's inbox (a prefix and a time window) and reads each photo's result
//! to skip those the current version already made; [`send`] writes the rest to
//! `rma.items.replay` at a bounded rate, where workers serve them only with what live photos
//! leave over (the bulk lane). [`schedule`] runs it from a cron expression in a time zone, and
//! after a promotion, inside `autorma ingest`. [`list_source`] is the embedded mode's
//! counterpart: the earlier run's results to re-classify, as a finite event source.

mod job;
pub mod list_source;
pub mod plan;
pub mod schedule;
pub mod send;

pub use job::{ReplayError, ReplayJob};
pub use list_source::ListSource;
pub use plan::{CurrentModel, ReplayFilter, ReplayPlan, made_by, plan_replay};
pub use schedule::{ReplaySchedule, ReplayTrigger, run_replay_schedule};
pub use send::{ReplaySummary, send_replay};

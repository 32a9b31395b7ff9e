//! The registry's JSON records, as stored under `models/<name>/`:
//!
//! ```text
//! versions/<n>/version.json   VersionRecord: written first, conditionally (claims number n)
//! versions/<n>/model.onnx     the package's files, then
//! versions/<n>/model.json     last: a version is complete once its model.json is there
//! aliases/<alias>.json        AliasRecord: the version it points at and the ones before
//! audit/<time>-<id>.json      AuditRecord: one per change (push, promote, rollback, refusal)
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Who made a change and why: the audit trail's columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: String,
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub name: String,
    pub version: u32,
    /// sha256 of the version's model.onnx.
    pub sha256: String,
    /// `version` in the pushed model.json: the training run's own name for it.
    pub package_version: String,
    /// File names in the version's folder, model.json last.
    pub files: Vec<String>,
    pub pushed_at: DateTime<Utc>,
    pub pushed_by: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// The experiment-tracking run that made the package (model.json's `training.tracking`),
    /// so a version leads back to its parameters, metrics and artefacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingRun>,
}

/// Where a package's training run is recorded (models/PACKAGE.md, `training.tracking`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackingRun {
    /// `mlflow`.
    pub tool: String,
    pub run_id: String,
    pub experiment: String,
    pub tracking_uri: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRecord {
    pub name: String,
    pub alias: String,
    pub version: u32,
    /// Versions the alias held before, oldest first: `rollback` returns to the last one.
    #[serde(default)]
    pub previous: Vec<u32>,
    /// How it came to name `version`: a promotion (or the seed) or a rollback (absent in
    /// records written before the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<AuditAction>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Push,
    Promote,
    Rollback,
    /// A worker would not serve the version the alias names (it failed to load or check).
    Refused,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Push => "push",
            AuditAction::Promote => "promote",
            AuditAction::Rollback => "rollback",
            AuditAction::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub by: String,
    pub action: AuditAction,
    #[serde(default)]
    pub alias: Option<String>,
    /// The version the alias held before (promote, rollback).
    #[serde(default)]
    pub from: Option<u32>,
    /// The version pushed, promoted to, rolled back to, or refused.
    #[serde(default)]
    pub to: Option<u32>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// One version as `list` and `show` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    #[serde(flatten)]
    pub record: VersionRecord,
    /// False while a push is uploading (or after one that died): not promotable.
    pub complete: bool,
    /// Aliases that point at it now.
    pub aliases: Vec<String>,
}

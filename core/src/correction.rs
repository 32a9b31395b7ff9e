//! `CorrectionRecord`: a person's label for a photo the model was unsure of (or wrong about),
//! the raw material of the next training set (DESIGN.md, "Serving people").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::result::{ItemRef, ModelRef};

/// Written beside the photo's result (`corrections/<key>.json`) and, in streaming mode, to
/// `rma.corrections`. A later correction of the same photo replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorrectionRecord {
    pub item: ItemRef,
    /// The person's label: one of the model's classes.
    pub label: String,
    /// What the model said, and which model.
    pub model_label: String,
    pub model: ModelRef,
    /// Who set it, when the client says.
    #[serde(default)]
    pub by: Option<String>,
    pub corrected_at: DateTime<Utc>,
}

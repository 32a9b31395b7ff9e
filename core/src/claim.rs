//! `Claim`: what the customer says they are returning, which travels with the photo, and
//! `ClaimCheck`: what the photo says of it (DESIGN.md, "Contracts").
//!
//! A claim arrives as the photo object's metadata (`x-amz-meta-expected-label`, `-sku`,
//! `-rma-id` on S3; extended attributes `user.expected-label`… on a local folder), as fields
//! of an upload, or from a claims file in embedded mode. A photo without one is classified as
//! before, and its result has no `claim`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An object's user metadata, by name (S3's `x-amz-meta-<name>`, lower case).
pub type Metadata = BTreeMap<String, String>;

/// Metadata names of a claim's fields.
pub const META_EXPECTED_LABEL: &str = "expected-label";
pub const META_SKU: &str = "sku";
pub const META_RMA_ID: &str = "rma-id";

/// A claim's fields as requests (`/v1/uploads`, `/v1/classify`) and claims files name them.
pub const FIELDS: [&str; 3] = ["expected_label", "sku", "rma_id"];

/// Longest value of a claim's field: an identifier, not a document.
pub const MAX_CLAIM_FIELD_CHARS: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    /// The class the customer returns, one of the model's classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_label: Option<String>,
    /// The product the customer returns, compared with its catalogue photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// The return's id in the shop's system, carried through for the people who look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rma_id: Option<String>,
}

/// Why a claim was refused where it came in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim field `{field}`: {reason}")]
pub struct ClaimError {
    pub field: &'static str,
    pub reason: String,
}

impl Claim {
    /// A claim from its fields, each trimmed, an empty one absent; `None` when none is given.
    /// Refuses a field over [`MAX_CLAIM_FIELD_CHARS`] or with control characters (it is shown
    /// on the page, logged and written into CSV files).
    pub fn from_fields(
        expected_label: Option<&str>,
        sku: Option<&str>,
        rma_id: Option<&str>,
    ) -> Result<Option<Claim>, ClaimError> {
        let field = |name: &'static str, value: Option<&str>| -> Result<Option<String>, ClaimError> {
            let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
            let refuse = |reason: &str| ClaimError { field: name, reason: reason.to_string() };
            if value.chars().count() > MAX_CLAIM_FIELD_CHARS {
                return Err(refuse(&format!("at most {MAX_CLAIM_FIELD_CHARS} characters")));
            }
            if value.chars().any(char::is_control) {
                return Err(refuse("no control characters"));
            }
            Ok(Some(value.to_string()))
        };
        let claim = Claim {
            expected_label: field(META_EXPECTED_LABEL, expected_label)?,
            sku: field(META_SKU, sku)?,
            rma_id: field(META_RMA_ID, rma_id)?,
        };
        Ok((claim != Claim::default()).then_some(claim))
    }

    /// The claim an object's metadata carries, if any.
    pub fn from_metadata(metadata: &Metadata) -> Result<Option<Claim>, ClaimError> {
        let get = |name: &str| metadata.get(name).map(String::as_str);
        Claim::from_fields(get(META_EXPECTED_LABEL), get(META_SKU), get(META_RMA_ID))
    }

    /// Why the claimed label cannot be checked by a model of `classes`, if it is not one of
    /// them (where a claim comes in, it is refused for that).
    pub fn unknown_label(&self, classes: &[String]) -> Option<String> {
        let label = self.expected_label.as_ref().filter(|label| !classes.contains(label))?;
        Some(format!("`{label}` is not a class of the model (classes: {})", classes.join(", ")))
    }

    /// As object metadata, the fields that are set.
    pub fn to_metadata(&self) -> Metadata {
        [(META_EXPECTED_LABEL, &self.expected_label), (META_SKU, &self.sku), (META_RMA_ID, &self.rma_id)]
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
            .collect()
    }
}

/// What the photo says of the claimed category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The claimed class is the model's most likely one.
    Match,
    /// The model is confident (at its class's threshold) in another class: not what was
    /// ordered, so a person looks.
    Mismatch,
    /// Neither: the model is unsure, or the claimed class is not one it knows.
    Uncertain,
}

impl CheckOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckOutcome::Match => "match",
            CheckOutcome::Mismatch => "mismatch",
            CheckOutcome::Uncertain => "uncertain",
        }
    }
}

/// A result's claim and its check, recorded on the Result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimCheck {
    pub claim: Claim,
    /// The category check; absent when the claim names no label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<CheckOutcome>,
    /// The product check; absent when the claim names no SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<ProductCheck>,
}

/// The returned item's photo against the claimed SKU's catalogue photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductCheck {
    /// `match` at or above the model's embedding threshold, `mismatch` below it (a person
    /// looks: `wrong_item`), `uncertain` when it could not be compared (`detail` says why).
    pub outcome: CheckOutcome,
    /// Cosine similarity of the two photos' embeddings, when compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ProductCheck {
    /// A claimed SKU that could not be compared, and why: `uncertain`, no reason to doubt it.
    pub fn unchecked(why: String) -> Self {
        ProductCheck { outcome: CheckOutcome::Uncertain, similarity: None, detail: Some(why) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_trimmed_bounded_and_empty_means_none() {
        assert_eq!(Claim::from_fields(None, Some("  "), None).unwrap(), None);
        let claim = Claim::from_fields(Some(" tops "), None, Some("R-1")).unwrap().unwrap();
        assert_eq!(claim.expected_label.as_deref(), Some("tops"));
        assert_eq!(claim.rma_id.as_deref(), Some("R-1"));
        let long = "x".repeat(MAX_CLAIM_FIELD_CHARS + 1);
        assert_eq!(Claim::from_fields(None, Some(&long), None).unwrap_err().field, META_SKU);
        assert!(Claim::from_fields(Some("to\nps"), None, None).is_err());
    }

    #[test]
    fn metadata_round_trips() {
        let claim = Claim { expected_label: Some("watches".into()), sku: Some("1163".into()), rma_id: None };
        let metadata = claim.to_metadata();
        assert_eq!(metadata.len(), 2);
        assert_eq!(Claim::from_metadata(&metadata).unwrap(), Some(claim));
        assert_eq!(Claim::from_metadata(&Metadata::new()).unwrap(), None);
    }

    #[test]
    fn a_label_outside_the_models_classes_is_named() {
        let classes = ["tops".to_string(), "watches".to_string()];
        let claim = |label: &str| Claim { expected_label: Some(label.into()), ..Claim::default() };
        assert_eq!(claim("tops").unknown_label(&classes), None);
        assert_eq!(Claim::default().unknown_label(&classes), None);
        let said = claim("hats").unknown_label(&classes).unwrap();
        assert_eq!(said, "`hats` is not a class of the model (classes: tops, watches)");
    }
}

//! `autorma run --claims FILE`: what each returned photo is claimed to be, for the embedded
//! pipeline, whose photos are plain files with no metadata of their own. A CSV with a header:
//! `key` (the photo's path in the inbox, `/`-separated) and `expected_label`, and optionally
//! `sku` and `rma_id`. Each photo's event carries its claim, so it survives a restart in the
//! event log like the rest of the event.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use autorma_core::{Claim, claim};

/// Claims by photo key.
pub type ClaimsByKey = BTreeMap<String, Claim>;

#[derive(Debug, thiserror::Error)]
pub enum ClaimsFileError {
    #[error("cannot read the claims file `{path}`: {source}")]
    Read { path: PathBuf, source: csv::Error },
    #[error("claims file `{path}`: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// Reads and checks a claims file: a header with `key`, a key at most once, each field within
/// the claim rules, and every claimed label one of `classes`.
pub fn read_claims(path: &Path, classes: &[String]) -> Result<ClaimsByKey, ClaimsFileError> {
    let read_err = |source| ClaimsFileError::Read { path: path.to_path_buf(), source };
    let invalid = |detail: String| ClaimsFileError::Invalid { path: path.to_path_buf(), detail };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(read_err)?;
    let headers = reader.headers().map_err(read_err)?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let Some(key_at) = column("key") else {
        return Err(invalid(format!(
            "no `key` column (the header is `{}`)",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    let [label_at, sku_at, rma_at] = claim::FIELDS.map(column);
    let mut claims = ClaimsByKey::new();
    for record in reader.records() {
        let record = record.map_err(read_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |at: Option<usize>| at.and_then(|i| record.get(i));
        let key = record.get(key_at).unwrap_or_default();
        if key.is_empty() {
            return Err(invalid(format!("line {line}: no key")));
        }
        let claim = Claim::from_fields(field(label_at), field(sku_at), field(rma_at))
            .map_err(|e| invalid(format!("line {line} (`{key}`): {e}")))?;
        let Some(claim) = claim else { continue };
        if let Some(unknown) = claim.unknown_label(classes) {
            return Err(invalid(format!("line {line} (`{key}`): {unknown}")));
        }
        if claims.insert(key.to_string(), claim).is_some() {
            return Err(invalid(format!("line {line}: `{key}` is claimed twice")));
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<ClaimsByKey, ClaimsFileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.csv");
        std::fs::write(&path, text).unwrap();
        read_claims(&path, &["tops".to_string(), "watches".to_string()])
    }

    #[test]
    fn a_claims_file_is_read_by_key_with_optional_columns() {
        let claims = read("key,expected_label,sku\nbench/a.jpg, tops ,1163\nb.jpg,,77\nc.jpg,,\n").unwrap();
        assert_eq!(claims.len(), 2, "a row with no claim is no claim");
        assert_eq!(claims["bench/a.jpg"].expected_label.as_deref(), Some("tops"));
        assert_eq!(claims["b.jpg"], Claim { sku: Some("77".into()), ..Claim::default() });
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        let message = |text: &str| read(text).unwrap_err().to_string();
        assert!(message("name,expected_label\na,tops\n").contains("no `key` column"));
        assert!(message("key,expected_label\na,tops\nb,hats\n").contains("line 3 (`b`): `hats` is not a class"));
        assert!(message("key,expected_label\na,tops\na,watches\n").contains("`a` is claimed twice"));
        assert!(message("key,sku\na,\"x\ny\"\n").contains("control characters"));
    }
}

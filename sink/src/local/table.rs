//! The rows of `results.csv`, one per key, kept in memory and written whole.

use std::collections::{BTreeMap, BTreeSet};

use autorma_core::{Decision, ResultRecord};

#[derive(Debug, Default)]
pub struct ResultTable {
    /// By key, so the CSV is sorted and a key can only have one row.
    rows: BTreeMap<String, Row>,
}

#[derive(Debug)]
struct Row {
    etag: String,
    label: String,
    confidence: f32,
    decision: Decision,
    probabilities: BTreeMap<String, f32>,
    model_name: String,
    model_version: String,
    model_sha256: String,
    execution_provider: String,
    processed_at: String,
}

impl ResultTable {
    pub fn upsert(&mut self, r: &ResultRecord) {
        self.rows.insert(
            r.item.key.clone(),
            Row {
                etag: r.item.etag.clone(),
                label: r.label.clone(),
                confidence: r.confidence,
                decision: r.decision,
                probabilities: r.probabilities.clone(),
                model_name: r.model.name.clone(),
                model_version: r.model.version.clone(),
                model_sha256: r.model.sha256.clone(),
                execution_provider: r.execution_provider.clone(),
                processed_at: r.processed_at.to_rfc3339(),
            },
        );
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.rows.remove(key).is_some()
    }

    pub fn decision_for(&self, key: &str, etag: &str, model_sha256: &str) -> Option<Decision> {
        self.rows.get(key).filter(|r| r.etag == etag && r.model_sha256 == model_sha256).map(|r| r.decision)
    }

    /// `key,etag,label,confidence,decision,p_<class>...,model,model_version,execution_provider,processed_at`
    pub fn to_csv(&self) -> Vec<u8> {
        let classes: BTreeSet<&str> =
            self.rows.values().flat_map(|r| r.probabilities.keys().map(String::as_str)).collect();
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["key".to_string(), "etag".into(), "label".into(), "confidence".into(), "decision".into()];
        header.extend(classes.iter().map(|c| format!("p_{c}")));
        header.extend(["model".into(), "model_version".into(), "execution_provider".into(), "processed_at".into()]);
        writer.write_record(&header).expect("writing to a Vec cannot fail");
        for (key, r) in &self.rows {
            let mut record = vec![
                key.clone(),
                r.etag.clone(),
                r.label.clone(),
                format!("{:.6}", r.confidence),
                r.decision.as_str().into(),
            ];
            record
                .extend(classes.iter().map(|c| r.probabilities.get(*c).map(|p| format!("{p:.6}")).unwrap_or_default()));
            record.extend([
                r.model_name.clone(),
                r.model_version.clone(),
                r.execution_provider.clone(),
                r.processed_at.clone(),
            ]);
            writer.write_record(&record).expect("writing to a Vec cannot fail");
        }
        writer.into_inner().expect("flushing a Vec cannot fail")
    }
}

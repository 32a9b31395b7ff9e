//! The rows of `results.csv`, one per key, kept in memory and written whole.

use std::collections::{BTreeMap, BTreeSet};

use autorma_core::{Decision, ItemRef, ModelRef, ResultRecord};

#[derive(Debug, Default)]
pub struct ResultTable {
    /// By key, so the CSV is sorted and a key can only have one row.
    rows: BTreeMap<String, Row>,
}

#[derive(Debug)]
struct Row {
    bucket: String,
    etag: String,
    label: String,
    confidence: f32,
    decision: Decision,
    probabilities: BTreeMap<String, f32>,
    model: ModelRef,
    execution_provider: String,
    processed_at: String,
}

impl ResultTable {
    pub fn upsert(&mut self, r: &ResultRecord) {
        self.rows.insert(
            r.item.key.clone(),
            Row {
                bucket: r.item.bucket.clone(),
                etag: r.item.etag.clone(),
                label: r.label.clone(),
                confidence: r.confidence,
                decision: r.decision,
                probabilities: r.probabilities.clone(),
                model: r.model.clone(),
                execution_provider: r.execution_provider.clone(),
                processed_at: r.processed_at.to_rfc3339(),
            },
        );
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.rows.remove(key).is_some()
    }

    pub fn decision_for(&self, key: &str, etag: &str, model: &ModelRef) -> Option<Decision> {
        self.rows.get(key).filter(|r| r.etag == etag && r.model == *model).map(|r| r.decision)
    }

    /// The photos whose result another model made (`None`: every photo), in key order.
    pub fn made_by_other_than(&self, model: Option<&ModelRef>) -> Vec<ItemRef> {
        self.rows
            .iter()
            .filter(|(_, r)| model.is_none_or(|m| r.model != *m))
            .map(|(key, r)| ItemRef { bucket: r.bucket.clone(), key: key.clone(), etag: r.etag.clone() })
            .collect()
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
                r.model.name.clone(),
                r.model.version.clone(),
                r.execution_provider.clone(),
                r.processed_at.clone(),
            ]);
            writer.write_record(&record).expect("writing to a Vec cannot fail");
        }
        writer.into_inner().expect("flushing a Vec cannot fail")
    }
}

//! The results of `results.csv`, one per key, kept in memory and written whole.

use std::collections::BTreeMap;

use autorma_core::{Decision, ItemRef, ModelRef, ResultRecord};

use crate::results_csv::results_csv;

#[derive(Debug, Default)]
pub struct ResultTable {
    /// By key, so the CSV is sorted and a key can only have one row.
    rows: BTreeMap<String, ResultRecord>,
}

impl ResultTable {
    pub fn upsert(&mut self, r: &ResultRecord) {
        self.rows.insert(r.item.key.clone(), r.clone());
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.rows.remove(key).is_some()
    }

    pub fn decision_for(&self, key: &str, etag: &str, model: &ModelRef) -> Option<Decision> {
        self.rows.get(key).filter(|r| r.item.etag == etag && r.model == *model).map(|r| r.decision)
    }

    /// The photos whose result another model made (`None`: every photo), in key order.
    pub fn made_by_other_than(&self, model: Option<&ModelRef>) -> Vec<ItemRef> {
        self.rows.values().filter(|r| model.is_none_or(|m| r.model != *m)).map(|r| r.item.clone()).collect()
    }

    pub fn to_csv(&self) -> Vec<u8> {
        results_csv(self.rows.values())
    }
}

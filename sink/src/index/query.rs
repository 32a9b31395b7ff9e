//! Filtered, paged, newest-first queries over the index.

use autorma_core::{Decision, ResultRecord};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::Value;
use serde::Serialize;

use super::{IndexError, ResultIndex};

/// Which results; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default)]
pub struct ResultFilter {
    pub label: Option<String>,
    pub decision: Option<Decision>,
    /// Processed at or after...
    pub since: Option<DateTime<Utc>>,
    /// ...and before.
    pub until: Option<DateTime<Utc>>,
    /// Object keys starting with this.
    pub key_prefix: Option<String>,
    /// Only photos no person has corrected (the review queue).
    pub uncorrected: bool,
}

/// One page of results, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<ResultRecord>,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
    /// Results matching the filter, on every page.
    pub total: u64,
}

impl ResultFilter {
    /// The WHERE clause and its parameters.
    fn to_sql(&self) -> (String, Vec<Value>) {
        let mut clauses = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut push = |clause: &str, value: Value| {
            values.push(value);
            clauses.push(clause.replace('?', &format!("?{}", values.len())));
        };
        if let Some(label) = &self.label {
            push("label = ?", Value::Text(label.clone()));
        }
        if let Some(decision) = self.decision {
            push("decision = ?", Value::Text(decision.as_str().into()));
        }
        if let Some(since) = self.since {
            push("processed_at >= ?", Value::Text(since.to_rfc3339_opts(SecondsFormat::Micros, true)));
        }
        if let Some(until) = self.until {
            push("processed_at < ?", Value::Text(until.to_rfc3339_opts(SecondsFormat::Micros, true)));
        }
        if let Some(prefix) = &self.key_prefix {
            // substr, not LIKE: a prefix may hold `%` or `_`. (Both `?` name the one value.)
            push("substr(key, 1, length(?)) = ?", Value::Text(prefix.clone()));
        }
        if self.uncorrected {
            clauses.push(
                "NOT EXISTS (SELECT 1 FROM corrections c WHERE c.key = results.key AND c.etag = results.etag)"
                    .to_string(),
            );
        }
        let sql = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        (sql, values)
    }
}

impl ResultIndex {
    /// Page `page` (1-based) of `per_page` results matching `filter`, newest first.
    pub fn query(&self, filter: &ResultFilter, page: u32, per_page: u32) -> Result<Page, IndexError> {
        let (page, per_page) = (page.max(1), per_page.max(1));
        let (clause, mut values) = filter.to_sql();
        let connection = self.connection();
        let total: i64 = connection.query_row(
            &format!("SELECT COUNT(*) FROM results {clause}"),
            rusqlite::params_from_iter(values.iter()),
            |row| row.get(0),
        )?;
        let total = total as u64;
        let n = values.len();
        values.push(Value::Integer(i64::from(per_page)));
        values.push(Value::Integer(i64::from(page - 1) * i64::from(per_page)));
        let mut select = connection.prepare(&format!(
            "SELECT record FROM results {clause} ORDER BY processed_at DESC, key DESC LIMIT ?{} OFFSET ?{}",
            n + 1,
            n + 2
        ))?;
        let items = select
            .query_map(rusqlite::params_from_iter(values.iter()), |row| row.get::<_, String>(0))?
            .map(|json| Ok(serde_json::from_str(&json?)?))
            .collect::<Result<Vec<ResultRecord>, IndexError>>()?;
        Ok(Page { items, page, per_page, total })
    }

    /// Every result matching `filter`, newest first (for the CSV).
    pub fn all(&self, filter: &ResultFilter) -> Result<Vec<ResultRecord>, IndexError> {
        Ok(self.query(filter, 1, u32::MAX)?.items)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use autorma_core::{CorrectionRecord, ItemRef, ModelRef};

    use super::*;
    use crate::index::IndexBatch;
    use crate::test_records::result;

    fn record(key: &str, label: &str, decision: Decision, minute: u32) -> ResultRecord {
        ResultRecord {
            label: label.into(),
            probabilities: BTreeMap::from([(label.to_string(), 0.9)]),
            processed_at: format!("2026-11-27T10:{minute:02}:00Z").parse().unwrap(),
            ..result(key, "e", decision)
        }
    }

    fn keys(page: &Page) -> Vec<&str> {
        page.items.iter().map(|r| r.item.key.as_str()).collect()
    }

    #[test]
    fn filters_page_newest_first_and_a_rebuild_answers_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let index = ResultIndex::open(&dir.path().join("index.sqlite")).unwrap();
        let records = vec![
            record("inbox/a.jpg", "tops", Decision::Auto, 1),
            record("inbox/b.jpg", "shirts", Decision::Review, 2),
            record("inbox/c%_.jpg", "tops", Decision::Review, 3),
            record("other/d.jpg", "tops", Decision::Auto, 4),
        ];
        index.upsert(&records).unwrap();
        let all = index.query(&ResultFilter::default(), 1, 10).unwrap();
        assert_eq!(keys(&all), ["other/d.jpg", "inbox/c%_.jpg", "inbox/b.jpg", "inbox/a.jpg"]);
        assert_eq!(all.total, 4);

        let tops = ResultFilter { label: Some("tops".into()), ..Default::default() };
        let page2 = index.query(&tops, 2, 2).unwrap();
        assert_eq!((keys(&page2), page2.total), (vec!["inbox/a.jpg"], 3));
        let review = ResultFilter { decision: Some(Decision::Review), ..Default::default() };
        assert_eq!(keys(&index.query(&review, 1, 10).unwrap()), ["inbox/c%_.jpg", "inbox/b.jpg"]);
        let prefix = ResultFilter { key_prefix: Some("inbox/c%".into()), ..Default::default() };
        assert_eq!(keys(&index.query(&prefix, 1, 10).unwrap()), ["inbox/c%_.jpg"], "no LIKE wildcards");
        let window = ResultFilter {
            since: Some("2026-11-27T10:02:00Z".parse().unwrap()),
            until: Some("2026-11-27T10:04:00Z".parse().unwrap()),
            key_prefix: Some("inbox/".into()),
            ..Default::default()
        };
        assert_eq!(keys(&index.query(&window, 1, 10).unwrap()), ["inbox/c%_.jpg", "inbox/b.jpg"]);

        // A corrected photo leaves the review queue; a correction of another version of the
        // photo (another etag) does not count.
        let queue = ResultFilter { decision: Some(Decision::Review), uncorrected: true, ..Default::default() };
        let correction = |key: &str, etag: &str| CorrectionRecord {
            item: ItemRef { bucket: "b".into(), key: key.into(), etag: etag.into() },
            label: "tops".into(),
            model_label: "shirts".into(),
            model: ModelRef { name: "m".into(), version: "1".into(), sha256: "abc".into() },
            by: None,
            corrected_at: chrono::Utc::now(),
        };
        index.upsert_corrections(&[correction("inbox/b.jpg", "e"), correction("inbox/c%_.jpg", "old")]).unwrap();
        assert_eq!(keys(&index.query(&queue, 1, 10).unwrap()), ["inbox/c%_.jpg"]);
        assert_eq!(index.correction("inbox/b.jpg").unwrap().unwrap().label, "tops");

        // Fed again (a replay): one row per key, the newer record wins.
        index.upsert(&[record("inbox/a.jpg", "shirts", Decision::Auto, 5)]).unwrap();
        assert_eq!(index.len().unwrap(), 4);
        assert_eq!(index.get("inbox/a.jpg").unwrap().unwrap().label, "shirts");
        index.upsert(&[record("inbox/a.jpg", "tops", Decision::Review, 4)]).unwrap();
        assert_eq!(index.get("inbox/a.jpg").unwrap().unwrap().label, "shirts", "an older record is not brought back");

        // Topic positions are written with their records, the latest per partition.
        let at = |offset| IndexBatch { positions: vec![("rma.results".into(), 2, offset)], ..Default::default() };
        index.apply(&at(40)).unwrap();
        index.apply(&at(41)).unwrap();
        assert_eq!(index.positions().unwrap(), HashMap::from([(("rma.results".to_string(), 2), 41)]));

        // Derived data: a fresh index fed the same records answers the same.
        let rebuilt = ResultIndex::open(&dir.path().join("rebuilt.sqlite")).unwrap();
        let mut latest = records.clone();
        latest[0] = record("inbox/a.jpg", "shirts", Decision::Auto, 5);
        rebuilt.upsert(&latest).unwrap();
        for filter in [ResultFilter::default(), tops, review] {
            assert_eq!(keys(&index.query(&filter, 1, 10).unwrap()), keys(&rebuilt.query(&filter, 1, 10).unwrap()));
        }
    }
}

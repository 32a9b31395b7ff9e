//! The results index: what `autorma serve` answers queries from ("the review queue, newest
//! first, page 3"), in an embedded SQLite database.
//!
//! It is derived data: fed by what the sinks wrote (the output folder in embedded mode), keyed
//! by object key like the results themselves, so feeding a record again replaces its row, and
//! deleting the database and feeding everything again gives the same answers.

mod query;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use autorma_core::{CorrectionRecord, ResultRecord};
use chrono::SecondsFormat;
use rusqlite::{Connection, params};

pub use query::{Page, ResultFilter};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("results index `{path}`: {source}")]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("results index: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("results index holds a record that is not a Result: {0}")]
    Record(#[from] serde_json::Error),
}

pub struct ResultIndex {
    connection: Mutex<Connection>,
}

/// Records to index together, and (streaming) the topic positions they were read up to.
#[derive(Debug, Default)]
pub struct IndexBatch {
    pub results: Vec<ResultRecord>,
    pub corrections: Vec<CorrectionRecord>,
    /// (topic, partition, next offset to read).
    pub positions: Vec<(String, i32, i64)>,
}

impl IndexBatch {
    pub fn is_empty(&self) -> bool {
        self.results.is_empty() && self.corrections.is_empty() && self.positions.is_empty()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    label TEXT NOT NULL,
    decision TEXT NOT NULL,
    confidence REAL NOT NULL,
    -- RFC 3339 UTC with microseconds: sorts as time.
    processed_at TEXT NOT NULL,
    -- The whole Result, as the sink wrote it.
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_newest ON results (processed_at DESC, key DESC);
CREATE INDEX IF NOT EXISTS results_by_decision ON results (decision, processed_at DESC);
CREATE TABLE IF NOT EXISTS corrections (
    key TEXT PRIMARY KEY,
    -- The photo version it corrects: a new photo under the key is not corrected.
    etag TEXT NOT NULL,
    label TEXT NOT NULL,
    record TEXT NOT NULL
);
-- Streaming mode: how far each topic partition was read into the index.
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
";

impl ResultIndex {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let open_err = |source| IndexError::Open { path: path.display().to_string(), source };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let connection = Connection::open(path).map_err(open_err)?;
        // WAL: readers are not blocked by the feeder's writes.
        connection.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        connection.execute_batch(SCHEMA).map_err(open_err)?;
        Ok(Self { connection: Mutex::new(connection) })
    }

    /// Inserts or replaces the rows of `records` (by key), in one transaction.
    pub fn upsert(&self, records: &[ResultRecord]) -> Result<(), IndexError> {
        self.apply(&IndexBatch { results: records.to_vec(), ..IndexBatch::default() })
    }

    /// Inserts or replaces the corrections (by key).
    pub fn upsert_corrections(&self, records: &[CorrectionRecord]) -> Result<(), IndexError> {
        self.apply(&IndexBatch { corrections: records.to_vec(), ..IndexBatch::default() })
    }

    /// Writes a batch and the topic positions it was read up to, in one transaction: after a
    /// crash the index and its positions agree, so nothing is skipped.
    ///
    /// A result replaces the row of its key unless the row is newer (`processed_at`): records
    /// fed twice, or out of order (a rebuild from the bucket, then the topics), never bring
    /// back an older outcome.
    pub fn apply(&self, batch: &IndexBatch) -> Result<(), IndexError> {
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO results (key, label, decision, confidence, processed_at, record, etag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key) DO UPDATE SET label = ?2, decision = ?3, confidence = ?4,
                     processed_at = ?5, record = ?6, etag = ?7
                 WHERE excluded.processed_at >= results.processed_at",
            )?;
            for r in &batch.results {
                insert.execute(params![
                    r.item.key,
                    r.label,
                    r.decision.as_str(),
                    r.confidence,
                    r.processed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    serde_json::to_string(r)?,
                    r.item.etag,
                ])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO corrections (key, etag, label, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET etag = ?2, label = ?3, record = ?4",
            )?;
            for c in &batch.corrections {
                insert.execute(params![c.item.key, c.item.etag, c.label, serde_json::to_string(c)?])?;
            }
            let mut position = tx.prepare_cached(
                "INSERT INTO positions (topic, partition, next_offset) VALUES (?1, ?2, ?3)
                 ON CONFLICT (topic, partition) DO UPDATE SET next_offset = ?3",
            )?;
            for (topic, partition, next_offset) in &batch.positions {
                position.execute(params![topic, partition, next_offset])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The next offset to read of each (topic, partition) the index was fed from.
    pub fn positions(&self) -> Result<HashMap<(String, i32), i64>, IndexError> {
        let connection = self.connection();
        let mut select = connection.prepare_cached("SELECT topic, partition, next_offset FROM positions")?;
        let rows = select.query_map([], |row| Ok(((row.get(0)?, row.get(1)?), row.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The correction of one photo, if a person gave one.
    pub fn correction(&self, key: &str) -> Result<Option<CorrectionRecord>, IndexError> {
        self.record_by_key("SELECT record FROM corrections WHERE key = ?1", key)
    }

    /// The result of one photo.
    pub fn get(&self, key: &str) -> Result<Option<ResultRecord>, IndexError> {
        self.record_by_key("SELECT record FROM results WHERE key = ?1", key)
    }

    /// The JSON `record` column of the row `select` finds for `key`.
    fn record_by_key<T: serde::de::DeserializeOwned>(&self, select: &str, key: &str) -> Result<Option<T>, IndexError> {
        let connection = self.connection();
        let mut select = connection.prepare_cached(select)?;
        let mut rows = select.query(params![key])?;
        match rows.next()? {
            Some(row) => Ok(Some(serde_json::from_str(&row.get::<_, String>(0)?)?)),
            None => Ok(None),
        }
    }

    /// Rows in the index.
    pub fn len(&self) -> Result<u64, IndexError> {
        let n: i64 = self.connection().query_row("SELECT COUNT(*) FROM results", [], |row| row.get(0))?;
        Ok(n as u64)
    }

    pub fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len()? == 0)
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.connection.lock().expect("index connection poisoned")
    }
}

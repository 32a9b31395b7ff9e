//! The results index: what `autorma serve` answers queries from ("the review queue, newest
//! first, page 3"), in an embedded SQLite database.
//!
//! It is derived data: fed by what the sinks wrote (the output folder in embedded mode), keyed
//! by object key like the results themselves, so feeding a record again replaces its row, and
//! deleting the database and feeding everything again gives the same answers.

mod query;

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
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO results (key, label, decision, confidence, processed_at, record, etag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (key) DO UPDATE SET label = ?2, decision = ?3, confidence = ?4,
                     processed_at = ?5, record = ?6, etag = ?7",
            )?;
            for r in records {
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
        }
        tx.commit()?;
        Ok(())
    }

    /// Inserts or replaces the corrections (by key).
    pub fn upsert_corrections(&self, records: &[CorrectionRecord]) -> Result<(), IndexError> {
        let mut connection = self.connection();
        let tx = connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO corrections (key, etag, label, record) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key) DO UPDATE SET etag = ?2, label = ?3, record = ?4",
            )?;
            for c in records {
                insert.execute(params![c.item.key, c.item.etag, c.label, serde_json::to_string(c)?])?;
            }
        }
        tx.commit()?;
        Ok(())
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

//! `events.jsonl`: the local stand-in for a topic partition. Line `n` is offset `n`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use autorma_core::event::content_type_for_key;
use autorma_core::store::local::local_etag;
use autorma_core::{EventOrigin, ItemEvent, Position, SourceError, SourcedEvent};
use serde::{Deserialize, Serialize};

use super::PARTITION;
use super::claims::ClaimsByKey;
use super::scan::ScannedFile;

#[derive(Serialize, Deserialize)]
struct LogLine {
    offset: u64,
    event: ItemEvent,
}

pub struct EventLog {
    path: PathBuf,
    file: File,
    /// The offset the next appended event gets (the number of logged events). The events
    /// themselves are not kept: only those at or above the checkpoint are needed, once.
    next_offset: u64,
    /// `(key, etag)` of every logged event: a scan appends only what is not here.
    known: HashSet<(String, String)>,
}

impl EventLog {
    /// Opens the log, cutting off a torn last line (a crash during an append): the files it
    /// named are not in `known` any more, so the next scan logs them again. Returns with it the
    /// logged events from offset `redeliver_from` on, in order.
    pub fn open(path: &Path, redeliver_from: u64) -> Result<(Self, Vec<SourcedEvent>), SourceError> {
        let state_err = |source| SourceError::State { path: path.display().to_string(), source };
        let corrupt = |detail: String| SourceError::Corrupt { path: path.display().to_string(), detail };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(state_err(e)),
        };
        let complete_len = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut known = HashSet::new();
        let mut redeliver = Vec::new();
        let mut next_offset = 0;
        for (n, line) in bytes[..complete_len].split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
            let parsed: LogLine = serde_json::from_slice(line).map_err(|e| corrupt(format!("line {}: {e}", n + 1)))?;
            if parsed.offset != n as u64 {
                return Err(corrupt(format!("line {} has offset {}", n + 1, parsed.offset)));
            }
            known.insert((parsed.event.key.clone(), parsed.event.etag.clone()));
            if parsed.offset >= redeliver_from {
                redeliver.push(SourcedEvent::live(Position::new(PARTITION, parsed.offset), parsed.event));
            }
            next_offset = parsed.offset + 1;
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(state_err)?;
        if complete_len < bytes.len() {
            tracing::warn!(path = %path.display(), torn_bytes = bytes.len() - complete_len, "cutting off a torn last line of the event log");
            file.set_len(complete_len as u64).map_err(state_err)?;
            file.sync_all().map_err(state_err)?;
        }
        Ok((Self { path: path.to_path_buf(), file, next_offset, known }, redeliver))
    }

    /// The offset the next appended event gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Appends the files not logged yet and fsyncs before returning them: an event is handed
    /// to the pipeline only once its offset is durable.
    pub fn append_new(
        &mut self,
        bucket: &str,
        files: Vec<ScannedFile>,
        origin: EventOrigin,
        claims: &ClaimsByKey,
    ) -> Result<Vec<SourcedEvent>, SourceError> {
        let mut buf = Vec::new();
        let mut new = Vec::new();
        for file in files {
            let etag = local_etag(file.size, file.modified);
            if self.known.contains(&(file.key.clone(), etag.clone())) {
                continue;
            }
            let event = ItemEvent {
                bucket: bucket.to_string(),
                content_type: content_type_for_key(&file.key).to_string(),
                claim: claims.get(&file.key).cloned(),
                key: file.key,
                etag,
                size: file.size,
                event_time: file.modified.into(),
                source: origin,
                replay: None,
            };
            let offset = self.next_offset + new.len() as u64;
            serde_json::to_writer(&mut buf, &LogLine { offset, event: event.clone() }).expect("event serialises");
            buf.push(b'\n');
            new.push(SourcedEvent::live(Position::new(PARTITION, offset), event));
        }
        if new.is_empty() {
            return Ok(new);
        }
        let state_err = |source| SourceError::State { path: self.path.display().to_string(), source };
        self.file.write_all(&buf).map_err(state_err)?;
        self.file.sync_data().map_err(state_err)?;
        for sourced in &new {
            self.known.insert((sourced.event.key.clone(), sourced.event.etag.clone()));
        }
        self.next_offset += new.len() as u64;
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn file(key: &str, size: u64) -> ScannedFile {
        ScannedFile { key: key.into(), size, modified: SystemTime::UNIX_EPOCH + Duration::from_secs(size) }
    }

    #[test]
    fn appends_only_new_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let (mut log, redeliver) = EventLog::open(&path, 0).unwrap();
        assert!(redeliver.is_empty());
        let new =
            log.append_new("b", vec![file("a", 1), file("b", 2)], EventOrigin::Replay, &ClaimsByKey::new()).unwrap();
        assert_eq!(new.len(), 2);
        assert!(log.append_new("b", vec![file("a", 1)], EventOrigin::Replay, &ClaimsByKey::new()).unwrap().is_empty());
        drop(log);

        // A crash in the middle of an append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"offset\":2,\"event\":{\"buck").unwrap();
        drop(f);
        let (mut log, _) = EventLog::open(&path, 0).unwrap();
        assert_eq!(log.next_offset(), 2);
        let new = log
            .append_new("b", vec![file("a", 1), file("c", 3)], EventOrigin::Notification, &ClaimsByKey::new())
            .unwrap();
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].position.offset, 2);
        drop(log);
        let (log, redeliver) = EventLog::open(&path, 1).unwrap();
        assert_eq!(log.next_offset(), 3);
        let keys: Vec<_> = redeliver.into_iter().map(|e| (e.position.offset, e.event.key)).collect();
        assert_eq!(keys, vec![(1, "b".to_string()), (2, "c".to_string())]);
    }

    #[test]
    fn a_bad_complete_line_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, b"garbage\n").unwrap();
        assert!(matches!(EventLog::open(&path, 0), Err(SourceError::Corrupt { .. })));
    }
}

//! A finite event source over a list given up front: the embedded replay's photos.

use autorma_core::{Checkpoint, EventSource, ItemEvent, Position, SourceError, Sourced, SourcedEvent};

/// Hands out its events once, in one partition, then is exhausted. Commits need no record:
/// a replay interrupted half way is run again, and skips what the new model already did.
pub struct ListSource {
    events: Option<Vec<ItemEvent>>,
}

impl ListSource {
    pub fn new(events: Vec<ItemEvent>) -> Self {
        Self { events: Some(events) }
    }
}

impl EventSource for ListSource {
    async fn next_batch(&mut self) -> Result<Option<Vec<Sourced>>, SourceError> {
        Ok(self.events.take().map(|events| {
            let sourced = events.into_iter().enumerate();
            sourced.map(|(i, e)| Sourced::Event(SourcedEvent::live(Position::new(0, i as u64), e))).collect()
        }))
    }

    async fn commit(&mut self, _checkpoint: Checkpoint) -> Result<(), SourceError> {
        Ok(())
    }
}

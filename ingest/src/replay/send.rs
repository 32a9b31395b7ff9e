//! Writing a replay's events to `rma.items.replay`, at a bounded rate.

use std::time::Duration;

use autorma_core::ItemEvent;
use autorma_core::kafka::KafkaError;
use autorma_core::topics;
use futures::future::try_join_all;
use rdkafka::producer::FutureProducer;
use tokio::time::Instant;

use crate::kafka::send_item;

/// Most events sent per pacing step (a step is a tenth of a second's worth at the rate).
const MAX_STEP: usize = 64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub listed: usize,
    pub skipped: usize,
    pub sent: usize,
}

/// Sends `events` at no more than `rate` per second, each acknowledged before the next step;
/// `progress(sent)` is called after every step.
pub async fn send_replay(
    producer: &FutureProducer,
    events: &[ItemEvent],
    rate: f64,
    mut progress: impl FnMut(usize),
) -> Result<usize, KafkaError> {
    let started = Instant::now();
    let mut sent = 0;
    let step = ((rate / 10.0).ceil() as usize).clamp(1, MAX_STEP);
    for chunk in events.chunks(step) {
        try_join_all(chunk.iter().map(|event| send_item(producer, topics::ITEMS_REPLAY, event))).await?;
        sent += chunk.len();
        progress(sent);
        // Where the rate says the next step may start.
        if rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(sent as f64 / rate)).await;
        }
    }
    Ok(sent)
}

//! Stage 4: write each outcome to the sink, then acknowledge it to the source stage. A write
//! is acknowledged only after the sink returned `Ok` (it is durable); a write that keeps
//! failing stops the pipeline rather than acknowledging something that was not written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use autorma_core::metrics::metrics;
use autorma_core::{DlqRecord, OutboundRecord, ResultRecord, ResultSink, RetryConfig, SinkError, StageTimings};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::PipelineError;
use super::messages::{Classified, Completion, Failed, Outcome, SinkInput};
use super::stats::ms;
use super::trace;
use crate::inference::judge;

pub(crate) struct SinkStage<K> {
    pub sink: Arc<K>,
    pub retry: RetryConfig,
    /// Writes of one batch in flight at once.
    pub concurrency: usize,
    /// Longest a written outcome waits to show in derived outputs (results.csv).
    pub flush_interval: Duration,
    pub ack_tx: mpsc::Sender<Completion>,
}

impl<K: ResultSink> SinkStage<K> {
    pub async fn run(self, mut sink_rx: mpsc::Receiver<SinkInput>) -> Result<(), PipelineError> {
        // Set by the first write the derived outputs do not show yet; they are refreshed then,
        // whether more input comes or not (an idle `--watch` must not leave results.csv stale).
        let mut flush_at: Option<Instant> = None;
        loop {
            let input = tokio::select! {
                input = sink_rx.recv() => match input {
                    Some(input) => input,
                    None => break,
                },
                () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    flush_at = None;
                    self.flush().await?;
                    continue;
                }
            };
            match input {
                SinkInput::Classified(items) => {
                    let mut writes = futures::stream::iter(items.into_iter().map(|item| self.write_result(item)))
                        .buffer_unordered(self.concurrency.max(1));
                    while let Some(done) = writes.next().await {
                        self.ack(done?).await;
                    }
                }
                SinkInput::Failed(failed) => {
                    let done = self.write_dlq(failed).await?;
                    self.ack(done).await;
                }
            }
            flush_at.get_or_insert_with(|| Instant::now() + self.flush_interval);
        }
        self.flush().await
    }

    async fn flush(&self) -> Result<(), PipelineError> {
        self.sink.flush().await.map_err(|source| PipelineError::Sink { key: "<flush>".into(), source })
    }

    async fn ack(&self, completion: Completion) {
        // The source stage outlives every sender; a closed channel means it already failed.
        let _ = self.ack_tx.send(completion).await;
    }

    async fn write_result(&self, item: Classified) -> Result<Completion, PipelineError> {
        let event = &item.sourced.event;
        let p = &item.prediction;
        let model = &item.model;
        let verdict = judge(
            p,
            &model.classes,
            model.package.manifest.claim_threshold,
            event.claim.as_ref(),
            item.product.clone(),
        );
        let record = ResultRecord {
            item: event.item_ref(),
            label: model.classes[p.label].clone(),
            confidence: p.confidence,
            probabilities: model
                .classes
                .iter()
                .cloned()
                .zip(p.probabilities.iter().copied())
                .collect::<BTreeMap<_, _>>(),
            decision: verdict.decision,
            review_reason: verdict.review_reason,
            claim: verdict.claim,
            model: model.model.clone(),
            execution_provider: model.execution_provider.to_string(),
            timings_ms: StageTimings {
                fetch: item.fetch_ms,
                decode: item.decode_ms,
                batch_wait: item.batch_wait_ms,
                infer: item.infer_ms,
                sink: ms(item.infer_done_at.elapsed()),
            },
            processed_at: chrono::Utc::now(),
            read_at: item.sourced.read_at.clone(),
        };
        let span = trace::start_child(&item.trace, "sink", None);
        let written = self.with_retry(&event.key, || self.sink.write_result(&record)).await;
        trace::end(&span, &written);
        if written.is_err() {
            trace::end(&item.trace, &written);
        }
        let records = written?;
        trace::finish_classified(&item.trace, &record);
        let since_upload = (chrono::Utc::now() - event.event_time).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
        metrics().record_result(&record, since_upload);
        tracing::debug!(key = %event.key, label = %record.label, confidence = record.confidence,
            decision = record.decision.as_str(), "result written");
        Ok(Completion { position: item.sourced.position, outcome: Outcome::Classified(record.decision), records })
    }

    async fn write_dlq(&self, failed: Failed) -> Result<Completion, PipelineError> {
        let record = DlqRecord {
            reason: failed.reason,
            detail: failed.detail,
            attempts: failed.attempts,
            event: failed.sourced.event,
            failed_at: chrono::Utc::now(),
            read_at: failed.sourced.read_at,
        };
        let span = trace::start_child(&failed.trace, "dead_letter", None);
        let written = self.with_retry(&record.event.key, || self.sink.write_dlq(&record)).await;
        trace::end(&span, &written);
        if written.is_err() {
            trace::end(&failed.trace, &written);
        }
        let records = written?;
        trace::finish_dead_lettered(&failed.trace, record.reason, &record.detail);
        metrics().record_dead_letter(record.reason);
        tracing::info!(key = %record.event.key, reason = %record.reason, "dead-lettered");
        Ok(Completion { position: failed.sourced.position, outcome: Outcome::DeadLettered(record.reason), records })
    }

    async fn with_retry<F, Fut>(&self, key: &str, write: F) -> Result<Vec<OutboundRecord>, PipelineError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Vec<OutboundRecord>, SinkError>>,
    {
        let written = self.retry.run(&format!("sink write of `{key}`"), write, SinkError::is_retryable).await;
        written.map(|(records, _)| records).map_err(|(source, _)| PipelineError::Sink { key: key.to_string(), source })
    }
}

//! Stage 3: inference workers. Each is a dedicated OS thread owning one ONNX Runtime session
//! (model execution is CPU-heavy and blocking: it never runs on the async runtime's threads).
//! Workers share the batch queue; whichever is free takes the next batch. Results of events
//! go to the sink; answers to synchronous requests go straight back to their callers.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::SystemTime;

use autorma_core::DlqReason;
use opentelemetry::KeyValue;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::batcher::Batch;
use super::messages::{Answer, Classified, Failed, Origin, Prepared, SinkInput};
use super::product::product_checks;
use super::shadow::{self, ShadowJob};
use super::stats::PipelineStats;
use super::stats::ms;
use super::trace;

/// `workers` threads; worker `i` runs each batch on session `i` of the batch's model.
pub(crate) fn spawn_workers(
    workers: usize,
    batch_rx: mpsc::Receiver<Batch<Prepared>>,
    sink_tx: mpsc::Sender<SinkInput>,
    shadow_tx: Option<mpsc::Sender<ShadowJob>>,
    stats: Arc<PipelineStats>,
) -> Vec<JoinHandle<()>> {
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    (0..workers.max(1))
        .map(|id| {
            let (batch_rx, sink_tx, stats) = (batch_rx.clone(), sink_tx.clone(), stats.clone());
            let shadow_tx = shadow_tx.clone();
            std::thread::Builder::new()
                .name(format!("autorma-infer-{id}"))
                .spawn(move || worker(id, &batch_rx, &sink_tx, shadow_tx.as_ref(), &stats))
                .expect("failed to spawn an inference thread")
        })
        .collect()
}

fn worker(
    id: usize,
    batch_rx: &Mutex<mpsc::Receiver<Batch<Prepared>>>,
    sink_tx: &mpsc::Sender<SinkInput>,
    shadow_tx: Option<&mpsc::Sender<ShadowJob>>,
    stats: &PipelineStats,
) {
    let mut input = Vec::new();
    loop {
        // Only one idle worker waits on the queue at a time; the others wait on the lock.
        let Some(batch) = batch_rx.lock().expect("batch queue lock poisoned").blocking_recv() else {
            return;
        };
        let size = batch.items.len();
        let trigger = batch.trigger.as_str();
        let span = tracing::info_span!("batch", worker = id, size, trigger);
        let _entered = span.enter();
        stats.record_batch(size, batch.trigger);
        autorma_core::metrics::metrics().record_batch(size, trigger);

        input.clear();
        for item in &batch.items {
            input.extend_from_slice(&item.tensor);
        }
        // The batcher never mixes models, so the first photo's model is the batch's.
        let model = batch.items[0].model.clone();
        let (started, started_wall) = (Instant::now(), SystemTime::now());
        let predictions = model.session(id).predict(&input);
        let (infer_done_at, done_wall) = (Instant::now(), SystemTime::now());
        let infer_ms = ms(infer_done_at - started);
        tracing::debug!(infer_ms, "batch inferred");
        // A request's context has no span: nothing is recorded for it.
        for item in &batch.items {
            let batch_attributes = || {
                vec![
                    KeyValue::new("autorma.batch.size", size as i64),
                    KeyValue::new("autorma.batch.trigger", trigger),
                    KeyValue::new("autorma.infer.thread", id as i64),
                ]
            };
            let error = predictions.as_ref().err().map(|e| e as &dyn std::fmt::Display);
            let waited = started - item.ready_at;
            trace::record_batch_stages(&item.trace, waited, started_wall, done_wall, batch_attributes, error);
        }

        let sent = match predictions {
            Ok(predictions) => {
                let products = product_checks(id, &batch.items);
                let mut classified = Vec::with_capacity(size);
                for ((item, prediction), product) in batch.items.into_iter().zip(predictions).zip(products) {
                    let batch_wait_ms = ms(started - item.ready_at);
                    match item.origin {
                        Origin::Event(sourced) => {
                            if let (Some(jobs), Some(ticket)) = (shadow_tx, item.shadow) {
                                let job = ShadowJob {
                                    item: sourced.event.item_ref(),
                                    production: item.model.clone(),
                                    prediction: prediction.clone(),
                                    tensor: ticket.wants_tensor().then_some(item.tensor),
                                    ticket,
                                };
                                shadow::offer(jobs, job);
                            }
                            classified.push(Classified {
                                batch_wait_ms,
                                sourced,
                                model: item.model,
                                prediction,
                                fetch_ms: item.fetch_ms,
                                decode_ms: item.decode_ms,
                                infer_ms,
                                infer_done_at,
                                trace: item.trace,
                                product,
                            });
                        }
                        // A caller that gave up no longer wants the answer.
                        Origin::Request(reply) => {
                            let answer = Answer {
                                model: item.model,
                                prediction,
                                batch_size: size,
                                decode_ms: item.decode_ms,
                                batch_wait_ms,
                                infer_ms,
                                product,
                            };
                            let _ = reply.send(Ok(answer));
                        }
                    }
                }
                classified.is_empty() || sink_tx.blocking_send(SinkInput::Classified(classified)).is_ok()
            }
            Err(e) => {
                // A valid tensor that the model cannot run is not the photo's fault, but
                // retrying the same input on the same model gives the same error: dead-letter
                // it with the reason so it is visible and the partition moves on.
                tracing::error!(error = %e, "inference failed; dead-lettering the batch");
                batch.items.into_iter().all(|item| match item.origin {
                    Origin::Event(sourced) => {
                        let failed = Failed {
                            sourced,
                            reason: DlqReason::InferenceFailed,
                            detail: e.to_string(),
                            attempts: 1,
                            trace: item.trace,
                        };
                        sink_tx.blocking_send(SinkInput::Failed(failed)).is_ok()
                    }
                    Origin::Request(reply) => {
                        let _ = reply.send(Err(e.to_string()));
                        true
                    }
                })
            }
        };
        if !sent {
            return;
        }
    }
}

//! The review queue and people's corrections, and the live feed of results.

use std::convert::Infallible;
use std::sync::Arc;

use autorma_core::{CorrectionRecord, Decision};
use autorma_sink::index::Page;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::ServeState;
use super::error::ApiError;
use super::feed::FeedEvent;
use super::routes::{ResultsQuery, page_of, result_for};

/// `GET /v1/review`: results a person should look at (decision `review`, not corrected yet),
/// newest first, with the filters and pages of `/v1/results`.
pub async fn queue(
    State(state): State<Arc<ServeState>>,
    raw: Result<Query<ResultsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    page_of(&state, raw, |filter| {
        filter.decision = Some(Decision::Review);
        filter.uncorrected = true;
    })
    .await
}

/// Longest `by` of a correction: a name or a badge number, not a document.
const MAX_BY_CHARS: usize = 100;

/// The open `/v1/events` streams, at most `max` at once (`serve --max-event-streams`): each
/// holds a connection and a subscription for as long as a page is open.
pub struct EventStreams {
    slots: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl EventStreams {
    pub fn new(max: usize) -> Self {
        Self { slots: Arc::new(tokio::sync::Semaphore::new(max)), max }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// One of the model's classes.
    label: String,
    /// Who, as the client names them.
    by: Option<String>,
}

/// `POST /v1/review/{key}`: a person's label for the photo; it leaves the queue.
pub async fn correct(
    State(state): State<Arc<ServeState>>,
    Path(key): Path<String>,
    body: Result<Json<CorrectionBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<CorrectionRecord>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::unreadable_body(e.body_text(), &e))?;
    if let Some(by) = &body.by
        && (by.chars().count() > MAX_BY_CHARS || by.chars().any(char::is_control))
    {
        return Err(ApiError::bad_request(format!(
            "by: at most {MAX_BY_CHARS} characters, none of them control characters"
        )));
    }
    let classes = state.requests.models().current().classes.clone();
    if !classes.contains(&body.label) {
        return Err(ApiError::bad_request(format!("label `{}`: expected one of {classes:?}", body.label)));
    }
    let result = result_for(&state, &key).await?;
    let record = CorrectionRecord {
        item: result.item.clone(),
        label: body.label,
        model_label: result.label.clone(),
        model: result.model.clone(),
        by: body.by,
        corrected_at: chrono::Utc::now(),
    };
    // The stored record first: the index is derived from it.
    state.stores.store_correction(&record).await?;
    let (index, stored) = (state.index.clone(), record.clone());
    tokio::task::spawn_blocking(move || index.upsert_corrections(std::slice::from_ref(&stored)))
        .await
        .expect("indexing a correction panicked")?;
    tracing::info!(key = %record.item.key, label = %record.label, model_label = %record.model_label, "corrected");
    Ok(Json(record))
}

/// `GET /v1/events`: server-sent events, one `result` event (the Result JSON) per result as
/// it is indexed, one `dead_letter` event (the DlqRecord JSON) per photo that failed.
pub async fn events(
    State(state): State<Arc<ServeState>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Held by the stream, so it is given back when the client goes.
    let streams = &state.event_streams;
    let permit = streams.slots.clone().try_acquire_owned().map_err(|_| ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        code: "too_many_streams",
        message: format!("at most {} event streams are open at once; try again later", streams.max),
    })?;
    let receiver = state.events.subscribe();
    let stream = futures::stream::unfold((receiver, permit), |(mut receiver, permit)| async move {
        loop {
            match receiver.recv().await {
                Ok(fed) => {
                    let event = match fed {
                        FeedEvent::Result(record) => Event::default().event("result").json_data(&*record),
                        FeedEvent::DeadLetter(record) => Event::default().event("dead_letter").json_data(&*record),
                    };
                    return Some((Ok(event.expect("records serialise")), (receiver, permit)));
                }
                // A slow client misses some; it can catch up with /v1/results.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "an event subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut stopping = state.stopping.clone();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    Ok(Sse::new(stream.take_until(stopped)).keep_alive(KeepAlive::default()))
}

//! What the API stores and reads besides the index: uploads and photos, corrections, and (in
//! streaming mode) the corrections topic; and whether those answer (`/readyz`). Both modes are
//! the same code over a [`Store`]: embedded, the inbox and output folders; streaming, the
//! bucket.

use std::sync::Arc;
use std::time::Duration;

use autorma_classifier::catalogue::Catalogue;

use autorma_core::kafka::{KafkaConfig, send};
use autorma_core::layout::correction_object_key;
use autorma_core::topics;
use autorma_core::{CorrectionRecord, Metadata, ObjectStore, Store, StoreError};
use axum::http::StatusCode;
use bytes::Bytes;
use rdkafka::producer::{FutureProducer, Producer};

use super::error::ApiError;

/// How long `/readyz` waits for the broker.
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Stores {
    /// The bucket of the photos and corrections. Embedded, only a name (the folders are the
    /// store): photos and corrections are found whatever bucket name `run` recorded.
    pub bucket: String,
    /// Where the pipeline reads photos (embedded: the inbox folder; streaming: the bucket); `None`: an embedded server without `--inbox`, which
    /// takes no uploads and serves no photos.
    pub photos: Option<Photos>,
    /// Where corrections are written (`corrections/<key>.json`): the output folder, or the
    /// bucket.
    pub corrections: Store,
    /// Streaming: corrections are published on `rma.corrections` too.
    pub broker: Option<Broker>,
    /// The catalogue photos the product check compares returns with (shown beside them in
    /// the review queue); `None`: there is none.
    pub catalogue: Option<Arc<Catalogue>>,
}

/// Where the photos are.
pub struct Photos {
    pub store: Store,
    /// Uploads are stored under it, where the pipeline looks for photos (`inbox/` in the
    /// bucket; nothing in an inbox folder).
    pub upload_prefix: String,
}

/// The broker corrections are published to, and `/readyz` checks.
pub struct Broker {
    pub kafka: KafkaConfig,
    pub producer: FutureProducer,
    /// The topics `/readyz` checks (those the index follows).
    pub topics: &'static [&'static str],
}

fn no_inbox(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "no_inbox",
        message: format!("this server has no inbox, {what}: start it with --inbox DIR"),
    }
}

impl Stores {
    /// Where uploads go; checked before a request's body is read.
    pub fn uploads(&self) -> Result<&Photos, ApiError> {
        self.photos.as_ref().ok_or_else(|| no_inbox("so it takes no uploads"))
    }

    /// Stores an upload under `name` (made unique and safe by the caller) and returns its key:
    /// it flows through the pipeline like any other photo. Written whole (a folder's file is a
    /// temporary file renamed), so the pipeline never sees half a photo.
    pub async fn store_upload(&self, name: &str, bytes: Bytes, metadata: &Metadata) -> Result<String, ApiError> {
        let photos = self.uploads()?;
        let content_type = autorma_classifier::preprocess::sniff_format(&bytes)
            .map_or("application/octet-stream", |format| format.to_mime_type());
        let key = format!("{}{name}", photos.upload_prefix);
        photos.store.put_object(&self.bucket, &key, bytes, content_type, metadata).await?;
        Ok(key)
    }

    /// The photo `key` and its etag, from where the pipeline reads it; a file the folder store
    /// will not hand out (a link leading out of the inbox) is not found.
    pub async fn photo(&self, key: &str, max_bytes: u64) -> Result<(Bytes, String), ApiError> {
        let photos = self.photos.as_ref().ok_or_else(|| no_inbox("so it does not know where the photos are"))?;
        match photos.store.get_tagged(&self.bucket, key, max_bytes).await {
            Ok(found) => Ok(found),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found(format!("the photo `{key}` is gone"))),
            Err(e @ StoreError::InvalidKey { .. }) => {
                tracing::warn!(key = %key.escape_debug(), error = %e, "refused to serve a photo");
                Err(ApiError::not_found(format!("the photo `{key}` is not served: {e}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The catalogue photo of `sku`.
    pub async fn catalogue_photo(&self, sku: &str, max_bytes: u64) -> Result<Bytes, ApiError> {
        let catalogue = self.catalogue.as_ref().ok_or_else(|| ApiError {
            status: StatusCode::CONFLICT,
            code: "no_catalogue",
            message: "this server has no catalogue of product photos: start it with --catalogue DIR (streaming: the bucket's catalogue/)".into(),
        })?;
        match catalogue.photo(sku, max_bytes).await? {
            Some(object) => Ok(object.bytes),
            None => Err(ApiError::not_found(format!("no catalogue photo for SKU `{sku}`"))),
        }
    }

    /// Stores a correction beside the photo's result (`corrections/<key>.json`), after
    /// publishing it on `rma.corrections` when there is a broker (as the sink does with
    /// results: an object in the bucket then always has its record on the topic).
    pub async fn store_correction(&self, record: &CorrectionRecord) -> Result<(), ApiError> {
        let key = &record.item.key;
        let body = serde_json::to_vec(record).expect("a correction serialises");
        if let Some(broker) = &self.broker {
            send(&broker.producer, topics::CORRECTIONS, key, &body, &[("label", &record.label)]).await?;
        }
        let object = correction_object_key(key);
        self.corrections.put(&self.bucket, &object, Bytes::from(body), "application/json").await?;
        Ok(())
    }

    /// Each store the server depends on, and whether it answers now.
    pub async fn checks(&self) -> Vec<(&'static str, Result<(), String>)> {
        let bucket = &self.bucket;
        let mut checks = vec![("corrections", self.corrections.check(bucket).await.map_err(|e| e.to_string()))];
        if let Some(photos) = &self.photos {
            checks.push(("photos", photos.store.check(bucket).await.map_err(|e| e.to_string())));
        }
        if let Some(broker) = &self.broker {
            let (kafka, producer, topics) = (broker.kafka.clone(), broker.producer.clone(), broker.topics);
            let reachable = tokio::task::spawn_blocking(move || {
                kafka.check_topics_with(producer.client(), topics, BROKER_CHECK_TIMEOUT)
            });
            checks.push(("broker", reachable.await.expect("broker check panicked").map_err(|e| e.to_string())));
        }
        checks
    }
}

//! What the API stores and reads besides the index: uploads, photos and corrections, in the
//! folders of embedded mode or in the bucket and topics of streaming mode; and whether those
//! answer (`/readyz`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use autorma_core::kafka::{KafkaConfig, send, topics};
use autorma_core::layout::correction_object_key;
use autorma_core::{CorrectionRecord, LocalStore, ObjectStore, S3Store, StoreError};
use axum::body::Bytes;
use axum::http::StatusCode;
use rdkafka::producer::{FutureProducer, Producer};

use super::error::ApiError;

/// How long `/readyz` waits for the broker.
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

pub enum Backend {
    /// `autorma serve --out DIR [--inbox DIR]`.
    Embedded {
        /// Corrections are written under it.
        out: PathBuf,
        /// Uploads go here and photos are read from here, when given.
        inbox: Option<LocalStore>,
    },
    /// `autorma serve --streaming`.
    Streaming {
        store: S3Store,
        bucket: String,
        /// Uploads are stored under it, where ingest looks for photos.
        inbox_prefix: String,
        kafka: KafkaConfig,
        producer: FutureProducer,
    },
}

fn no_inbox(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        code: "no_inbox",
        message: format!("this server has no inbox, {what}: start it with --inbox DIR"),
    }
}

impl Backend {
    /// Whether uploads can be stored (checked before a request's body is read).
    pub fn accepts_uploads(&self) -> Result<(), ApiError> {
        match self {
            Backend::Embedded { inbox: None, .. } => Err(no_inbox("so it takes no uploads")),
            _ => Ok(()),
        }
    }

    /// Stores an upload under `name` (made unique and safe by the caller) and returns its key:
    /// it flows through the pipeline like any other photo.
    pub async fn store_upload(&self, name: &str, bytes: Bytes) -> Result<String, ApiError> {
        let content_type = autorma_classifier::preprocess::sniff_format(&bytes)
            .map_or("application/octet-stream", |format| format.to_mime_type());
        match self {
            Backend::Embedded { inbox: None, .. } => Err(no_inbox("so it takes no uploads")),
            // Written whole (a temp file renamed), so the inbox's scan never sees half a photo.
            Backend::Embedded { inbox: Some(inbox), .. } => {
                inbox.put(inbox.bucket(), name, bytes, content_type).await?;
                Ok(name.to_string())
            }
            Backend::Streaming { store, bucket, inbox_prefix, .. } => {
                let key = format!("{inbox_prefix}{name}");
                store.put(bucket, &key, bytes, content_type).await?;
                Ok(key)
            }
        }
    }

    /// The photo `key` of `bucket`, as the pipeline read it.
    pub async fn photo(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Bytes, ApiError> {
        let read = match self {
            Backend::Embedded { inbox: None, .. } => return Err(no_inbox("so it does not know where the photos are")),
            Backend::Embedded { inbox: Some(inbox), .. } => inbox.get(bucket, key, max_bytes).await,
            Backend::Streaming { store, .. } => store.get(bucket, key, max_bytes).await,
        };
        match read {
            Ok(bytes) => Ok(bytes),
            Err(StoreError::NotFound { .. }) => Err(ApiError::not_found(format!("the photo `{key}` is gone"))),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a correction beside the photo's result (`corrections/<key>.json`) and, in
    /// streaming mode, publishes it on `rma.corrections` first (as the sink does with results:
    /// an object in the bucket then always has its record on the topic).
    pub async fn store_correction(&self, record: &CorrectionRecord) -> Result<(), ApiError> {
        match self {
            Backend::Embedded { out, .. } => {
                let (out, record) = (out.clone(), record.clone());
                tokio::task::spawn_blocking(move || autorma_sink::local::write_correction(&out, &record))
                    .await
                    .expect("storing a correction panicked")?;
            }
            Backend::Streaming { store, producer, .. } => {
                let key = &record.item.key;
                let body = serde_json::to_vec(record).expect("a correction serialises");
                send(producer, topics::CORRECTIONS, key, &body, &[("label", &record.label)]).await?;
                let object = correction_object_key(key);
                store.put(&record.item.bucket, &object, Bytes::from(body), "application/json").await?;
            }
        }
        Ok(())
    }

    /// Each store the server depends on, and whether it answers now.
    pub async fn checks(&self) -> Vec<(&'static str, Result<(), String>)> {
        match self {
            Backend::Embedded { out, inbox } => {
                let folder = |path: &Path| {
                    if path.is_dir() { Ok(()) } else { Err(format!("`{}` is not a folder", path.display())) }
                };
                let mut checks = vec![("out", folder(out))];
                if let Some(inbox) = inbox {
                    checks.push(("inbox", folder(inbox.root())));
                }
                checks
            }
            Backend::Streaming { store, bucket, kafka, producer, .. } => {
                let (kafka, producer) = (kafka.clone(), producer.clone());
                let broker = tokio::task::spawn_blocking(move || {
                    kafka.check_topics_with(producer.client(), &super::feed::topics::FEED_TOPICS, BROKER_CHECK_TIMEOUT)
                });
                let store = store.check_bucket(bucket).await.map_err(|e| e.to_string());
                let broker = broker.await.expect("broker check panicked").map_err(|e| e.to_string());
                vec![("store", store), ("broker", broker)]
            }
        }
    }
}

//! S3 as the object store (AWS S3, MinIO, versitygw): photos are read from it, and the
//! streaming sink and the ingest service write and list through the same client.
//!
//! Every request takes a permit from one semaphore, so a burst of photos cannot open
//! unbounded connections. The size limit is checked from the object's length in the GET
//! response's headers, before its body is read, and again while it is read.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::{ListPage, Object, ObjectInfo, ObjectStore, StoreError, WriteCondition};
use crate::claim::Metadata;

/// How to reach the S3 server. Credentials come from the standard AWS chain
/// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, profiles, instance roles).
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:19000` for the dev stack; `None` uses AWS's own.
    pub endpoint: Option<String>,
    /// Region; `None` takes it from the AWS chain (`AWS_REGION`, profile), else `us-east-1`.
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), which MinIO and versitygw need.
    pub path_style: bool,
    /// Requests in flight at once, all kinds together.
    pub max_concurrency: usize,
    /// Longest one request may take (connect included) before it counts as failed.
    pub request_timeout: Duration,
    /// Tries the SDK makes of each request (its standard mode: jittered exponential backoff),
    /// the first included. 1 where the caller retries on its own (the worker's pipeline), so
    /// that its number of tries is the number of requests.
    pub max_attempts: u32,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            path_style: false,
            max_concurrency: 32,
            request_timeout: Duration::from_secs(30),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    permits: Arc<Semaphore>,
    /// For error messages: where the requests go.
    endpoint: Arc<str>,
}

impl S3Store {
    /// Builds the client (no request is made; [`S3Store::check_bucket`] tests the connection).
    pub async fn connect(config: &S3Config) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(config.request_timeout)
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(config.max_attempts.max(1)));
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &config.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
        if shared.region().is_none() {
            builder = builder.region(aws_config::Region::from_static("us-east-1"));
        }
        let endpoint = config.endpoint.clone().unwrap_or_else(|| "AWS S3".into());
        Self::from_client(aws_sdk_s3::Client::from_conf(builder.build()), config.max_concurrency, &endpoint)
    }

    /// A store over a client configured elsewhere (another credentials provider, say), with
    /// at most `max_concurrency` requests in flight; `endpoint` names the server in errors.
    pub fn from_client(client: aws_sdk_s3::Client, max_concurrency: usize, endpoint: &str) -> Self {
        Self { client, permits: Arc::new(Semaphore::new(max_concurrency.max(1))), endpoint: endpoint.into() }
    }

    /// Checks at start that the bucket exists and the credentials may use it, with a message
    /// that says which of the two (or the endpoint) is wrong.
    pub async fn check_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let detail = match status {
                    Some(404) => format!("bucket `{bucket}` does not exist at {}: create it", self.endpoint),
                    Some(403) | Some(401) => format!(
                        "access to bucket `{bucket}` at {} was refused: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
                        self.endpoint
                    ),
                    _ => format!("cannot reach the S3 endpoint {}: {}", self.endpoint, DisplayErrorContext(&e)),
                };
                Err(StoreError::Remote { bucket: bucket.into(), key: String::new(), detail, retryable: false })
            }
        }
    }
}

impl ObjectStore for S3Store {
    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        metadata: &Metadata,
    ) -> Result<(), StoreError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let metadata = (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(metadata)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| remote_error(bucket, key, e))?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        match self.client.delete_object().bucket(bucket).key(key).send().await {
            Ok(_) => Ok(()),
            Err(e) => match remote_error(bucket, key, e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    // S3 conditional writes, which versitygw and MinIO implement atomically.
    async fn put_if(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
        condition: WriteCondition<'_>,
    ) -> Result<bool, StoreError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let request = self.client.put_object().bucket(bucket).key(key).content_type(content_type);
        let request = match condition {
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatch(etag) => request.if_match(format!("\"{}\"", unquote_etag(etag))),
        };
        match request.body(ByteStream::from(body)).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the condition is false; 409: a concurrent conditional write won the race.
                if matches!(status, Some(412 | 409)) || e.code() == Some("PreconditionFailed") {
                    return Ok(false);
                }
                match remote_error(bucket, key, e) {
                    // If-Match on a key that is gone: S3 answers 404, and the condition is false.
                    StoreError::NotFound { .. } if matches!(condition, WriteCondition::IfMatch(_)) => Ok(false),
                    other => Err(other),
                }
            }
        }
    }

    async fn get_object(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Object, StoreError> {
        let _permit = self.permits.acquire().await.expect("never closed");
        let output =
            self.client.get_object().bucket(bucket).key(key).send().await.map_err(|e| remote_error(bucket, key, e))?;
        let too_large = |size| StoreError::TooLarge { bucket: bucket.into(), key: key.into(), size, max_bytes };
        let announced = output.content_length().unwrap_or(0).max(0) as u64;
        if announced > max_bytes {
            // Dropping the body closes the connection without reading the object.
            return Err(too_large(announced));
        }
        // The limit holds while reading too: a server may announce no length, or a wrong one.
        let etag = unquote_etag(output.e_tag().unwrap_or_default()).to_string();
        // S3 gives metadata names in lower case; a server that keeps the case is made to agree.
        let metadata: Metadata = output
            .metadata()
            .into_iter()
            .flatten()
            .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
            .collect();
        let mut body = output.body;
        let mut bytes = bytes::BytesMut::with_capacity(announced as usize);
        while let Some(chunk) = body.try_next().await.map_err(|e| StoreError::Remote {
            bucket: bucket.into(),
            key: key.into(),
            detail: format!("reading the body failed: {e}"),
            retryable: true,
        })? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large((bytes.len() + chunk.len()) as u64));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Object { bytes: bytes.freeze(), etag, metadata })
    }

    // Page by page; S3 lists in key order.
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map(|o: &ObjectInfo| o.key.clone());
            let page = self.list_page(bucket, prefix, after.as_deref(), LIST_PAGE_MAX).await?;
            out.extend(page.objects);
            if page.complete {
                return Ok(out);
            }
        }
    }

    async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max: usize,
    ) -> Result<ListPage, StoreError> {
        let page = {
            let _permit = self.permits.acquire().await.expect("never closed");
            self.client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_start_after(start_after.map(str::to_string))
                .max_keys(max.min(LIST_PAGE_MAX) as i32)
                .send()
                .await
                .map_err(|e| remote_error(bucket, prefix, e))?
        };
        let objects: Vec<ObjectInfo> = page
            .contents()
            .iter()
            .filter_map(|object| {
                let key = object.key()?;
                let last_modified = object
                    .last_modified()
                    .and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or_else(Utc::now);
                Some(ObjectInfo {
                    key: key.to_string(),
                    etag: unquote_etag(object.e_tag().unwrap_or_default()).to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    last_modified,
                })
            })
            .collect();
        // A truncated answer with nothing in it would make the caller ask for the same page again.
        let complete = page.is_truncated() != Some(true) || objects.is_empty();
        Ok(ListPage { objects, complete })
    }
}

/// The most keys one ListObjectsV2 answer holds (S3's own cap).
const LIST_PAGE_MAX: usize = 1000;

/// S3 quotes ETags (`"abc"`), notifications may or may not; one photo has one etag.
pub fn unquote_etag(etag: &str) -> &str {
    etag.trim_matches('"')
}

/// S3 error codes that another attempt may fix, whatever their HTTP status.
const RETRYABLE_CODES: &[&str] = &[
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "OperationAborted",
    "SlowDown",
    "InternalError",
    "ServiceUnavailable",
    "ExpiredToken",
    "Throttling",
];

/// Maps an SDK error to a [`StoreError`]: a missing key is `NotFound` (a missing bucket is
/// not); retryable when the error code says so, on throttling and 5xx, and when no answer came
/// (timeouts, refused connections); any other 4xx is final.
fn remote_error<E>(bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    match code.as_deref() {
        Some("NoSuchKey") => return StoreError::NotFound { bucket: bucket.into(), key: key.into() },
        // HEAD and DELETE answers have no body, so no code.
        None if status == Some(404) => return StoreError::NotFound { bucket: bucket.into(), key: key.into() },
        _ => {}
    }
    let retryable = match (code.as_deref(), status) {
        (Some(code), _) if RETRYABLE_CODES.contains(&code) => true,
        (_, Some(408 | 429)) => true,
        (_, Some(status)) => status >= 500,
        (_, None) => true,
    };
    StoreError::Remote {
        bucket: bucket.into(),
        key: key.into(),
        detail: DisplayErrorContext(&e).to_string(),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
    }
}

//! What the tests use to talk to the engines as any user would: an ordinary S3 client
//! (aws-sdk-s3) to PUT photos and list the bucket, and a plain Kafka reader of a topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::stack::{ACCESS_KEY, BUCKET, SECRET_KEY, Stack};

/// An object's user metadata, by name.
pub type Metadata = HashMap<String, String>;

pub struct S3 {
    pub client: aws_sdk_s3::Client,
    pub rt: tokio::runtime::Runtime,
}

impl S3 {
    pub fn new(stack: &Stack) -> S3 {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let credentials = aws_sdk_s3::config::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test");
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&stack.endpoint)
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(credentials)
            .force_path_style(true)
            .build();
        S3 { client: aws_sdk_s3::Client::from_conf(config), rt }
    }

    pub fn put(&self, key: &str, body: Vec<u8>) {
        self.rt.block_on(self.put_async(key, body));
    }

    pub async fn put_async(&self, key: &str, body: Vec<u8>) {
        self.try_put_async(key, body, Metadata::new()).await.unwrap_or_else(|e| panic!("{e}"));
    }

    /// A PUT that may fail (the S3 server away), with the error in words.
    pub fn try_put(&self, key: &str, body: Vec<u8>) -> Result<(), String> {
        self.rt.block_on(self.try_put_async(key, body, Metadata::new()))
    }

    async fn try_put_async(&self, key: &str, body: Vec<u8>, metadata: Metadata) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .set_metadata((!metadata.is_empty()).then_some(metadata))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("PUT {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))
    }

    /// PUTs many objects, 16 at a time; returns when each PUT was sent, by key.
    pub fn put_all(&self, objects: Vec<(String, Vec<u8>)>) -> HashMap<String, Instant> {
        self.put_all_at(objects, 16)
    }

    /// PUTs many objects, `concurrency` at a time; returns when each PUT was sent, by key.
    pub fn put_all_at(&self, objects: Vec<(String, Vec<u8>)>, concurrency: usize) -> HashMap<String, Instant> {
        let objects = objects.into_iter().map(|(key, body)| (key, body, Metadata::new())).collect();
        self.put_all_with_metadata(objects, concurrency)
    }

    /// PUTs many objects with user metadata (`x-amz-meta-<name>`, as a returns desk sends a
    /// claim with its photo), `concurrency` at a time; returns when each PUT was sent, by key.
    pub fn put_all_with_metadata(
        &self,
        objects: Vec<(String, Vec<u8>, Metadata)>,
        concurrency: usize,
    ) -> HashMap<String, Instant> {
        self.rt.block_on(async {
            use futures::StreamExt;
            futures::stream::iter(objects)
                .map(|(key, body, metadata)| async move {
                    let sent = Instant::now();
                    self.try_put_async(&key, body, metadata).await.unwrap_or_else(|e| panic!("{e}"));
                    (key, sent)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await
        })
    }

    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(BUCKET).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                keys.extend(page.unwrap().contents().iter().filter_map(|o| o.key().map(String::from)));
            }
            keys
        })
    }

    pub fn get_json(&self, key: &str) -> serde_json::Value {
        self.rt.block_on(async {
            let object = self.client.get_object().bucket(BUCKET).key(key).send().await.unwrap();
            serde_json::from_slice(&object.body.collect().await.unwrap().into_bytes()).unwrap()
        })
    }
}

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: String,
    pub value: serde_json::Value,
    pub headers: BTreeMap<String, String>,
    pub partition: i32,
    pub offset: i64,
    /// When this reader saw it.
    pub seen: Instant,
}

/// Reads every partition of a topic from the beginning on a thread of its own, keeping every
/// record it sees, as a documented consumer does: `read_committed`, so records of aborted
/// transactions are never seen. Survives a broker restart (librdkafka reconnects).
pub struct TopicReader {
    records: Arc<Mutex<Vec<Record>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TopicReader {
    pub fn start(brokers: &str, topic: &str) -> TopicReader {
        let consumer = consumer(brokers, &format!("test-reader-{topic}"), "read_committed");
        consumer.assign(&every_partition(&consumer, topic, Offset::Beginning)).unwrap();
        let records = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (records, stop) = (records.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else { continue };
                    let headers = message
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into())
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    let record = Record {
                        key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                        value: serde_json::from_slice(message.payload().unwrap_or_default())
                            .unwrap_or(serde_json::Value::Null),
                        headers,
                        partition: message.partition(),
                        offset: message.offset(),
                        seen: Instant::now(),
                    };
                    records.lock().unwrap().push(record);
                }
            }
        });
        TopicReader { records, stop, thread: Some(thread) }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    /// Keys seen more than once, with their counts.
    pub fn duplicates(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for record in self.records.lock().unwrap().iter() {
            *counts.entry(record.key.clone()).or_default() += 1;
        }
        let mut twice: Vec<(String, usize)> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
        twice.sort();
        twice
    }

    pub fn num_distinct_keys(&self) -> usize {
        self.records.lock().unwrap().iter().map(|r| r.key.clone()).collect::<std::collections::HashSet<_>>().len()
    }

    /// The first record of each key.
    pub fn first_by_key(&self) -> HashMap<String, Record> {
        let mut out = HashMap::new();
        for record in self.records() {
            out.entry(record.key.clone()).or_insert(record);
        }
        out
    }
}

impl Drop for TopicReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The offsets `group` has committed on `topic`'s partitions (the next offset to read; 0 where
/// none), as the broker holds them now: committed transactions only.
pub fn committed_offsets(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    // Not `read_committed`: that waits for the group's open transactions to end.
    let consumer = consumer(brokers, group, "read_uncommitted");
    let partitions = every_partition(&consumer, topic, Offset::Invalid);
    let committed = consumer.committed_offsets(partitions, Duration::from_secs(20)).unwrap();
    committed
        .elements()
        .iter()
        .map(|e| (e.partition(), if let Offset::Offset(o) = e.offset() { o } else { 0 }))
        .collect()
}

/// A consumer of `group` that commits nothing, reading at `isolation`.
fn consumer(brokers: &str, group: &str, isolation: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .create()
        .unwrap()
}

/// Every partition of `topic`, each at `offset`.
fn every_partition(consumer: &BaseConsumer, topic: &str, offset: Offset) -> TopicPartitionList {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut partitions = TopicPartitionList::new();
    for partition in metadata.topics()[0].partitions() {
        partitions.add_partition_offset(topic, partition.id(), offset).unwrap();
    }
    partitions
}

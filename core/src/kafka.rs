//! What every Kafka client of AutoRMA shares: the client settings, the
//! start-up check (broker reachable, topics there), a send that waits for the broker's
//! acknowledgement, and a walk over librdkafka's per-partition statistics.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::{self, Statistics};

/// How to reach the brokers.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.*`, ...), applied last.
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), properties: Vec::new() }
    }

    /// The brokers, then `defaults` (what the caller's role needs), then the user's
    /// properties over both, so a user can still tune what we default.
    pub fn client_config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("client.id", "autorma");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// A producer whose acknowledgement means the record is on every in-sync replica, written
    /// once even when librdkafka retries (idempotence).
    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        self.client_config(&[("enable.idempotence", "true"), ("acks", "all"), ("linger.ms", "5")])
            .create()
            .map_err(|e| KafkaError::Client { detail: e.to_string() })
    }

    /// Checks that the brokers answer and that every topic exists, with a message that says
    /// which is wrong and how to fix it. Blocking (up to `timeout`): call from a blocking thread.
    pub fn check_topics(&self, names: &[&str], timeout: Duration) -> Result<(), KafkaError> {
        let consumer: BaseConsumer =
            self.client_config(&[]).create().map_err(|e| KafkaError::Client { detail: e.to_string() })?;
        self.check_topics_with(consumer.client(), names, timeout)
    }

    /// [`check_topics`](Self::check_topics) through a client the caller already has (a
    /// long-running process's producer), so a periodic check opens no new connections.
    pub fn check_topics_with<C: ClientContext>(
        &self,
        client: &Client<C>,
        names: &[&str],
        timeout: Duration,
    ) -> Result<(), KafkaError> {
        let metadata = client
            .fetch_metadata(None, timeout)
            .map_err(|e| KafkaError::Unreachable { brokers: self.brokers.clone(), detail: e.to_string() })?;
        let missing: Vec<String> = names
            .iter()
            .filter(|name| !metadata.topics().iter().any(|t| t.name() == **name && t.error().is_none()))
            .map(|name| name.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(KafkaError::MissingTopics { brokers: self.brokers.clone(), topics: missing })
        }
    }
}

/// Sends one record and waits for the broker's acknowledgement (or librdkafka's final
/// failure, after its own retries within `message.timeout.ms`).
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &[(&str, &str)],
) -> Result<(), KafkaError> {
    let record = FutureRecord::to(topic).key(key).payload(payload).headers(owned_headers(headers.iter().copied()));
    producer.send(record, rdkafka::util::Timeout::Never).await.map(|_| ()).map_err(|(e, _)| KafkaError::Send {
        topic: topic.to_string(),
        key: key.to_string(),
        detail: e.to_string(),
    })
}

/// A record's headers in librdkafka's form.
pub fn owned_headers<'a>(headers: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> OwnedHeaders {
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (name, value) in headers {
        owned = owned.insert(Header { key: name, value: Some(value.as_bytes()) });
    }
    owned
}

/// Every partition in librdkafka's statistics, with its topic, leaving out the internal
/// partition -1 that librdkafka reports beside the real ones.
pub fn partition_stats(statistics: &Statistics) -> impl Iterator<Item = (&str, i32, &statistics::Partition)> {
    statistics.topics.iter().flat_map(|(topic, t)| {
        t.partitions
            .iter()
            .filter(|(partition, _)| **partition >= 0)
            .map(move |(partition, p)| (topic.as_str(), *partition, p))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("cannot create a Kafka client: {detail}")]
    Client { detail: String },
    #[error(
        "cannot reach Kafka at `{brokers}` ({detail}): is the broker running? (the dev stack: `infra/stack.sh up`; set the address with --brokers or AUTORMA_KAFKA_BROKERS)"
    )]
    Unreachable { brokers: String, detail: String },
    #[error("topics missing on Kafka at `{brokers}`: {}; create them with `infra/engines/topics.sh {brokers}`", topics.join(", "))]
    MissingTopics { brokers: String, topics: Vec<String> },
    #[error("send to `{topic}` (key `{key}`) failed: {detail}")]
    Send { topic: String, key: String, detail: String },
}

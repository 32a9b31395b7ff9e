//! Records that leave the pipeline on topics (`rma.results`, `rma.review`, `rma.dlq`): built
//! by the sink, published by the source with the checkpoint that passes their photo, so the
//! records and the input offsets commit together (one Kafka transaction) or not at all.

/// One record to publish: topic, key, value and headers, as they go on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl OutboundRecord {
    pub fn new(topic: &str, key: &str, payload: Vec<u8>, headers: &[(&str, &str)]) -> Self {
        Self {
            topic: topic.to_string(),
            key: key.to_string(),
            payload,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

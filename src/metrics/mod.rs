//! Prometheus metrics: what the request path counts (pre-registered
//! families of atomic counters, looked up by label), what is read from the
//! broker only when scraped (`collectors`), and the small HTTP listener
//! that serves them at `/metrics` (`http`).
//!
//! The text is produced by `prometheus-client`; nothing here formats the
//! exposition format by hand.

pub mod collectors;
pub mod http;

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::broker::Broker;

/// Upper bounds of the request latency buckets, in seconds: 0.5 ms to a
/// little over 30 s (long-polling fetches wait up to their max wait).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    35.0,
];

/// Upper bounds of the request size buckets, in bytes: 64 B to 16 MiB by
/// powers of 4 (Kafka's largest default request is 100 MiB; larger ones
/// land in +Inf).
const SIZE_BUCKETS: [f64; 10] = [
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
];

/// A Kafka API as a label value: its name as Kafka's request metrics spell
/// it (`Produce`, `Fetch`, `ApiVersions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Api(pub ApiKey);

impl EncodeLabelValue for Api {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        write!(encoder, "{:?}", self.0)
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The handler answered (or, for acks=0, needed no answer). Errors of
    /// single partitions inside the answer are counted apart.
    None,
    /// The version asked for is not served; the connection is closed.
    UnsupportedVersion,
    /// The handler could not answer (malformed request, encoding or
    /// internal failure); the connection is closed.
    Failed,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        encoder.write_str(match self {
            Outcome::None => "NONE",
            Outcome::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Outcome::Failed => "REQUEST_FAILED",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    api: Api,
    error: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiLabels {
    api: Api,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TopicLabels {
    topic: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PartitionErrorLabels {
    api: Api,
    error: &'static str,
}

/// Histograms by API (latency, request size).
type HistogramFamily = Family<ApiLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn size_histogram() -> Histogram {
    Histogram::new(SIZE_BUCKETS)
}

/// The metrics the request path updates. Cloning shares them (every
/// family and gauge is a handle on shared atomics).
#[derive(Debug, Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    request_size: HistogramFamily,
    partition_errors: Family<PartitionErrorLabels, Counter>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    connections: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            request_size: Family::new_with_constructor(size_histogram),
            partition_errors: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            connections: Gauge::default(),
        }
    }
}

impl Metrics {
    /// Starts timing a request of `api`; the guard counts it when dropped,
    /// as failed unless [`RequestTimer::finish`] said otherwise first.
    pub fn request_timer(&self, api: ApiKey) -> RequestTimer<'_> {
        RequestTimer {
            metrics: self,
            api: Api(api),
            outcome: Outcome::Failed,
            started: Instant::now(),
        }
    }

    /// Records the size of a request frame of `api` (header and body,
    /// without the 4-byte length prefix).
    pub fn request_size(&self, api: ApiKey, bytes: usize) {
        self.request_size
            .get_or_create(&ApiLabels { api: Api(api) })
            .observe(bytes as f64);
    }

    /// Counts an error code answered for one partition of an `api`
    /// request (Produce, Fetch).
    pub fn partition_error(&self, api: ApiKey, code: i16) {
        if code == 0 {
            return;
        }
        let error = match kafka_protocol::error::ResponseError::try_from_code(code) {
            None | Some(kafka_protocol::error::ResponseError::Unknown(_)) => "UNKNOWN",
            Some(e) => error_name(&e),
        };
        self.partition_errors
            .get_or_create(&PartitionErrorLabels {
                api: Api(api),
                error,
            })
            .inc();
    }

    /// Record bytes appended to `topic` by Produce.
    pub fn bytes_in(&self, topic: &Arc<str>, bytes: usize) {
        add(&self.bytes_in, topic, bytes);
    }

    /// Record bytes of `topic` returned by Fetch.
    pub fn bytes_out(&self, topic: &Arc<str>, bytes: usize) {
        add(&self.bytes_out, topic, bytes);
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }

    /// Registers the families with `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "wharf_requests",
            "Requests handled, by API and by how they ended",
            self.requests.clone(),
        );
        registry.register(
            "wharf_request_duration_seconds",
            "Time from a request's arrival to its answer, by API (long-polling fetches include their wait)",
            self.latency.clone(),
        );
        registry.register(
            "wharf_request_size_bytes",
            "Size of request frames received (header and body), by API",
            self.request_size.clone(),
        );
        registry.register(
            "wharf_partition_errors",
            "Error codes answered for single partitions of Produce and Fetch requests",
            self.partition_errors.clone(),
        );
        registry.register(
            "wharf_topic_bytes_in",
            "Record batch bytes appended to a topic by Produce requests",
            self.bytes_in.clone(),
        );
        registry.register(
            "wharf_topic_bytes_out",
            "Record batch bytes of a topic returned to consumers by Fetch requests",
            self.bytes_out.clone(),
        );
        registry.register(
            "wharf_open_connections",
            "Client connections open now",
            self.connections.clone(),
        );
    }
}

fn add(family: &Family<TopicLabels, Counter>, topic: &Arc<str>, bytes: usize) {
    if bytes == 0 {
        return;
    }
    family
        .get_or_create(&TopicLabels {
            topic: topic.clone(),
        })
        .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
}

/// Counts the partition errors of a Produce answer (its bytes in are
/// counted as they are appended).
pub fn produce_answered(
    broker: &Broker,
    responses: &[kafka_protocol::messages::produce_response::TopicProduceResponse],
) {
    for partition in responses.iter().flat_map(|t| &t.partition_responses) {
        broker
            .metrics
            .partition_error(ApiKey::Produce, partition.error_code);
    }
}

/// Counts the record bytes and partition errors of a Fetch answer.
pub fn fetch_answered(
    broker: &Broker,
    responses: &[kafka_protocol::messages::fetch_response::FetchableTopicResponse],
) {
    for topic in responses {
        let mut bytes = 0;
        for partition in &topic.partitions {
            broker
                .metrics
                .partition_error(ApiKey::Fetch, partition.error_code);
            bytes += partition.records.as_ref().map_or(0, |r| r.len());
        }
        if bytes == 0 {
            continue;
        }
        // Fetch v13 and later name topics by id only.
        let known = if topic.topic.0.is_empty() {
            broker.topic_by_id(&topic.topic_id)
        } else {
            broker.topic(topic.topic.0.as_str())
        };
        if let Some(known) = known {
            broker.metrics.bytes_out(&known.name, bytes);
        }
    }
}

/// Kafka's name of an error code (`NOT_LEADER_OR_FOLLOWER`), from the
/// variant name `kafka-protocol` gives it, once per code.
fn error_name(error: &kafka_protocol::error::ResponseError) -> &'static str {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static NAMES: OnceLock<Mutex<HashMap<i16, &'static str>>> = OnceLock::new();
    let names = NAMES.get_or_init(Mutex::default);
    let mut names = names.lock().unwrap_or_else(PoisonError::into_inner);
    names.entry(error.code()).or_insert_with(|| {
        let camel = format!("{error:?}");
        let mut out = String::with_capacity(camel.len() + 8);
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        // At most one per Kafka error code: a bounded set, kept for the
        // process's life.
        Box::leak(out.into_boxed_str())
    })
}

/// Times one request and counts it when dropped.
pub struct RequestTimer<'a> {
    metrics: &'a Metrics,
    api: Api,
    outcome: Outcome,
    started: Instant,
}

impl RequestTimer<'_> {
    /// Sets how the request ended (otherwise it counts as failed).
    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        let api = self.api;
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                api,
                error: self.outcome,
            })
            .inc();
        self.metrics
            .latency
            .get_or_create(&ApiLabels { api })
            .observe(self.started.elapsed().as_secs_f64());
    }
}

/// Holds one count of the open connections gauge.
#[derive(Debug)]
pub struct ConnectionGuard(Gauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Everything `/metrics` shows for `broker`: its request metrics and the
/// collectors that read partitions, groups and the process at scrape time.
pub fn registry(broker: Arc<Broker>) -> Registry {
    let mut registry = Registry::default();
    broker.metrics.register(&mut registry);
    registry.register_collector(Box::new(collectors::BrokerCollector::new(broker)));
    registry.register_collector(Box::new(collectors::ProcessCollector));
    registry
}

/// The registry in the Prometheus text format (0.0.4).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn rendered(metrics: &Metrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        render(&registry).unwrap()
    }

    #[test]
    fn counts_requests_by_api_and_outcome() {
        let metrics = Metrics::default();
        {
            let mut timer = metrics.request_timer(ApiKey::Produce);
            timer.finish(Outcome::None);
        }
        drop(metrics.request_timer(ApiKey::Produce));
        {
            let mut timer = metrics.request_timer(ApiKey::Fetch);
            timer.finish(Outcome::None);
        }
        let text = rendered(&metrics);
        assert!(
            text.contains("# TYPE wharf_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_requests_total{api="Produce",error="NONE"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_requests_total{api="Produce",error="REQUEST_FAILED"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_request_duration_seconds_count{api="Produce"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_request_duration_seconds_bucket{le="+Inf",api="Fetch"} 1"#)
                || text
                    .contains(r#"wharf_request_duration_seconds_bucket{api="Fetch",le="+Inf"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn observes_request_sizes_by_api() {
        let metrics = Metrics::default();
        metrics.request_size(ApiKey::Fetch, 20_000);
        metrics.request_size(ApiKey::Fetch, 100);
        let text = rendered(&metrics);
        assert!(
            text.contains(r#"wharf_request_size_bytes_sum{api="Fetch"} 20100.0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wharf_request_size_bytes_bucket{api="Fetch",le="256"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn adds_topic_bytes_and_skips_empty_reads() {
        let metrics = Metrics::default();
        let topic: Arc<str> = Arc::from("orders");
        metrics.bytes_in(&topic, 100);
        metrics.bytes_in(&topic, 23);
        metrics.bytes_out(&topic, 0);
        let text = rendered(&metrics);
        assert!(
            text.contains(r#"wharf_topic_bytes_in_total{topic="orders"} 123"#),
            "{text}"
        );
        assert!(!text.contains("wharf_topic_bytes_out_total{"), "{text}");
    }

    #[test]
    fn names_partition_errors_as_kafka_does() {
        let metrics = Metrics::default();
        metrics.partition_error(ApiKey::Produce, 6);
        metrics.partition_error(ApiKey::Produce, 0);
        let text = rendered(&metrics);
        assert!(
            text.contains(
                r#"wharf_partition_errors_total{api="Produce",error="NOT_LEADER_OR_FOLLOWER"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"error="NONE""#), "{text}");
    }

    #[test]
    fn open_connections_follow_their_guards() {
        let metrics = Metrics::default();
        let a = metrics.connection_opened();
        let b = metrics.connection_opened();
        drop(a);
        assert!(rendered(&metrics).contains("wharf_open_connections 1"));
        drop(b);
        assert!(rendered(&metrics).contains("wharf_open_connections 0"));
    }
}

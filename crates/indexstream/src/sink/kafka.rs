//! `kafka:TOPIC`: records produced to a Kafka topic with the idempotent producer and
//! `acks=all`. The key is `index/id` (so compaction and de-duplication downstream work), the
//! headers carry `index`, `id`, `shard`, `seq_no` and `primary_term` (or `timestamp`, the
//! timestamp-mode cursor), the value is the document's source. A batch is acknowledged once the
//! delivery report of every record in it came back without an error.
//!
//! The client is librdkafka through `rdkafka` (the `kafka` cargo feature): of the Rust
//! clients it is the one with the idempotent producer (`rskafka` has none: measured, its
//! produce requests carry producer id -1), and the most used. Its cost is the build: librdkafka
//! compiles from source in about 3 minutes on 2 cores (measured: 3m14s wall for a clean release
//! build), once per target directory. It is built without OpenSSL, so TLS and SCRAM are not
//! available (SASL PLAIN is).

use std::time::Duration;

use crate::client::Secret;

/// How records are compressed in the batches sent to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KafkaCompression {
    /// None (the default).
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
}

/// The settings of a Kafka sink; `--sink-option` names each field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaSinkConfig {
    /// The topic.
    pub topic: String,
    /// Option `brokers`: the bootstrap servers, `host:port[,host:port...]` (default
    /// `localhost:9092`).
    pub brokers: String,
    /// Option `compression`: `none`, `gzip`, `snappy` or `lz4`.
    pub compression: KafkaCompression,
    /// Option `linger`: how long records wait to fill a batch (default 5ms).
    pub linger: Duration,
    /// Option `batch-size`: bytes per batch to one partition at most (default 1MiB).
    pub batch_bytes: usize,
    /// Option `timeout`: how long a record may wait for its delivery, retries included, before
    /// it counts as failed (default 30s).
    pub timeout: Duration,
    /// Options `sasl-username` and `sasl-password`: SASL PLAIN (without TLS: use it only on a
    /// network you trust).
    pub sasl: Option<(String, Secret)>,
}

impl KafkaSinkConfig {
    /// The defaults for `topic`, checked as Kafka checks topic names.
    pub fn new(topic: &str) -> Result<Self, String> {
        if topic.is_empty() || topic.len() > 249 || topic == "." || topic == ".." {
            return Err(format!("{topic:?} is not a valid Kafka topic name"));
        }
        if let Some(c) = topic
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
        {
            return Err(format!(
                "{topic:?} is not a valid Kafka topic name: it holds {c:?} (letters, digits, '.', '_' and '-' only)"
            ));
        }
        Ok(KafkaSinkConfig {
            topic: topic.to_string(),
            brokers: "localhost:9092".into(),
            compression: KafkaCompression::None,
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            timeout: Duration::from_secs(30),
            sasl: None,
        })
    }

    /// The options it takes, for an error naming them.
    pub(crate) const OPTIONS: &'static str =
        "brokers, compression, linger, batch-size, timeout, sasl-username, sasl-password";

    /// Applies one `--sink-option`; `Ok(false)` when the sink has no option `key`.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let bad = |why: &str| format!("sink option {key}={value:?}: {why}");
        match key {
            "brokers" => {
                if value.split(',').any(|b| {
                    b.trim()
                        .rsplit_once(':')
                        .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
                }) {
                    return Err(bad("expected host:port[,host:port...]"));
                }
                self.brokers = value.to_string();
            }
            "compression" => {
                self.compression = match value {
                    "none" => KafkaCompression::None,
                    "gzip" => KafkaCompression::Gzip,
                    "snappy" => KafkaCompression::Snappy,
                    "lz4" => KafkaCompression::Lz4,
                    "zstd" => {
                        return Err(bad(
                            "zstd is not built in (it would add the zstd library to the build); use lz4, snappy or gzip",
                        ))
                    }
                    _ => return Err(bad("expected none, gzip, snappy or lz4")),
                }
            }
            "linger" => {
                self.linger = crate::serde_duration::parse(value)
                    .map_err(|e| bad(&e.to_string()))?
            }
            "batch-size" => {
                self.batch_bytes = super::parse_size(value)
                    .filter(|n| *n > 0 && *n < i32::MAX as usize)
                    .ok_or_else(|| bad("expected a size such as 1048576, 512KiB or 1MiB"))?
            }
            "timeout" => {
                self.timeout = crate::serde_duration::parse(value)
                    .ok()
                    .filter(|d| *d >= Duration::from_millis(1))
                    .ok_or_else(|| bad("expected a duration above 0, such as 30s"))?
            }
            "sasl-username" => {
                let password = self
                    .sasl
                    .take()
                    .map(|(_, p)| p)
                    .unwrap_or_else(|| Secret::new(""));
                self.sasl = Some((value.to_string(), password));
            }
            "sasl-password" => {
                let user = self.sasl.take().map(|(u, _)| u).unwrap_or_default();
                self.sasl = Some((user, Secret::new(value.to_string())));
            }
            "tls" | "ssl" | "security-protocol" | "sasl-mechanism" => {
                return Err(format!(
                    "sink option {key}: TLS and SASL mechanisms other than PLAIN are not built in (librdkafka would need OpenSSL, which this build leaves out); SASL PLAIN is, with sasl-username and sasl-password"
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses a half-given SASL login.
    pub(crate) fn check(&self) -> Result<(), String> {
        match &self.sasl {
            Some((user, password)) if user.is_empty() || password.expose().is_empty() => {
                Err("the kafka sink needs both sasl-username and sasl-password, or neither".into())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(feature = "kafka")]
pub use producer::KafkaSink;

#[cfg(feature = "kafka")]
mod producer {
    use std::time::Duration;

    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

    use super::{KafkaCompression, KafkaSinkConfig};
    use crate::record::Record;
    use crate::sink::{Sink, SinkError};

    /// The record key: `index/id` (one key per document, whatever its version, so a
    /// compacted topic keeps its latest).
    fn record_key(r: &Record) -> String {
        format!("{}/{}", r.index, r.id)
    }

    fn compression(c: KafkaCompression) -> &'static str {
        match c {
            KafkaCompression::None => "none",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Lz4 => "lz4",
        }
    }

    /// How long the check at open waits for the brokers to answer.
    const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A sink producing to a Kafka topic (see the module docs).
    pub struct KafkaSink {
        config: KafkaSinkConfig,
        producer: FutureProducer,
    }

    impl std::fmt::Debug for KafkaSink {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("KafkaSink")
                .field("config", &self.config)
                .finish_non_exhaustive()
        }
    }

    impl KafkaSink {
        /// Connects: builds the idempotent producer and checks that the brokers answer and
        /// know the topic (this waits up to 10 s, blocking the calling thread).
        pub fn connect(config: KafkaSinkConfig) -> Result<Self, SinkError> {
            config.check().map_err(SinkError::permanent)?;
            let mut c = rdkafka::config::ClientConfig::new();
            c.set("bootstrap.servers", &config.brokers)
                .set("enable.idempotence", "true")
                .set("acks", "all")
                // The Java client's partitioner: a key lands on the partition Java
                // producers would choose.
                .set("partitioner", "murmur2_random")
                .set("compression.type", compression(config.compression))
                .set("linger.ms", config.linger.as_millis().to_string())
                .set("batch.size", config.batch_bytes.to_string())
                .set("message.timeout.ms", config.timeout.as_millis().to_string())
                .set("client.id", "indexstream")
                // A missing topic is refused at start rather than created with the broker's
                // default partitions.
                .set("allow.auto.create.topics", "false");
            if let Some((user, password)) = &config.sasl {
                c.set("security.protocol", "sasl_plaintext")
                    .set("sasl.mechanisms", "PLAIN")
                    .set("sasl.username", user)
                    .set("sasl.password", password.expose());
            }
            let producer: FutureProducer = c.create().map_err(|e| {
                SinkError::permanent(format!("cannot create the Kafka producer: {e}"))
            })?;
            let metadata = producer
                .client()
                .fetch_metadata(Some(&config.topic), CONNECT_TIMEOUT)
                .map_err(|e| {
                    SinkError::stop(format!(
                        "the Kafka brokers {} did not answer within {CONNECT_TIMEOUT:?}: {e}",
                        config.brokers
                    ))
                })?;
            match metadata.topics().iter().find(|t| t.name() == config.topic) {
                Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
                Some(t) => {
                    let why = t
                        .error()
                        .map(|e| RDKafkaErrorCode::from(e).to_string())
                        .unwrap_or_else(|| "no partitions".into());
                    return Err(SinkError::stop(format!(
                        "the Kafka topic {} on {}: {why} (create it first)",
                        config.topic, config.brokers
                    )));
                }
                None => {
                    return Err(SinkError::stop(format!(
                        "the Kafka brokers {} do not know the topic {} (create it first)",
                        config.brokers, config.topic
                    )))
                }
            }
            Ok(KafkaSink { config, producer })
        }

        fn headers(r: &Record) -> OwnedHeaders {
            let mut h = OwnedHeaders::new_with_capacity(6)
                .insert(header("index", &r.index))
                .insert(header("id", &r.id));
            let mut add = |key: &'static str, v: Option<String>| {
                if let Some(v) = v {
                    h = std::mem::replace(&mut h, OwnedHeaders::new()).insert(header(key, &v));
                }
            };
            add("shard", r.shard.map(|s| s.to_string()));
            add("seq_no", r.seq_no.map(|s| s.to_string()));
            add("primary_term", r.primary_term.map(|s| s.to_string()));
            add(
                "timestamp",
                r.timestamp.as_ref().map(|t| match t {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            );
            h
        }

        fn error(&self, e: &KafkaError) -> SinkError {
            let topic = &self.config.topic;
            let why = format!("the Kafka topic {topic}: {e}");
            match e.rdkafka_error_code() {
                Some(
                    RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::InvalidMessage,
                ) => SinkError::permanent(why),
                Some(
                    RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::ClusterAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::InvalidTopic
                    | RDKafkaErrorCode::Fatal,
                ) => SinkError::stop(why),
                _ => SinkError::transient(why),
            }
        }
    }

    fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
        Header {
            key,
            value: Some(value),
        }
    }

    impl Sink for KafkaSink {
        fn kind(&self) -> &'static str {
            "kafka"
        }

        async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
            self.write_each(records).await.map_err(|(_, e)| e)
        }

        /// Every record was acknowledged by its delivery report.
        async fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }

        /// Queues every record of the batch, then waits for their delivery reports in order:
        /// the first that failed is named, and all before it were acknowledged. (Records
        /// after it may have been delivered too; they are sent again, to the same key.)
        async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
            let mut reports = Vec::with_capacity(records.len());
            let mut refused = None;
            for (i, r) in records.iter().enumerate() {
                let key = record_key(r);
                let mut record = FutureRecord::to(&self.config.topic)
                    .key(&key)
                    .payload(r.source.get())
                    .headers(Self::headers(r));
                loop {
                    match self.producer.send_result(record) {
                        Ok(report) => {
                            reports.push(report);
                            break;
                        }
                        // The producer's queue is full: wait for deliveries to make room.
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err((e, _)) => {
                            refused = Some((i, self.error(&e)));
                            break;
                        }
                    }
                }
                if refused.is_some() {
                    break;
                }
            }
            for (i, report) in reports.into_iter().enumerate() {
                match report.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err((i, self.error(&e))),
                    Err(_) => {
                        return Err((
                            i,
                            SinkError::transient(format!(
                                "the Kafka producer dropped a record for {} without a report",
                                self.config.topic
                            )),
                        ))
                    }
                }
            }
            match refused {
                Some(r) => Err(r),
                None => Ok(()),
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use rdkafka::message::Headers;

        use super::*;

        #[test]
        fn headers_carry_the_position_of_each_mode() {
            let mut r = Record {
                index: "audit".into(),
                id: "a1".into(),
                shard: Some(2),
                seq_no: Some(41),
                primary_term: Some(1),
                timestamp: None,
                source: crate::record::Source::from_json("{}").unwrap(),
            };
            let h = KafkaSink::headers(&r);
            let pairs: Vec<(String, String)> = h
                .iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8(h.value.unwrap().to_vec()).unwrap(),
                    )
                })
                .collect();
            let expect = [
                ("index", "audit"),
                ("id", "a1"),
                ("shard", "2"),
                ("seq_no", "41"),
                ("primary_term", "1"),
            ];
            assert_eq!(
                pairs,
                expect
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<Vec<_>>()
            );
            r.shard = None;
            r.seq_no = None;
            r.primary_term = None;
            r.timestamp = Some(serde_json::json!("2026-12-03T10:00:00Z"));
            let h = KafkaSink::headers(&r);
            assert_eq!(h.count(), 3);
            assert_eq!(h.get(2).key, "timestamp");
            assert_eq!(record_key(&r), "audit/a1");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_the_password_stays_out_of_debug() {
        let mut c = KafkaSinkConfig::new("audit.events-1").unwrap();
        assert_eq!(c.brokers, "localhost:9092");
        assert!(c.set("brokers", "k1:9092,k2:9093").unwrap());
        assert!(c.set("compression", "lz4").unwrap());
        assert!(c.set("linger", "20ms").unwrap());
        assert_eq!(c.linger, Duration::from_millis(20));
        assert!(c.set("batch-size", "512KiB").unwrap());
        assert_eq!(c.batch_bytes, 512 << 10);
        assert!(c.set("sasl-username", "svc").unwrap());
        assert!(c.check().is_err(), "a username without a password");
        assert!(c.set("sasl-password", "pw-s3cret").unwrap());
        assert!(c.check().is_ok());
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!c.set("format", "array").unwrap());
        for (k, v) in [
            ("brokers", "k1"),
            ("brokers", "k1:port"),
            ("compression", "brotli"),
            ("compression", "zstd"),
            ("batch-size", "0"),
            ("timeout", "0s"),
            ("tls", "true"),
        ] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
        for bad in ["", "a b", "a/b", ".."] {
            assert!(KafkaSinkConfig::new(bad).is_err(), "{bad:?}");
        }
    }
}

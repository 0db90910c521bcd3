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
//! build), once per target directory. Its TLS, and the SCRAM mechanisms, need OpenSSL:
//! librdkafka has no other TLS backend, so it links the system's libssl (the cluster client
//! stays on rustls). Compiling OpenSSL too (`ssl-vendored`) would add minutes to every clean
//! build for nothing the system library lacks.

use std::path::PathBuf;
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
    /// Options `sasl-username`, `sasl-password` and `sasl-mechanism`: a SASL login.
    pub sasl: Option<KafkaSasl>,
    /// Options `tls`, `tls-ca-cert`, `tls-client-cert` and `tls-client-key`: TLS to the
    /// brokers (`None`: plaintext).
    pub tls: Option<KafkaTls>,
}

/// A SASL login to the brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaSasl {
    /// Option `sasl-mechanism` (default `plain`).
    pub mechanism: SaslMechanism,
    /// Option `sasl-username`.
    pub username: String,
    /// Option `sasl-password`.
    pub password: Secret,
}

/// How the SASL login proves the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN`: the password itself (only over TLS, or on a network you trust).
    Plain,
    /// `SCRAM-SHA-256`.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka and the brokers use.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// TLS to the brokers: their certificates are checked against the CA (the system's roots when
/// none is given), host names included.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KafkaTls {
    /// Option `tls-ca-cert`: a PEM file of the CA(s) that signed the brokers' certificates.
    pub ca_cert: Option<PathBuf>,
    /// Option `tls-client-cert`: a PEM certificate for mutual TLS.
    pub client_cert: Option<PathBuf>,
    /// Option `tls-client-key`: the PEM private key of `tls-client-cert`.
    pub client_key: Option<PathBuf>,
}

/// librdkafka's `security.protocol` for a TLS and SASL choice.
pub(crate) fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (tls, sasl) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    }
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
            tls: None,
        })
    }

    /// The options it takes, for an error naming them.
    pub(crate) const OPTIONS: &'static str =
        "brokers, compression, linger, batch-size, timeout, sasl-username, sasl-password, sasl-mechanism, tls, tls-ca-cert, tls-client-cert, tls-client-key";

    fn sasl_mut(&mut self) -> &mut KafkaSasl {
        self.sasl.get_or_insert_with(|| KafkaSasl {
            mechanism: SaslMechanism::Plain,
            username: String::new(),
            password: Secret::new(""),
        })
    }

    fn tls_mut(&mut self) -> &mut KafkaTls {
        self.tls.get_or_insert_with(KafkaTls::default)
    }

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
            "sasl-username" => self.sasl_mut().username = value.to_string(),
            // Not `bad`: the error must not echo the password.
            "sasl-password" => self.sasl_mut().password = Secret::new(value.to_string()),
            "sasl-mechanism" => {
                self.sasl_mut().mechanism = match value.to_ascii_uppercase().as_str() {
                    "PLAIN" => SaslMechanism::Plain,
                    "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                    "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                    "GSSAPI" | "OAUTHBEARER" => {
                        return Err(bad(
                            "not built in: plain, scram-sha-256 and scram-sha-512 are",
                        ))
                    }
                    _ => return Err(bad("expected plain, scram-sha-256 or scram-sha-512")),
                }
            }
            "tls" => match value {
                "true" => {
                    self.tls_mut();
                }
                "false" => {
                    if self.tls.as_ref().is_some_and(|t| *t != KafkaTls::default()) {
                        return Err(bad("contradicts a tls-* option given before it"));
                    }
                    self.tls = None;
                }
                _ => return Err(bad("expected true or false")),
            },
            "tls-ca-cert" | "tls-client-cert" | "tls-client-key" => {
                let path = PathBuf::from(value);
                if !path.is_file() {
                    return Err(bad("no such file"));
                }
                let tls = self.tls_mut();
                let slot = match key {
                    "tls-ca-cert" => &mut tls.ca_cert,
                    "tls-client-cert" => &mut tls.client_cert,
                    _ => &mut tls.client_key,
                };
                *slot = Some(path);
            }
            "ssl" | "security-protocol" => {
                return Err(format!(
                    "the kafka sink takes no option {key:?}: tls=true turns TLS on (tls-ca-cert, tls-client-cert and tls-client-key imply it), sasl-username and sasl-password SASL"
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses a half-given SASL login or client certificate.
    pub(crate) fn check(&self) -> Result<(), String> {
        if let Some(sasl) = &self.sasl {
            if sasl.username.is_empty() || sasl.password.expose().is_empty() {
                return Err(
                    "the kafka sink needs both sasl-username and sasl-password, or neither (and sasl-mechanism only with them)".into(),
                );
            }
        }
        if let Some(tls) = &self.tls {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                return Err(
                    "the kafka sink needs both tls-client-cert and tls-client-key, or neither"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(feature = "kafka")]
pub use producer::KafkaSink;

#[cfg(feature = "kafka")]
mod producer {
    use std::time::Duration;

    use rdkafka::client::ClientContext;
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
        producer: FutureProducer<Context>,
    }

    /// librdkafka's client-level errors (a refused TLS handshake, a failed SASL login, a
    /// broker down) come through this context, not through the calls that meet them: it logs
    /// each and keeps the last, so that a failed connect says why.
    #[derive(Default)]
    pub(super) struct Context {
        last_error: LastError,
    }

    /// The last client-level error, shared with the sink (librdkafka wraps the context).
    type LastError = std::sync::Arc<std::sync::Mutex<Option<ClientError>>>;

    #[derive(Clone)]
    struct ClientError {
        /// The brokers refused us (TLS or SASL): waiting longer cannot help.
        refused: bool,
        reason: String,
    }

    /// How often the check at open asks for the topic's metadata while it waits.
    const CONNECT_POLL: Duration = Duration::from_millis(500);

    impl ClientContext for Context {
        fn error(&self, error: KafkaError, reason: &str) {
            tracing::warn!(sink = "kafka", %error, "Kafka client: {reason}");
            // "All brokers are down" follows the error that brought them down: keep that one.
            let code = error.rdkafka_error_code();
            let summary = code == Some(RDKafkaErrorCode::AllBrokersDown);
            if let Ok(mut last) = self.last_error.lock() {
                if !(summary && last.is_some()) {
                    *last = Some(ClientError {
                        // A refused handshake or login fails the same way on every retry. A
                        // client certificate the broker refuses arrives as a transport
                        // failure whose reason is OpenSSL's.
                        refused: matches!(
                            code,
                            Some(RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication)
                        ) || reason.contains("SSL routines"),
                        reason: reason.to_string(),
                    });
                }
            }
        }
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
            c.set(
                "security.protocol",
                super::security_protocol(config.tls.is_some(), config.sasl.is_some()),
            );
            if let Some(sasl) = &config.sasl {
                c.set("sasl.mechanisms", sasl.mechanism.name())
                    .set("sasl.username", &sasl.username)
                    .set("sasl.password", sasl.password.expose());
            }
            if let Some(tls) = &config.tls {
                // Certificates and host names are checked (librdkafka's defaults, set here so
                // that a changed default cannot turn them off).
                c.set("enable.ssl.certificate.verification", "true")
                    .set("ssl.endpoint.identification.algorithm", "https");
                let files = [
                    ("ssl.ca.location", &tls.ca_cert),
                    ("ssl.certificate.location", &tls.client_cert),
                    ("ssl.key.location", &tls.client_key),
                ];
                for (name, path) in files {
                    if let Some(p) = path {
                        c.set(name, p.to_string_lossy());
                    }
                }
            }
            let last_error = LastError::default();
            let context = Context {
                last_error: last_error.clone(),
            };
            let producer: FutureProducer<Context> =
                c.create_with_context(context).map_err(|e| {
                    SinkError::permanent(format!("cannot create the Kafka producer: {e}"))
                })?;
            // Asked in short rounds, so that a refused handshake or login ends the wait at
            // once instead of after the whole timeout.
            let deadline = std::time::Instant::now() + CONNECT_TIMEOUT;
            let last = || last_error.lock().ok().and_then(|r| r.clone());
            let metadata = loop {
                match producer
                    .client()
                    .fetch_metadata(Some(&config.topic), CONNECT_POLL)
                {
                    Ok(m) => break Ok(m),
                    Err(e)
                        if std::time::Instant::now() >= deadline
                            || last().is_some_and(|l| l.refused) =>
                    {
                        break Err(e)
                    }
                    Err(_) => {}
                }
            };
            let metadata = metadata
                .map_err(|e| {
                    let refused = last().is_some_and(|l| l.refused);
                    let why = last()
                        .map(|ClientError { reason: r, .. }| {
                            // OpenSSL's name for a refused or missing client certificate.
                            let hint = if r.contains("alert bad certificate")
                                || r.contains("certificate required")
                            {
                                "; the brokers want a client certificate they trust: tls-client-cert and tls-client-key"
                            } else {
                                ""
                            };
                            format!(" (last: {r}{hint})")
                        })
                        .unwrap_or_default();
                    if refused {
                        SinkError::stop(format!(
                            "the Kafka brokers {} refused the connection: {e}{why}",
                            config.brokers
                        ))
                    } else {
                        SinkError::stop(format!(
                            "the Kafka brokers {} did not answer within {CONNECT_TIMEOUT:?}: {e}{why}",
                            config.brokers
                        ))
                    }
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
            ("tls", "yes"),
        ] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
        for bad in ["", "a b", "a/b", ".."] {
            assert!(KafkaSinkConfig::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sasl_and_tls_options_pick_the_protocol_and_refuse_contradictions() {
        let dir =
            std::env::temp_dir().join(format!("indexstream-kafka-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, "not checked here").unwrap();
        let pem = pem.to_str().unwrap();

        let mut c = KafkaSinkConfig::new("t").unwrap();
        assert!(c.sasl.is_none() && c.tls.is_none());
        assert_eq!(security_protocol(false, false), "plaintext");
        for (given, want) in [
            ("plain", SaslMechanism::Plain),
            ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
            ("scram-sha-512", SaslMechanism::ScramSha512),
        ] {
            assert!(c.set("sasl-mechanism", given).unwrap());
            assert_eq!(c.sasl.as_ref().unwrap().mechanism, want);
        }
        assert_eq!(SaslMechanism::ScramSha512.name(), "SCRAM-SHA-512");
        for bad in ["gssapi", "OAUTHBEARER", "md5"] {
            let e = c.set("sasl-mechanism", bad).unwrap_err();
            assert!(e.contains("scram-sha-512"), "{e}");
        }
        assert!(c.check().is_err(), "a mechanism without a login");

        let e = c
            .set("sasl-password", "hunter2-secret")
            .map(|_| ())
            .and_then(|_| c.check());
        assert!(e.is_err(), "a password without a username");
        assert!(!e.unwrap_err().contains("hunter2"));
        c.set("sasl-username", "svc").unwrap();
        c.check().unwrap();

        // tls=true alone: TLS with the system's roots.
        c.set("tls", "true").unwrap();
        assert_eq!(c.tls, Some(KafkaTls::default()));
        c.set("tls", "false").unwrap();
        assert_eq!(c.tls, None);
        // A tls-* file turns TLS on; tls=false after it is a contradiction, not a silent off.
        c.set("tls-ca-cert", pem).unwrap();
        assert_eq!(
            c.tls.as_ref().unwrap().ca_cert.as_deref(),
            Some(std::path::Path::new(pem))
        );
        let e = c.set("tls", "false").unwrap_err();
        assert!(e.contains("contradicts"), "{e}");
        // A missing file is named, and nothing is set.
        let e = c.set("tls-client-key", "/nonexistent/key.pem").unwrap_err();
        assert!(
            e.contains("/nonexistent/key.pem") && e.contains("no such file"),
            "{e}"
        );
        assert!(c.tls.as_ref().unwrap().client_key.is_none());
        // Half a client certificate is refused.
        c.set("tls-client-cert", pem).unwrap();
        let e = c.check().unwrap_err();
        assert!(e.contains("tls-client-key"), "{e}");
        c.set("tls-client-key", pem).unwrap();
        c.check().unwrap();
        // The librdkafka spellings point at ours.
        for key in ["ssl", "security-protocol"] {
            let e = c.set(key, "sasl_ssl").unwrap_err();
            assert!(e.contains("tls=true"), "{e}");
        }
        for (tls, sasl, want) in [
            (true, false, "ssl"),
            (false, true, "sasl_plaintext"),
            (true, true, "sasl_ssl"),
        ] {
            assert_eq!(security_protocol(tls, sasl), want);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

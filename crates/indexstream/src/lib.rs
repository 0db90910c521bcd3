#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod admin;
mod backoff;
mod breaker;
mod client;
mod consumer;
mod date;
mod error;
mod group;
mod offset;
mod partition;
mod record;
mod scan;
mod serde_duration;
mod sink;
mod source;
mod telemetry;

pub use admin::{
    Admin, Description, GroupSummary, MemberInfo, PartitionLag, Reset, ResetDone, ResetTo,
    TimestampDescription, TimestampPartitionLag, WhenHeld,
};
pub use backoff::Backoff;
pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use client::types::{
    BulkItem, BulkResponse, Hit, Hits, SearchResponse, ShardsSummary, SortValues,
};
pub use client::{
    Auth, AwsConfig, AwsService, Client, ClientConfig, ClientError, CredentialSource, Credentials,
    Distribution, Fingerprint, RetryPolicy, RetryPolicyBuilder, RetryPredicate, Roots, Secret,
    ServerInfo, TlsConfig, TlsProblem, Verification,
};
pub use consumer::{
    default_member_id, Consumer, ConsumerBuilder, ConsumerConfig, ConsumerStats, ExactSettings,
    OnMissingTimestamp, ReadMode, RefreshPolicy, RunOptions, RunSummary, StartFrom, StopReason,
    TimestampPartitions, TimestampSettings,
};
pub use date::{iso_millis, iso_nanos};
pub use error::{Error, Result};
pub use offset::{Mode, DEFAULT_OFFSETS_INDEX};
pub use partition::{PartitionId, PartitionStatus};
pub use record::{Record, Source};
#[cfg(feature = "kafka")]
pub use sink::KafkaSink;
pub use sink::{
    AnySink, DeadLetter, DeadLetterSink, ExecSink, FileSink, HttpAuth, HttpFormat, HttpSink,
    HttpSinkConfig, IndexSink, KafkaCompression, KafkaSasl, KafkaSinkConfig, KafkaTls, MemorySink,
    NullSink, OtherCluster, PendingFlush, SaslMechanism, Sink, SinkError, SinkRetry, SinkSpec,
    StdoutSink, Versioning, DEFAULT_EXEC_TIMEOUT,
};
/// The committed position of a timestamp-mode group and the key of an event in its window
/// (for tools that inspect what a group committed).
pub use source::timestamp::{event_key, TimestampOffset};
pub use telemetry::{Health, HealthConfig, HealthStatus, Telemetry};

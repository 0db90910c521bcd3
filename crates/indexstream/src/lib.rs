#![doc = include_str!("../README.md")]

pub mod breaker;
pub mod client;
pub mod consumer;
pub mod date;
pub mod error;
pub mod group;
pub mod offset;
pub mod partition;
pub mod record;
pub mod retry;
pub mod sink;
pub mod source;
pub mod telemetry;

pub use breaker::{BreakerConfig, BreakerState, CircuitBreaker};
pub use client::{Auth, Client, ClientConfig, ClientError, Secret};
pub use consumer::{
    Consumer, ConsumerBuilder, ConsumerConfig, OnMissingTimestamp, PartitionStatus, RefreshPolicy,
    RunOptions, RunSummary, StartFrom, StopReason,
};
pub use error::{Error, Result};
pub use offset::Mode;
pub use partition::PartitionId;
pub use record::{Record, Source};
pub use retry::RetryPolicy;
pub use sink::{FileSink, MemorySink, NullSink, Sink, SinkSpec, StdoutSink};
pub use telemetry::{Health, HealthConfig, HealthStatus, Telemetry};

//! Consumer integration tests against the in-process fake cluster, or against a real cluster
//! when `OPENSEARCH_URL` is set. Tests that need the fake's fault API are in `faults` modules:
//! the real-node run skips them by name (`cargo test -- --skip faults::`).
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod consumer {
    mod admin;
    mod cluster;
    mod exact;
    mod faults;
    pub mod harness;
    mod resilience;
    mod sinks;
    mod timestamp;
    mod timestamp_shards;
    mod webhook;
}

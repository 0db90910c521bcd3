//! Consumer integration tests against the in-process fake cluster, or against a real cluster
//! when `OPENSEARCH_URL` is set (tests that need the fake's fault API are skipped there).
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod consumer {
    mod exact;
    pub mod harness;
    mod resilience;
    mod timestamp;
}

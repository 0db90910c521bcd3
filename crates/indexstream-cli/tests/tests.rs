//! Integration tests of the `indexstream` binary.
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod cli {
    mod bench;
    mod consume;
    mod contract;
    mod demo;
    mod dev_server;
    mod failover;
    mod faults;
    mod first_hour;
    mod group;
    mod kafka;
    mod observe;
    mod secure;
    mod sinks;
    pub mod support;
    mod timestamp;
}

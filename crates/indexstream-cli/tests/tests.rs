//! Integration tests of the `indexstream` binary.
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod cli {
    mod consume;
    mod demo;
    mod dev_server;
    mod observe;
    pub mod support;
    mod timestamp;
}

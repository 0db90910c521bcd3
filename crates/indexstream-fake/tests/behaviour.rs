//! Behaviour tests of the fake cluster over HTTP: what the consumer relies on (visibility,
//! refresh, checkpoints, CAS), every fault kind, paging, and a fuzz test of bad input.
#![allow(clippy::unwrap_used)] // Tests panic on unexpected answers; that is how they fail.

mod behaviour {
    pub mod client;
    mod faults;
    mod fuzz;
    mod paging;
    mod semantics;
}

//! Reading partitions.

pub mod exact;
pub mod intervals;
pub mod timestamp;

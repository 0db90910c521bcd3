//! Partitions: in exact mode, one shard of one concrete index, identified by the index's uuid so
//! that a deleted and recreated index is never read from the old index's offset.

use std::fmt;

/// `(index uuid, shard)`, with the index name for humans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub index: String,
    pub uuid: String,
    pub shard: u32,
}

impl PartitionId {
    /// The id of this partition's offset document for `group`.
    pub fn offset_doc_id(&self, group: &str) -> String {
        format!("{group}|{}|{}", self.uuid, self.shard)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]/{}", self.index, self.uuid, self.shard)
    }
}

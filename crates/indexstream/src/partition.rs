//! Partitions: in exact mode, one shard of one concrete index, identified by the index's uuid so
//! that a deleted and recreated index is never read from the old index's offset.

use std::fmt;

/// `(index uuid, shard)`, with the index name for humans.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    /// The concrete index's name.
    pub index: String,
    /// The index's uuid, which changes when an index of the same name is recreated.
    pub uuid: String,
    /// The shard number within the index.
    pub shard: u32,
}

impl PartitionId {
    /// The id of this partition's offset document for `group`.
    pub fn offset_doc_id(&self, group: &str) -> String {
        format!("{group}|{}|{}", self.uuid, self.shard)
    }
}

/// `index/shard` for people (logs, the report); the alternate form `{:#}` adds the uuid,
/// `index[uuid]/shard`, which tells a recreated index from the old one.
impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            write!(f, "{}[{}]/{}", self.index, self.uuid, self.shard)
        } else {
            write!(f, "{}/{}", self.index, self.shard)
        }
    }
}

/// Per-partition position, as `groups describe` and the report show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The partition (index, index uuid and shard).
    pub partition: PartitionId,
    /// The last committed `_seq_no` (`-1`: nothing committed).
    pub committed: i64,
    /// The shard's global checkpoint at the latest round.
    pub checkpoint: i64,
    /// Operations behind: the checkpoint minus the committed offset, never below 0.
    pub lag: i64,
}

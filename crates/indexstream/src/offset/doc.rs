//! The documents of the offsets index, as one type beside the index's mapping: committed
//! offsets (`kind: offset`, exact or timestamp mode), the parts of a timestamp window
//! (`kind: window`) and a group's lease (`kind: lease`). Every writer builds a [`StoreDoc`], and
//! every reader that does not need the per-mode validation reads one.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Mode;

/// The explicit mapping of the offsets index (created on first use).
pub fn offsets_index_body() -> Value {
    let mut body = json!({
        "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "group": {"type": "keyword"},
                "kind": {"type": "keyword"},
                "mode": {"type": "keyword"},
                "index": {"type": "keyword"},
                "index_uuid": {"type": "keyword"},
                "shard": {"type": "integer"},
                "seq_no": {"type": "long"},
                "cursor": {"type": "object", "enabled": false},
                "member": {"type": "keyword"},
                "expires_at_ms": {"type": "long"},
                "updated_at": {"type": "date"}
            }
        }
    });
    if let (Some(props), Value::Object(more)) = (
        body["mappings"]["properties"].as_object_mut(),
        offsets_mapping_additions()["properties"].take(),
    ) {
        props.extend(more);
    }
    body
}

/// Fields added to the offsets mapping after it was first published: put on an existing
/// offsets index at start (adding fields to a mapping is allowed; `dynamic: strict` refuses
/// documents that carry fields it does not map).
pub fn offsets_mapping_additions() -> Value {
    json!({
        "properties": {
            // The lease's holder: host, process, and one acquisition (see `group`).
            "host": {"type": "keyword"},
            "pid": {"type": "long"},
            "process": {"type": "keyword", "index": false},
            "instance": {"type": "keyword", "index": false},
            // Exact mode: `_seq_no` ranges delivered above `seq_no` (see `StoredOffset`).
            "delivered": {"type": "object", "enabled": false},
            // Several members per group: the ownership epoch of a partition's claim, and of the
            // offset its owner wrote (see `group::members`).
            "epoch": {"type": "long"}
        }
    })
}

/// What a document of the offsets index is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DocKind {
    /// A committed offset: one per partition (exact mode) or one per group (timestamp mode).
    Offset,
    /// A base or delta part of a timestamp-mode window.
    Window,
    /// The group's lease (timestamp mode: one member holds the group).
    Lease,
    /// A member of an exact-mode group, with its heartbeat.
    Member,
    /// A member's claim on one partition, with its ownership epoch.
    Claim,
    /// A kind this version does not know (written by a newer one): listed, never changed.
    #[serde(other)]
    Unknown,
}

/// Any document of the offsets index. The fields are those of the mapping; which are set
/// depends on the kind (see the module docs). Absent fields are left out when written, so a
/// document holds only what its kind uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoreDoc {
    pub group: String,
    pub kind: DocKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// The index (exact mode) or index expression (timestamp mode) of an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<u32>,
    /// Exact mode: every operation up to it was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_no: Option<i64>,
    /// Exact mode: inclusive `[start, end]` ranges delivered above `seq_no` (validated by
    /// [`super::parse_offset_doc`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Value>,
    /// Timestamp mode: the cursor (an offset's head, or a window part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<Value>,
    /// Who wrote it: the committing member, the lease's holder, or `indexstream-admin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// A lease: when it lapses unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// A lease: the holder's host, pid, process identity and acquisition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// A claim, and the offset its owner wrote: the partition's ownership epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// RFC 3339 time of the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl StoreDoc {
    /// A document of `kind` for `group`, written now by `member`, with nothing else set.
    pub fn new(group: &str, kind: DocKind, member: &str) -> Self {
        StoreDoc {
            group: group.to_string(),
            kind,
            mode: None,
            index: None,
            index_uuid: None,
            shard: None,
            seq_no: None,
            delivered: None,
            cursor: None,
            member: Some(member.to_string()),
            expires_at_ms: None,
            host: None,
            pid: None,
            process: None,
            instance: None,
            epoch: None,
            updated_at: Some(crate::date::now_iso()),
        }
    }

    /// A timestamp-mode offset of `group` over the index expression `index`.
    pub fn timestamp_offset(group: &str, index: &str, cursor: Value, member: &str) -> Self {
        StoreDoc {
            mode: Some(Mode::Timestamp),
            index: Some(index.to_string()),
            cursor: Some(cursor),
            ..StoreDoc::new(group, DocKind::Offset, member)
        }
    }

    /// Reads a stored source; `None` when it is not a document of this index's shape.
    pub fn from_value(source: &Value) -> Option<Self> {
        StoreDoc::deserialize(source).ok()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }

    /// A lease whose expiry is still ahead of `now_ms`.
    pub fn is_live_lease(&self, now_ms: i64) -> bool {
        self.kind == DocKind::Lease && self.is_live(now_ms)
    }

    /// A lease, member or claim whose expiry is still ahead of `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms.unwrap_or(0) > now_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_hold_only_what_their_kind_sets() {
        let doc = StoreDoc {
            mode: Some(Mode::Exact),
            index: Some("i".into()),
            index_uuid: Some("u".into()),
            shard: Some(2),
            seq_no: Some(41),
            ..StoreDoc::new("g", DocKind::Offset, "m")
        };
        let v = doc.to_value();
        assert_eq!(v["kind"], "offset");
        assert_eq!(v["mode"], "exact");
        assert!(v.get("cursor").is_none() && v.get("expires_at_ms").is_none());
        assert_eq!(StoreDoc::from_value(&v), Some(doc));
        // Every field written is one the strict mapping maps.
        let mapping = offsets_index_body();
        let props = mapping["mappings"]["properties"].as_object().unwrap();
        let lease = StoreDoc {
            expires_at_ms: Some(1),
            host: Some("h".into()),
            pid: Some(1),
            process: Some("p".into()),
            instance: Some("x".into()),
            ..StoreDoc::new("g", DocKind::Lease, "m")
        };
        let claim = StoreDoc {
            epoch: Some(3),
            ..lease.clone()
        };
        for v in [v, lease.to_value(), claim.to_value()] {
            for k in v.as_object().unwrap().keys() {
                assert!(props.contains_key(k), "{k} is not mapped");
            }
        }
        let newer = json!({"group": "g", "kind": "checkpoint", "member": "m"});
        assert_eq!(StoreDoc::from_value(&newer).unwrap().kind, DocKind::Unknown);
        assert!(StoreDoc::from_value(&json!({"kind": "offset"})).is_none());
    }
}

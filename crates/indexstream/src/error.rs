//! The library's error type.

use crate::client::ClientError;

/// What stopped the consumer or an admin operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid; `field` names it as the config file and flags do.
    #[error("invalid {field}: {reason}")]
    Config { field: &'static str, reason: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("no index matches {pattern:?}")]
    NoSuchIndex { pattern: String },
    #[error("group {group:?} is held by member {holder:?} until its lease expires in {expires_in_ms} ms; stop that member or wait")]
    GroupHeld {
        group: String,
        holder: String,
        expires_in_ms: i64,
    },
    #[error("member id {member:?} of group {group:?} is in use by a live process on this host (pid {pid}): give each process of a group its own member id")]
    MemberIdInUse {
        group: String,
        member: String,
        pid: u32,
    },
    #[error(
        "group {group:?} was taken over by another member ({detail}); stopping without committing"
    )]
    Fenced { group: String, detail: String },
    #[error("offset document {id:?} in {offsets_index:?} is corrupt: {reason}; fix or delete it (`indexstream groups delete`), it is never reset silently")]
    CorruptOffset {
        offsets_index: String,
        id: String,
        reason: String,
    },
    #[error("offset document {id:?} was written by {found} mode but this consumer runs in {expected} mode; use --mode {found}, another --group, or `indexstream groups reset`")]
    ModeMismatch {
        id: String,
        found: String,
        expected: String,
    },
    #[error("index {index:?} has sequence numbers disabled (index.disable_sequence_numbers); exact mode cannot read it: use --mode timestamp")]
    SequenceNumbersDisabled { index: String },
    #[error("shutdown: the final commit did not finish within {timeout:?}; {uncommitted} delivered events were left uncommitted and will be delivered again")]
    ShutdownTimeout {
        timeout: std::time::Duration,
        uncommitted: u64,
    },
    #[error("the sink failed on document {id:?} of {index:?} after {attempts} attempts: {reason}; configure a dead-letter destination (--dead-letter file:PATH) to set such documents aside")]
    Poison {
        index: String,
        id: String,
        attempts: u32,
        reason: String,
    },
    #[error("document {id:?} of {index:?} has no usable {field}: {reason}; it cannot be read in timestamp order (--on-missing-timestamp skip counts and logs such documents instead)")]
    MissingTimestamp {
        index: String,
        id: String,
        field: String,
        reason: String,
    },
    #[error("sink: {0}")]
    Sink(#[from] std::io::Error),
}

impl Error {
    /// Whether a retry of the same operation can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Client(e) => e.is_retriable(),
            Error::Sink(_) => true,
            _ => false,
        }
    }

    /// Whether this is a usage or configuration problem (exit status 2) rather than a runtime failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Config { .. }
                | Error::NoSuchIndex { .. }
                | Error::ModeMismatch { .. }
                | Error::MemberIdInUse { .. }
        ) || matches!(self, Error::Client(ClientError::InvalidUrl { .. }))
            || matches!(self, Error::Client(e) if matches!(e.status(), Some(401 | 403)))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

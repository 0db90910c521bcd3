//! The library's error type.

use crate::client::ClientError;

/// What stopped the consumer or an admin operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid; `field` names it as [`ConsumerConfig`](crate::ConsumerConfig)
    /// does (`page_size`, `mode.safety_window`), for a front end to map to its own names.
    #[error("invalid {field}: {reason}")]
    Config {
        /// The setting's field (`page_size`, `mode.safety_window`, `retry.max_attempts`).
        field: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// A request to the cluster failed; [`ClientError::is_retriable`] says whether a retry can
    /// help.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The index expression matched no index when the consumer first read it (a 404).
    #[error("no index matches {pattern:?}")]
    NoSuchIndex {
        /// The index expression the consumer was configured with.
        pattern: String,
    },
    /// Another member holds the group's live lease; wait for it to expire or stop that member.
    #[error("group {group:?} is held by member {holder:?} until its lease expires in {}; stop that member or wait", crate::date::human_ms(*expires_in_ms))]
    GroupHeld {
        /// The consumer group.
        group: String,
        /// The member id in the lease (or a description when the lease kept changing under
        /// every attempt to take it).
        holder: String,
        /// Milliseconds until the holder's lease expires (the lease TTL when it kept changing).
        expires_in_ms: i64,
    },
    /// Another live process on this host holds the group's lease under the same member id.
    #[error("member id {member:?} of group {group:?} is in use by a live process on this host (pid {pid}): give each process of a group its own member id")]
    MemberIdInUse {
        /// The consumer group.
        group: String,
        /// The member id both processes use.
        member: String,
        /// The process id of the process holding the lease.
        pid: u32,
    },
    /// The group's lease was lost while this member ran (another member took it or wrote the
    /// group's offsets, or it expired unrenewed); it stops without committing, and a retry does
    /// not help.
    #[error(
        "group {group:?} was taken over by another member ({detail}); stopping without committing"
    )]
    Fenced {
        /// The consumer group.
        group: String,
        /// How the loss was noticed (the lease taken or expired, an offset document changed).
        detail: String,
    },
    /// A stored offset document cannot be parsed or does not match its id; it is reported,
    /// never reset.
    #[error("offset document {id:?} in {offsets_index:?} is corrupt: {reason}; fix or delete it (`indexstream groups delete`), it is never reset silently")]
    CorruptOffset {
        /// The offsets index that holds it.
        offsets_index: String,
        /// The offset document's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The group's committed offsets were written in another mode than the consumer runs in.
    #[error("offset document {id:?} was written by {found} mode but this consumer runs in {expected} mode; read it in {found} mode, use another group, or reset the group's offsets")]
    ModeMismatch {
        /// The offset document's id.
        id: String,
        /// The mode it was written in.
        found: String,
        /// The mode this consumer runs in.
        expected: String,
    },
    /// The group's timestamp-mode offsets were written with another partitioning than the
    /// consumer reads with (one partition for the whole expression, or one per shard).
    #[error("group {group:?} has timestamp offsets written {found}, but this consumer reads {expected}; run with --timestamp-partitions {found_flag}, or start the group over: {how}")]
    PartitionsMismatch {
        /// The group.
        group: String,
        /// How the stored offsets are partitioned, in words.
        found: String,
        /// How this consumer reads, in words.
        expected: String,
        /// The `--timestamp-partitions` value that reads the stored offsets.
        found_flag: String,
        /// How to start over from where the stored offsets stand.
        how: String,
    },
    /// An index has sequence numbers disabled, so exact mode cannot read it.
    #[error("index {index:?} has sequence numbers disabled (index.disable_sequence_numbers); exact mode cannot read it: read it in timestamp mode")]
    SequenceNumbersDisabled {
        /// The index.
        index: String,
    },
    /// The final flush and commit at shutdown did not finish within the shutdown timeout; what
    /// was delivered since the last commit is delivered again after a restart.
    #[error("shutdown: the final commit did not finish within {timeout:?}; {uncommitted} delivered events were left uncommitted and will be delivered again")]
    ShutdownTimeout {
        /// The shutdown timeout that passed.
        timeout: std::time::Duration,
        /// How many delivered events the committed offsets do not cover.
        uncommitted: u64,
    },
    /// The sink kept failing on one document and no dead-letter destination is configured, so
    /// the consumer stops rather than skip it.
    #[error("the sink failed on document {id:?} of {index:?} after {attempts} attempts: {reason}; configure a dead-letter destination to set such documents aside")]
    Poison {
        /// The index the document was read from.
        index: String,
        /// The document's `_id`.
        id: String,
        /// How many times the sink was given it.
        attempts: u32,
        /// The sink's last error.
        reason: String,
    },
    /// Timestamp mode with [`OnMissingTimestamp::Fail`](crate::OnMissingTimestamp::Fail) met a
    /// document without a usable timestamp.
    #[error("document {id:?} of {index:?} has no usable {field}: {reason}; it cannot be read in timestamp order (on_missing_timestamp = skip counts and logs such documents instead)")]
    MissingTimestamp {
        /// The index that holds the document.
        index: String,
        /// The document's `_id`.
        id: String,
        /// The timestamp field.
        field: String,
        /// Why its value is not usable (absent, or not indexed as a date).
        reason: String,
    },
    /// The offsets index holds nothing of the group (to set offsets of a new group, name its
    /// indices: [`crate::admin::Reset::index`]).
    #[error("group {group:?} has no offsets in {offsets_index:?}")]
    NoOffsets {
        /// The consumer group.
        group: String,
        /// The offsets index that was searched.
        offsets_index: String,
    },
    /// An admin operation that changes a group's documents was refused because members of the
    /// group are alive.
    #[error("group {group:?} is running (live {}: {}); stop {} first", if members.len() == 1 { "member" } else { "members" }, members.join(", "), if members.len() == 1 { "it" } else { "them" })]
    GroupRunning {
        /// The consumer group.
        group: String,
        /// The live members' ids.
        members: Vec<String>,
    },
    /// A reset's conditional writes did not all land (a document changed since it was read,
    /// for example because a consumer started meanwhile).
    #[error("the offsets of group {group:?} were not all written (a consumer may have started meanwhile): {reason}")]
    ResetConflict {
        /// The consumer group.
        group: String,
        /// The first error the bulk request reported.
        reason: String,
    },
    /// The sink, the dead-letter file or the library's own I/O failed;
    /// [`SinkError::is_retriable`](crate::SinkError::is_retriable) says whether a retry can help.
    #[error("sink: {0}")]
    Sink(#[from] crate::sink::SinkError),
}

/// The library's own I/O is the sink's (the dead-letter file, the file sink).
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Sink(e.into())
    }
}

impl Error {
    /// Whether a retry of the same operation can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Client(e) => e.is_retriable(),
            Error::Sink(e) => e.is_retriable(),
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
                | Error::PartitionsMismatch { .. }
                | Error::MemberIdInUse { .. }
                | Error::NoOffsets { .. }
        ) || matches!(
            self,
            Error::Client(
                ClientError::InvalidUrl { .. }
                    | ClientError::Setting { .. }
                    | ClientError::Tls { .. }
            )
        ) || matches!(self, Error::Client(e) if matches!(e.status(), Some(401 | 403)))
    }
}

/// A result whose error defaults to the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

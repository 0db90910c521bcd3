//! Errors of cluster requests, classified by whether a retry can help.

use std::time::Duration;

/// What went wrong with one request to the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("invalid cluster URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("{op}: cannot connect to {url}: {reason}")]
    Connect {
        op: &'static str,
        url: String,
        reason: String,
    },
    #[error("{op}: no answer from {url} within {timeout:?}")]
    Timeout {
        op: &'static str,
        url: String,
        timeout: Duration,
    },
    #[error("{op}: the connection to {url} failed: {reason}")]
    Transport {
        op: &'static str,
        url: String,
        reason: String,
    },
    #[error("{op}: HTTP {status} {error_type}: {reason}")]
    Status {
        op: &'static str,
        status: u16,
        /// The OpenSearch exception type (`index_not_found_exception`, ...), or empty.
        error_type: String,
        reason: String,
        /// Seconds from a `Retry-After` header.
        retry_after: Option<Duration>,
    },
    #[error("{op}: {failed} of {total} shards failed: {reason}")]
    ShardFailures {
        op: &'static str,
        failed: u64,
        total: u64,
        reason: String,
    },
    #[error("{op}: the search timed out on the cluster")]
    SearchTimedOut { op: &'static str },
    #[error("{op}: unexpected answer: {reason}")]
    Decode { op: &'static str, reason: String },
    /// The circuit breaker is open: the request was not sent.
    #[error("{op}: the {breaker} circuit breaker is open after repeated failures; not calling the cluster until it probes again")]
    BreakerOpen { op: &'static str, breaker: String },
}

/// The 500 answers a real cluster gives while a node is lost and a replica is promoted (seen on
/// OpenSearch 2.19 when the node holding a primary is killed): the same request succeeds once
/// the new primary serves. Every other 500 is a bug or a bad request and is not retried.
const TRANSIENT_500: &[&str] = &[
    // A search whose every shard copy failed: the copy it was pinned to went away.
    "search_phase_execution_exception",
    // A write reached a promoted copy before it finished becoming the primary.
    "retry_on_primary_exception",
    "shard_not_in_primary_mode_exception",
    "node_closed_exception",
    "node_disconnected_exception",
    "node_not_connected_exception",
    "no_shard_available_action_exception",
];

impl ClientError {
    /// Whether retrying the same request can succeed: connection errors, timeouts, 429, 502,
    /// 503, 504, the 500s of a failover (see `TRANSIENT_500`) and partial shard failures are;
    /// 400, 401, 403, 404, 409, mapping errors and other 500s are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Transport { .. } => true,
            ClientError::ShardFailures { .. }
            | ClientError::SearchTimedOut { .. }
            | ClientError::BreakerOpen { .. } => true,
            ClientError::Status {
                status, error_type, ..
            } => {
                matches!(status, 429 | 502 | 503 | 504)
                    || (*status == 500 && TRANSIENT_500.contains(&error_type.as_str()))
            }
            ClientError::InvalidUrl { .. } | ClientError::Decode { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn error_type(&self) -> Option<&str> {
        match self {
            ClientError::Status { error_type, .. } => Some(error_type),
            _ => None,
        }
    }

    /// A `Retry-After` the cluster asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A short, bounded label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::InvalidUrl { .. } => "invalid_url",
            ClientError::Connect { .. } => "connect",
            ClientError::Timeout { .. } => "timeout",
            ClientError::Transport { .. } => "transport",
            ClientError::Status { status: 429, .. } => "rejected",
            ClientError::Status {
                status: 401 | 403, ..
            } => "auth",
            ClientError::Status { status: 404, .. } => "not_found",
            ClientError::Status { status: 409, .. } => "conflict",
            ClientError::Status { status, .. } if *status >= 500 => "server",
            ClientError::Status { .. } => "bad_request",
            ClientError::ShardFailures { .. } => "shard_failures",
            ClientError::SearchTimedOut { .. } => "search_timeout",
            ClientError::Decode { .. } => "decode",
            ClientError::BreakerOpen { .. } => "breaker_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> ClientError {
        ClientError::Status {
            op: "t",
            status: s,
            error_type: String::new(),
            reason: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn retriable_statuses_are_exactly_the_transient_ones() {
        for s in [429, 502, 503, 504] {
            assert!(status(s).is_retriable(), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 500] {
            assert!(!status(s).is_retriable(), "{s}");
        }
        let failover = ClientError::Status {
            op: "search",
            status: 500,
            error_type: "search_phase_execution_exception".into(),
            reason: "all shards failed".into(),
            retry_after: None,
        };
        assert!(
            failover.is_retriable(),
            "a search whose pinned copy went away"
        );
        assert!(ClientError::ShardFailures {
            op: "t",
            failed: 1,
            total: 3,
            reason: String::new()
        }
        .is_retriable());
        assert!(ClientError::Timeout {
            op: "t",
            url: "http://x".into(),
            timeout: Duration::from_secs(1)
        }
        .is_retriable());
    }
}

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
    #[error("{op}: no answer within {timeout:?}")]
    Timeout { op: &'static str, timeout: Duration },
    #[error("{op}: the connection failed: {reason}")]
    Transport { op: &'static str, reason: String },
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

impl ClientError {
    /// Whether retrying the same request can succeed: connection errors, timeouts, 429, 502,
    /// 503, 504 and partial shard failures are; 400, 401, 403, 404, 409 and mapping errors are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Transport { .. } => true,
            ClientError::ShardFailures { .. }
            | ClientError::SearchTimedOut { .. }
            | ClientError::BreakerOpen { .. } => true,
            ClientError::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
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
        assert!(ClientError::ShardFailures {
            op: "t",
            failed: 1,
            total: 3,
            reason: String::new()
        }
        .is_retriable());
        assert!(ClientError::Timeout {
            op: "t",
            timeout: Duration::from_secs(1)
        }
        .is_retriable());
    }
}

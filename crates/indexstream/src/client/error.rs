//! Errors of cluster requests, classified by whether a retry can help.

use std::time::Duration;

/// What went wrong with one request to the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The cluster URL does not parse, is not http(s), has no host or carries credentials, or
    /// the HTTP client cannot be built for it; a retry does not help.
    #[error("invalid cluster URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (`<redacted>` when it carries credentials).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection could be established to the node; retriable.
    #[error("cannot connect to {url}: {reason} (request: {op})")]
    Connect {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The node's base URL.
        url: String,
        /// The innermost cause the HTTP client reported.
        reason: String,
    },
    /// The node did not answer within the request timeout; retriable.
    #[error("no answer from {url} within {timeout:?} (request: {op})")]
    Timeout {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The node's base URL.
        url: String,
        /// The client's request timeout.
        timeout: Duration,
    },
    /// The connection broke while the request was sent or its answer read (or there was no
    /// node to send to); retriable.
    #[error("the connection to {url} failed: {reason} (request: {op})")]
    Transport {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The node's base URL (all of them, comma-separated, when none was tried).
        url: String,
        /// The innermost cause the HTTP client reported.
        reason: String,
    },
    /// The cluster answered with an HTTP error status; retriable only for 429, 502, 503, 504
    /// and the 500s of a failover (see [`ClientError::is_retriable`]).
    #[error("HTTP {status} {error_type}: {reason} (request: {op})")]
    Status {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The OpenSearch exception type (`index_not_found_exception`, ...), or empty.
        error_type: String,
        /// The error's reason from the body, or the start of the body when it has none.
        reason: String,
        /// Seconds from a `Retry-After` header.
        retry_after: Option<Duration>,
    },
    /// Some shards failed to answer a search or count, so its answer is incomplete; retriable.
    #[error("{failed} of {total} shards failed: {reason} (request: {op})")]
    ShardFailures {
        /// The operation (`search` or `count`).
        op: &'static str,
        /// How many shards failed.
        failed: u64,
        /// How many shards the request went to.
        total: u64,
        /// The first shard failure (for a count, all of them as JSON).
        reason: String,
    },
    /// The cluster answered a search with `timed_out: true`, so its hits may be incomplete;
    /// retriable.
    #[error("the search timed out on the cluster (request: {op})")]
    SearchTimedOut {
        /// The operation (`search`).
        op: &'static str,
    },
    /// The answer could not be read (not UTF-8, not the JSON expected, a field missing); a
    /// retry does not help.
    #[error("unexpected answer: {reason} (request: {op})")]
    Decode {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// What could not be read.
        reason: String,
    },
    /// A connection setting cannot be used (a TLS file missing or not PEM, settings that
    /// contradict each other, an API key with spaces in it, no AWS region or credentials); a
    /// retry does not help.
    #[error("setting {setting}: {reason}")]
    Setting {
        /// The setting's name (`ca-cert`, `client-key`, ...).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS handshake with a node failed (an untrusted or expired certificate, a host name
    /// mismatch, a client certificate required); a retry does not help.
    #[error("TLS with {url} failed: {problem} (request: {op})")]
    Tls {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The node's base URL.
        url: String,
        /// What went wrong.
        problem: super::tls::TlsProblem,
    },
    /// The circuit breaker is open: the request was not sent.
    #[error("the {breaker} circuit breaker is open after repeated failures, the last: {last_failure}; not calling the cluster until it probes again (request: {op})")]
    BreakerOpen {
        /// The operation (`search`, `bulk`, `get`, ...).
        op: &'static str,
        /// The breaker's name: what it guards (`fetch` or `offsets`).
        breaker: String,
        /// The failure that opened it (or the latest since), as it was reported.
        last_failure: String,
    },
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
            ClientError::InvalidUrl { .. }
            | ClientError::Decode { .. }
            | ClientError::Setting { .. }
            | ClientError::Tls { .. } => false,
        }
    }

    /// The HTTP status of a [`ClientError::Status`]; `None` for every other error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OpenSearch exception type of a [`ClientError::Status`] (empty when the body named
    /// none); `None` for every other error.
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
            ClientError::Setting { .. } => "setting",
            ClientError::Tls { .. } => "tls",
        }
    }
}

pub(super) fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    msg
}

/// A response body that is not UTF-8 (JSON must be).
pub(super) fn not_utf8(op: &'static str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Decode {
        op,
        reason: format!("the response is not UTF-8: {e}"),
    }
}

pub(super) fn error_parts(body: &[u8]) -> (String, String) {
    use serde_json::Value;
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => match &v["error"] {
            Value::Object(e) => {
                let root = e.get("root_cause").and_then(|r| r.get(0));
                let t = e
                    .get("type")
                    .and_then(|t| t.as_str())
                    .or_else(|| root.and_then(|r| r["type"].as_str()))
                    .unwrap_or_default();
                let r = e
                    .get("reason")
                    .and_then(|t| t.as_str())
                    .or_else(|| root.and_then(|r| r["reason"].as_str()))
                    .unwrap_or_default();
                (t.to_string(), r.to_string())
            }
            Value::String(s) => (String::new(), s.clone()),
            // AWS's own answers (SigV4 refused): `{"message": "..."}` or `{"Message": "..."}`.
            _ if v
                .get("message")
                .or_else(|| v.get("Message"))
                .is_some_and(Value::is_string) =>
            {
                (
                    String::new(),
                    v.get("message")
                        .or_else(|| v.get("Message"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                )
            }
            _ => (
                String::new(),
                String::from_utf8_lossy(body).chars().take(300).collect(),
            ),
        },
        Err(_) => (
            String::new(),
            String::from_utf8_lossy(body).chars().take(300).collect(),
        ),
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

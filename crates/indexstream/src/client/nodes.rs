//! The nodes a client talks to: `--url` may name several (a comma list). Requests are spread
//! over them round-robin; a node that refuses connections, times out or drops the connection is
//! set aside for a while and the same request goes on to the next node at once, so one dead
//! node costs neither a retry delay nor a failed poll while another node answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ClientError;

/// How long a node that failed is tried only after the others.
const SET_ASIDE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Nodes {
    /// Base URLs without a trailing slash.
    urls: Vec<String>,
    next: AtomicUsize,
    /// Per node: until when it is set aside after a failure.
    aside_until: Mutex<Vec<Option<Instant>>>,
}

impl Nodes {
    /// Parses `http://a:9200,http://b:9200`; every node must be a valid http(s) URL without
    /// credentials.
    pub(crate) fn parse(spec: &str) -> Result<Nodes, ClientError> {
        let mut urls = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            urls.push(validate(part)?);
        }
        if urls.is_empty() {
            return Err(ClientError::InvalidUrl {
                url: spec.to_string(),
                reason: "no node URL given".into(),
            });
        }
        let n = urls.len();
        Ok(Nodes {
            urls,
            next: AtomicUsize::new(0),
            aside_until: Mutex::new(vec![None; n]),
        })
    }

    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The order in which one request tries the nodes: the next one round-robin first, nodes
    /// set aside after a recent failure last.
    pub(crate) fn order(&self) -> Vec<usize> {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let aside = self
            .aside_until
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        let is_aside = |i: usize| aside.get(i).copied().flatten().is_some_and(|t| t > now);
        let rotated = (0..n).map(|k| (start + k) % n);
        let mut order: Vec<usize> = rotated.clone().filter(|i| !is_aside(*i)).collect();
        order.extend(rotated.filter(|i| is_aside(*i)));
        order
    }

    /// Sets node `i` aside; returns whether it was in use until now (to log the change once).
    pub(crate) fn set_aside(&self, i: usize) -> bool {
        let Ok(mut aside) = self.aside_until.lock() else {
            return false;
        };
        let now = Instant::now();
        let was_up = aside[i].is_none_or(|t| t <= now);
        aside[i] = Some(now + SET_ASIDE);
        was_up
    }

    /// Node `i` answered; returns whether it had been set aside.
    pub(crate) fn answered(&self, i: usize) -> bool {
        let Ok(mut aside) = self.aside_until.lock() else {
            return false;
        };
        aside[i].take().is_some()
    }
}

fn validate(url: &str) -> Result<String, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: url.to_string(),
        reason,
    };
    if !url.contains("://") {
        return Err(invalid(format!(
            "no scheme: write http://{url} (or https:// for TLS)"
        )));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "scheme must be http or https, not {}",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(|h| h.is_empty()) {
        return Err(invalid("no host".into()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ClientError::InvalidUrl {
            url: "<redacted>".into(),
            reason: "give credentials as the client's auth setting, not in the URL".into(),
        });
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Whether an answer means this node, not the cluster, cannot serve now, so that another node
/// may: a node still joining the cluster, or one cut off from the cluster manager.
pub(crate) fn node_unavailable(status: u16, error_type: &str) -> bool {
    status == 503
        && matches!(
            error_type,
            "cluster_block_exception"
                | "master_not_discovered_exception"
                | "cluster_manager_not_discovered_exception"
                | "node_not_connected_exception"
                | "node_closed_exception"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comma_list_is_parsed_and_each_node_checked() {
        let n = Nodes::parse("http://a:9200, http://b:9201/ ,").unwrap();
        assert_eq!(n.urls(), ["http://a:9200", "http://b:9201"]);
        assert!(Nodes::parse("http://a:9200,ftp://b").is_err());
        assert!(Nodes::parse(" , ").is_err());
        let err = Nodes::parse("http://a:9200,http://u:pw@b:9200").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[test]
    fn requests_rotate_and_a_failed_node_goes_last() {
        let n = Nodes::parse("http://a,http://b,http://c").unwrap();
        assert_eq!(n.order(), [0, 1, 2]);
        assert_eq!(n.order(), [1, 2, 0]);
        assert!(n.set_aside(2));
        assert!(!n.set_aside(2), "already aside");
        assert_eq!(
            n.order(),
            [0, 1, 2],
            "c's turn, but c goes last while aside"
        );
        assert_eq!(n.order(), [0, 1, 2]);
        assert!(n.answered(2));
        assert!(!n.answered(2));
        assert_eq!(n.order(), [1, 2, 0]);
    }
}

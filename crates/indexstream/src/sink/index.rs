//! `index:NAME` and `index:URL/NAME`: documents written to an index, of the source cluster or of
//! another, with `_bulk` and the source `_id`.
//!
//! In exact mode every record carries its `_seq_no`, written as an external version: a
//! redelivery after a crash is a version conflict, counted as already applied, and an update of
//! the source (a higher `_seq_no`) replaces the older copy, so the target holds each source
//! document once, at its latest version. In timestamp mode a record is an overwrite by `_id`.

use std::time::Duration;

use super::{Sink, SinkError};
use crate::backoff::Backoff;
use crate::client::{
    Auth, Client, ClientConfig, ClientError, Fingerprint, Roots, Secret, TlsConfig,
};
use crate::record::{push_int, push_str, Record};

/// How the target's copy of a document is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Versioning {
    /// `version_type=external` with `version` = the source `_seq_no` (records without one are
    /// overwritten): a redelivery, or an older copy, is a conflict counted as applied. Sound
    /// for one source index; `_seq_no`s of different indices (a pattern, a recreated index)
    /// are not comparable.
    External,
    /// Each write overwrites the document with its `_id` (the last one delivered wins).
    Overwrite,
}

/// The other cluster of an `index:URL/NAME` sink, and how to connect to it: its own
/// authentication and TLS, given as `--sink-option`s (the consumer's `--api-key`, `--ca-cert`...
/// are the source cluster's).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtherCluster {
    /// Its URL (`http(s)://host:port`, a comma list of nodes too).
    pub url: String,
    /// Options `api-key`, `bearer-token` or `basic-auth=USER:PASSWORD` (one of them).
    pub auth: Auth,
    /// Options `ca-cert`, `ca-cert-only`, `client-cert`, `client-key`, `ca-fingerprint`.
    pub tls: TlsConfig,
}

impl OtherCluster {
    /// No authentication, the default TLS checks.
    pub fn new(url: impl Into<String>) -> Self {
        OtherCluster {
            url: url.into(),
            auth: Auth::None,
            tls: TlsConfig::default(),
        }
    }

    /// The options naming how to connect to it, for errors.
    pub(crate) const OPTIONS: &'static str =
        "api-key, bearer-token, basic-auth, ca-cert, ca-cert-only, client-cert, client-key, ca-fingerprint";

    /// Whether `key` is one of [`Self::OPTIONS`].
    pub(crate) fn is_option(key: &str) -> bool {
        Self::OPTIONS.split(", ").any(|o| o == key)
    }

    /// Applies one `--sink-option`; `Ok(false)` when `key` is not about the connection. Errors
    /// never quote a secret's value.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let file = |value: &str| {
            let path = std::path::PathBuf::from(value);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!("sink option {key}={value:?}: no such file"))
            }
        };
        let auth = match key {
            "api-key" => Some(Auth::ApiKey(Secret::new(value.trim()))),
            "bearer-token" => Some(Auth::Bearer(Secret::new(value.trim()))),
            "basic-auth" => {
                let Some((username, password)) = value.split_once(':') else {
                    return Err("sink option basic-auth: expected USER:PASSWORD".into());
                };
                if username.is_empty() {
                    return Err("sink option basic-auth: the user name is empty".into());
                }
                Some(Auth::Basic {
                    username: username.to_string(),
                    password: Secret::new(password),
                })
            }
            _ => None,
        };
        if let Some(auth) = auth {
            if self.auth != Auth::None {
                return Err(format!(
                    "sink option {key}: api-key, bearer-token and basic-auth each authenticate every request: give one of them"
                ));
            }
            // The header is built here so that a key that cannot be one is refused now.
            auth.header().map_err(|e| match e {
                ClientError::Setting { reason, .. } => format!("sink option {key}: {reason}"),
                e => format!("sink option {key}: {e}"),
            })?;
            self.auth = auth;
            return Ok(true);
        }
        match key {
            "ca-cert" => self.tls.ca_cert = Some(file(value)?),
            "client-cert" => self.tls.client_cert = Some(file(value)?),
            "client-key" => self.tls.client_key = Some(file(value)?),
            "ca-cert-only" => {
                self.tls.roots = match value {
                    "true" => Roots::OnlyGiven,
                    "false" => Roots::SystemAndGiven,
                    _ => {
                        return Err(format!(
                            "sink option ca-cert-only={value:?}: expected true or false"
                        ))
                    }
                }
            }
            "ca-fingerprint" => {
                self.tls.ca_fingerprint = Some(
                    Fingerprint::parse(value)
                        .map_err(|e| format!("sink option ca-fingerprint={value:?}: {e}"))?,
                )
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses settings that contradict each other.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.tls.roots == Roots::OnlyGiven && self.tls.ca_cert.is_none() {
            return Err(
                "sink option ca-cert-only=true trusts only the ca-cert file's CAs, but no ca-cert is given".into(),
            );
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            return Err("the index sink needs both client-cert and client-key, or neither".into());
        }
        Ok(())
    }

    /// The client settings (default timeouts).
    pub(crate) fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.url.clone())
            .with_auth(self.auth.clone())
            .with_tls(self.tls.clone())
    }
}

/// Items the target pushed back on (429, 5xx) are sent again within the sink this many times,
/// with backoff (about 20 s in all), before the consumer is told.
const ITEM_ATTEMPTS: u32 = 8;
const ITEM_BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));

/// A sink writing records to one index with `_bulk`. A batch is acknowledged once the cluster
/// answered every item (a write the cluster acknowledged is in its translog).
#[derive(Debug)]
pub struct IndexSink {
    client: Client,
    index: String,
    versioning: Versioning,
    body: String,
}

impl IndexSink {
    /// A sink writing to `index` through `client` (its own client: its retries and breaker are
    /// the sink's, not the reader's).
    pub fn new(client: Client, index: impl Into<String>, versioning: Versioning) -> Self {
        IndexSink {
            client,
            index: index.into(),
            versioning,
            body: String::new(),
        }
    }

    /// The target index.
    pub fn index(&self) -> &str {
        &self.index
    }

    fn external(&self, r: &Record) -> Option<i64> {
        match self.versioning {
            Versioning::External => r.seq_no,
            Versioning::Overwrite => None,
        }
    }

    fn action_line(&mut self, r: &Record) {
        let version = self.external(r);
        self.body.push_str("{\"index\":{\"_index\":");
        push_str(&mut self.body, &self.index);
        self.body.push_str(",\"_id\":");
        push_str(&mut self.body, &r.id);
        if let Some(seq) = version {
            self.body.push_str(",\"version\":");
            push_int(&mut self.body, seq);
            self.body.push_str(",\"version_type\":\"external\"");
        }
        self.body.push_str("}}\n");
        r.source.push_one_line(&mut self.body);
        self.body.push('\n');
    }

    /// One `_bulk` of `records[at]` for each `at`; what each item's answer says.
    async fn send(
        &mut self,
        records: &[Record],
        at: &[usize],
    ) -> Result<Vec<ItemOutcome>, SinkError> {
        self.body.clear();
        for &i in at {
            self.action_line(&records[i]);
        }
        let body = std::mem::take(&mut self.body);
        let response = self
            .client
            .bulk(body, false)
            .await
            .map_err(|e| request_error(&self.index, at.len(), e))?;
        if !response.errors {
            return Ok(vec![ItemOutcome::Applied; at.len()]);
        }
        if response.results().count() != at.len() {
            return Err(SinkError::transient(format!(
                "the index {}: a _bulk of {} answered {} items",
                self.index,
                at.len(),
                response.results().count()
            )));
        }
        Ok(response
            .results()
            .zip(at)
            .map(|(item, &i)| {
                item_outcome(
                    item.status,
                    item.error.as_ref(),
                    self.external(&records[i]).is_some(),
                )
            })
            .collect())
    }
}

/// What one item's answer says about its record.
fn item_outcome(status: u16, error: Option<&serde_json::Value>, external: bool) -> ItemOutcome {
    let kind = error.and_then(|e| e["type"].as_str()).unwrap_or("");
    match status {
        200..=299 => ItemOutcome::Applied,
        // The target holds this version or a newer one: a redelivery.
        409 if external => ItemOutcome::Applied,
        429 | 500..=599 => ItemOutcome::Retry(reason(status, error)),
        // The document itself does not fit the target (its mapping, its values).
        400 if DOCUMENT_ERRORS.contains(&kind) => ItemOutcome::Poison(reason(status, error)),
        // The target as a whole refuses (no permission, a write block, missing, closed, a
        // data stream that takes only creates, ...): every document would be refused.
        _ => ItemOutcome::Stop(reason(status, error)),
    }
}

/// Error types of a `_bulk` item that blame the document, not the target.
const DOCUMENT_ERRORS: &[&str] = &[
    "mapper_parsing_exception",
    "document_parsing_exception",
    "strict_dynamic_mapping_exception",
    "illegal_argument_exception",
    "parse_exception",
    "json_parse_exception",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemOutcome {
    Applied,
    Retry(String),
    Poison(String),
    Stop(String),
}

fn reason(status: u16, error: Option<&serde_json::Value>) -> String {
    match error {
        Some(e) => format!(
            "{status} {}: {}",
            e["type"].as_str().unwrap_or("error"),
            e["reason"].as_str().unwrap_or("")
        ),
        None => format!("status {status}"),
    }
}

/// A `_bulk` request that failed as a whole: retriable failures are passing (the client has
/// retried them already); anything else is the target's, not one document's, so the consumer
/// stops.
fn request_error(index: &str, n: usize, e: ClientError) -> SinkError {
    if e.is_retriable() {
        return SinkError::transient(format!("cannot write to the index {index}: {e}"));
    }
    match e {
        ClientError::Status { status: 413, .. } => SinkError::stop(format!(
            "the cluster refused a _bulk of {n} documents to the index {index} as too large (413): lower --batch-size"
        )),
        e => SinkError::stop(format!("cannot write to the index {index}: {e}")),
    }
}

impl Sink for IndexSink {
    fn kind(&self) -> &'static str {
        "index"
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.write_each(records).await.map_err(|(_, e)| e)
    }

    /// Every write was acknowledged by its `_bulk` response.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// One `_bulk` for the batch. Items the target pushed back on are sent again (only they)
    /// with backoff; the first record that still failed is named, so that the consumer
    /// dead-letters a document the target refuses, retries one that kept failing, or stops on
    /// a refusal of the target as a whole. The rest are sent again by the consumer: applied
    /// ones come back as version conflicts, or overwrite themselves.
    async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
        let mut pending: Vec<usize> = (0..records.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            let outcomes = self
                .send(records, &pending)
                .await
                .map_err(|e| (pending[0], e))?;
            let mut again = Vec::new();
            for (&i, outcome) in pending.iter().zip(outcomes) {
                let who = &records[i].id;
                match outcome {
                    ItemOutcome::Applied => {}
                    ItemOutcome::Poison(why) => {
                        return Err((
                            i,
                            SinkError::permanent(format!(
                                "the index {} refused {who}: {why}",
                                self.index
                            )),
                        ))
                    }
                    ItemOutcome::Stop(why) => {
                        return Err((
                            i,
                            SinkError::stop(format!(
                                "the index {} refuses writes ({who}): {why}",
                                self.index
                            )),
                        ))
                    }
                    ItemOutcome::Retry(why) if attempt + 1 >= ITEM_ATTEMPTS => {
                        return Err((
                            i,
                            SinkError::transient(format!(
                            "the index {} did not take {who} in {ITEM_ATTEMPTS} attempts: {why}",
                            self.index
                        )),
                        ))
                    }
                    ItemOutcome::Retry(_) => again.push(i),
                }
            }
            if !again.is_empty() {
                tokio::time::sleep(ITEM_BACKOFF.ceiling(attempt)).await;
                attempt += 1;
            }
            pending = again;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_applied_retried_poison_or_a_refusal_of_the_target() {
        assert_eq!(item_outcome(201, None, true), ItemOutcome::Applied);
        assert_eq!(item_outcome(409, None, true), ItemOutcome::Applied);
        assert!(matches!(
            item_outcome(409, None, false),
            ItemOutcome::Stop(_)
        ));
        assert!(matches!(
            item_outcome(429, None, true),
            ItemOutcome::Retry(_)
        ));
        assert!(matches!(
            item_outcome(503, None, true),
            ItemOutcome::Retry(_)
        ));
        let e = serde_json::json!({"type": "mapper_parsing_exception", "reason": "bad field"});
        assert_eq!(
            item_outcome(400, Some(&e), true),
            ItemOutcome::Poison("400 mapper_parsing_exception: bad field".into())
        );
        for (status, kind) in [
            (403, "security_exception"),
            (403, "cluster_block_exception"),
            (404, "index_not_found_exception"),
            (400, "index_closed_exception"),
        ] {
            let e = serde_json::json!({"type": kind, "reason": "no"});
            assert!(
                matches!(item_outcome(status, Some(&e), true), ItemOutcome::Stop(_)),
                "{status} {kind}"
            );
        }
    }
}

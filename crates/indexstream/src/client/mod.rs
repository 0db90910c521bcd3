//! Our own thin, typed client for the endpoints the consumer uses (reqwest with rustls).
//!
//! It detects the distribution (OpenSearch or Elasticsearch) and version from `GET /` and adapts
//! where they differ: how a search is pinned to a shard's primary copy.

mod aws;
mod config;
mod decode;
mod error;
mod mapping;
mod nodes;
mod response;
mod retry;
mod tls;
pub mod types;

pub use retry::{RetryPolicy, RetryPolicyBuilder, RetryPredicate};
use std::fmt;
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use aws::{AwsConfig, AwsService, CredentialSource, Credentials};
use config::parse_version;
pub use config::{Auth, ClientConfig, Distribution, Secret, ServerInfo};
pub(crate) use decode::SearchText;
pub use error::ClientError;
use error::{error_parts, not_utf8, root_cause};
pub use tls::{Fingerprint, Roots, TlsConfig, TlsProblem, Verification};
use types::*;

/// A request body: JSON, or newline-delimited JSON for `_bulk`.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Json(Value),
    NdJson(String),
}

/// Told about every retry a client makes (the consumer's telemetry counts and logs them).
pub(crate) trait ObserveRetries: fmt::Debug + Send + Sync {
    /// Operation `op` is retried after `delay`; `retry` counts from 1.
    fn retried(&self, op: &'static str, retry: u32, delay: Duration, error: &ClientError);
}

/// The typed cluster client. Cheap to clone. Every request goes through its retry policy and,
/// when it has one, its circuit breaker.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: std::sync::Arc<nodes::Nodes>,
    /// The `Authorization` header of basic auth, an API key or a bearer token.
    auth: Option<reqwest::header::HeaderValue>,
    /// The SigV4 signer, when requests are signed (in place of `auth`).
    signer: Option<std::sync::Arc<aws::Signer>>,
    timeout: Duration,
    retry: RetryPolicy,
    breaker: Option<std::sync::Arc<crate::breaker::CircuitBreaker>>,
    observer: Option<std::sync::Arc<dyn ObserveRetries>>,
    /// Sent as `X-Opaque-Id`: the cluster's task list, slow logs and audit logs name the
    /// consumer (group and member) that sent a request.
    opaque_id: Option<std::sync::Arc<str>>,
}

/// What a path segment keeps as is: letters, digits, and the marks index expressions and ids
/// use (`-_.~`, `*` of wildcards, `,` of lists, `:` of remote clusters); the rest is encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'*')
    .remove(b',')
    .remove(b':');

fn encode(part: &str) -> String {
    percent_encoding::utf8_percent_encode(part, SEGMENT).to_string()
}

impl Client {
    /// A client for the nodes of `config.url`, with the default retry policy and no circuit
    /// breaker. Sends nothing yet; fails with [`ClientError::InvalidUrl`] when a node URL is
    /// not a valid http(s) URL without credentials.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let nodes = nodes::Nodes::parse(&config.url)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .pool_max_idle_per_host(8);
        if let Some(tls) = config.tls.build()? {
            builder = builder.use_preconfigured_tls(tls);
        }
        let http = builder.build().map_err(|e| ClientError::InvalidUrl {
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        let auth = config.auth.header()?;
        let signer = match &config.aws {
            Some(_) if auth.is_some() => {
                return Err(ClientError::Setting {
                    setting: "aws-sigv4",
                    reason: "SigV4 signs every request with AWS credentials, so basic auth, an API key or a bearer token would be sent in vain; give one or the other".into(),
                });
            }
            Some(aws) => Some(std::sync::Arc::new(aws::Signer::new(aws)?)),
            None => None,
        };
        Ok(Client {
            http,
            nodes: std::sync::Arc::new(nodes),
            auth,
            signer,
            timeout: config.request_timeout,
            retry: RetryPolicy::default(),
            breaker: None,
            observer: None,
            opaque_id: None,
        })
    }

    /// The same client, sending `id` as `X-Opaque-Id` with every request (how the cluster's
    /// task list, slow logs and audit logs tell who sent a request).
    pub fn with_opaque_id(mut self, id: impl Into<String>) -> Self {
        self.opaque_id = Some(id.into().into());
        self
    }

    /// The AWS service requests are signed for, if they are.
    pub fn aws_service(&self) -> Option<AwsService> {
        self.signer.as_ref().map(|s| s.service())
    }

    /// The same client with another retry policy.
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The same client behind a circuit breaker.
    pub(crate) fn with_breaker(
        mut self,
        breaker: std::sync::Arc<crate::breaker::CircuitBreaker>,
    ) -> Self {
        self.breaker = Some(breaker);
        self
    }

    pub(crate) fn with_retry_observer(
        mut self,
        observer: std::sync::Arc<dyn ObserveRetries>,
    ) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Sends a request through the retry policy and the circuit breaker, and returns the status
    /// and the raw body. Statuses of 400 and above are errors, except the ones in `accept`.
    pub(crate) async fn send(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
        accept: &[u16],
    ) -> Result<(u16, bytes::Bytes), ClientError> {
        use backon::Retryable;
        let attempt = std::sync::atomic::AtomicU32::new(0);
        let seed = (crate::date::now_nanos() % 1_000_000_000) as u64 ^ ((path.len() as u64) << 32);
        // Encoded once; each attempt sends a cheap clone of the same buffer.
        let encoded: Option<(&'static str, bytes::Bytes)> = body.map(|b| match b {
            Body::Json(v) => ("application/json", bytes::Bytes::from(v.to_string())),
            Body::NdJson(s) => ("application/x-ndjson", bytes::Bytes::from(s)),
        });
        // Whether the breaker let an attempt of this request through (it then owes an outcome:
        // in the half-open state this request holds the one probe).
        let admitted = std::sync::atomic::AtomicBool::new(false);
        let once = || async {
            if let Some(b) = &self.breaker {
                if !b.allow() {
                    return Err(ClientError::BreakerOpen {
                        op,
                        breaker: b.name().to_string(),
                        last_failure: b.last_failure().unwrap_or_else(|| "not recorded".into()),
                    });
                }
                admitted.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            self.send_once(
                op,
                method.clone(),
                path,
                query,
                encoded.as_ref().map(|(t, b)| (*t, b.clone())),
                accept,
            )
            .await
        };
        let max_delay = self.retry.max_delay;
        // The breaker counts requests, not attempts: a request fails once its retries are spent
        // (a failover's few seconds of errors then cost a retried request or two, not an open
        // breaker for its whole timeout).
        let result = once
            .retry(self.retry.backoff(seed))
            .sleep(tokio::time::sleep)
            .when(|e: &ClientError| {
                !matches!(e, ClientError::BreakerOpen { .. }) && (self.retry.predicate)(e)
            })
            .adjust(|e: &ClientError, d| match (d, e.retry_after()) {
                (Some(_), Some(after)) => Some(after.min(max_delay)),
                (d, _) => d,
            })
            .notify(|e: &ClientError, d| {
                let n = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                tracing::debug!(op, retry = n, delay = ?d, error = %e, "retrying");
                if let Some(o) = &self.observer {
                    o.retried(op, n, d, e);
                }
            })
            .await;
        if let Some(b) = &self.breaker {
            if admitted.load(std::sync::atomic::Ordering::Relaxed) {
                match &result {
                    // Let through, then stopped by the breaker: the attempts it made failed.
                    // Refused by the breaker on a retry: a failure, but not a new cause.
                    Err(e @ ClientError::BreakerOpen { .. }) if e.is_retriable() => b.on_failure(),
                    Err(e) if e.is_retriable() => b.on_failure_because(e),
                    _ => b.on_success(),
                }
            }
        }
        result
    }

    /// One attempt: the request goes to the nodes in turn until one answers. A node that cannot
    /// be reached (refused, timed out, connection dropped) or says it cannot serve now (503
    /// with a cluster block) is set aside and the next one tried at once; only when no node
    /// answers is the attempt a failure (the retry policy's and the breaker's business).
    async fn send_once(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&'static str, bytes::Bytes)>,
        accept: &[u16],
    ) -> Result<(u16, bytes::Bytes), ClientError> {
        let order = self.nodes.order();
        let mut last_error = None;
        for (k, &i) in order.iter().enumerate() {
            let base = &self.nodes.urls()[i];
            let more = k + 1 < order.len();
            match self
                .send_to(base, op, method.clone(), path, query, body.clone(), accept)
                .await
            {
                Err(
                    e @ (ClientError::Connect { .. }
                    | ClientError::Timeout { .. }
                    | ClientError::Transport { .. }),
                ) if more => {
                    if self.nodes.set_aside(i) {
                        tracing::warn!(node = %base, error = %e, "node did not answer; trying the next one");
                    }
                    last_error = Some(e);
                }
                Err(ClientError::Status {
                    op,
                    status,
                    error_type,
                    reason,
                    retry_after,
                }) if more && nodes::node_unavailable(status, &error_type) => {
                    if self.nodes.set_aside(i) {
                        tracing::warn!(node = %base, status, error_type = %error_type, reason = %reason, "node cannot serve now; trying the next one");
                    }
                    last_error = Some(ClientError::Status {
                        op,
                        status,
                        error_type,
                        reason,
                        retry_after,
                    });
                }
                result => {
                    let reached = !matches!(
                        &result,
                        Err(ClientError::Connect { .. }
                            | ClientError::Timeout { .. }
                            | ClientError::Transport { .. })
                    );
                    if reached {
                        if self.nodes.answered(i) {
                            tracing::info!(node = %base, "node answers again");
                        }
                    } else {
                        self.nodes.set_aside(i);
                    }
                    return result;
                }
            }
        }
        Err(last_error.unwrap_or(ClientError::Transport {
            op,
            url: self.nodes.urls().join(","),
            reason: "no node to send to".into(),
        }))
    }

    #[allow(clippy::too_many_arguments)]
    async fn send_to(
        &self,
        base: &str,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(&'static str, bytes::Bytes)>,
        accept: &[u16],
    ) -> Result<(u16, bytes::Bytes), ClientError> {
        let url = format!("{base}{path}");
        let mut req = self.http.request(method, &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth.clone());
        }
        if let Some(id) = &self.opaque_id {
            req = req.header("x-opaque-id", id.as_ref());
        }
        if let Some((content_type, body)) = body {
            req = req.header("content-type", content_type).body(body);
        }
        let req = req.build().map_err(|e| self.transport_error(op, base, e))?;
        let resp = match &self.signer {
            None => self.http.execute(req).await,
            Some(signer) => {
                let again = req.try_clone();
                let mut signed = req;
                signer.sign(&mut signed).await?;
                let resp = self.http.execute(signed).await;
                match (resp, again) {
                    // Temporary credentials the cluster says expired before we thought: fetch
                    // new ones and send once more.
                    (Ok(r), Some(mut again)) if r.status().as_u16() == 403 => {
                        let status = r.status();
                        let headers = r.headers().clone();
                        let bytes = r
                            .bytes()
                            .await
                            .map_err(|e| self.transport_error(op, base, e))?;
                        let (_, reason) = error_parts(&bytes);
                        if aws::token_expired(&reason) {
                            tracing::info!("the cluster says the AWS session token expired; fetching new credentials");
                            signer.invalidate().await;
                            signer.sign(&mut again).await?;
                            self.http.execute(again).await
                        } else {
                            return Err(ClientError::Status {
                                op,
                                status: status.as_u16(),
                                error_type: headers
                                    .get("x-amzn-errortype")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_string(),
                                reason,
                                retry_after: None,
                            });
                        }
                    }
                    (resp, _) => resp,
                }
            }
        }
        .map_err(|e| self.transport_error(op, base, e))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(op, base, e))?;
        if status >= 400 && !accept.contains(&status) {
            let (error_type, reason) = error_parts(&bytes);
            return Err(ClientError::Status {
                op,
                status,
                error_type,
                reason,
                retry_after,
            });
        }
        Ok((status, bytes))
    }

    fn transport_error(&self, op: &'static str, base: &str, e: reqwest::Error) -> ClientError {
        let cause = root_cause(&e);
        // rustls reading a plain-HTTP answer to its handshake; no retry helps.
        if base
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
            && (cause.contains("InvalidContentType") || cause.contains("corrupt message"))
        {
            return ClientError::InvalidUrl {
                url: base.to_string(),
                reason: format!(
                    "the server answered the TLS handshake in plain HTTP: use http://{} instead",
                    &base["https://".len()..]
                ),
            };
        }
        if let Some(problem) = tls::problem(&e) {
            return ClientError::Tls {
                op,
                url: base.to_string(),
                problem,
            };
        }
        if e.is_timeout() {
            ClientError::Timeout {
                op,
                url: base.to_string(),
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            ClientError::Connect {
                op,
                url: base.to_string(),
                reason: root_cause(&e),
            }
        } else {
            ClientError::Transport {
                op,
                url: base.to_string(),
                reason: root_cause(&e),
            }
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Body>,
    ) -> Result<T, ClientError> {
        let (_, bytes) = self.send(op, method, path, query, body, &[]).await?;
        // One UTF-8 check of the whole body, then a parse that does not check every string again.
        let text = std::str::from_utf8(&bytes).map_err(|e| not_utf8(op, e))?;
        serde_json::from_str(text).map_err(|e| ClientError::Decode {
            op,
            reason: e.to_string(),
        })
    }

    /// `GET /`: the distribution and version.
    pub async fn info(&self) -> Result<ServerInfo, ClientError> {
        // A URL's path is sent before every request path (a reverse proxy's base path); when
        // what answers there is not OpenSearch, say so rather than "no version.number".
        let with_path = self.nodes.urls().iter().find(|u| {
            reqwest::Url::parse(u).is_ok_and(|p| p.path() != "/" && !p.path().is_empty())
        });
        let not_a_cluster = |e: ClientError| {
            match (with_path, &e) {
            // Not found or no such route (a 401, 403 or 429 is the cluster's answer, kept as is).
            (Some(url), ClientError::Status { status: 400 | 404 | 405, .. } | ClientError::Decode { .. }) => {
                ClientError::InvalidUrl {
                    url: url.clone(),
                    reason: format!("its path is sent as a base path before every request, and GET on it did not answer as OpenSearch or Elasticsearch ({e}); give the node's root URL, or the reverse proxy's base path that leads to it"),
                }
            }
            _ => e,
        }
        };
        let answer = self
            .json::<Value>("info", Method::GET, "/", &[], None)
            .await;
        // A Serverless collection does not list `GET /` among its operations; what answers is
        // OpenSearch of the 2.x API.
        if self.aws_service() == Some(AwsService::Aoss)
            && matches!(
                &answer,
                Err(ClientError::Status {
                    status: 404 | 400,
                    ..
                })
            )
        {
            return Ok(ServerInfo {
                distribution: Distribution::OpenSearch,
                version: (2, 0, 0),
                cluster_name: "serverless".into(),
            });
        }
        let v = answer.map_err(not_a_cluster)?;
        let number = v["version"]["number"].as_str().ok_or_else(|| {
            not_a_cluster(ClientError::Decode {
                op: "info",
                reason: "no version.number in GET /".into(),
            })
        })?;
        let distribution = if v["version"]["distribution"].as_str() == Some("opensearch") {
            Distribution::OpenSearch
        } else {
            Distribution::Elasticsearch
        };
        Ok(ServerInfo {
            distribution,
            version: parse_version(number),
            cluster_name: v["cluster_name"].as_str().unwrap_or_default().to_string(),
        })
    }

    /// Shard-level stats of every concrete index behind `expr` (names, patterns, aliases, data streams).
    pub(crate) async fn shard_stats(&self, expr: &str) -> Result<Vec<IndexShards>, ClientError> {
        let path = format!("/{}/_stats/refresh,docs", encode(expr));
        let raw: StatsResponse = self
            .json(
                "stats",
                Method::GET,
                &path,
                &[
                    ("level", "shards".into()),
                    ("expand_wildcards", "open".into()),
                ],
                None,
            )
            .await?;
        Ok(raw.into_index_shards())
    }

    /// `POST <expr>/_refresh`: makes everything indexed so far searchable.
    pub async fn refresh(&self, expr: &str) -> Result<(), ClientError> {
        self.send(
            "refresh",
            Method::POST,
            &format!("/{}/_refresh", encode(expr)),
            &[],
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// A search; a response with failed shards or `timed_out` is an error, never a short answer.
    pub async fn search(
        &self,
        index: &str,
        query: &[(&str, String)],
        body: Value,
    ) -> Result<SearchResponse, ClientError> {
        self.search_text(index, query, body).await?.read()
    }

    /// A `_search` response as received, to be read with [`SearchText::read`] (a reader that
    /// pages can guess the next page's position from it first).
    pub(crate) async fn search_text(
        &self,
        index: &str,
        query: &[(&str, String)],
        body: Value,
    ) -> Result<SearchText, ClientError> {
        let path = format!("/{}/_search", encode(index));
        let (_, bytes) = self
            .send(
                "search",
                Method::POST,
                &path,
                query,
                Some(Body::Json(body)),
                &[],
            )
            .await?;
        // The body becomes shared text without a copy (a body collected from several chunks is
        // uniquely owned); every record's `_source` is a slice of it.
        let text = String::from_utf8(Vec::from(bytes)).map_err(|e| not_utf8("search", e))?;
        Ok(SearchText(std::sync::Arc::new(text)))
    }

    pub(crate) async fn count(&self, index: &str, query: Value) -> Result<u64, ClientError> {
        self.count_with(index, &[], query).await
    }

    /// [`Client::count`] with query parameters (a shard preference).
    pub(crate) async fn count_with(
        &self,
        index: &str,
        params: &[(&str, String)],
        query: Value,
    ) -> Result<u64, ClientError> {
        let path = format!("/{}/_count", encode(index));
        let v: Value = self
            .json(
                "count",
                Method::POST,
                &path,
                params,
                Some(Body::Json(serde_json::json!({ "query": query }))),
            )
            .await?;
        if v["_shards"]["failed"].as_u64().unwrap_or(0) > 0 {
            return Err(ClientError::ShardFailures {
                op: "count",
                failed: v["_shards"]["failed"].as_u64().unwrap_or(0),
                total: v["_shards"]["total"].as_u64().unwrap_or(0),
                reason: v["_shards"]["failures"].to_string(),
            });
        }
        v["count"].as_u64().ok_or_else(|| ClientError::Decode {
            op: "count",
            reason: "no count".into(),
        })
    }

    /// `POST /_bulk` with a newline-delimited body; with `refresh`, what it wrote is searchable
    /// when it returns. Failed items are not an error: see [`BulkResponse::errors`].
    pub async fn bulk(&self, ndjson: String, refresh: bool) -> Result<BulkResponse, ClientError> {
        self.bulk_to(None, ndjson, refresh).await
    }

    /// A `_bulk` addressed to `index` (`POST /<index>/_bulk`), for items of that index only:
    /// security rules and fault rules scoped to the index then see it.
    pub(crate) async fn bulk_to(
        &self,
        index: Option<&str>,
        ndjson: String,
        refresh: bool,
    ) -> Result<BulkResponse, ClientError> {
        let query: Vec<(&str, String)> = if refresh {
            vec![("refresh", "true".into())]
        } else {
            vec![]
        };
        let path = match index {
            Some(i) => format!("/{}/_bulk", encode(i)),
            None => "/_bulk".to_string(),
        };
        self.json(
            "bulk",
            Method::POST,
            &path,
            &query,
            Some(Body::NdJson(ndjson)),
        )
        .await
    }

    /// Reads one document; `None` when it (or its index) does not exist.
    pub(crate) async fn get_doc(
        &self,
        index: &str,
        id: &str,
    ) -> Result<Option<GetResponse>, ClientError> {
        let path = format!("/{}/_doc/{}", encode(index), encode(id));
        let (status, bytes) = self
            .send("get", Method::GET, &path, &[], None, &[404])
            .await?;
        if status == 404 {
            return Ok(None);
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ClientError::Decode {
                op: "get",
                reason: e.to_string(),
            })
    }

    /// Realtime reads of several documents of one index; `None` for each missing one (or all,
    /// when the index does not exist).
    pub(crate) async fn mget(
        &self,
        index: &str,
        ids: &[String],
    ) -> Result<Vec<Option<GetResponse>>, ClientError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let path = format!("/{}/_mget", encode(index));
        let body = serde_json::json!({ "ids": ids });
        let (status, bytes) = self
            .send(
                "mget",
                Method::POST,
                &path,
                &[],
                Some(Body::Json(body)),
                &[404],
            )
            .await?;
        if status == 404 {
            return Ok(ids.iter().map(|_| None).collect());
        }
        let v: MgetResponse = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            op: "mget",
            reason: e.to_string(),
        })?;
        Ok(v.docs
            .into_iter()
            .map(|d| {
                if d.found {
                    d.seq_no.zip(d.primary_term).zip(d.source).map(
                        |((seq_no, primary_term), source)| GetResponse {
                            seq_no,
                            primary_term,
                            source,
                        },
                    )
                } else {
                    None
                }
            })
            .collect())
    }

    /// Writes a document, conditionally on the version the caller last saw: `Cas::Create`
    /// fails if it exists, `Cas::Match` if it changed since. A conflict is an error with status 409.
    pub(crate) async fn put_doc(
        &self,
        index: &str,
        id: &str,
        doc: &Value,
        cas: Cas,
        refresh: bool,
    ) -> Result<WriteResponse, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        let path = match cas {
            Cas::Create => format!("/{}/_create/{}", encode(index), encode(id)),
            Cas::Match {
                seq_no,
                primary_term,
            } => {
                query.push(("if_seq_no", seq_no.to_string()));
                query.push(("if_primary_term", primary_term.to_string()));
                format!("/{}/_doc/{}", encode(index), encode(id))
            }
        };
        if refresh {
            query.push(("refresh", "true".into()));
        }
        self.json(
            "index",
            Method::PUT,
            &path,
            &query,
            Some(Body::Json(doc.clone())),
        )
        .await
    }

    pub(crate) async fn delete_doc(
        &self,
        index: &str,
        id: &str,
        cas: Cas,
    ) -> Result<(), ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Cas::Match {
            seq_no,
            primary_term,
        } = cas
        {
            query.push(("if_seq_no", seq_no.to_string()));
            query.push(("if_primary_term", primary_term.to_string()));
        }
        self.send(
            "delete",
            Method::DELETE,
            &format!("/{}/_doc/{}", encode(index), encode(id)),
            &query,
            None,
            &[404],
        )
        .await
        .map(|_| ())
    }

    /// Creates an index; `Ok(false)` when it already exists.
    pub async fn create_index(&self, index: &str, body: &Value) -> Result<bool, ClientError> {
        match self
            .send(
                "create_index",
                Method::PUT,
                &format!("/{}", encode(index)),
                &[],
                Some(Body::Json(body.clone())),
                &[],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Status {
                status: 400,
                error_type,
                ..
            }) if error_type == "resource_already_exists_exception" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds fields to an index's mapping (`PUT <index>/_mapping`).
    pub(crate) async fn put_mapping(
        &self,
        index: &str,
        mapping: &Value,
    ) -> Result<(), ClientError> {
        self.send(
            "put_mapping",
            Method::PUT,
            &format!("/{}/_mapping", encode(index)),
            &[],
            Some(Body::Json(mapping.clone())),
            &[],
        )
        .await
        .map(|_| ())
    }

    /// `HEAD <index>`: whether the index (or an alias or data stream of that name) exists.
    pub async fn index_exists(&self, index: &str) -> Result<bool, ClientError> {
        let (status, _) = self
            .send(
                "index_exists",
                Method::HEAD,
                &format!("/{}", encode(index)),
                &[],
                None,
                &[404],
            )
            .await?;
        Ok(status < 300)
    }

    /// Every concrete index behind `expr` with its refresh interval (explicit or the default;
    /// `None` when refreshes are disabled with `-1`).
    pub(crate) async fn refresh_intervals(
        &self,
        expr: &str,
    ) -> Result<Vec<(String, Option<Duration>)>, ClientError> {
        let v: Value = self
            .json(
                "settings",
                Method::GET,
                &format!("/{}/_settings/index.refresh_interval", encode(expr)),
                &[
                    ("include_defaults", "true".into()),
                    ("flat_settings", "true".into()),
                    ("expand_wildcards", "open".into()),
                    ("allow_no_indices", "true".into()),
                ],
                None,
            )
            .await?;
        let mut out = Vec::new();
        if let Value::Object(indices) = v {
            for (index, s) in indices {
                let value = s["settings"]["index.refresh_interval"]
                    .as_str()
                    .or_else(|| s["defaults"]["index.refresh_interval"].as_str())
                    .unwrap_or("1s");
                out.push((index, parse_time_value(value)));
            }
        }
        Ok(out)
    }
}

/// An OpenSearch time value (`500ms`, `1s`, `2m`, `1h`, `1d`, `-1` for "never"); `None` for
/// `-1` and for what does not parse (then no refresh is expected from the cluster either).
fn parse_time_value(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "nanos" => n / 1e9,
        "micros" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = Auth::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert_eq!(Secret::new("k").to_string(), "***");
    }

    #[test]
    fn path_segments_keep_expressions_and_encode_the_rest() {
        assert_eq!(encode("logs-*,audit:x_1.2~"), "logs-*,audit:x_1.2~");
        assert_eq!(encode("g|lease"), "g%7Clease");
        assert_eq!(encode("a/b c?d#e%"), "a%2Fb%20c%3Fd%23e%25");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn urls_are_validated() {
        assert!(matches!(
            Client::new(&ClientConfig::new("not a url")),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            Client::new(&ClientConfig::new("ftp://x")),
            Err(ClientError::InvalidUrl { .. })
        ));
        let err = Client::new(&ClientConfig::new("http://user:pw@host:9200")).unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(Client::new(&ClientConfig::new("http://localhost:9200/")).is_ok());
    }

    #[test]
    fn time_values_parse_as_opensearch_writes_them() {
        assert_eq!(parse_time_value("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_time_value("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time_value("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_time_value("-1"), None);
        assert_eq!(parse_time_value("soon"), None);
    }

    #[test]
    fn error_bodies_give_type_and_reason() {
        let body = br#"{"error":{"root_cause":[{"type":"index_not_found_exception","reason":"no such index [x]"}],"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#;
        assert_eq!(
            error_parts(body),
            (
                "index_not_found_exception".into(),
                "no such index [x]".into()
            )
        );
    }
}

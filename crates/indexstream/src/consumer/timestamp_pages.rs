//! Timestamp mode's pages: a round's prefetcher keeps paging on its own, a few pages ahead of the
//! consumer, so that the cluster works while the consumer writes to the sink and commits.

use serde_json::{json, Value};

use crate::client::types::{SearchResponse, SortValues};
use crate::client::{Client, ClientError, SearchText};
use crate::source::timestamp::TimeUnit;

/// Pages a round's prefetcher may hold ready while the consumer is busy (writing to the sink,
/// committing): keyset paging cannot ask for page n+2 before page n+1 has arrived, so only a
/// task that keeps paging on its own keeps the cluster busy meanwhile.
pub(super) const PAGES_AHEAD: usize = 4;

pub(super) type PageResult = std::result::Result<SearchResponse, ClientError>;

/// Where a round of reads is.
#[derive(Debug)]
pub(super) struct Round {
    /// The inclusive lower bound of this round, in nanoseconds.
    pub(super) from: Option<i64>,
    /// Pages in order, from the prefetcher (closed after the last page or an error).
    pub(super) pages: tokio::sync::mpsc::Receiver<PageResult>,
    pub(super) prefetcher: tokio::task::JoinHandle<()>,
}

impl Drop for Round {
    fn drop(&mut self) {
        self.prefetcher.abort();
    }
}

/// What one page request of a round asks for.
#[derive(Debug, Clone)]
pub(super) struct PageSpec {
    pub(super) index: String,
    /// Query parameters of every page (a partition's shard preference).
    pub(super) params: Vec<(&'static str, String)>,
    /// Whether hits carry `_seq_no` and `_primary_term` (a partition's reads: its records say
    /// where in the shard they are).
    pub(super) seq_no: bool,
    pub(super) field: String,
    pub(super) tiebreaker: String,
    pub(super) query: Option<Value>,
    pub(super) size: usize,
    pub(super) unit: TimeUnit,
    pub(super) from: Option<i64>,
}

impl PageSpec {
    /// The search body of one page: `(timestamp, tiebreaker)` order from `from`, after `after`.
    pub(super) fn body(&self, after: Option<Vec<Value>>) -> Value {
        let field = &self.field;
        // Without a range, documents without a timestamp come last (see `is_missing`) rather
        // than being filtered out: an `exists` filter would cost the cluster a check per document.
        let mut filter = match self.from {
            Some(f) => vec![json!({"range": {field.clone(): self.unit.range_gte(f)}})],
            None => Vec::new(),
        };
        if let Some(q) = &self.query {
            filter.push(q.clone());
        }
        let mut body = json!({
            "size": self.size,
            "track_total_hits": false,
            "sort": [
                {field.clone(): {"order": "asc", "unmapped_type": "date"}},
                {self.tiebreaker.clone(): {"order": "asc"}}
            ],
        });
        if !filter.is_empty() {
            body["query"] = json!({"bool": {"filter": filter}});
        }
        if let Some(a) = after {
            body["search_after"] = Value::Array(a);
        }
        if self.seq_no {
            body["seq_no_primary_term"] = Value::Bool(true);
        }
        body
    }

    /// Pages through the round, up to [`PAGES_AHEAD`] pages ahead of the consumer, until a
    /// short page or an error (which is passed on and ends it).
    ///
    /// After a full page the next one is asked for before this one is read: its position is
    /// guessed from the end of the response ([`SearchText::last_sort_hint`]), so the cluster
    /// works on the next page while this one is read. When the guess turns out wrong, or this
    /// page short, what the request made ahead returns is dropped; the pages passed on are the
    /// same either way. (Reading the page on a blocking thread instead of yielding cost as much
    /// CPU and no less time.)
    pub(super) async fn prefetch(self, client: Client, out: tokio::sync::mpsc::Sender<PageResult>) {
        let spec = std::sync::Arc::new(self);
        let mut after = None;
        let mut ahead: Option<Ahead> = None;
        let mut full = false;
        loop {
            let text = match ahead.take() {
                Some(mut a) => (&mut a.request)
                    .await
                    .unwrap_or_else(|e| Err(stopped("the request made ahead", e))),
                None => {
                    client
                        .search_text(&spec.index, &params_of(&spec), spec.body(after.take()))
                        .await
                }
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => {
                    let _ = out.send(Err(e)).await;
                    return;
                }
            };
            if full {
                if let Some(guess) = text.last_sort_hint().filter(|s| !is_missing(s)) {
                    let (client, spec2) = (client.clone(), spec.clone());
                    let body = spec.body(Some(guess.clone()));
                    ahead = Some(Ahead {
                        after: guess,
                        request: tokio::spawn(async move {
                            client
                                .search_text(&spec2.index, &params_of(&spec2), body)
                                .await
                        }),
                    });
                }
            }
            if ahead.is_some() {
                // Lets the request made ahead, then its connection, write it out.
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
            }
            let result = text.read();
            let next = match &result {
                Ok(resp) if resp.hits.hits.len() >= spec.size => resp
                    .hits
                    .hits
                    .last()
                    .and_then(|h| h.sort.as_ref())
                    .map(SortValues::values)
                    .filter(|s| !is_missing(s)),
                _ => None,
            };
            full = next.is_some();
            if ahead
                .as_ref()
                .is_some_and(|a| Some(&a.after) != next.as_ref())
            {
                ahead = None;
            }
            if out.send(result).await.is_err() {
                return;
            }
            match next {
                Some(s) if ahead.is_none() => after = Some(s),
                Some(_) => {}
                None => return,
            }
        }
    }
}

fn params_of(spec: &PageSpec) -> Vec<(&str, String)> {
    spec.params.iter().map(|(k, v)| (*k, v.clone())).collect()
}

/// A page asked for before the previous one was read, from the position guessed for it. When
/// this is dropped the request is left to finish and its answer is dropped: cancelling it half
/// way would close its connection, and the next poll would open (and on TLS, handshake) another.
#[derive(Debug)]
pub(super) struct Ahead {
    pub(super) after: Vec<Value>,
    pub(super) request: tokio::task::JoinHandle<std::result::Result<SearchText, ClientError>>,
}

/// A task of the prefetcher that panicked or was cancelled.
pub(super) fn stopped(what: &str, e: tokio::task::JoinError) -> ClientError {
    ClientError::Decode {
        op: "search",
        reason: format!("{what} stopped: {e}"),
    }
}

/// Whether sort values are those of a document without the timestamp field: ascending sorts put
/// it last with the sentinel `Long.MAX_VALUE` (OpenSearch's `missing: _last`).
pub(super) fn is_missing(sort: &[Value]) -> bool {
    sort.first().and_then(|v| v.as_i64()) == Some(i64::MAX)
}

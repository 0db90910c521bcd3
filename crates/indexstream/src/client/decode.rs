//! Decoding search responses: the one seam every `_search` answer goes through.
//!
//! [`search`] uses the response walker (`response.rs`, over the scanner of `scan.rs`): it hands
//! each `_source` on as a slice of the response text and parses only the few small values the
//! consumer needs. It was measured to matter (see BENCHMARKS.md: the consumer's CPU per million
//! events fell from 3.5 to 1.4-1.7 s when it replaced a serde_json parse). [`reference`](self) does the
//! same with plain serde_json (borrowed `RawValue`s for `_source` and `sort`): it is the
//! reference the walker is checked against, by the property test below, and the baseline of the
//! decoder benchmark (`cargo test --release -p indexstream --lib decode_benchmark -- --ignored
//! --nocapture`), which also measures `sonic-rs`.

use std::sync::Arc;

use super::response::parse_search;
use serde_json::Value;

use super::types::SearchResponse;
use super::ClientError;

/// Decodes a `_search` response; the error says what is wrong and where.
pub(crate) fn search(text: Arc<String>) -> Result<SearchResponse, String> {
    parse_search(text)
}

/// A `_search` response as received, not read yet.
#[derive(Debug, Clone)]
pub(crate) struct SearchText(pub(super) std::sync::Arc<String>);

impl SearchText {
    /// The last hit's sort values, guessed from the end of the text alone (`None` when the
    /// text does not end as a search response with sorted hits usually does). Only a guess:
    /// compare it with what [`SearchText::read`] finds.
    pub fn last_sort_hint(&self) -> Option<Vec<Value>> {
        super::response::last_sort_hint(&self.0)
    }

    /// Reads the response. Shard failures and a timed-out search are errors: their hits are
    /// not all there is.
    pub fn read(self) -> Result<SearchResponse, ClientError> {
        let resp = search(self.0).map_err(|reason| ClientError::Decode {
            op: "search",
            reason,
        })?;
        if resp.shards.failed > 0 {
            let reason = resp
                .shards
                .failures
                .first()
                .map(|f| f.to_string())
                .unwrap_or_default();
            return Err(ClientError::ShardFailures {
                op: "search",
                failed: resp.shards.failed,
                total: resp.shards.total,
                reason,
            });
        }
        if resp.timed_out {
            return Err(ClientError::SearchTimedOut { op: "search" });
        }
        Ok(resp)
    }
}

/// The reference decoder (tests and the benchmark only).
#[cfg(test)]
pub(crate) mod reference {
    use std::sync::Arc;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    use crate::client::response::SortValues;
    use crate::client::types::{Hit, Hits, SearchResponse, ShardsSummary};
    use crate::record::Source;
    use crate::scan::Layout;

    #[derive(Deserialize)]
    struct RawResponse<'a> {
        #[serde(default)]
        timed_out: bool,
        #[serde(rename = "_shards")]
        shards: Option<ShardsSummary>,
        #[serde(borrow)]
        hits: Option<RawHits<'a>>,
        #[serde(default)]
        pit_id: Option<String>,
    }

    #[derive(Deserialize)]
    struct RawHits<'a> {
        #[serde(borrow)]
        hits: Option<Vec<RawHit<'a>>>,
    }

    #[derive(Deserialize)]
    struct RawHit<'a> {
        #[serde(rename = "_index")]
        index: String,
        #[serde(rename = "_id")]
        id: String,
        #[serde(rename = "_seq_no", default)]
        seq_no: Option<i64>,
        #[serde(rename = "_primary_term", default)]
        primary_term: Option<i64>,
        #[serde(rename = "_source", borrow, default)]
        source: Option<&'a RawValue>,
        #[serde(borrow, default)]
        sort: Option<&'a RawValue>,
    }

    /// A slice of `text` that `part` points into, as a [`Source`] of it.
    fn slice_of(text: &Arc<String>, part: &str) -> Source {
        let start = part.as_ptr() as usize - text.as_ptr() as usize;
        let layout = if part.contains(['\n', '\r']) {
            Layout::MultiLine
        } else {
            Layout::OneLine
        };
        Source::slice(text, start..start + part.len(), layout)
    }

    /// The reference decoder: serde_json, with `_source` and `sort` borrowed as raw text.
    pub(crate) fn reference(text: Arc<String>) -> Result<SearchResponse, String> {
        let raw: RawResponse<'_> = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let mut hits = Vec::new();
        let raw_hits = raw
            .hits
            .and_then(|h| h.hits)
            .ok_or("the response has no hits.hits")?;
        for h in raw_hits {
            let source = h.source.map(|s| slice_of(&text, s.get()));
            let sort = match h.sort {
                Some(s) => SortValues::from_raw(slice_of(&text, s.get()))?,
                None => None,
            };
            hits.push(Hit {
                index: h.index,
                id: h.id,
                seq_no: h.seq_no,
                primary_term: h.primary_term,
                source,
                sort,
            });
        }
        Ok(SearchResponse {
            timed_out: raw.timed_out,
            shards: raw.shards.ok_or("the response has no _shards")?,
            hits: Hits { hits },
            pit_id: raw.pit_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::reference::reference;
    use super::*;
    use crate::scan::tests::json_value;
    use crate::scan::Layout;
    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::{json, Value};

    /// What a decoder found, in a form two decoders can be compared by.
    fn summary(r: &SearchResponse) -> Value {
        json!({
            "timed_out": r.timed_out,
            "shards": [r.shards.total, r.shards.failed, r.shards.failures.len()],
            "pit_id": r.pit_id,
            "hits": r.hits.hits.iter().map(|h| json!({
                "index": h.index, "id": h.id, "seq_no": h.seq_no, "primary_term": h.primary_term,
                "source": h.source.as_ref().map(|s| s.get().to_string()),
                "multi_line": h.source.as_ref().map(|s| s.layout() == Layout::MultiLine),
                "sort": h.sort.as_ref().map(|s| s.values()),
                "sort_first": h.sort.as_ref().and_then(|s| s.first_integer()),
            })).collect::<Vec<_>>(),
        })
    }

    proptest! {
        /// Whatever the documents hold, compact or pretty-printed, with or without sequence
        /// numbers, sort values or a point in time: the walker finds exactly what the serde_json
        /// reference finds, `_source` text and layout included.
        #[test]
        fn the_walker_decodes_what_the_reference_decodes(
            docs in prop::collection::vec((json_value(), "[a-z0-9\"\\\\\u{e9}]{1,8}", any::<Option<i64>>(), any::<Option<i64>>(), json_value(), any::<u8>()), 0..6),
            pretty in any::<bool>(),
            pit in any::<bool>(),
        ) {
            let hits: Vec<Value> = docs
                .iter()
                .map(|(source, id, seq_no, term, extra, shape)| {
                    // A `_source` is an object (OpenSearch refuses anything else).
                    let mut hit = json!({"_index": "idx", "_id": id, "_score": extra, "_source": {"v": source}});
                    if shape & 1 == 1 { hit["_seq_no"] = json!(seq_no); hit["_primary_term"] = json!(term); }
                    if shape & 2 == 2 { hit["sort"] = json!([seq_no, id]); }
                    if shape & 4 == 4 { hit["sort"] = json!([extra]); }
                    if shape & 8 == 8 { hit.as_object_mut().unwrap().remove("_source"); }
                    hit
                })
                .collect();
            let mut response = json!({"took": 3, "timed_out": false, "_shards": {"total": 2, "failed": 0, "failures": []}, "hits": {"total": {"value": docs.len(), "relation": "eq"}, "max_score": null, "hits": hits}});
            if pit {
                response["pit_id"] = json!("p1t");
            }
            let text = if pretty { serde_json::to_string_pretty(&response).unwrap() } else { response.to_string() };
            let walked = search(Arc::new(text.clone())).unwrap();
            let referenced = reference(Arc::new(text)).unwrap();
            prop_assert_eq!(summary(&walked), summary(&referenced));
        }
    }

    /// Saved pages like the consumer reads (1000 hits of about 300 bytes, sorted by `_seq_no`),
    /// decoded by the walker, by the serde_json reference and by sonic-rs (`LazyValue` for
    /// `_source` and `sort`). A benchmark, not a test: it prints the figures and asserts only
    /// that the decoders agree. Run it in release mode.
    #[test]
    #[ignore = "a benchmark: cargo test --release -p indexstream --lib decode_benchmark -- --ignored --nocapture"]
    fn decode_benchmark() {
        let pages: Vec<Arc<String>> = (0..50).map(|p| Arc::new(bench_page(p, 1000))).collect();
        let bytes: usize = pages.iter().map(|p| p.len()).sum();
        let hits = pages.len() * 1000;
        let rounds = 20;
        let time = |name: &str, f: &dyn Fn(&Arc<String>) -> usize| {
            let mut best = f64::MAX;
            for _ in 0..rounds {
                let started = std::time::Instant::now();
                let mut n = 0;
                for p in &pages {
                    n += f(p);
                }
                assert_eq!(n, hits);
                best = best.min(started.elapsed().as_secs_f64());
            }
            eprintln!(
                "decode {name:<10} {:>7.1} ns/hit {:>7.0} MB/s (best of {rounds} rounds over {} pages, {} MB)",
                best * 1e9 / hits as f64,
                bytes as f64 / best / 1e6,
                pages.len(),
                bytes / 1_000_000
            );
        };
        time("walker", &|p| search(p.clone()).unwrap().hits.hits.len());
        time("serde_json", &|p| {
            reference(p.clone()).unwrap().hits.hits.len()
        });
        time("sonic-rs", &|p| sonic_count(p));
        for p in pages.iter().take(3) {
            assert_eq!(
                summary(&search(p.clone()).unwrap()),
                summary(&reference(p.clone()).unwrap())
            );
            let w = search(p.clone()).unwrap();
            let s = sonic(p);
            assert_eq!(w.hits.hits.len(), s.len());
            for (a, (id, src)) in w.hits.hits.iter().zip(&s) {
                assert_eq!(
                    (&a.id, a.source.as_ref().unwrap().get()),
                    (id, src.as_str())
                );
            }
        }
    }

    /// The hits of a page as sonic-rs reads them, counted (`_source` borrowed, not copied, as
    /// the walker leaves it in the response text).
    fn sonic_count(text: &str) -> usize {
        sonic_hits(text, |_, _| ())
    }

    /// The hits of a page as sonic-rs reads them: id and the `_source` text, copied out for the
    /// comparison.
    fn sonic(text: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        sonic_hits(text, |id, source| {
            out.push((id.to_string(), source.to_string()))
        });
        out
    }

    /// Reads a page with sonic-rs and calls `each` with every hit's id and `_source` text.
    fn sonic_hits(text: &str, mut each: impl FnMut(&str, &str)) -> usize {
        #[derive(Deserialize)]
        struct Resp<'a> {
            #[serde(borrow)]
            hits: HitsOf<'a>,
        }
        #[derive(Deserialize)]
        struct HitsOf<'a> {
            #[serde(borrow)]
            hits: Vec<H<'a>>,
        }
        #[derive(Deserialize)]
        struct H<'a> {
            #[serde(rename = "_id")]
            id: String,
            #[serde(rename = "_index")]
            _index: String,
            #[serde(rename = "_seq_no")]
            _seq_no: Option<i64>,
            #[serde(rename = "_source", borrow)]
            source: sonic_rs::LazyValue<'a>,
            #[serde(borrow)]
            _sort: Option<sonic_rs::LazyValue<'a>>,
        }
        let r: Resp<'_> = sonic_rs::from_str(text).unwrap();
        for h in &r.hits.hits {
            each(&h.id, h.source.as_raw_str());
        }
        r.hits.hits.len()
    }

    /// A page as OpenSearch writes it for an exact-mode read: 3 shards' worth of audit events.
    fn bench_page(page: usize, n: usize) -> String {
        let hits: Vec<Value> = (0..n)
            .map(|i| {
                let seq = (page * n + i) as i64;
                json!({"_index": "audit", "_id": format!("evt-{seq}"), "_score": null, "_seq_no": seq, "_primary_term": 1,
                    "_source": {"@timestamp": "2026-11-01T10:00:00.123Z", "event": {"action": "login", "outcome": if i % 7 == 0 { "failure" } else { "success" }, "id": seq},
                        "user": {"name": format!("user-{}", i % 97), "roles": ["reader", "auditor"]}, "source": {"ip": format!("10.0.{}.{}", i % 255, i % 13)},
                        "message": "session opened for user with \"quoted\" text and a tab\tin it", "sent_at_ms": 1_762_000_000_000i64 + seq},
                    "sort": [seq]})
            })
            .collect();
        json!({"took": 5, "timed_out": false, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {"total": {"value": 10000, "relation": "gte"}, "max_score": null, "hits": hits}}).to_string()
    }
}

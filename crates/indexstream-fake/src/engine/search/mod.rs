//! `_search` and `_count`: request parsing ([`request`]), sort clauses and `search_after` keys
//! ([`sort`]), per-shard execution over one refresh generation ([`execute`]), and the response
//! body ([`render`]).
//!
//! A sorted page does not scan the shard when it can avoid it: when the first sort clause is
//! `_seq_no`, `_doc` or a single-valued field, the shard walks its ordered index from the
//! `search_after` position (clamped by any range the query puts on that key) and stops as soon
//! as the page is full and the next document no longer ties with the last one.

mod execute;
mod render;
mod request;
mod sort;

pub use execute::execute;
pub use render::{render_source, RenderOpts};
pub use request::{SearchRequest, SourceFilter, TrackTotal};
pub use sort::{After, PlanTarget};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn search_after_must_match_sort_length() {
        let e = SearchRequest::parse(Some(&json!({"sort": ["a", "b"], "search_after": [1]})), &[])
            .unwrap_err();
        assert_eq!(e.kind, "illegal_argument_exception");
    }

    #[test]
    fn unknown_body_key_names_its_token() {
        let e = SearchRequest::parse(Some(&json!({"match": {"foo": "bar"}})), &[]).unwrap_err();
        assert_eq!(e.reason, "Unknown key for a START_OBJECT in [match].");
    }

    #[test]
    fn url_sort_parses_orders() {
        let r = SearchRequest::parse(None, &[("sort".into(), "a:desc,b".into())]).unwrap();
        assert_eq!(r.sort.len(), 2);
        assert!(r.sort[0].desc);
        assert!(!r.sort[1].desc);
    }
}

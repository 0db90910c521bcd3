//! Reading a search response without parsing every `_source`.
//!
//! Most of a search response is `_source` text that the consumer passes on untouched, so instead
//! of building it with a full JSON parser the reader walks the response's structure: it finds
//! where each value begins and ends, hands each `_source` on as a slice of the response text
//! ([`Source`]), and parses with serde_json only the few small values it needs (`_id`,
//! `_seq_no`, `sort`, `_shards`, ...).
//!
//! The walk is strict where a broken answer could pass for a short one: every string, object and
//! array must be closed, brackets must match, nothing may follow the response, and a string may
//! not hold a raw control character (JSON requires them escaped). Numbers and literals inside a
//! `_source` are delimited, not checked: the cluster wrote them.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::types::{Hit, Hits, SearchResponse, ShardsSummary};
use crate::record::Source;
use crate::scan::Layout;
use crate::scan::{container_end, container_end_bytewise, plain_run_end};

/// Reads a `_search` response. The error says what is wrong and at which byte.
pub(crate) fn parse_search(text: Arc<String>) -> Result<SearchResponse, String> {
    let mut w = Walker::new(&text);
    let mut timed_out = false;
    let mut shards: Option<ShardsSummary> = None;
    let mut hits: Option<Vec<Hit>> = None;
    let mut pit_id: Option<String> = None;
    w.object(|w, key| {
        match key {
            "timed_out" => timed_out = w.typed()?,
            "_shards" => shards = Some(w.typed()?),
            "pit_id" => pit_id = w.typed()?,
            "hits" => {
                w.object(|w, key| {
                    if key == "hits" {
                        // A hit is a few hundred bytes: room for them all at once.
                        let mut list = Vec::with_capacity((text.len() / 256).min(10_000));
                        w.array(|w| {
                            list.push(w.hit(&text)?);
                            Ok(())
                        })?;
                        hits = Some(list);
                    } else {
                        w.skip_value(Extent::Long)?;
                    }
                    Ok(())
                })?;
            }
            _ => {
                w.skip_value(Extent::Long)?;
            }
        }
        Ok(())
    })?;
    w.end()?;
    Ok(SearchResponse {
        timed_out,
        shards: shards.ok_or("the response has no _shards")?,
        hits: Hits {
            hits: hits.ok_or("the response has no hits.hits")?,
        },
        pit_id,
    })
}

/// The last hit's `sort` values, found from the end of a response without reading the rest. The
/// response must end with that hit's `sort` array followed by the closing brackets of the hit,
/// `hits.hits`, `hits` and the response (as OpenSearch and Elasticsearch write it). A guess, to
/// be checked against the response once it is read: `None` when it does not end that way.
pub(crate) fn last_sort_hint(text: &str) -> Option<Vec<Value>> {
    let b = text.as_bytes();
    let mut end = b.len();
    for closing in [b'}', b'}', b']', b'}', b']'] {
        while end > 0 && matches!(b[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
            end -= 1;
        }
        if end == 0 || b[end - 1] != closing {
            return None;
        }
        end -= 1;
    }
    // `b[end]` closes the sort array. Inside a string a quote is escaped, so `"sort"` followed
    // by a colon is a key: the hit's own, or one in its `_source` (then the walk from it does
    // not end at `end`).
    const KEY: &str = "\"sort\"";
    let key = text[..end].rfind(KEY)?;
    let mut w = Walker::new(text);
    w.pos = key + KEY.len();
    w.expect(b':').ok()?;
    let values = w.sort_values(Keep::Values, &mut None).ok()??;
    (w.pos == end + 1).then_some(values)
}

type Walk<T> = Result<T, String>;

/// How long a value is expected to be: a long one (a `_source`) is walked a block of bytes at a
/// time, a short one byte by byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extent {
    Short,
    Long,
}

/// Whether a walk over sort values keeps them or only checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Values,
    Nothing,
}

/// A hit's `sort` values as the cluster sent them: checked when the response is read, turned
/// into values only when asked (most hits only need the first, an integer).
#[derive(Debug, Clone)]
pub struct SortValues {
    raw: Source,
    /// The first value, when it is an integer (found while checking them).
    first: Option<i64>,
}

impl SortValues {
    /// Sort values from their JSON text (a slice of a response), checked as the walker checks
    /// them; `None` for `null`.
    #[cfg(test)]
    pub(crate) fn from_raw(raw: Source) -> Result<Option<SortValues>, String> {
        let mut first = None;
        let mut w = Walker::new(raw.get());
        match w.sort_values(Keep::Nothing, &mut first)? {
            Some(_) => Ok(Some(SortValues { raw, first })),
            None => Ok(None),
        }
    }

    /// The values.
    pub fn values(&self) -> Vec<Value> {
        // Checked when the response was read, so this walk cannot fail.
        Walker::new(self.raw.get())
            .sort_values(Keep::Values, &mut None)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// The first value (the timestamp, in a timestamp-mode search). Nearly always an integer,
    /// read without building the other values; anything else is read in full.
    pub fn first(&self) -> Option<Value> {
        match self.first_integer() {
            Some(n) => Some(Value::from(n)),
            None => self.values().into_iter().next(),
        }
    }

    /// The first value, when it is an integer (a timestamp in epoch milliseconds or
    /// nanoseconds); `None` for anything else, which [`SortValues::values`] then reads.
    pub fn first_integer(&self) -> Option<i64> {
        self.first
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.raw.get()
    }
}

/// Whether a container has another element, or was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Element,
    Closed,
}

/// Whether a string's text holds escapes (and must be decoded before use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    None,
    Some,
}

struct Walker<'a> {
    text: &'a str,
    pos: usize,
    /// The closing brackets of the containers the walk is inside, innermost last.
    open: Vec<u8>,
}

impl<'a> Walker<'a> {
    fn new(text: &'a str) -> Self {
        Walker {
            text,
            pos: 0,
            open: Vec::new(),
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {} of the response", self.pos)
    }

    /// Skips whitespace; says whether it held a line break.
    fn whitespace(&mut self) -> Layout {
        let b = self.bytes();
        let mut layout = Layout::OneLine;
        while let Some(c) = b.get(self.pos) {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => layout = Layout::MultiLine,
                _ => break,
            }
            self.pos += 1;
        }
        layout
    }

    fn expect(&mut self, c: u8) -> Walk<()> {
        self.whitespace();
        if self.bytes().get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", char::from(c))))
        }
    }

    /// Nothing but whitespace may follow the response.
    fn end(&mut self) -> Walk<()> {
        self.whitespace();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(self.error("unexpected text after the response"))
        }
    }

    /// A string starting at the current byte (`"`): the range of its text, without the quotes.
    fn string(&mut self) -> Walk<(Range<usize>, Escapes)> {
        let b = self.bytes();
        self.pos += 1;
        let start = self.pos;
        let mut escapes = Escapes::None;
        loop {
            self.pos = plain_run_end(b, self.pos);
            match b.get(self.pos) {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start..self.pos - 1, escapes));
                }
                Some(b'\\') => {
                    escapes = Escapes::Some;
                    if self.pos + 1 >= b.len() {
                        return Err(self.error("unterminated string"));
                    }
                    self.pos += 2;
                }
                Some(_) => return Err(self.error("raw control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// A string value, decoded.
    fn text_value(&mut self) -> Walk<String> {
        self.whitespace();
        if self.bytes().get(self.pos) != Some(&b'"') {
            return Err(self.error("expected a string"));
        }
        let (range, escapes) = self.string()?;
        Ok(self.decode(range, escapes)?.into_owned())
    }

    fn decode(&self, range: Range<usize>, escapes: Escapes) -> Walk<Cow<'a, str>> {
        let text = self.text;
        match escapes {
            Escapes::None => Ok(Cow::Borrowed(&text[range])),
            Escapes::Some => serde_json::from_str::<String>(&text[range.start - 1..range.end + 1])
                .map(Cow::Owned)
                .map_err(|e| self.error(&format!("bad string: {e}"))),
        }
    }

    /// Skips one value of any kind: its range in the text, and whether it spans lines.
    fn skip_value(&mut self, extent: Extent) -> Walk<(Range<usize>, Layout)> {
        self.whitespace();
        let b = self.bytes();
        let start = self.pos;
        let mut layout = Layout::OneLine;
        match b.get(self.pos) {
            None => return Err(self.error("expected a value")),
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{' | b'[') => {
                let walk = match extent {
                    Extent::Short => container_end_bytewise,
                    Extent::Long => container_end,
                };
                let (end, spans) = walk(b, start, &mut self.open).map_err(|e| {
                    self.pos = e.at;
                    self.error(e.what)
                })?;
                self.pos = end;
                layout = spans;
            }
            Some(_) => {
                while let Some(c) = b.get(self.pos) {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error("expected a value"));
                }
            }
        }
        Ok((start..self.pos, layout))
    }

    /// The next value, parsed by serde_json.
    fn typed<T: DeserializeOwned>(&mut self) -> Walk<T> {
        let (range, _) = self.skip_value(Extent::Short)?;
        serde_json::from_str(&self.text[range.clone()])
            .map_err(|e| format!("{e} in {:?}", &self.text[range]))
    }

    /// A hit's `sort` values. They are nearly always integers and plain strings, read here
    /// directly; anything else goes to serde_json. With [`Keep::Nothing`] they are only checked
    /// (and nothing is allocated). `first` is set to the first value when that is an integer.
    fn sort_values(&mut self, keep: Keep, first: &mut Option<i64>) -> Walk<Option<Vec<Value>>> {
        self.whitespace();
        let start = self.pos;
        if self.bytes().get(self.pos) != Some(&b'[') {
            return self.sort_values_fallback(start, keep);
        }
        self.pos += 1;
        let mut values = Vec::new();
        let mut index = 0usize;
        loop {
            self.whitespace();
            let b = self.bytes();
            let value = match b.get(self.pos) {
                Some(b'"') => {
                    let (range, escapes) = self.string()?;
                    match (keep, escapes) {
                        (Keep::Nothing, Escapes::None) => Value::Null,
                        _ => Value::String(self.decode(range, escapes)?.into_owned()),
                    }
                }
                Some(b'-' | b'0'..=b'9') => match self.sort_integer() {
                    Some(n) => {
                        if index == 0 {
                            *first = Some(n);
                        }
                        Value::from(n)
                    }
                    None => return self.sort_values_fallback(start, keep),
                },
                _ => return self.sort_values_fallback(start, keep),
            };
            if keep == Keep::Values {
                values.push(value);
            }
            index += 1;
            if self.after_element(b']')? == Next::Closed {
                return Ok(Some(values));
            }
        }
    }

    /// An integer sort value at the current byte (`None`, and nothing consumed that matters, when
    /// it is not one that fits an `i64`).
    fn sort_integer(&mut self) -> Option<i64> {
        let b = self.bytes();
        let from = self.pos;
        self.pos += 1;
        while b.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
        if matches!(b.get(self.pos), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.text[from..self.pos].parse().ok()
    }

    fn sort_values_fallback(&mut self, start: usize, keep: Keep) -> Walk<Option<Vec<Value>>> {
        self.pos = start;
        match keep {
            Keep::Values => self.typed(),
            Keep::Nothing => self
                .typed::<Option<Vec<serde::de::IgnoredAny>>>()
                .map(|v| v.map(|_| Vec::new())),
        }
    }

    /// An integer or `null`.
    fn integer(&mut self) -> Walk<Option<i64>> {
        let (range, _) = self.skip_value(Extent::Short)?;
        match &self.text[range] {
            "null" => Ok(None),
            digits => digits
                .parse()
                .map(Some)
                .map_err(|_| self.error(&format!("expected an integer, not {digits:?}"))),
        }
    }

    /// The opening bracket of an object or array: whether an element follows or it is empty.
    #[inline]
    fn open_container(&mut self, open: u8, close: u8) -> Walk<Next> {
        self.expect(open)?;
        self.whitespace();
        if self.bytes().get(self.pos) == Some(&close) {
            self.pos += 1;
            return Ok(Next::Closed);
        }
        Ok(Next::Element)
    }

    /// What follows an element of an object or array: a comma and another element, or the
    /// closing bracket.
    #[inline]
    fn after_element(&mut self, close: u8) -> Walk<Next> {
        self.whitespace();
        match self.bytes().get(self.pos) {
            Some(b',') => {
                self.pos += 1;
                Ok(Next::Element)
            }
            Some(&c) if c == close => {
                self.pos += 1;
                Ok(Next::Closed)
            }
            _ => Err(self.expected_separator(close)),
        }
    }

    #[cold]
    fn expected_separator(&self, close: u8) -> String {
        self.error(&format!("expected ',' or '{}'", char::from(close)))
    }

    /// An object: `each` is called with every key and must consume its value.
    fn object(&mut self, mut each: impl FnMut(&mut Self, &str) -> Walk<()>) -> Walk<()> {
        let mut next = self.open_container(b'{', b'}')?;
        while next == Next::Element {
            self.whitespace();
            if self.bytes().get(self.pos) != Some(&b'"') {
                return Err(self.error("expected a key"));
            }
            let (range, escapes) = self.string()?;
            let key = self.decode(range, escapes)?;
            self.expect(b':')?;
            each(self, &key)?;
            next = self.after_element(b'}')?;
        }
        Ok(())
    }

    /// An array: `each` is called for every element and must consume it.
    fn array(&mut self, mut each: impl FnMut(&mut Self) -> Walk<()>) -> Walk<()> {
        let mut next = self.open_container(b'[', b']')?;
        while next == Next::Element {
            each(self)?;
            next = self.after_element(b']')?;
        }
        Ok(())
    }

    /// One element of `hits.hits`; `text` is the response the walk reads.
    fn hit(&mut self, text: &Arc<String>) -> Walk<Hit> {
        let mut index = None;
        let mut id = None;
        let mut seq_no = None;
        let mut primary_term = None;
        let mut source = None;
        let mut sort = None;
        self.object(|w, key| {
            match key {
                "_index" => index = Some(w.text_value()?),
                "_id" => id = Some(w.text_value()?),
                "_seq_no" => seq_no = w.integer()?,
                "_primary_term" => primary_term = w.integer()?,
                "sort" => {
                    let start = {
                        w.whitespace();
                        w.pos
                    };
                    let mut first = None;
                    if w.sort_values(Keep::Nothing, &mut first)?.is_some() {
                        let raw = Source::slice(text, start..w.pos, Layout::OneLine);
                        sort = Some(SortValues { raw, first });
                    }
                }
                "_source" => {
                    let (range, layout) = w.skip_value(Extent::Long)?;
                    source = Some(Source::slice(text, range, layout));
                }
                _ => {
                    w.skip_value(Extent::Long)?;
                }
            }
            Ok(())
        })?;
        Ok(Hit {
            index: index.ok_or_else(|| self.error("a hit without _index"))?,
            id: id.ok_or_else(|| self.error("a hit without _id"))?,
            seq_no,
            primary_term,
            source,
            sort,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tests::json_value;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<SearchResponse, String> {
        parse_search(Arc::new(text.to_string()))
    }

    #[test]
    fn a_typical_response_is_read() {
        let body = r#"{"took":1,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},
            "hits":{"total":{"value":2,"relation":"eq"},"max_score":null,"hits":[
            {"_index":"logs","_id":"a","_seq_no":3,"_primary_term":1,"_score":null,"_source":{"x":"y","n":[1,{"z":null}]},"sort":[3]},
            {"_index":"logs","_id":"b\"q","_version":2,"_source":{
               "pretty": true
            },"sort":["2026-01-01T00:00:00Z","b"]},
            {"_index":"logs","_id":"c","_seq_no":5}]},"pit_id":"abc"}"#;
        let r = parse(body).unwrap();
        assert!(!r.timed_out);
        assert_eq!(r.shards.failed, 0);
        assert_eq!(r.pit_id.as_deref(), Some("abc"));
        let h = &r.hits.hits;
        assert_eq!(h.len(), 3);
        assert_eq!((h[0].index.as_str(), h[0].id.as_str()), ("logs", "a"));
        assert_eq!((h[0].seq_no, h[0].primary_term), (Some(3), Some(1)));
        assert_eq!(
            h[0].source.as_ref().unwrap().get(),
            r#"{"x":"y","n":[1,{"z":null}]}"#
        );
        assert_eq!(h[0].sort.as_ref().unwrap().values(), vec![json!(3)]);
        assert_eq!(h[0].sort.as_ref().unwrap().first_integer(), Some(3));
        assert_eq!(h[1].sort.as_ref().unwrap().first_integer(), None);
        assert_eq!(h[1].id, "b\"q");
        assert_eq!(h[1].seq_no, None);
        let pretty = h[1].source.as_ref().unwrap();
        assert_eq!(pretty.to_value().unwrap(), json!({"pretty": true}));
        assert_eq!(pretty.layout(), Layout::MultiLine);
        assert_eq!(h[0].source.as_ref().unwrap().layout(), Layout::OneLine);
        assert!(h[2].source.is_none() && h[2].sort.is_none());
        // Sort values other than integers and plain strings are read by serde_json.
        for sort in [
            r#"[-5, "a\u0062", 18446744073709551615]"#,
            r#"[1.5, true, null, {"x": 1}, [2]]"#,
            "[ ]",
            "null",
            r#"[1e3, -0, "x"]"#,
        ] {
            let body = format!(
                r#"{{"_shards":{{"total":1,"failed":0}},"hits":{{"hits":[{{"_index":"i","_id":"a","sort":{sort}}}]}}}}"#
            );
            let expected: Option<Vec<Value>> = serde_json::from_str(sort).unwrap();
            let got = parse(&body).unwrap().hits.hits.remove(0).sort;
            assert_eq!(got.map(|s| s.values()), expected, "{sort}");
        }
        // Sort values are checked when the response is read, as the rest of it.
        for sort in ["[tru]", "[1.2.3]", r#"["\x"]"#, "[1,]", "{}"] {
            let body = format!(
                r#"{{"_shards":{{"total":1,"failed":0}},"hits":{{"hits":[{{"_index":"i","_id":"a","sort":{sort}}}]}}}}"#
            );
            assert!(parse(&body).is_err(), "accepted {sort}");
        }
    }

    #[test]
    fn a_broken_response_is_an_error_never_a_short_answer() {
        let good = r#"{"timed_out":false,"_shards":{"total":1,"failed":0},"hits":{"hits":[{"_index":"i","_id":"a","_source":{"s":"t\"x","a":[1,2]}},{"_index":"i","_id":"b","_source":{}}]}}"#;
        assert_eq!(parse(good).unwrap().hits.hits.len(), 2);
        // Every truncation fails: a response cut short must not look like fewer documents.
        for cut in 0..good.len() {
            assert!(parse(&good[..cut]).is_err(), "accepted {:?}", &good[..cut]);
        }
        for bad in [
            good.replace("[1,2]", "[1,2}"),
            good.replace("\"t", "\"\u{1}t"),
            format!("{good} x"),
            good.replace(r#""_id":"a","#, ""),
            good.replace(r#""_shards":{"total":1,"failed":0},"#, ""),
            good.replace(r#""timed_out":false"#, r#""timed_out":"no""#),
        ] {
            assert!(parse(&bad).is_err(), "accepted {bad}");
        }
        let e = parse(&good[..40]).unwrap_err();
        assert!(e.contains("byte"), "{e}");
    }

    proptest! {
        /// Whatever the documents hold, and whether the cluster writes the response compact or
        /// pretty-printed, the reader finds what a full JSON parse finds.
        #[test]
        fn the_reader_agrees_with_a_full_parse(
            docs in prop::collection::vec((json_value(), "[a-z0-9\"\\\\\u{e9}]{1,8}", any::<Option<i64>>(), json_value()), 0..6),
            pretty in any::<bool>(),
        ) {
            let hits: Vec<Value> = docs
                .iter()
                .map(|(source, id, seq_no, extra)| {
                    json!({"_index": "idx", "_id": id, "_seq_no": seq_no, "_score": extra, "_source": source, "sort": [seq_no, id]})
                })
                .collect();
            let response = json!({"took": 3, "timed_out": false, "_shards": {"total": 2, "failed": 0, "failures": []}, "hits": {"max_score": null, "hits": hits}});
            let text = if pretty {
                serde_json::to_string_pretty(&response).unwrap()
            } else {
                response.to_string()
            };
            let r = parse(&text).unwrap();
            let full: Value = serde_json::from_str(&text).unwrap();
            prop_assert_eq!(r.hits.hits.len(), docs.len());
            for (i, (hit, (_, id, seq_no, _))) in r.hits.hits.iter().zip(&docs).enumerate() {
                prop_assert_eq!(&hit.id, id);
                prop_assert_eq!(hit.seq_no, *seq_no);
                let got = hit.source.as_ref().unwrap();
                prop_assert_eq!(&got.to_value().unwrap(), &full["hits"]["hits"][i]["_source"]);
                let breaks = got.get().contains(['\n', '\r']);
                prop_assert_eq!(got.layout() == Layout::MultiLine, breaks);
                let sort = hit.sort.as_ref().unwrap();
                prop_assert_eq!(sort.values(), vec![json!(seq_no), json!(id)]);
                prop_assert_eq!(sort.first_integer(), *seq_no);
            }
        }

        /// The guess of the last hit's sort values from the end of a response is never wrong:
        /// it is what the reader finds, or nothing. It is found whenever each hit ends with its
        /// `sort` (as OpenSearch writes hits), whatever the documents hold (keys named `sort`
        /// among them) and however much whitespace there is.
        #[test]
        fn the_last_sort_values_guessed_from_the_end_are_right_or_absent(
            docs in prop::collection::vec((json_value(), json_value(), "[a-z0-9\"\\\\\\]\u{e9}]{1,8}", any::<i64>(), any::<bool>()), 1..5),
            space in "[ \n]{0,2}",
        ) {
            let hits: Vec<String> = docs
                .iter()
                .map(|(source, nested, id, n, sort_first)| {
                    let source = json!({"sort": nested, "x": source, "y": {"sort": [n]}});
                    let sort = json!([n, id]).to_string();
                    let fields = if *sort_first {
                        format!("\"sort\":{sort},\"_source\":{source}")
                    } else {
                        format!("\"_source\":{source},{space}\"sort\":{space}{sort}")
                    };
                    format!("{{\"_index\":\"i\",\"_id\":{},{fields}{space}}}", json!(id))
                })
                .collect();
            let text = format!(
                "{{\"took\":1,\"timed_out\":false,\"_shards\":{{\"total\":1,\"failed\":0}},\"hits\":{{\"hits\":[{}]{space}}}{space}}}{space}",
                hits.join(",")
            );
            let guess = last_sort_hint(&text);
            let read = parse(&text).unwrap();
            let last = read.hits.hits.last().unwrap().sort.as_ref().unwrap().values();
            let (_, _, _, _, sort_first) = docs.last().unwrap();
            if *sort_first {
                prop_assert_eq!(guess, None);
            } else {
                prop_assert_eq!(guess, Some(last));
            }
        }
    }

    #[test]
    fn the_first_sort_value_is_kept_when_it_is_an_integer() {
        let body = |sort: &str| {
            format!(
                r#"{{"_shards":{{"total":1,"failed":0}},"hits":{{"hits":[{{"_index":"i","_id":"a","sort":{sort}}}]}}}}"#
            )
        };
        let first = |sort: &str| {
            let r = parse(&body(sort)).unwrap();
            let s = r.hits.hits[0].sort.clone().unwrap();
            (s.first_integer(), s.first(), s.values())
        };
        assert_eq!(
            first("[5,1.5]"),
            (Some(5), Some(json!(5)), vec![json!(5), json!(1.5)])
        );
        assert_eq!(
            first(r#"["a",3]"#),
            (None, Some(json!("a")), vec![json!("a"), json!(3)])
        );
        assert_eq!(first("[-7]"), (Some(-7), Some(json!(-7)), vec![json!(-7)]));
        assert_eq!(
            first("[1e3]"),
            (None, Some(json!(1000.0)), vec![json!(1000.0)])
        );
    }

    #[test]
    fn no_guess_from_a_response_that_ends_otherwise() {
        for text in [
            r#"{"hits":{"hits":[]}}"#,
            r#"{"hits":{"hits":[{"_id":"a","_source":{"sort":[1]}}]}}"#,
            r#"{"hits":{"hits":[{"_id":"a","sort":[1]}]},"aggregations":{}}"#,
            r#"{"hits":{"hits":[{"_id":"a","sort":[1,"x"]}]}"#,
            r#"{"hits":{"hits":[{"_id":"a","sort":[1]},{"_id":"b"}]}}"#,
            "",
        ] {
            assert_eq!(last_sort_hint(text), None, "{text}");
        }
        assert_eq!(
            last_sort_hint(r#"{"hits":{"hits":[{"_id":"a","sort" : [ 1 , "x\"y]" ] } ] } }"#),
            Some(vec![json!(1), json!("x\"y]")])
        );
    }
}

//! A delivered document.

use crate::scan::Layout;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// One document handed to the sink.
#[derive(Debug, Clone)]
pub struct Record {
    /// The concrete index it was read from.
    pub index: String,
    /// The document's `_id`.
    pub id: String,
    /// The shard it was read from (exact mode).
    pub shard: Option<u32>,
    /// Its `_seq_no` (exact mode): an updated document is delivered again with a new one.
    pub seq_no: Option<i64>,
    /// Its `_primary_term` (exact mode).
    pub primary_term: Option<i64>,
    /// The timestamp-mode cursor value, as the cluster sorted it.
    pub timestamp: Option<serde_json::Value>,
    /// The `_source`, as the cluster sent it.
    pub source: Source,
}

/// A document's `_source` exactly as the cluster sent it: a slice of the search response it came
/// in, shared rather than copied. Holding one keeps that response's text alive; [`Source::detach`]
/// copies it out when a record is kept for long.
#[derive(Clone)]
pub struct Source {
    text: Arc<String>,
    span: Range<usize>,
    layout: Layout,
}

impl Source {
    /// A source from JSON text, checked; for tests and for records made outside the consumer.
    pub fn from_json(json: &str) -> Result<Source, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(json)?;
        let trimmed = json.trim();
        let layout = if has_line_break(trimmed.as_bytes()) {
            Layout::MultiLine
        } else {
            Layout::OneLine
        };
        Ok(Source {
            text: Arc::new(trimmed.to_string()),
            span: 0..trimmed.len(),
            layout,
        })
    }

    /// The JSON `null` (a hit without `_source`).
    pub fn null() -> Source {
        Source {
            text: Arc::new("null".to_string()),
            span: 0..4,
            layout: Layout::OneLine,
        }
    }

    /// `span` of `text`, which the response reader has found to be one JSON value.
    pub(crate) fn slice(text: &Arc<String>, span: Range<usize>, layout: Layout) -> Source {
        Source {
            text: Arc::clone(text),
            span,
            layout,
        }
    }

    #[cfg(test)]
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.text[self.span.clone()]
    }

    /// The same source in its own allocation, no longer holding the response it came in.
    pub fn detach(&self) -> Source {
        Source {
            text: Arc::new(self.get().to_string()),
            span: 0..self.span.len(),
            layout: self.layout,
        }
    }

    /// Parsed into a [`serde_json::Value`].
    pub fn to_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(self.get())
    }

    /// Appends the source on one line: as sent, or re-serialized when the cluster sent it across
    /// several lines.
    pub(crate) fn push_one_line(&self, out: &mut String) {
        match self.layout {
            Layout::OneLine => out.push_str(self.get()),
            Layout::MultiLine => match self.to_value() {
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => out.push_str("null"),
            },
        }
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl PartialEq for Source {
    fn eq(&self, other: &Source) -> bool {
        self.get() == other.get()
    }
}

impl Record {
    /// The stable key of this version of the document: `index/id/seq_no` in exact mode,
    /// `index/id/timestamp` in timestamp mode, `index/id` otherwise. A redelivery has the same
    /// key; an update of the document (exact mode) another.
    pub fn position_key(&self) -> String {
        match (&self.seq_no, &self.timestamp) {
            (Some(seq), _) => format!("{}/{}/{seq}", self.index, self.id),
            (None, Some(serde_json::Value::String(ts))) => {
                format!("{}/{}/{ts}", self.index, self.id)
            }
            (None, Some(ts)) => format!("{}/{}/{ts}", self.index, self.id),
            (None, None) => format!("{}/{}", self.index, self.id),
        }
    }

    /// The JSON Lines form sinks write: `index`, `id`, `source`, and `shard`, `seq_no`,
    /// `primary_term` in exact mode (`timestamp` in timestamp mode). No trailing newline.
    pub fn to_json_line(&self, out: &mut String) {
        out.push_str("{\"index\":");
        push_str(out, &self.index);
        out.push_str(",\"id\":");
        push_str(out, &self.id);
        if let Some(s) = self.shard {
            out.push_str(",\"shard\":");
            push_int(out, i64::from(s));
        }
        if let Some(s) = self.seq_no {
            out.push_str(",\"seq_no\":");
            push_int(out, s);
        }
        if let Some(t) = self.primary_term {
            out.push_str(",\"primary_term\":");
            push_int(out, t);
        }
        if let Some(ts) = &self.timestamp {
            out.push_str(",\"timestamp\":");
            match ts {
                serde_json::Value::String(s) => push_str(out, s),
                other => out.push_str(&other.to_string()),
            }
        }
        out.push_str(",\"source\":");
        self.source.push_one_line(out);
        out.push('}');
    }
}

/// Whether `s` holds a `\n` or `\r`.
fn has_line_break(s: &[u8]) -> bool {
    s.contains(&b'\n') || s.contains(&b'\r')
}

/// Appends `v` in decimal (with `itoa`: the `fmt` machinery costs more than the digits).
pub(crate) fn push_int(out: &mut String, v: i64) {
    out.push_str(itoa::Buffer::new().format(v));
}

/// Appends `s` as a JSON string: as is when nothing in it needs escaping (the common case, and
/// no copy), else escaped by serde_json.
pub(crate) fn push_str(out: &mut String, s: &str) {
    if crate::scan::plain_run_end(s.as_bytes(), 0) == s.len() {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_are_found_anywhere() {
        for n in [0, 1, 31, 32, 33, 100] {
            let mut s = vec![b'x'; n];
            assert!(!has_line_break(&s));
            for at in 0..n {
                for c in [b'\n', b'\r'] {
                    s[at] = c;
                    assert!(has_line_break(&s), "{n} {at}");
                    s[at] = b'x';
                }
            }
        }
    }

    #[test]
    fn json_lines_are_single_lines_with_the_contract_fields() {
        let r = Record {
            index: "i".into(),
            id: "a\"b".into(),
            shard: Some(2),
            seq_no: Some(7),
            primary_term: Some(1),
            timestamp: None,
            source: Source::from_json("{\n\"x\": 1}").unwrap(),
        };
        let mut line = String::new();
        r.to_json_line(&mut line);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["seq_no"], 7);
        assert_eq!(v["shard"], 2);
        assert_eq!(v["source"]["x"], 1);
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for v in [0, 7, -1, 10, 99, 100, i64::MAX, i64::MIN, -123_456_789] {
            let mut s = String::new();
            push_int(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn a_source_is_checked_and_can_be_detached() {
        assert!(Source::from_json("{\"a\":").is_err());
        let s = Source::from_json(" {\"a\": [1, 2]} ").unwrap();
        assert_eq!(s.get(), "{\"a\": [1, 2]}");
        assert_eq!(s.detach(), s);
        assert_eq!(s.to_value().unwrap()["a"][1], 2);
    }
}

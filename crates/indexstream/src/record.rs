//! A delivered document.

use serde_json::value::RawValue;

/// One document handed to the sink.
#[derive(Debug, Clone)]
pub struct Record {
    pub index: String,
    pub id: String,
    /// The shard it was read from (exact mode).
    pub shard: Option<u32>,
    /// Its `_seq_no` (exact mode): an updated document is delivered again with a new one.
    pub seq_no: Option<i64>,
    pub primary_term: Option<i64>,
    /// The timestamp-mode cursor value, as the cluster sorted it.
    pub timestamp: Option<serde_json::Value>,
    /// The `_source`, as the cluster sent it.
    pub source: Box<RawValue>,
}

impl Record {
    /// The JSON Lines form sinks write: `index`, `id`, `source`, and `shard`, `seq_no`,
    /// `primary_term` in exact mode (`timestamp` in timestamp mode). No trailing newline.
    pub fn to_json_line(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("{\"index\":");
        push_str(out, &self.index);
        out.push_str(",\"id\":");
        push_str(out, &self.id);
        if let Some(s) = self.shard {
            let _ = write!(out, ",\"shard\":{s}");
        }
        if let Some(s) = self.seq_no {
            let _ = write!(out, ",\"seq_no\":{s}");
        }
        if let Some(t) = self.primary_term {
            let _ = write!(out, ",\"primary_term\":{t}");
        }
        if let Some(ts) = &self.timestamp {
            out.push_str(",\"timestamp\":");
            out.push_str(&ts.to_string());
        }
        out.push_str(",\"source\":");
        // The cluster's JSON may contain newlines; a line must not.
        let raw = self.source.get();
        if has_line_break(raw.as_bytes()) {
            match serde_json::from_str::<serde_json::Value>(raw) {
                Ok(v) => out.push_str(&v.to_string()),
                Err(_) => out.push_str("null"),
            }
        } else {
            out.push_str(raw);
        }
        out.push('}');
    }
}

/// Whether `s` holds a `\n` or `\r` (`memchr` twice beats one hand-written pass).
fn has_line_break(s: &[u8]) -> bool {
    s.contains(&b'\n') || s.contains(&b'\r')
}

fn push_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::String(s.to_string()).to_string());
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
            source: RawValue::from_string("{\n\"x\": 1}".into()).unwrap(),
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
}

//! What the consumer reads of index mappings: a field's type, and the date fields there are.

use reqwest::Method;
use serde_json::Value;

use super::{encode, Client, ClientError};

impl Client {
    /// The mapped type of `field` (a dotted path) in every concrete index behind `expr`;
    /// `None` where the index does not map it (yet).
    pub(crate) async fn field_types(
        &self,
        expr: &str,
        field: &str,
    ) -> Result<Vec<(String, Option<String>)>, ClientError> {
        let mut out = Vec::new();
        if let Value::Object(indices) = self.mappings(expr).await? {
            for (index, m) in indices {
                out.push((index, mapped_type(&m["mappings"], field)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// `GET <expr>/_mapping`: index name to its mapping.
    async fn mappings(&self, expr: &str) -> Result<Value, ClientError> {
        self.json(
            "mapping",
            Method::GET,
            &format!("/{}/_mapping", encode(expr)),
            &[("allow_no_indices", "true".into())],
            None,
        )
        .await
    }

    /// The `date` and `date_nanos` fields mapped in any index behind `expr`, dotted, sorted.
    pub(crate) async fn date_fields(&self, expr: &str) -> Result<Vec<String>, ClientError> {
        let mut out = std::collections::BTreeSet::new();
        if let Value::Object(indices) = self.mappings(expr).await? {
            for m in indices.values() {
                collect_date_fields(&m["mappings"], "", &mut out);
            }
        }
        Ok(out.into_iter().collect())
    }
}

fn collect_date_fields(
    mapping: &Value,
    prefix: &str,
    out: &mut std::collections::BTreeSet<String>,
) {
    let Some(props) = mapping["properties"].as_object() else {
        return;
    };
    for (name, m) in props {
        let path = format!("{prefix}{name}");
        if matches!(m["type"].as_str(), Some("date" | "date_nanos")) {
            out.insert(path.clone());
        }
        collect_date_fields(m, &format!("{path}."), out);
    }
}

/// The type of a dotted field path in a mapping: `a.b` as an object `a` with a property `b`, or
/// as a property literally named `a.b`.
fn mapped_type(mapping: &Value, field: &str) -> Option<String> {
    if let Some(t) = mapping["properties"][field]["type"].as_str() {
        return Some(t.to_string());
    }
    let (head, rest) = field.split_once('.')?;
    mapped_type(&mapping["properties"][head], rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_and_date_fields_are_found_in_objects() {
        let m = json!({"properties": {
            "@timestamp": {"type": "date"},
            "event": {"properties": {"ingested": {"type": "date_nanos"}, "kind": {"type": "keyword"}}},
            "a.b": {"type": "long"},
        }});
        assert_eq!(
            mapped_type(&m, "event.ingested").as_deref(),
            Some("date_nanos")
        );
        assert_eq!(mapped_type(&m, "a.b").as_deref(), Some("long"));
        assert_eq!(mapped_type(&m, "nope"), None);
        let mut dates = std::collections::BTreeSet::new();
        collect_date_fields(&m, "", &mut dates);
        assert_eq!(
            dates.into_iter().collect::<Vec<_>>(),
            vec!["@timestamp".to_string(), "event.ingested".to_string()]
        );
    }
}

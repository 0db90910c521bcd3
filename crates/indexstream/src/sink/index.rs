//! `index:NAME` and `index:URL/NAME`: documents written to an index, of the source cluster or of
//! another, with `_bulk` and the source `_id`.
//!
//! In exact mode every record carries its `_seq_no`, written as an external version: a
//! redelivery after a crash is a version conflict, counted as already applied, and an update of
//! the source (a higher `_seq_no`) replaces the older copy, so the target holds each source
//! document once, at its latest version. In timestamp mode a record is an overwrite by `_id`.

use super::{Sink, SinkError};
use crate::client::{Client, ClientError};
use crate::record::{push_int, push_str, Record};

/// A sink writing records to one index with `_bulk`. A batch is acknowledged once the cluster
/// answered every item (a write the cluster acknowledged is in its translog).
#[derive(Debug)]
pub struct IndexSink {
    client: Client,
    index: String,
    body: String,
}

impl IndexSink {
    /// A sink writing to `index` through `client` (its own client: its retries and breaker are
    /// the sink's, not the reader's).
    pub fn new(client: Client, index: impl Into<String>) -> Self {
        IndexSink {
            client,
            index: index.into(),
            body: String::new(),
        }
    }

    /// The target index.
    pub fn index(&self) -> &str {
        &self.index
    }

    fn action_line(&mut self, r: &Record) {
        self.body.push_str("{\"index\":{\"_index\":");
        push_str(&mut self.body, &self.index);
        self.body.push_str(",\"_id\":");
        push_str(&mut self.body, &r.id);
        if let Some(seq) = r.seq_no {
            self.body.push_str(",\"version\":");
            push_int(&mut self.body, seq);
            self.body.push_str(",\"version_type\":\"external\"");
        }
        self.body.push_str("}}\n");
        r.source.push_one_line(&mut self.body);
        self.body.push('\n');
    }
}

/// What one item's status says about its record.
fn item_outcome(status: u16, error: Option<&serde_json::Value>, external: bool) -> ItemOutcome {
    match status {
        200..=299 => ItemOutcome::Applied,
        // The target holds this version or a newer one: a redelivery.
        409 if external => ItemOutcome::Applied,
        429 | 500..=599 => ItemOutcome::Retry(reason(status, error)),
        _ => ItemOutcome::Refused(reason(status, error)),
    }
}

enum ItemOutcome {
    Applied,
    Retry(String),
    Refused(String),
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

fn request_error(index: &str, e: ClientError) -> SinkError {
    let retriable = e.is_retriable();
    let message = format!("cannot write to the index {index}: {e}");
    if retriable {
        SinkError::transient(message)
    } else {
        SinkError::permanent(message)
    }
}

impl Sink for IndexSink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.write_each(records).await.map_err(|(_, e)| e)
    }

    /// Every write was acknowledged by its `_bulk` response.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// One `_bulk` for the batch; the first item that failed is named, so that the consumer
    /// retries (or dead-letters) that record alone and sends the rest again (applied ones come
    /// back as version conflicts, or overwrite themselves).
    async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
        if records.is_empty() {
            return Ok(());
        }
        self.body.clear();
        for r in records {
            self.action_line(r);
        }
        let body = std::mem::take(&mut self.body);
        let response = self
            .client
            .bulk(body, false)
            .await
            .map_err(|e| (0, request_error(&self.index, e)))?;
        if !response.errors {
            return Ok(());
        }
        if response.results().count() != records.len() {
            return Err((
                0,
                SinkError::transient(format!(
                    "the index {}: a _bulk of {} answered {} items",
                    self.index,
                    records.len(),
                    response.results().count()
                )),
            ));
        }
        for (i, (item, r)) in response.results().zip(records).enumerate() {
            match item_outcome(item.status, item.error.as_ref(), r.seq_no.is_some()) {
                ItemOutcome::Applied => {}
                ItemOutcome::Retry(why) => {
                    return Err((
                        i,
                        SinkError::transient(format!(
                            "the index {} did not take {}: {why}",
                            self.index, r.id
                        )),
                    ))
                }
                ItemOutcome::Refused(why) => {
                    return Err((
                        i,
                        SinkError::permanent(format!(
                            "the index {} refused {}: {why}",
                            self.index, r.id
                        )),
                    ))
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_count_as_applied_only_with_external_versions() {
        assert!(matches!(
            item_outcome(201, None, true),
            ItemOutcome::Applied
        ));
        assert!(matches!(
            item_outcome(409, None, true),
            ItemOutcome::Applied
        ));
        assert!(matches!(
            item_outcome(409, None, false),
            ItemOutcome::Refused(_)
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
        match item_outcome(400, Some(&e), true) {
            ItemOutcome::Refused(why) => {
                assert_eq!(why, "400 mapper_parsing_exception: bad field")
            }
            _ => panic!("a 400 is refused"),
        }
    }
}

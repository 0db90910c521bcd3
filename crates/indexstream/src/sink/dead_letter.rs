//! Where poison documents go (`--dead-letter`): a file (`file:PATH`) or an index
//! (`index:NAME`, `index:URL/NAME`). Each entry holds the record, the error and the time, and is
//! durable before the commit that moves past it: the run flushes the dead letters before the
//! sink's flush that the commit waits for.

use std::io::Write;
use std::path::PathBuf;

use super::{IndexSink, Sink, SinkError, Versioning};
use crate::client::ClientConfig;
use crate::record::Record;

/// Where poison documents go, as `--dead-letter` names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
#[non_exhaustive]
pub enum DeadLetter {
    /// `file:PATH`: one JSON line per entry, appended and synced.
    File(PathBuf),
    /// `index:NAME` (the source cluster) or `index:URL/NAME` (another cluster, no auth): one
    /// document per entry, created with a mapping that indexes only `error` and `failed_at`
    /// (the record is kept in `_source` as it was, so a document refused for its mapping is
    /// not refused again here).
    Index {
        /// The other cluster's URL; `None` for the source cluster.
        cluster: Option<String>,
        /// The dead-letter index.
        index: String,
    },
}

impl DeadLetter {
    /// Parses a `--dead-letter` value; the error names the value and the forms accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let forms = "expected file:PATH, index:NAME or index:URL/NAME";
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err(format!("dead letters {s:?} name no file: {forms}"));
            }
            return Ok(DeadLetter::File(path.into()));
        }
        if let Some(target) = s.strip_prefix("index:") {
            let (cluster, index) = super::parse_index_target(target).map_err(|why| {
                if why == super::URL_CREDENTIALS {
                    // Dead letters take no options: a secured other cluster is not for them.
                    "dead letters index:URL/NAME: the URL holds credentials, which would show wherever the destination is named; dead letters go to another cluster without authentication only (or to the source cluster's index:NAME, or a file:PATH)".to_string()
                } else {
                    format!("dead letters {s:?}: {why}")
                }
            })?;
            return Ok(DeadLetter::Index { cluster, index });
        }
        Err(format!("unknown dead-letter destination {s:?}: {forms}"))
    }

    /// Refuses an index of the source cluster that the consumed `expression` or the offsets
    /// index names (the consumer would read its dead letters), or that is the sink's index.
    pub fn check_against(
        &self,
        expression: &str,
        offsets_index: &str,
        sink: &super::SinkSpec,
    ) -> Result<(), String> {
        let DeadLetter::Index {
            cluster: None,
            index,
        } = self
        else {
            return Ok(());
        };
        if let super::SinkSpec::Index {
            cluster: None,
            index: sink_index,
            ..
        } = sink
        {
            if sink_index == index {
                return Err(format!(
                    "the dead-letter index {index:?} is the sink's index"
                ));
            }
        }
        super::check_not_read("dead-letter", index, expression, offsets_index)
    }

    /// Opens it: a file is opened for appending (created if missing); an index is created with
    /// its mapping if missing, through a client connected as `source` (or to the other cluster).
    pub async fn open(
        &self,
        source: &crate::client::ClientConfig,
    ) -> Result<DeadLetterSink, SinkError> {
        match self {
            DeadLetter::File(path) => Ok(DeadLetterSink::File(DeadLetterFile::open(path)?)),
            DeadLetter::Index { cluster, index } => {
                let other = cluster.as_ref().map(|url| ClientConfig::new(url.clone()));
                let client = super::index_client(source, other.as_ref())?;
                client
                    .create_index(index, &dead_letter_index_body())
                    .await
                    .map_err(|e| {
                        SinkError::stop(format!("cannot create the dead-letter index {index}: {e}"))
                    })?;
                Ok(DeadLetterSink::Index(IndexSink::new(
                    client,
                    index.clone(),
                    Versioning::Overwrite,
                )))
            }
        }
    }
}

impl TryFrom<String> for DeadLetter {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        DeadLetter::parse(&s)
    }
}

impl From<PathBuf> for DeadLetter {
    fn from(path: PathBuf) -> Self {
        DeadLetter::File(path)
    }
}

impl From<&std::path::Path> for DeadLetter {
    fn from(path: &std::path::Path) -> Self {
        DeadLetter::File(path.to_path_buf())
    }
}

/// The mapping of a dead-letter index: the record is not indexed (`enabled: false`), so any
/// document fits, and nothing but `error` and `failed_at` is mapped.
fn dead_letter_index_body() -> serde_json::Value {
    serde_json::json!({
        "mappings": {
            "dynamic": false,
            "properties": {
                "record": {"type": "object", "enabled": false},
                "error": {"type": "text"},
                "failed_at": {"type": "date"}
            }
        }
    })
}

/// An open dead-letter destination (what [`DeadLetter::open`] gives).
#[derive(Debug)]
#[non_exhaustive]
pub enum DeadLetterSink {
    /// Appended to a file.
    File(DeadLetterFile),
    /// Written to an index; an entry's `_id` is the record's position key (its SHA-256 past
    /// 512 bytes), so a redelivery after a crash overwrites its own entry.
    Index(IndexSink),
}

impl Sink for DeadLetterSink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        match self {
            DeadLetterSink::File(s) => s.write(records).await,
            DeadLetterSink::Index(s) => {
                // The index's refusal of an entry is not a poison document: nothing is left to
                // set it aside in, so the consumer stops rather than lose it.
                s.write(records).await.map_err(|e| match e.retry() {
                    super::SinkRetry::MayHelp => e,
                    _ => SinkError::stop(format!("the dead-letter index refused an entry: {e}")),
                })
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            DeadLetterSink::File(s) => s.flush().await,
            DeadLetterSink::Index(s) => s.flush().await,
        }
    }
}

/// A dead-letter file: appends each entry's source as one line and syncs on every flush.
#[derive(Debug)]
pub struct DeadLetterFile {
    out: std::io::BufWriter<std::fs::File>,
}

impl DeadLetterFile {
    pub fn open(path: &std::path::Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(DeadLetterFile {
            out: std::io::BufWriter::new(file),
        })
    }
}

impl Sink for DeadLetterFile {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        for r in records {
            self.out.write_all(r.source.get().as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(())
    }
}

/// The dead-letter entry of `record`, which the sink refused with `error`: a record whose
/// source is `{"record": <the record's JSON line>, "error": "...", "failed_at": "<RFC 3339>"}`
/// and whose id is the record's [`Record::position_key`] (`index/id/seq_no`, or
/// `index/id/timestamp`): one entry per version of a document, the same for its redeliveries.
pub fn dead_letter_entry(record: &Record, error: &SinkError) -> Record {
    let mut line = String::new();
    record.to_json_line(&mut line);
    let entry = format!(
        "{{\"record\":{line},\"error\":{},\"failed_at\":\"{}\"}}",
        serde_json::Value::String(error.to_string()),
        crate::date::now_iso()
    );
    let mut id = record.position_key();
    // An `_id` is at most 512 bytes: a longer key is replaced by its SHA-256 (still the same
    // for every redelivery).
    if id.len() > 512 {
        use base64::Engine as _;
        let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
        id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref());
    }
    Record {
        index: record.index.clone(),
        id,
        shard: record.shard,
        seq_no: record.seq_no,
        primary_term: record.primary_term,
        timestamp: None,
        source: crate::record::Source::from_json(&entry)
            .unwrap_or_else(|_| crate::record::Source::null()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_destinations_parse_and_are_checked_against_what_is_read() {
        assert_eq!(
            DeadLetter::parse("file:/tmp/dl.jsonl").unwrap(),
            DeadLetter::File("/tmp/dl.jsonl".into())
        );
        assert_eq!(
            DeadLetter::parse("index:audit-dlq").unwrap(),
            DeadLetter::Index {
                cluster: None,
                index: "audit-dlq".into()
            }
        );
        assert_eq!(
            DeadLetter::parse("index:http://h:9200/dlq").unwrap(),
            DeadLetter::Index {
                cluster: Some("http://h:9200".into()),
                index: "dlq".into()
            }
        );
        for bad in ["file:", "index:", "index:DLQ", "/tmp/x", "kafka:x"] {
            let e = DeadLetter::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        let dl = DeadLetter::parse("index:audit-dlq").unwrap();
        let stdout = super::super::SinkSpec::Stdout;
        assert!(dl.check_against("audit*", "offsets", &stdout).is_err());
        assert!(dl.check_against("audit", "offsets", &stdout).is_ok());
        assert!(dl.check_against("audit", "audit-dlq", &stdout).is_err());
        let sink = super::super::SinkSpec::parse("index:audit-dlq").unwrap();
        let e = dl.check_against("audit", "offsets", &sink).unwrap_err();
        assert!(e.contains("the sink's index"), "{e}");
        // From serde, as in a config file.
        let parsed: DeadLetter = serde_json::from_str("\"index:x\"").unwrap();
        assert!(matches!(parsed, DeadLetter::Index { .. }));
        assert!(serde_json::from_str::<DeadLetter>("\"/tmp/x\"").is_err());
    }
}

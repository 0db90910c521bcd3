//! Where delivered documents go. Offsets are committed only after [`Sink::flush`] returns: a
//! document the sink has not acknowledged is never committed, so a crash repeats it rather than
//! loses it.

mod error;
mod file;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

pub use error::{SinkError, SinkRetry};
pub use file::FileSink;

use crate::record::Record;

/// Where the consumer hands documents. Its methods are async, so a sink that talks to a network
/// service (an HTTP endpoint, a broker) waits without holding up the consumer's other work;
/// implementations may write them as `async fn`.
pub trait Sink: Send {
    /// Hands records over. They are delivered, but not acknowledged until `flush` returns.
    fn write(&mut self, records: &[Record]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Makes everything written so far durable (acknowledged).
    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Starts making everything written so far durable; it is acknowledged once the returned
    /// [`PendingFlush`] has finished without an error. Writing may go on meanwhile: what is
    /// written after this call is not covered by it. The default flushes at once.
    fn start_flush(&mut self) -> impl Future<Output = Result<PendingFlush, SinkError>> + Send {
        async {
            self.flush().await?;
            Ok(PendingFlush::done())
        }
    }

    /// Like `write`, but says which record failed: `Err((i, e))` means `records[..i]` were taken
    /// and `records[i]` failed. Sinks that cannot tell report the whole batch (`i = 0`); the
    /// consumer then isolates the failing record by writing records one at a time.
    fn write_each(
        &mut self,
        records: &[Record],
    ) -> impl Future<Output = Result<(), (usize, SinkError)>> + Send {
        async move { self.write(records).await.map_err(|e| (0, e)) }
    }
}

/// A flush under way (see [`Sink::start_flush`]).
#[derive(Debug)]
#[must_use = "a flush acknowledges nothing until it has finished"]
pub struct PendingFlush(Option<tokio::task::JoinHandle<Result<(), SinkError>>>);

impl PendingFlush {
    /// A flush that has already finished.
    pub fn done() -> Self {
        PendingFlush(None)
    }

    /// A flush finishing in a blocking task (for example an `fsync`).
    pub fn spawn_blocking(f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Self {
        PendingFlush(Some(tokio::task::spawn_blocking(move || {
            f().map_err(SinkError::from)
        })))
    }

    /// A flush finishing in a task of its own (for example an acknowledgement over the network).
    pub fn spawn(f: impl Future<Output = Result<(), SinkError>> + Send + 'static) -> Self {
        PendingFlush(Some(tokio::spawn(f)))
    }

    /// Whether it has finished (successfully or not).
    pub fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for it; `Ok` means everything written before it started is durable.
    pub async fn wait(self) -> Result<(), SinkError> {
        match self.0 {
            None => Ok(()),
            Some(h) => h.await.map_err(SinkError::transient)?,
        }
    }
}

/// Where poison documents go (`--dead-letter file:PATH`): a sink that appends each record's
/// source as one line and syncs on every flush. The consumer hands it one entry per poison
/// document, made by [`dead_letter_entry`].
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

/// The dead-letter entry of `record`, which the sink refused with `error`: a record of the same
/// index and id whose source is `{"record": <the record's JSON line>, "error": "...",
/// "failed_at": "<RFC 3339>"}`.
pub fn dead_letter_entry(record: &Record, error: &SinkError) -> Record {
    let mut line = String::new();
    record.to_json_line(&mut line);
    let entry = format!(
        "{{\"record\":{line},\"error\":{},\"failed_at\":\"{}\"}}",
        serde_json::Value::String(error.to_string()),
        crate::date::now_iso()
    );
    Record {
        index: record.index.clone(),
        id: record.id.clone(),
        shard: record.shard,
        seq_no: record.seq_no,
        primary_term: record.primary_term,
        timestamp: None,
        source: crate::record::Source::from_json(&entry)
            .unwrap_or_else(|_| crate::record::Source::null()),
    }
}

/// Which sink to build, as `--sink` names it: `stdout`, `file:PATH`, or `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// `stdout` (or `-`): JSON Lines on standard output.
    Stdout,
    /// `file:PATH`: JSON Lines appended to the file at this path.
    File(std::path::PathBuf),
    /// `null`: records are counted and discarded.
    Null,
}

impl SinkSpec {
    /// Parses a `--sink` value; the error message names the value and the forms accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "stdout" | "-" => Ok(SinkSpec::Stdout),
            "null" => Ok(SinkSpec::Null),
            other => match other.strip_prefix("file:") {
                Some(path) if !path.is_empty() => Ok(SinkSpec::File(path.into())),
                _ => Err(format!(
                    "unknown sink {other:?}: expected stdout, file:PATH or null"
                )),
            },
        }
    }

    /// Builds the sink (for a file, opens it for appending, creating it if missing).
    pub fn open(&self) -> std::io::Result<AnySink> {
        Ok(match self {
            SinkSpec::Stdout => AnySink::Stdout(StdoutSink::default()),
            SinkSpec::File(p) => AnySink::File(FileSink::open(p)?),
            SinkSpec::Null => AnySink::Null(NullSink::default()),
        })
    }
}

/// One of the built-in sinks, chosen at run time (what [`SinkSpec::open`] gives): the async
/// trait is not object-safe, so the choice is an enum rather than a `Box<dyn Sink>`.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnySink {
    /// JSON Lines on standard output.
    Stdout(StdoutSink),
    /// JSON Lines appended to a file.
    File(FileSink),
    /// Counts and discards.
    Null(NullSink),
}

impl Sink for AnySink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        match self {
            AnySink::Stdout(s) => s.write(records).await,
            AnySink::File(s) => s.write(records).await,
            AnySink::Null(s) => s.write(records).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            AnySink::Stdout(s) => s.flush().await,
            AnySink::File(s) => s.flush().await,
            AnySink::Null(s) => s.flush().await,
        }
    }

    async fn start_flush(&mut self) -> Result<PendingFlush, SinkError> {
        match self {
            AnySink::Stdout(s) => s.start_flush().await,
            AnySink::File(s) => s.start_flush().await,
            AnySink::Null(s) => s.start_flush().await,
        }
    }

    async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
        match self {
            AnySink::Stdout(s) => s.write_each(records).await,
            AnySink::File(s) => s.write_each(records).await,
            AnySink::Null(s) => s.write_each(records).await,
        }
    }
}

/// JSON Lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    line: String,
}

impl Sink for StdoutSink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        for r in records {
            self.line.clear();
            r.to_json_line(&mut self.line);
            self.line.push('\n');
            out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(std::io::stdout().lock().flush()?)
    }
}

/// Discards everything (for benchmarks), counting what it saw.
#[derive(Debug, Default)]
pub struct NullSink {
    /// How many records it was handed.
    pub seen: u64,
}

impl Sink for NullSink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.seen += records.len() as u64;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps records in memory, shared with the caller (tests, embedding).
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    /// Every record written, in order, acknowledged or not.
    pub records: Arc<Mutex<Vec<Record>>>,
    /// How many records had been acknowledged by the last flush.
    pub acknowledged: Arc<Mutex<usize>>,
}

impl Sink for MemorySink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(records);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        let n = self.records.lock().unwrap_or_else(|p| p.into_inner()).len();
        *self.acknowledged.lock().unwrap_or_else(|p| p.into_inner()) = n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_specs_parse_and_reject_unknown_ones() {
        assert_eq!(SinkSpec::parse("stdout").unwrap(), SinkSpec::Stdout);
        assert_eq!(
            SinkSpec::parse("file:/tmp/x.jsonl").unwrap(),
            SinkSpec::File("/tmp/x.jsonl".into())
        );
        assert!(SinkSpec::parse("kafka:x").unwrap_err().contains("kafka:x"));
        assert!(SinkSpec::parse("file:").is_err());
    }
}

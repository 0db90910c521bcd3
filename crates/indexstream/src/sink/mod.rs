//! Where delivered documents go. Offsets are committed only after [`Sink::flush`] returns: a
//! document the sink has not acknowledged is never committed, so a crash repeats it rather than
//! loses it.

mod file;

use std::io::Write;
use std::sync::{Arc, Mutex};

pub use file::FileSink;

use crate::record::Record;

pub trait Sink: Send {
    /// Hands records over. They are delivered, but not acknowledged until `flush` returns.
    fn write(&mut self, records: &[Record]) -> std::io::Result<()>;
    /// Makes everything written so far durable (acknowledged).
    fn flush(&mut self) -> std::io::Result<()>;

    /// Starts making everything written so far durable; it is acknowledged once the returned
    /// [`PendingFlush`] has finished without an error. Writing may go on meanwhile: what is
    /// written after this call is not covered by it. The default flushes at once.
    fn start_flush(&mut self) -> std::io::Result<PendingFlush> {
        self.flush()?;
        Ok(PendingFlush::done())
    }

    /// Like `write`, but says which record failed: `Err((i, e))` means `records[..i]` were taken
    /// and `records[i]` failed. Sinks that cannot tell report the whole batch (`i = 0`); the
    /// consumer then isolates the failing record by writing records one at a time.
    fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, std::io::Error)> {
        self.write(records).map_err(|e| (0, e))
    }
}

/// A flush under way (see [`Sink::start_flush`]).
#[derive(Debug)]
#[must_use = "a flush acknowledges nothing until it has finished"]
pub struct PendingFlush(Option<tokio::task::JoinHandle<std::io::Result<()>>>);

impl PendingFlush {
    /// A flush that has already finished.
    pub fn done() -> Self {
        PendingFlush(None)
    }

    /// A flush finishing in a blocking task (for example an `fsync`).
    pub fn spawn_blocking(f: impl FnOnce() -> std::io::Result<()> + Send + 'static) -> Self {
        PendingFlush(Some(tokio::task::spawn_blocking(f)))
    }

    pub fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(|h| h.is_finished())
    }

    /// Waits for it; `Ok` means everything written before it started is durable.
    pub async fn wait(self) -> std::io::Result<()> {
        match self.0 {
            None => Ok(()),
            Some(h) => h.await.map_err(std::io::Error::other)?,
        }
    }
}

/// Where poison documents go (`--dead-letter file:PATH`): one JSON line per document with the
/// record and the sink's error, fsynced with every commit.
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

    pub fn write(&mut self, record: &Record, error: &std::io::Error) -> std::io::Result<()> {
        let mut line = String::new();
        record.to_json_line(&mut line);
        let entry = format!(
            "{{\"record\":{line},\"error\":{},\"failed_at\":\"{}\"}}\n",
            serde_json::Value::String(error.to_string()),
            crate::date::now_iso()
        );
        self.out.write_all(entry.as_bytes())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }
}

/// Which sink to build, as `--sink` names it: `stdout`, `file:PATH`, or `null`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    Stdout,
    File(std::path::PathBuf),
    Null,
}

impl SinkSpec {
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

    pub fn open(&self) -> std::io::Result<Box<dyn Sink>> {
        Ok(match self {
            SinkSpec::Stdout => Box::new(StdoutSink::default()),
            SinkSpec::File(p) => Box::new(FileSink::open(p)?),
            SinkSpec::Null => Box::new(NullSink::default()),
        })
    }
}

/// JSON Lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    line: String,
}

impl Sink for StdoutSink {
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for r in records {
            self.line.clear();
            r.to_json_line(&mut self.line);
            self.line.push('\n');
            out.write_all(self.line.as_bytes())?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// Discards everything (for benchmarks), counting what it saw.
#[derive(Debug, Default)]
pub struct NullSink {
    pub seen: u64,
}

impl Sink for NullSink {
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        self.seen += records.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Keeps records in memory, shared with the caller (tests, embedding).
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    pub records: Arc<Mutex<Vec<Record>>>,
    /// How many records had been acknowledged by the last flush.
    pub acknowledged: Arc<Mutex<usize>>,
}

impl Sink for MemorySink {
    fn write(&mut self, records: &[Record]) -> std::io::Result<()> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(records);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
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

//! Where delivered documents go. Offsets are committed only after [`Sink::flush`] returns: a
//! document the sink has not acknowledged is never committed, so a crash repeats it rather than
//! loses it.

mod dead_letter;
mod error;
mod exec;
mod file;
mod http;
mod index;
mod kafka;

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};

pub use dead_letter::{dead_letter_entry, DeadLetter, DeadLetterSink};
pub use error::{SinkError, SinkRetry};
pub use exec::{ExecSink, DEFAULT_EXEC_TIMEOUT};
pub use file::FileSink;
pub use http::{HttpAuth, HttpFormat, HttpSink, HttpSinkConfig};
pub use index::{IndexSink, OtherCluster, Versioning};
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
pub use kafka::{KafkaCompression, KafkaSasl, KafkaSinkConfig, KafkaTls, SaslMechanism};

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

    /// Its kind, as metrics and logs label it (`file`, `http`, ...).
    fn kind(&self) -> &'static str {
        "custom"
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

/// Which sink to build, as `--sink` names it: `stdout`, `file:PATH`, `null`, `exec:COMMAND`,
/// `index:NAME` or `index:URL/NAME`; [`SinkSpec::with_options`] applies `--sink-option`s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkSpec {
    /// `stdout` (or `-`): JSON Lines on standard output.
    Stdout,
    /// `file:PATH`: JSON Lines appended to the file at this path.
    File(std::path::PathBuf),
    /// `null`: records are counted and discarded.
    Null,
    /// `exec:COMMAND`: the command run once per batch (`sh -c`), the batch on its stdin.
    Exec {
        /// The shell command.
        command: String,
        /// Option `timeout`: a run taking longer is killed and counts as failed.
        timeout: std::time::Duration,
    },
    /// `index:NAME` (the source cluster) or `index:URL/NAME` (another cluster).
    Index {
        /// The other cluster; `None` for the source cluster.
        cluster: Option<OtherCluster>,
        /// The target index.
        index: String,
        /// Option `versioning` (`external` or `overwrite`); `None`: external in exact mode,
        /// overwrite in timestamp mode.
        versioning: Option<Versioning>,
    },
    /// `http://…` or `https://…`: batches POSTed to a webhook.
    Http(HttpSinkConfig),
    /// `kafka:TOPIC`: records produced to a Kafka topic.
    Kafka(KafkaSinkConfig),
}

impl SinkSpec {
    /// Parses a `--sink` value; the error message names the value and the forms accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        let forms = "expected stdout, file:PATH, null, exec:COMMAND, index:NAME, index:URL/NAME, kafka:TOPIC or an http(s):// URL";
        match s {
            "stdout" | "-" => return Ok(SinkSpec::Stdout),
            "null" => return Ok(SinkSpec::Null),
            _ => {}
        }
        if let Some(path) = s.strip_prefix("file:") {
            if !path.is_empty() {
                return Ok(SinkSpec::File(path.into()));
            }
            return Err(format!("sink {s:?} names no file: {forms}"));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return HttpSinkConfig::new(s).map(SinkSpec::Http);
        }
        if let Some(topic) = s.strip_prefix("kafka:") {
            return KafkaSinkConfig::new(topic)
                .map(SinkSpec::Kafka)
                .map_err(|why| format!("sink {s:?}: {why}"));
        }
        if let Some(command) = s.strip_prefix("exec:") {
            if command.trim().is_empty() {
                return Err(format!("sink {s:?} names no command: {forms}"));
            }
            return Ok(SinkSpec::Exec {
                command: command.to_string(),
                timeout: DEFAULT_EXEC_TIMEOUT,
            });
        }
        if let Some(target) = s.strip_prefix("index:") {
            let (cluster, index) = parse_index_target(target).map_err(|why| {
                if why == URL_CREDENTIALS {
                    format!("sink index:URL/NAME: {why}")
                } else {
                    format!("sink {s:?}: {why}")
                }
            })?;
            return Ok(SinkSpec::Index {
                cluster: cluster.map(OtherCluster::new),
                index,
                versioning: None,
            });
        }
        Err(format!("unknown sink {s:?}: {forms}"))
    }

    /// Applies `--sink-option KEY=VALUE` pairs; an option the sink does not take is an error
    /// naming it and the ones it takes.
    pub fn with_options<'a>(
        mut self,
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        for (key, value) in options {
            let taken = match &mut self {
                SinkSpec::Http(config) => config.set(key, value)?,
                SinkSpec::Kafka(config) => config.set(key, value)?,
                SinkSpec::Index {
                    cluster: Some(other),
                    ..
                } => other.set(key, value)?,
                SinkSpec::Index { cluster: None, .. } if OtherCluster::is_option(key) => {
                    return Err(format!(
                        "sink option {key}: index:NAME writes to the source cluster, connected as the consumer is (--api-key, --ca-cert and the rest); {key} is for another cluster's index:URL/NAME"
                    ))
                }
                _ => false,
            };
            if taken {
                continue;
            }
            match (&mut self, key) {
                (SinkSpec::Exec { timeout, .. }, "timeout") => {
                    *timeout = crate::serde_duration::parse(value)
                        .map_err(|e| format!("sink option timeout={value:?}: {e}"))?;
                    if timeout.is_zero() {
                        return Err(format!(
                            "sink option timeout={value:?}: must be more than 0"
                        ));
                    }
                }
                (SinkSpec::Index { versioning, .. }, "versioning") => {
                    *versioning = Some(match value {
                        "external" => Versioning::External,
                        "overwrite" => Versioning::Overwrite,
                        other => {
                            return Err(format!(
                                "sink option versioning={other:?}: expected external or overwrite"
                            ))
                        }
                    });
                }
                (spec, key) => {
                    let takes = match spec {
                        SinkSpec::Exec { .. } => "timeout",
                        SinkSpec::Index { cluster: None, .. } => "versioning",
                        SinkSpec::Index { cluster: Some(_), .. } => {
                            "versioning, api-key, bearer-token, basic-auth, ca-cert, ca-cert-only, client-cert, client-key, ca-fingerprint"
                        }
                        SinkSpec::Http(_) => HttpSinkConfig::OPTIONS,
                        SinkSpec::Kafka(_) => KafkaSinkConfig::OPTIONS,
                        _ => "none",
                    };
                    return Err(format!(
                        "the {} sink takes no option {key:?} (its options: {takes})",
                        spec.kind()
                    ));
                }
            }
        }
        match &self {
            SinkSpec::Kafka(config) => config.check()?,
            SinkSpec::Index {
                cluster: Some(other),
                ..
            } => other.check()?,
            _ => {}
        }
        Ok(self)
    }

    /// The sink's kind, as the part of `--sink` before the colon.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkSpec::Stdout => "stdout",
            SinkSpec::File(_) => "file",
            SinkSpec::Null => "null",
            SinkSpec::Exec { .. } => "exec",
            SinkSpec::Index { .. } => "index",
            SinkSpec::Http(_) => "http",
            SinkSpec::Kafka(_) => "kafka",
        }
    }

    /// Refuses an index sink of the source cluster that the consumed `expression` (names,
    /// comma lists, `*` patterns) or the offsets index names: the consumer would read its own
    /// writes again. (An alias over the target is not seen here.)
    pub fn check_against(&self, expression: &str, offsets_index: &str) -> Result<(), String> {
        match self {
            SinkSpec::Index {
                cluster: None,
                index,
                ..
            } => check_not_read("sink", index, expression, offsets_index),
            _ => Ok(()),
        }
    }

    /// Builds the sink (for a file, opens it for appending, creating it if missing). An index
    /// sink of the source cluster connects as `source` does, with a client of its own; its
    /// versioning defaults to external in exact `mode`, overwrite in timestamp mode.
    pub fn open(
        &self,
        source: &crate::client::ClientConfig,
        mode: crate::offset::Mode,
    ) -> Result<AnySink, SinkError> {
        Ok(match self {
            SinkSpec::Stdout => AnySink::Stdout(StdoutSink::default()),
            SinkSpec::File(p) => AnySink::File(FileSink::open(p)?),
            SinkSpec::Null => AnySink::Null(NullSink::default()),
            SinkSpec::Exec { command, timeout } => {
                AnySink::Exec(ExecSink::new(command.clone(), *timeout))
            }
            SinkSpec::Index {
                cluster,
                index,
                versioning,
            } => {
                let client = index_client(
                    source,
                    cluster.as_ref().map(OtherCluster::client_config).as_ref(),
                )?;
                let versioning = versioning.unwrap_or(match mode {
                    crate::offset::Mode::Exact => Versioning::External,
                    crate::offset::Mode::Timestamp => Versioning::Overwrite,
                });
                AnySink::Index(IndexSink::new(client, index.clone(), versioning))
            }
            SinkSpec::Http(config) => AnySink::Http(HttpSink::new(config.clone())?),
            #[cfg(feature = "kafka")]
            SinkSpec::Kafka(config) => AnySink::Kafka(KafkaSink::connect(config.clone())?),
            #[cfg(not(feature = "kafka"))]
            SinkSpec::Kafka(_) => {
                return Err(SinkError::permanent(
                    "this build has no Kafka sink: build with the `kafka` feature (the default of the indexstream command)",
                ))
            }
        })
    }
}

/// Refuses an index of the source cluster (the `what` index: sink, dead letters) that the
/// consumed `expression` or the offsets index names: the consumer would read its own writes.
pub(crate) fn check_not_read(
    what: &str,
    index: &str,
    expression: &str,
    offsets_index: &str,
) -> Result<(), String> {
    if index == offsets_index {
        return Err(format!("the {what} index {index:?} is the offsets index"));
    }
    for part in expression.split(',').map(str::trim) {
        if !part.starts_with('-') && glob_matches(part, index) {
            return Err(format!(
                "the {what} index {index:?} is read by the consumed {expression:?}: the consumer would read its own writes"
            ));
        }
    }
    Ok(())
}

/// The error for an `index:URL/NAME` whose URL holds a user name or password (the callers do
/// not quote the value with it).
pub(crate) const URL_CREDENTIALS: &str = "the URL holds credentials, which would show wherever the destination is named: give them with --sink-option basic-auth=USER:PASSWORD (or api-key, bearer-token), which is never logged";

/// `index:NAME` or `index:URL/NAME` (after the prefix): the other cluster's URL, if any, and
/// the index name, checked.
pub(crate) fn parse_index_target(target: &str) -> Result<(Option<String>, String), String> {
    let (cluster, index) = if target.starts_with("http://") || target.starts_with("https://") {
        let authority = target.split_once("://").map_or("", |(_, rest)| rest);
        if authority.split('/').next().is_some_and(|a| a.contains('@')) {
            return Err(URL_CREDENTIALS.into());
        }
        match target.rsplit_once('/') {
            Some((url, name))
                if url
                    .split_once("://")
                    .is_some_and(|(_, host)| !host.is_empty() && !host.contains('/')) =>
            {
                (Some(url.to_string()), name)
            }
            _ => {
                return Err("expected index:URL/NAME, e.g. index:http://127.0.0.1:9200/copy".into())
            }
        }
    } else {
        (None, target)
    };
    check_index_name(index)?;
    Ok((cluster, index.to_string()))
}

/// A client for an index of the source cluster (`other` `None`: connected as `source` is) or
/// of another.
pub(crate) fn index_client(
    source: &crate::client::ClientConfig,
    other: Option<&crate::client::ClientConfig>,
) -> Result<crate::client::Client, SinkError> {
    crate::client::Client::new(other.unwrap_or(source)).map_err(SinkError::permanent)
}

/// `1048576`, `512KiB`, `4MiB`, `1GiB` (also `KB`, `MB`, `GB`, as the same powers of 1024).
pub(crate) fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: usize = s[..digits].parse().ok()?;
    let shift = match s[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// The index names a cluster accepts (lowercase, none of `\ / * ? " < > | , #` or a space, not
/// starting with `-`, `_` or `+`, not `.` or `..`).
fn check_index_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("no index name".into());
    }
    if name == "." || name == ".." || name.starts_with(['-', '_', '+']) {
        return Err(format!("{name:?} is not a valid index name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_uppercase() || "\\/*?\"<>|,# :".contains(*c))
    {
        return Err(format!(
            "{name:?} is not a valid index name: it holds {c:?}"
        ));
    }
    Ok(())
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
    /// A command run once per batch.
    Exec(ExecSink),
    /// Written to an index with `_bulk`.
    Index(IndexSink),
    /// POSTed to a webhook.
    Http(HttpSink),
    /// Produced to a Kafka topic.
    #[cfg(feature = "kafka")]
    Kafka(KafkaSink),
}

impl Sink for AnySink {
    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        match self {
            AnySink::Stdout(s) => s.write(records).await,
            AnySink::File(s) => s.write(records).await,
            AnySink::Null(s) => s.write(records).await,
            AnySink::Exec(s) => s.write(records).await,
            AnySink::Index(s) => s.write(records).await,
            AnySink::Http(s) => s.write(records).await,
            #[cfg(feature = "kafka")]
            AnySink::Kafka(s) => s.write(records).await,
        }
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            AnySink::Stdout(s) => s.flush().await,
            AnySink::File(s) => s.flush().await,
            AnySink::Null(s) => s.flush().await,
            AnySink::Exec(s) => s.flush().await,
            AnySink::Index(s) => s.flush().await,
            AnySink::Http(s) => s.flush().await,
            #[cfg(feature = "kafka")]
            AnySink::Kafka(s) => s.flush().await,
        }
    }

    async fn start_flush(&mut self) -> Result<PendingFlush, SinkError> {
        match self {
            AnySink::Stdout(s) => s.start_flush().await,
            AnySink::File(s) => s.start_flush().await,
            AnySink::Null(s) => s.start_flush().await,
            AnySink::Exec(s) => s.start_flush().await,
            AnySink::Index(s) => s.start_flush().await,
            AnySink::Http(s) => s.start_flush().await,
            #[cfg(feature = "kafka")]
            AnySink::Kafka(s) => s.start_flush().await,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AnySink::Stdout(s) => s.kind(),
            AnySink::File(s) => s.kind(),
            AnySink::Null(s) => s.kind(),
            AnySink::Exec(s) => s.kind(),
            AnySink::Index(s) => s.kind(),
            AnySink::Http(s) => s.kind(),
            #[cfg(feature = "kafka")]
            AnySink::Kafka(s) => s.kind(),
        }
    }

    async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
        match self {
            AnySink::Stdout(s) => s.write_each(records).await,
            AnySink::File(s) => s.write_each(records).await,
            AnySink::Null(s) => s.write_each(records).await,
            AnySink::Exec(s) => s.write_each(records).await,
            AnySink::Index(s) => s.write_each(records).await,
            AnySink::Http(s) => s.write_each(records).await,
            #[cfg(feature = "kafka")]
            AnySink::Kafka(s) => s.write_each(records).await,
        }
    }
}

/// JSON Lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    line: String,
}

impl Sink for StdoutSink {
    fn kind(&self) -> &'static str {
        "stdout"
    }

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
    fn kind(&self) -> &'static str {
        "null"
    }

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
    fn kind(&self) -> &'static str {
        "memory"
    }

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
        assert!(SinkSpec::parse("mqtt:x").unwrap_err().contains("mqtt:x"));
        assert!(matches!(
            SinkSpec::parse("kafka:audit"),
            Ok(SinkSpec::Kafka(_))
        ));
        assert!(SinkSpec::parse("kafka:a/b").is_err());
        assert!(SinkSpec::parse("file:").is_err());
    }

    #[test]
    fn exec_and_index_sinks_parse_with_their_options() {
        assert_eq!(
            SinkSpec::parse("exec:jq -c . >> out")
                .unwrap()
                .with_options([("timeout", "5s")])
                .unwrap(),
            SinkSpec::Exec {
                command: "jq -c . >> out".into(),
                timeout: std::time::Duration::from_secs(5)
            }
        );
        assert!(SinkSpec::parse("exec: ").is_err());
        let e = SinkSpec::parse("exec:true")
            .unwrap()
            .with_options([("timeout", "0s")])
            .unwrap_err();
        assert!(e.contains("more than 0"), "{e}");
        assert_eq!(
            SinkSpec::parse("index:copy").unwrap(),
            SinkSpec::Index {
                cluster: None,
                index: "copy".into(),
                versioning: None
            }
        );
        assert_eq!(
            SinkSpec::parse("index:https://other:9200/copy").unwrap(),
            SinkSpec::Index {
                cluster: Some(OtherCluster::new("https://other:9200")),
                index: "copy".into(),
                versioning: None
            }
        );
        for bad in [
            "index:",
            "index:Copy",
            "index:_x",
            "index:a b",
            "index:http://h:9200/",
        ] {
            assert!(SinkSpec::parse(bad).is_err(), "{bad}");
        }
        let e = SinkSpec::parse("index:copy")
            .unwrap()
            .with_options([("timeout", "5s")])
            .unwrap_err();
        assert!(
            e.contains("the index sink takes no option \"timeout\""),
            "{e}"
        );
        assert!(SinkSpec::parse("index:http://h/copy").is_ok());
        let copy = SinkSpec::parse("index:audit-copy").unwrap();
        assert!(copy.check_against("audit*", "offsets").is_err());
        assert!(copy
            .check_against("logs,audit-*-x,audit-c*y", "offsets")
            .is_err());
        assert!(copy.check_against("audit", "offsets").is_ok());
        assert!(copy
            .check_against("audit-*-x,-audit-copy", "offsets")
            .is_ok());
        assert!(copy.check_against("x", "audit-copy").is_err());
        let other = SinkSpec::parse("index:http://h:9200/audit-copy").unwrap();
        assert!(other.check_against("audit*", "offsets").is_ok());
        assert!(SinkSpec::parse("index:c")
            .unwrap()
            .with_options([("versioning", "sometimes")])
            .is_err());
    }

    #[test]
    fn another_clusters_index_takes_its_own_auth_and_tls_options() {
        let pem =
            std::env::temp_dir().join(format!("indexstream-other-{}.pem", std::process::id()));
        std::fs::write(&pem, "not read here").unwrap();
        let pem_s = pem.to_str().unwrap();
        let other = |options: &[(&str, &str)]| {
            SinkSpec::parse("index:https://other:9200/copy")
                .unwrap()
                .with_options(options.iter().copied())
        };
        let spec = other(&[
            ("api-key", "id:k3y"),
            ("ca-cert", pem_s),
            ("ca-cert-only", "true"),
            ("client-cert", pem_s),
            ("client-key", pem_s),
            ("versioning", "overwrite"),
        ])
        .unwrap();
        let SinkSpec::Index {
            cluster: Some(c),
            versioning,
            ..
        } = &spec
        else {
            panic!("{spec:?}")
        };
        assert_eq!(*versioning, Some(Versioning::Overwrite));
        assert_eq!(c.url, "https://other:9200");
        assert_eq!(
            c.auth,
            crate::client::Auth::ApiKey(crate::client::Secret::new("id:k3y"))
        );
        assert_eq!(c.tls.roots, crate::client::Roots::OnlyGiven);
        assert_eq!(c.tls.client_key.as_deref(), Some(pem.as_path()));
        assert!(!format!("{spec:?}").contains("k3y"), "{spec:?}");
        let config = c.client_config();
        assert_eq!(
            (config.url.as_str(), &config.tls),
            ("https://other:9200", &c.tls)
        );

        let basic = other(&[("basic-auth", "svc:pa:ss")]).unwrap();
        let SinkSpec::Index {
            cluster: Some(c), ..
        } = basic
        else {
            panic!()
        };
        assert_eq!(
            c.auth,
            crate::client::Auth::Basic {
                username: "svc".into(),
                password: crate::client::Secret::new("pa:ss")
            }
        );
        let fp = "AB".repeat(32);
        assert!(other(&[("ca-fingerprint", &fp)]).is_ok());

        for (options, says) in [
            (vec![("ca-cert-only", "true")], "no ca-cert"),
            (vec![("ca-cert-only", "yes")], "true or false"),
            (vec![("client-cert", pem_s)], "client-key"),
            (vec![("ca-cert", "/nonexistent.pem")], "no such file"),
            (vec![("ca-fingerprint", "abc")], "ca-fingerprint"),
            (vec![("basic-auth", "nocolon")], "USER:PASSWORD"),
            (vec![("basic-auth", ":pw")], "user name"),
            (
                vec![("bearer-token", "t0k"), ("api-key", "k")],
                "give one of them",
            ),
            (vec![("api-key", "sec ret")], "spaces"),
        ] {
            let e = other(&options).unwrap_err();
            assert!(e.contains(says), "{options:?}: {e}");
            assert!(
                !e.contains("t0k") && !e.contains("sec ret") && !e.contains("pw"),
                "{e}"
            );
        }
        // The source cluster's index is reached as the consumer is.
        let e = SinkSpec::parse("index:copy")
            .unwrap()
            .with_options([("ca-cert", pem_s)])
            .unwrap_err();
        assert!(e.contains("index:URL/NAME"), "{e}");
        // Credentials in the URL are refused, and not repeated.
        for bad in [
            "index:http://u:s3cret@h:9200/copy",
            "index:https://tok3n@h/copy",
        ] {
            let e = SinkSpec::parse(bad).unwrap_err();
            assert!(
                e.contains("basic-auth") && !e.contains("s3cret") && !e.contains("tok3n"),
                "{e}"
            );
            let e = DeadLetter::parse(bad).unwrap_err();
            assert!(
                e.contains("credentials") && !e.contains("s3cret") && !e.contains("tok3n"),
                "{e}"
            );
        }
        std::fs::remove_file(&pem).unwrap();
    }
}

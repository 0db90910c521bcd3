//! `exec:COMMAND`: runs a command once per batch, the batch as JSON Lines on its standard input.
//! Exit status 0 acknowledges the batch, once the command has read all of it; any other status,
//! a signal, or the timeout is a failure that may pass (the consumer retries it, then
//! dead-letters what keeps failing). A command cannot say which document it refused: the
//! consumer tries the batch's first document alone, then the rest, so a timeout that comes from
//! the batch's size rather than one document makes slow progress (lower `--batch-size`).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{Sink, SinkError};
use crate::record::Record;

/// How long a run may take when no `timeout` option is given.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// A sink that pipes each batch into a new run of a shell command (`sh -c COMMAND`). The command
/// inherits the consumer's standard output and error; it sees the batch's size in
/// `INDEXSTREAM_BATCH_SIZE`.
#[derive(Debug)]
pub struct ExecSink {
    command: String,
    timeout: Duration,
    input: Vec<u8>,
}

impl ExecSink {
    /// A sink running `command` with `sh -c`, killed when a run takes longer than `timeout`.
    pub fn new(command: impl Into<String>, timeout: Duration) -> Self {
        ExecSink {
            command: command.into(),
            timeout,
            input: Vec::new(),
        }
    }

    async fn run(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.input.clear();
        let mut line = String::new();
        for r in records {
            line.clear();
            r.to_json_line(&mut line);
            line.push('\n');
            self.input.extend_from_slice(line.as_bytes());
        }
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("INDEXSTREAM_BATCH_SIZE", records.len().to_string())
            .stdin(Stdio::piped())
            // Its own process group: a timeout kills the whole command (`a | b`, `a; b`), not
            // only the shell.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SinkError::transient(format!("cannot start `sh -c {:?}`: {e}", self.command))
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = std::mem::take(&mut self.input);
        let run = async {
            // A command that exits without reading all of it closes the pipe: its exit status
            // says whether it took the batch, not the broken pipe.
            let fed = stdin.write_all(&input).await;
            drop(stdin);
            let status = child.wait().await;
            (fed, status)
        };
        let outcome = tokio::time::timeout(self.timeout, run).await;
        self.input = input;
        match outcome {
            Err(_) => {
                kill_group(&mut child).await;
                Err(SinkError::transient(format!(
                    "`{}` did not finish within {:?} and was killed",
                    self.command, self.timeout
                )))
            }
            Ok((_, Err(e))) => Err(SinkError::transient(format!(
                "cannot wait for `{}`: {e}",
                self.command
            ))),
            // Exit 0 acknowledges only a batch the command read to its end: one that stopped
            // reading (`head`, a pipeline whose first stage died) did not take all of it.
            Ok((fed, Ok(status))) if status.success() => match fed {
                Ok(()) => Ok(()),
                Err(e) => Err(SinkError::transient(format!(
                    "`{}` exited 0 without reading all of a batch of {}: {e}",
                    self.command,
                    records.len()
                ))),
            },
            Ok((_, Ok(status))) => Err(SinkError::transient(format!(
                "`{}` refused a batch of {}: {status}",
                self.command,
                records.len()
            ))),
        }
    }
}

/// Kills the command's process group (all it started), then reaps the shell.
async fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(target_os = "linux")]
    if let Some(pid) = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32))
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
}

impl Sink for ExecSink {
    fn kind(&self) -> &'static str {
        "exec"
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        if records.is_empty() {
            return Ok(());
        }
        self.run(records).await
    }

    /// Every batch was acknowledged by its run's exit status.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

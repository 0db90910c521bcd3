//! The `indexstream` command: parses arguments, sets up logging, runs a subcommand, and maps
//! the outcome to the exit status scripts rely on: 0 success (or a graceful shutdown), 2 bad
//! usage or configuration, 1 a runtime failure that retries could not overcome.

mod bench;
mod common;
mod config_file;
mod consume;
mod demo;
mod dev_server;
mod groups;
mod observe;
mod produce;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// glibc's allocator dominated profiles of the fake cluster and of the consumer (many small,
/// short-lived JSON allocations); mimalloc serves them much faster.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "indexstream",
    version,
    about = "A Kafka-style consumer for OpenSearch and Elasticsearch indices",
    long_about = "A Kafka-style consumer for OpenSearch and Elasticsearch indices: partitions, offsets and consumer groups, with commits stored in the cluster.\n\nExit status: 0 success or graceful shutdown, 2 bad usage or configuration, 1 a runtime failure."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "INDEXSTREAM_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Log filter, RUST_LOG style (e.g. `info`, `indexstream=debug`); RUST_LOG wins when set.
    #[arg(long, global = true, default_value = "info", env = "INDEXSTREAM_LOG")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read an index like a Kafka topic and deliver every document to a sink.
    Consume(Box<consume::ConsumeArgs>),
    /// Inspect and move consumer groups' offsets.
    Groups(Box<groups::GroupsArgs>),
    /// Run the built-in OpenSearch-compatible fake cluster.
    DevServer(Box<dev_server::Args>),
    /// Write synthetic audit events, some of them late.
    Produce(Box<produce::ProduceArgs>),
    /// Fake cluster + producer + consumer + live status, ending with a verdict.
    #[command(mut_arg("url", |a| a.help("A cluster to run the demo against instead of the built-in fake one (a new --index is created there) [default: the built-in fake cluster]")))]
    Demo(Box<demo::DemoArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout: `indexstream manpage > indexstream.1`.
    Manpage,
    /// Measure the fake cluster and the consumer (`--write FILE` also writes the figures as Markdown).
    Bench(Box<bench::BenchArgs>),
}

/// A usage or configuration problem: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| filter.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => {
            observe::set_json_logs(true);
            builder.json().init()
        }
    }
}

fn exit_status(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<UsageError>().is_some() {
        return 2;
    }
    match e.downcast_ref::<indexstream::Error>() {
        Some(err) if err.is_usage() => 2,
        _ => 1,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    // The consumer runs on one thread: its reads, decoding and sink writes follow one another
    // anyway, and handing work between two worker threads cost it about a tenth more CPU on
    // this project's 2-core VM (1M documents, timestamp mode to a file: 1.85-2.08 s against
    // 2.03-2.49 s, same wall time). The fake cluster, the demo and the benchmark keep a thread
    // per core.
    let mut builder = match cli.command {
        Command::Consume(_) => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Consume(args) => consume::run(*args).await,
            Command::Groups(args) => groups::run(*args).await,
            Command::DevServer(args) => dev_server::run(*args).await,
            Command::Produce(args) => produce::run(*args).await,
            Command::Demo(args) => demo::run(*args).await,
            Command::Bench(args) => bench::run(*args).await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "indexstream", &mut std::io::stdout());
                Ok(())
            }
            Command::Manpage => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .map_err(anyhow::Error::from)
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = match e.downcast_ref::<indexstream::Error>() {
                Some(indexstream::Error::Config { field, reason }) => {
                    consume::config_error_text(field, reason)
                }
                _ => format!("{e:#}"),
            };
            let one_line = text.replace('\n', " ");
            let status = exit_status(&e);
            if observe::json_logs() {
                eprintln!(
                    "{}",
                    observe::json_line(
                        "ERROR",
                        &one_line,
                        serde_json::json!({"exit_status": status})
                    )
                );
            } else {
                eprintln!("error: {one_line}");
            }
            observe::print_after_error();
            ExitCode::from(status)
        }
    }
}

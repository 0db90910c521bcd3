//! The metrics and health listener, the periodic status report and the progress bar.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use indexstream::{HealthStatus, Telemetry};
use tokio::task::JoinHandle;

use crate::UsageError;

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        t.encode_metrics(),
    )
}

async fn health(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    let h = t.health();
    let status = if h.status == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        h.to_json(t.group(), t.index()).to_string(),
    )
}

/// Binds the metrics and health listener, so that a bad `--metrics-addr` is found before the
/// consumer joins its group.
pub async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| UsageError(format!("--metrics-addr {addr}: {e}")))?;
    if let Ok(local) = listener.local_addr() {
        if !local.ip().is_loopback() {
            tracing::warn!("--metrics-addr {addr} listens beyond this machine ({local}): /metrics and /health (group, index, partitions, errors) are open to anyone who can reach it; bind 127.0.0.1 or put it behind a firewall");
        }
    }
    Ok(listener)
}

/// Serves `GET /metrics` (Prometheus) and `GET /health` (JSON) on a bound listener.
pub fn serve(
    listener: tokio::net::TcpListener,
    telemetry: Arc<Telemetry>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(telemetry);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((local, task))
}

static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says that stderr carries JSON logs, so that what is printed beside them is JSON too.
pub fn set_json_logs(on: bool) {
    JSON_LOGS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether stderr carries JSON logs (`--log-format json`).
pub fn json_logs() -> bool {
    JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// One log line shaped as the JSON logs are (`timestamp`, `level`, `fields.message`, `target`),
/// for what is printed without going through the log filter: the report, the summary, errors.
pub fn json_line(level: &str, message: &str, fields: serde_json::Value) -> String {
    let mut all = serde_json::Map::new();
    all.insert("message".into(), message.into());
    if let serde_json::Value::Object(f) = fields {
        all.extend(f);
    }
    serde_json::json!({
        "timestamp": jiff::Timestamp::now().to_string(),
        "level": level,
        "fields": all,
        "target": "indexstream",
    })
    .to_string()
}

/// Prints a line for people to stderr: as it is, or as a JSON log line carrying `fields`.
pub fn say(text: &str, fields: serde_json::Value) {
    if json_logs() {
        eprintln!("{}", json_line("INFO", text, fields));
    } else {
        eprintln!("{text}");
    }
}

/// The status report as printed to stderr: the text report, or one JSON log line.
fn report_text(telemetry: &Telemetry) -> String {
    if json_logs() {
        let line = json_line(
            "INFO",
            "status report",
            serde_json::json!({"report": telemetry.report_json()}),
        );
        format!("{line}\n")
    } else {
        telemetry.report()
    }
}

/// Prints the status report to stderr.
pub fn print_report(telemetry: &Telemetry) {
    eprint!("{}", report_text(telemetry));
}

static AFTER_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Keeps the final report to print after the error line, so that the error comes first.
pub fn report_after_error(telemetry: &Telemetry) {
    *AFTER_ERROR.lock().unwrap_or_else(|p| p.into_inner()) = Some(report_text(telemetry));
}

/// Prints what [`report_after_error`] kept, if anything.
pub fn print_after_error() {
    if let Some(text) = AFTER_ERROR.lock().unwrap_or_else(|p| p.into_inner()).take() {
        eprint!("{text}");
    }
}

/// Prints the status report to stderr every `every`.
pub fn reporter(every: Duration, telemetry: Arc<Telemetry>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            print_report(&telemetry);
        }
    })
}

/// A progress bar style whose `{rate}` reads `1845/s` (indicatif's `{per_sec}` gives
/// `1,844.8404/s`).
pub fn bar_style(template: &str) -> indicatif::ProgressStyle {
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "rate",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", s.per_sec());
            },
        )
}

/// A progress bar of the documents still to deliver, only when stderr is a terminal.
pub fn progress(telemetry: Arc<Telemetry>) -> Option<(JoinHandle<()>, indicatif::ProgressBar)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(bar_style(
        "catching up {bar:40} {pos}/{len} ({rate}, eta {eta})",
    ));
    let b = bar.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let h = telemetry.health();
            b.set_length(h.delivered + h.lag.max(0) as u64);
            b.set_position(h.delivered);
        }
    });
    Some((task, bar))
}

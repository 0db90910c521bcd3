//! Arguments and helpers shared by the commands.

use std::time::Duration;

use indexstream::{Auth, ClientConfig, Secret};

/// How to reach the cluster: flags, and the same keys in a config file.
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize, serde::Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct ConnArgs {
    /// Cluster URL, or a comma list of nodes (requests are spread over them; a node that does
    /// not answer is passed over for the next) [default: http://localhost:9200]
    #[arg(long, global = true, env = "INDEXSTREAM_URL", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Basic-auth user name.
    #[arg(long, global = true, env = "INDEXSTREAM_USERNAME", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Basic-auth password (prefer the environment variable or the config file).
    #[arg(
        long,
        global = true,
        env = "INDEXSTREAM_PASSWORD",
        hide_env_values = true,
        help_heading = CONNECTION
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// API key, sent as `Authorization: ApiKey <key>`.
    #[arg(
        long,
        global = true,
        env = "INDEXSTREAM_API_KEY",
        hide_env_values = true,
        help_heading = CONNECTION
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Timeout of one request to the cluster [default: 30s]
    #[arg(long, global = true, env = "INDEXSTREAM_REQUEST_TIMEOUT", value_parser = parse_duration, help_heading = CONNECTION)]
    #[serde(
        with = "crate::config_file::duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,
}

pub const CONNECTION: &str = "Connection";

pub const DEFAULT_URL: &str = "http://localhost:9200";

impl ConnArgs {
    pub fn client_config(&self) -> anyhow::Result<ClientConfig> {
        let url = self.url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
        let auth = match (
            self.username.clone(),
            self.password.clone(),
            self.api_key.clone(),
        ) {
            (_, _, Some(key)) => Auth::ApiKey(Secret::new(key)),
            (Some(u), Some(p), None) => Auth::Basic {
                username: u,
                password: Secret::new(p),
            },
            (Some(_), None, None) => anyhow::bail!(crate::UsageError(
                "--username needs --password (or INDEXSTREAM_PASSWORD)".into()
            )),
            (None, Some(_), None) => {
                anyhow::bail!(crate::UsageError("--password needs --username".into()))
            }
            (None, None, None) => Auth::None,
        };
        let timeout = self.request_timeout.unwrap_or(Duration::from_secs(30));
        Ok(ClientConfig::new(url)
            .with_auth(auth)
            .with_request_timeout(timeout))
    }
}

/// Parses a duration such as `500ms`, `2s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 500ms, 2s, 1m)"))
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Resolves when the process gets SIGINT or SIGTERM.
/// Resolves on SIGINT, SIGTERM or SIGHUP: all three stop gracefully (fetching stops, the sink
/// is flushed, everything delivered is committed, the lease released). SIGHUP is a stop rather
/// than "reopen the file", so that a terminal closing never kills a consumer mid-batch; to
/// rotate its file, stop it, move the file, start it again (it resumes where it stopped).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let other = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hup)) => {
                tokio::select! { _ = term.recv() => {}, _ = hup.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let other = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = other => {} }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_name_the_bad_input() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("5 parsecs")
            .unwrap_err()
            .contains("5 parsecs"));
    }
}

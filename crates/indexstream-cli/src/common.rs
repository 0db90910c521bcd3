//! Arguments and helpers shared by the commands.

use std::time::Duration;

use std::path::PathBuf;

use indexstream::{
    Auth, AwsConfig, AwsService, ClientConfig, Fingerprint, Roots, Secret, TlsConfig, Verification,
};

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
    /// Bearer token (OAuth/OIDC, Elastic service tokens), sent as `Authorization: Bearer <token>`.
    #[arg(
        long,
        global = true,
        env = "INDEXSTREAM_BEARER_TOKEN",
        hide_env_values = true,
        help_heading = CONNECTION
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    /// PEM file of CA certificates to trust besides the system's (a private CA,
    /// Elasticsearch 8's http_ca.crt).
    #[arg(long, global = true, env = "INDEXSTREAM_CA_CERT", value_name = "FILE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// Trust only the --ca-cert file's CAs, not the system's.
    #[arg(long, global = true, env = "INDEXSTREAM_CA_CERT_ONLY", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ca_cert_only: bool,
    /// PEM file with the client certificate (mutual TLS); needs --client-key.
    #[arg(long, global = true, env = "INDEXSTREAM_CLIENT_CERT", value_name = "FILE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    /// PEM file with the client certificate's private key.
    #[arg(long, global = true, env = "INDEXSTREAM_CLIENT_KEY", value_name = "FILE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Trust a server whose chain holds a certificate with this SHA-256 fingerprint, as
    /// Elasticsearch 8 prints its CA's at setup (hex, colons allowed), in place of a CA file.
    #[arg(long, global = true, env = "INDEXSTREAM_CA_FINGERPRINT", value_name = "SHA256", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_fingerprint: Option<String>,
    /// Do not verify the server's certificate at all (a first test against a self-signed
    /// cluster only: warned of at start and in /health).
    #[arg(long, global = true, env = "INDEXSTREAM_INSECURE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Sign requests with AWS SigV4: es (an Amazon OpenSearch Service domain) or aoss (a
    /// Serverless collection). Credentials come from AWS's standard chain: the environment,
    /// the shared files (--aws-profile), web identity, ECS container credentials, EC2 instance
    /// metadata.
    #[arg(long, global = true, env = "INDEXSTREAM_AWS_SIGV4", value_name = "SERVICE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_sigv4: Option<AwsService>,
    /// The AWS region of the domain or collection [default: AWS_REGION, AWS_DEFAULT_REGION, or
    /// the profile's region]
    #[arg(long, global = true, env = "INDEXSTREAM_AWS_REGION", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_region: Option<String>,
    /// The profile of ~/.aws/config and ~/.aws/credentials to take credentials from
    /// [default: AWS_PROFILE, or default]
    #[arg(long, global = true, env = "INDEXSTREAM_AWS_PROFILE", help_heading = CONNECTION)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_profile: Option<String>,
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
        let given = [
            self.api_key.is_some().then_some("--api-key"),
            self.bearer_token.is_some().then_some("--bearer-token"),
            (self.username.is_some() || self.password.is_some()).then_some("--username/--password"),
            self.aws_sigv4.is_some().then_some("--aws-sigv4"),
        ];
        let given: Vec<&str> = given.into_iter().flatten().collect();
        if given.len() > 1 {
            anyhow::bail!(crate::UsageError(format!(
                "{} each authenticate every request: give one of them",
                given.join(" and ")
            )));
        }
        if self.aws_sigv4.is_none() && (self.aws_region.is_some() || self.aws_profile.is_some()) {
            anyhow::bail!(crate::UsageError(
                "--aws-region and --aws-profile are for --aws-sigv4 es|aoss, which is not given"
                    .into()
            ));
        }
        let auth = match (
            self.username.clone(),
            self.password.clone(),
            self.api_key.clone(),
        ) {
            _ if self.bearer_token.is_some() => {
                Auth::Bearer(Secret::new(self.bearer_token.clone().unwrap_or_default()))
            }
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
        let mut config = ClientConfig::new(url)
            .with_auth(auth)
            .with_request_timeout(timeout)
            .with_tls(self.tls()?);
        if let Some(service) = self.aws_sigv4 {
            let mut aws = AwsConfig::new(service);
            aws.region = self.aws_region.clone();
            aws.profile = self.aws_profile.clone();
            config = config.with_aws(aws);
        }
        Ok(config)
    }

    fn tls(&self) -> anyhow::Result<TlsConfig> {
        let mut tls = TlsConfig::default();
        tls.ca_cert = self.ca_cert.clone();
        if self.ca_cert_only {
            if self.ca_cert.is_none() {
                anyhow::bail!(crate::UsageError(
                    "--ca-cert-only trusts only the --ca-cert file's CAs, but no --ca-cert is given".into()
                ));
            }
            tls.roots = Roots::OnlyGiven;
        }
        tls.client_cert = self.client_cert.clone();
        tls.client_key = self.client_key.clone();
        tls.ca_fingerprint = self
            .ca_fingerprint
            .as_deref()
            .map(Fingerprint::parse)
            .transpose()
            .map_err(|e| crate::UsageError(format!("--ca-fingerprint: {e}")))?;
        if self.insecure {
            tls.verification = Verification::Insecure;
        }
        Ok(tls)
    }

    /// The settings as the environment variables of a child `indexstream` process (so that
    /// secrets never go on a command line).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let flag = |b: bool| b.then(|| "true".to_string());
        [
            ("INDEXSTREAM_USERNAME", self.username.clone()),
            ("INDEXSTREAM_PASSWORD", self.password.clone()),
            ("INDEXSTREAM_API_KEY", self.api_key.clone()),
            ("INDEXSTREAM_BEARER_TOKEN", self.bearer_token.clone()),
            (
                "INDEXSTREAM_REQUEST_TIMEOUT",
                self.request_timeout
                    .map(|d| humantime::format_duration(d).to_string()),
            ),
            ("INDEXSTREAM_CA_CERT", path(&self.ca_cert)),
            ("INDEXSTREAM_CA_CERT_ONLY", flag(self.ca_cert_only)),
            ("INDEXSTREAM_CLIENT_CERT", path(&self.client_cert)),
            ("INDEXSTREAM_CLIENT_KEY", path(&self.client_key)),
            ("INDEXSTREAM_CA_FINGERPRINT", self.ca_fingerprint.clone()),
            ("INDEXSTREAM_INSECURE", flag(self.insecure)),
            (
                "INDEXSTREAM_AWS_SIGV4",
                self.aws_sigv4.map(|s| s.signing_name().to_string()),
            ),
            ("INDEXSTREAM_AWS_REGION", self.aws_region.clone()),
            ("INDEXSTREAM_AWS_PROFILE", self.aws_profile.clone()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
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

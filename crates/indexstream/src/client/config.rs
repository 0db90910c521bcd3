//! What a client is told (the cluster's URLs, credentials, timeouts) and what it learns of the
//! cluster from `GET /`.

use std::fmt;
use std::time::Duration;

/// A secret (password, API key): never printed, in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value itself, to send it (never to print it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate. In a config file: `"none"`, `{basic = {username, password}}` or
/// `{api-key = "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Auth {
    /// No authentication (the default).
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The user's password.
        password: Secret,
    },
    /// An API key, sent as `Authorization: ApiKey <key>`. Every form users have: `id:key` (as
    /// Elasticsearch's create-API-key answer gives `id` and `api_key`; sent base64-encoded),
    /// the base64 `encoded` form, Elastic Cloud `essu_...` keys and OpenSearch 3 `os_...` keys
    /// (sent as they are).
    ApiKey(Secret),
    /// A bearer token (OAuth/OIDC, Elastic service tokens), sent as `Authorization: Bearer ...`.
    Bearer(Secret),
}

impl Auth {
    /// The `Authorization` header value; fails, naming the setting, for a key or token that
    /// cannot be one (empty, or with spaces or control characters in it).
    pub(crate) fn header(
        &self,
    ) -> Result<Option<reqwest::header::HeaderValue>, super::ClientError> {
        use base64::Engine;
        let check = |setting: &'static str, v: &str| {
            if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Err(super::ClientError::Setting {
                    setting,
                    reason: "it is empty or holds spaces or control characters (a key copied with its line break?)".into(),
                })
            } else {
                Ok(())
            }
        };
        let value = match self {
            Auth::None => return Ok(None),
            Auth::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            ),
            Auth::ApiKey(key) => {
                let key = key.expose().trim();
                check("api-key", key)?;
                // Base64 has no colon: a colon is the `id:key` form, which goes encoded.
                if key.contains(':') {
                    format!(
                        "ApiKey {}",
                        base64::engine::general_purpose::STANDARD.encode(key)
                    )
                } else {
                    format!("ApiKey {key}")
                }
            }
            Auth::Bearer(token) => {
                let token = token.expose().trim();
                check("bearer-token", token)?;
                format!("Bearer {token}")
            }
        };
        let mut v = reqwest::header::HeaderValue::from_str(&value).map_err(|e| {
            super::ClientError::Setting {
                setting: "auth",
                reason: format!("not a header value: {e}"),
            }
        })?;
        v.set_sensitive(true);
        Ok(Some(v))
    }
}

/// Connection settings.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct ClientConfig {
    /// Base URL of the cluster, e.g. `http://localhost:9200`, or a comma list of nodes
    /// (`http://a:9200,http://b:9200`): requests are spread over them, and one that a node
    /// refuses, times out or drops goes on to the next at once.
    pub url: String,
    /// How requests authenticate (default: not at all).
    #[serde(default)]
    pub auth: Auth,
    /// Timeout of one request (default 30 s).
    #[serde(default = "default_request_timeout", with = "crate::serde_duration")]
    pub request_timeout: Duration,
    /// Timeout of establishing a connection (default 5 s).
    #[serde(default = "default_connect_timeout", with = "crate::serde_duration")]
    pub connect_timeout: Duration,
    /// How HTTPS connections are verified (default: the system roots, full verification).
    #[serde(default)]
    pub tls: super::TlsConfig,
    /// Sign requests with AWS SigV4 (Amazon OpenSearch Service, Serverless).
    #[serde(default)]
    pub aws: Option<super::AwsConfig>,
}

impl ClientConfig {
    /// Settings for `url` with no authentication and the default timeouts; the URL is checked
    /// only by [`Client::new`].
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            auth: Auth::None,
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            tls: super::TlsConfig::default(),
            aws: None,
        }
    }

    /// The same settings, signing requests with AWS SigV4.
    pub fn with_aws(mut self, aws: super::AwsConfig) -> Self {
        self.aws = Some(aws);
        self
    }

    /// The same settings with other TLS settings.
    pub fn with_tls(mut self, tls: super::TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// The same settings with another timeout of establishing a connection.
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// The same settings with another authentication.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// The same settings with another timeout of one request.
    pub fn with_request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Which search engine answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    /// OpenSearch: `GET /` reports `version.distribution: "opensearch"`.
    OpenSearch,
    /// Elasticsearch: assumed for every cluster that does not report itself as OpenSearch.
    Elasticsearch,
}

/// What `GET /` says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Which search engine answers.
    pub distribution: Distribution,
    /// The `(major, minor, patch)` of `version.number`; a part that does not parse is 0.
    pub version: (u32, u32, u32),
    /// The cluster's `cluster_name` (empty when it reports none).
    pub cluster_name: String,
}

impl ServerInfo {
    /// Whether `preference=_shards:N|_primary` pins a search to the primary copy (OpenSearch 2.8+).
    /// Elasticsearch needs `_only_nodes:<primary node>` instead.
    pub fn supports_primary_preference(&self) -> bool {
        self.distribution == Distribution::OpenSearch && self.version >= (2, 8, 0)
    }
}

pub(super) fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

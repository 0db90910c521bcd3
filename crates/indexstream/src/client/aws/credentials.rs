//! Where AWS credentials come from, in the order of AWS's standard chain: the environment
//! (`AWS_ACCESS_KEY_ID`, ...), the shared config and credentials files (`--aws-profile`, else
//! `AWS_PROFILE`, else `default`), web identity (`AWS_WEB_IDENTITY_TOKEN_FILE` +
//! `AWS_ROLE_ARN`, as EKS service accounts set them), ECS container credentials
//! (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`), and EC2 instance metadata (IMDSv2).
//! The first source that is configured is the one used, for the whole run; temporary
//! credentials are fetched again before they expire.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::client::config::Secret;
use crate::client::error::ClientError;

/// A set of AWS credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The access key id (`AKIA...` or, for temporary credentials, `ASIA...`).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// When temporary credentials expire.
    pub expires: Option<SystemTime>,
}

/// The environment variables the chain reads, read once (so a run sees one consistent view).
#[derive(Debug, Clone, Default)]
pub(crate) struct Env(HashMap<String, String>);

impl Env {
    pub(crate) fn process() -> Self {
        Env(std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_") || k == "HOME")
            .collect())
    }

    pub(crate) fn get(&self, k: &str) -> Option<String> {
        self.0.get(k).filter(|v| !v.is_empty()).cloned()
    }
}

/// The shared config and credentials files' keys of one profile.
#[derive(Debug, Default)]
pub(crate) struct ProfileFiles {
    profile: String,
    /// The keys of the profile, the credentials file's over the config file's.
    keys: HashMap<String, String>,
    /// The files read (for messages).
    read: Vec<PathBuf>,
}

fn parse_ini(text: &str, config_file: bool, profile: &str) -> Option<HashMap<String, String>> {
    let mut found = None;
    let mut current: Option<bool> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let section = section.trim();
            let name = if config_file && section != "default" {
                section.strip_prefix("profile ").map(str::trim)
            } else {
                Some(section)
            };
            let this = name == Some(profile);
            if this && found.is_none() {
                found = Some(HashMap::new());
            }
            current = Some(this);
            continue;
        }
        if current == Some(true) {
            if let (Some((k, v)), Some(map)) = (line.split_once('='), found.as_mut()) {
                map.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
    }
    found
}

impl ProfileFiles {
    pub(crate) fn load(env: &Env, explicit: Option<&str>) -> Result<Self, ClientError> {
        let profile = explicit
            .map(str::to_string)
            .or_else(|| env.get("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let home = env.get("HOME").map(PathBuf::from);
        let at = |var: &str, file: &str| {
            env.get(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(file)))
        };
        let mut files = ProfileFiles {
            profile: profile.clone(),
            ..Default::default()
        };
        let mut found = false;
        for (path, config_file) in [
            (at("AWS_CONFIG_FILE", "config"), true),
            (at("AWS_SHARED_CREDENTIALS_FILE", "credentials"), false),
        ] {
            let Some(path) = path else { continue };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(ClientError::Setting {
                        setting: "aws-profile",
                        reason: format!("cannot read {}: {e}", path.display()),
                    })
                }
            };
            if let Some(keys) = parse_ini(&text, config_file, &profile) {
                found = true;
                files.keys.extend(keys);
            }
            files.read.push(path);
        }
        if explicit.is_some() && !found {
            return Err(ClientError::Setting {
                setting: "aws-profile",
                reason: format!(
                    "no profile {profile:?} in {}",
                    if files.read.is_empty() {
                        "any file: neither ~/.aws/config nor ~/.aws/credentials exists (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE)".to_string()
                    } else {
                        files
                            .read
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(" or ")
                    }
                ),
            });
        }
        Ok(files)
    }

    pub(crate) fn profile(&self) -> &str {
        &self.profile
    }

    pub(crate) fn region(&self) -> Option<String> {
        self.keys.get("region").cloned()
    }
}

/// Where the credentials of a run come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CredentialSource {
    /// Long-term (or given temporary) keys from the environment or a profile.
    Static {
        /// Where they were found, e.g. `environment` or `profile "prod" (~/.aws/credentials)`.
        origin: String,
        /// The keys.
        credentials: Credentials,
    },
    /// STS `AssumeRoleWithWebIdentity` with a token file (EKS service accounts).
    WebIdentity {
        /// The token file, read again at every refresh (the platform rotates it).
        token_file: PathBuf,
        /// The role to assume.
        role_arn: String,
        /// The session name.
        session_name: String,
        /// The STS endpoint.
        endpoint: String,
    },
    /// The ECS (or EKS Pod Identity) container credentials endpoint.
    Container {
        /// The endpoint's URL.
        url: String,
        /// The `Authorization` header value it wants, if any.
        authorization: Option<Secret>,
    },
    /// EC2 instance metadata, IMDSv2 (session tokens only).
    InstanceMetadata {
        /// The endpoint (`http://169.254.169.254`).
        endpoint: String,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Static { origin, .. } => f.write_str(origin),
            CredentialSource::WebIdentity {
                role_arn, endpoint, ..
            } => write!(f, "web identity (role {role_arn}, STS at {endpoint})"),
            CredentialSource::Container { url, .. } => {
                write!(f, "container credentials at {url}")
            }
            CredentialSource::InstanceMetadata { endpoint } => {
                write!(f, "EC2 instance metadata (IMDSv2) at {endpoint}")
            }
        }
    }
}

fn setting(setting: &'static str, reason: String) -> ClientError {
    ClientError::Setting { setting, reason }
}

/// Whether a plain-HTTP container credentials URL is one AWS allows (loopback, or the ECS and
/// EKS link-local addresses).
fn allowed_container_host(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.octets()[..3] == [169, 254, 170],
        Ok(std::net::IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.segments()[..4] == [0xfd00, 0x0ec2, 0, 0]
        }
        Err(_) => host == "localhost",
    }
}

impl CredentialSource {
    /// The first source configured in `env` and `files`; with an explicit profile, the
    /// environment's keys are passed over.
    pub(crate) fn find(
        env: &Env,
        files: &ProfileFiles,
        profile_explicit: bool,
        region: &str,
    ) -> Result<Self, ClientError> {
        if !profile_explicit {
            match (
                env.get("AWS_ACCESS_KEY_ID"),
                env.get("AWS_SECRET_ACCESS_KEY"),
            ) {
                (Some(id), Some(secret)) => {
                    return Ok(CredentialSource::Static {
                        origin: "environment (AWS_ACCESS_KEY_ID)".into(),
                        credentials: Credentials {
                            access_key_id: id,
                            secret_access_key: Secret::new(secret),
                            session_token: env.get("AWS_SESSION_TOKEN").map(Secret::new),
                            expires: None,
                        },
                    })
                }
                (Some(_), None) => {
                    return Err(setting(
                        "aws-credentials",
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".into(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(setting(
                        "aws-credentials",
                        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".into(),
                    ))
                }
                (None, None) => {}
            }
        }
        let keys = &files.keys;
        if let Some(id) = keys.get("aws_access_key_id") {
            let Some(secret) = keys.get("aws_secret_access_key") else {
                return Err(setting(
                    "aws-profile",
                    format!(
                        "profile {:?} has aws_access_key_id but no aws_secret_access_key",
                        files.profile
                    ),
                ));
            };
            return Ok(CredentialSource::Static {
                origin: format!("profile {:?}", files.profile),
                credentials: Credentials {
                    access_key_id: id.clone(),
                    secret_access_key: Secret::new(secret.clone()),
                    session_token: keys.get("aws_session_token").cloned().map(Secret::new),
                    expires: None,
                },
            });
        }
        let unsupported = [
            "role_arn",
            "credential_process",
            "sso_session",
            "sso_start_url",
        ];
        if let Some(k) = unsupported.iter().find(|k| keys.contains_key(**k)) {
            return Err(setting(
                "aws-profile",
                format!(
                    "profile {:?} gets its credentials with {k}, which indexstream does not run; give the profile keys (for example with `aws configure export-credentials --format env`), or run where web identity, container or instance credentials are available",
                    files.profile
                ),
            ));
        }
        if profile_explicit {
            return Err(setting(
                "aws-profile",
                format!("profile {:?} holds no aws_access_key_id", files.profile),
            ));
        }
        if let Some(token_file) = env.get("AWS_WEB_IDENTITY_TOKEN_FILE") {
            let role_arn = env.get("AWS_ROLE_ARN").ok_or_else(|| {
                setting(
                    "aws-credentials",
                    "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not".into(),
                )
            })?;
            return Ok(CredentialSource::WebIdentity {
                token_file: token_file.into(),
                role_arn,
                session_name: env
                    .get("AWS_ROLE_SESSION_NAME")
                    .unwrap_or_else(|| "indexstream".into()),
                endpoint: env
                    .get("AWS_ENDPOINT_URL_STS")
                    .unwrap_or_else(|| format!("https://sts.{region}.amazonaws.com")),
            });
        }
        let authorization = match (
            env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"),
            env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
        ) {
            (_, Some(file)) => Some(Secret::new(
                std::fs::read_to_string(&file)
                    .map_err(|e| {
                        setting(
                            "aws-credentials",
                            format!(
                                "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {file}: {e}"
                            ),
                        )
                    })?
                    .trim()
                    .to_string(),
            )),
            (Some(t), None) => Some(Secret::new(t)),
            (None, None) => None,
        };
        if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
            return Ok(CredentialSource::Container {
                url: format!("http://169.254.170.2{relative}"),
                authorization,
            });
        }
        if let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
            let parsed = reqwest::Url::parse(&full).map_err(|e| {
                setting(
                    "aws-credentials",
                    format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} is not a URL: {e}"),
                )
            })?;
            if parsed.scheme() != "https" && !allowed_container_host(&parsed) {
                return Err(setting(
                    "aws-credentials",
                    format!("AWS_CONTAINER_CREDENTIALS_FULL_URI {full:?} is plain HTTP to a host that is neither loopback nor the ECS or EKS credentials address"),
                ));
            }
            return Ok(CredentialSource::Container {
                url: full,
                authorization,
            });
        }
        if env
            .get("AWS_EC2_METADATA_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Err(setting(
                "aws-credentials",
                format!(
                    "no AWS credentials: none in the environment (AWS_ACCESS_KEY_ID), none in profile {:?}, no web identity (AWS_WEB_IDENTITY_TOKEN_FILE), no container credentials (AWS_CONTAINER_CREDENTIALS_*), and instance metadata is disabled (AWS_EC2_METADATA_DISABLED)",
                    files.profile
                ),
            ));
        }
        Ok(CredentialSource::InstanceMetadata {
            endpoint: env
                .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
                .unwrap_or_else(|| "http://169.254.169.254".into())
                .trim_end_matches('/')
                .to_string(),
        })
    }
}

/// The credentials of a run, fetched from their source when first needed and again before
/// they expire.
#[derive(Debug)]
pub(crate) struct CredentialCache {
    source: CredentialSource,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    credentials: Credentials,
    /// When to fetch new ones (`None`: never, they do not expire).
    refresh_at: Option<SystemTime>,
}

/// How long before expiry temporary credentials are fetched again: 5 minutes, as AWS's SDKs
/// do, or a quarter of their lifetime when that is shorter.
fn refresh_at(now: SystemTime, expires: Option<SystemTime>) -> Option<SystemTime> {
    let expires = expires?;
    let lifetime = expires.duration_since(now).unwrap_or_default();
    Some(expires - Duration::from_secs(300).min(lifetime / 4))
}

fn fetch_error(source: &CredentialSource, reason: impl fmt::Display) -> ClientError {
    ClientError::Setting {
        setting: "aws-credentials",
        reason: format!("cannot get AWS credentials from {source}: {reason}"),
    }
}

/// `<Tag>value</Tag>` in an STS answer.
fn xml_value<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

fn parse_time(s: &str) -> Option<SystemTime> {
    s.parse::<jiff::Timestamp>().ok().map(SystemTime::from)
}

impl CredentialCache {
    pub(crate) fn new(source: CredentialSource) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        CredentialCache {
            source,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub(crate) async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }

    /// Credentials to sign with now.
    pub(crate) async fn get(&self) -> Result<Credentials, ClientError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref() {
            if c.refresh_at.is_none_or(|at| now < at) {
                return Ok(c.credentials.clone());
            }
        }
        match self.fetch().await {
            Ok(credentials) => {
                tracing::debug!(source = %self.source, expires = ?credentials.expires.map(|e| jiff::Timestamp::try_from(e).ok()), "fetched AWS credentials");
                *cached = Some(Cached {
                    refresh_at: refresh_at(now, credentials.expires),
                    credentials: credentials.clone(),
                });
                Ok(credentials)
            }
            // The old ones still serve until they expire.
            Err(e) => match cached.as_ref() {
                Some(c) if c.credentials.expires.is_some_and(|x| now < x) => {
                    tracing::warn!(error = %e, "could not refresh the AWS credentials; using the current ones until they expire");
                    Ok(c.credentials.clone())
                }
                _ => Err(e),
            },
        }
    }

    async fn fetch(&self) -> Result<Credentials, ClientError> {
        let src = &self.source;
        let fail = |r: String| fetch_error(src, r);
        match src {
            CredentialSource::Static { credentials, .. } => Ok(credentials.clone()),
            CredentialSource::Container { url, authorization } => {
                let mut req = self.http.get(url);
                if let Some(a) = authorization {
                    let mut v = reqwest::header::HeaderValue::from_str(a.expose())
                        .map_err(|e| fail(format!("the authorization token: {e}")))?;
                    v.set_sensitive(true);
                    req = req.header("authorization", v);
                }
                let body = self.text(req).await?;
                self.json_credentials(&body)
            }
            CredentialSource::InstanceMetadata { endpoint } => {
                let token = self
                    .text(
                        self.http
                            .put(format!("{endpoint}/latest/api/token"))
                            .header("x-aws-ec2-metadata-token-ttl-seconds", "21600"),
                    )
                    .await?;
                let path = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
                let roles = self
                    .text(
                        self.http
                            .get(&path)
                            .header("x-aws-ec2-metadata-token", token.trim()),
                    )
                    .await?;
                let role = roles
                    .lines()
                    .next()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| fail("the instance has no IAM role".into()))?;
                let body = self
                    .text(
                        self.http
                            .get(format!("{path}{role}"))
                            .header("x-aws-ec2-metadata-token", token.trim()),
                    )
                    .await?;
                self.json_credentials(&body)
            }
            CredentialSource::WebIdentity {
                token_file,
                role_arn,
                session_name,
                endpoint,
            } => {
                let token = std::fs::read_to_string(token_file)
                    .map_err(|e| fail(format!("cannot read {}: {e}", token_file.display())))?;
                let body = self
                    .text(self.http.post(endpoint.as_str()).form(&[
                        ("Action", "AssumeRoleWithWebIdentity"),
                        ("Version", "2011-06-15"),
                        ("RoleArn", role_arn.as_str()),
                        ("RoleSessionName", session_name.as_str()),
                        ("WebIdentityToken", token.trim()),
                    ]))
                    .await?;
                let get = |tag: &str| {
                    xml_value(&body, tag)
                        .map(str::to_string)
                        .ok_or_else(|| fail(format!("no {tag} in the STS answer")))
                };
                Ok(Credentials {
                    access_key_id: get("AccessKeyId")?,
                    secret_access_key: Secret::new(get("SecretAccessKey")?),
                    session_token: Some(Secret::new(get("SessionToken")?)),
                    expires: parse_time(&get("Expiration")?),
                })
            }
        }
    }

    /// The body of a 2xx answer; other answers fail naming the status (the body of a failed
    /// credentials request is not shown: it may hold a token).
    async fn text(&self, req: reqwest::RequestBuilder) -> Result<String, ClientError> {
        let fail = |r: String| fetch_error(&self.source, r);
        let resp = req
            .send()
            .await
            .map_err(|e| fail(super::super::error::root_cause(&e)))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| fail(super::super::error::root_cause(&e)))?;
        if !status.is_success() {
            return Err(fail(format!("it answered {status}")));
        }
        Ok(body)
    }

    fn json_credentials(&self, body: &str) -> Result<Credentials, ClientError> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            access_key_id: String,
            secret_access_key: String,
            token: Option<String>,
            expiration: Option<String>,
            code: Option<String>,
        }
        let a: Answer = serde_json::from_str(body).map_err(|e| {
            fetch_error(
                &self.source,
                format!("the answer is not credentials JSON: {e}"),
            )
        })?;
        if let Some(code) = a.code.filter(|c| c != "Success") {
            return Err(fetch_error(
                &self.source,
                format!("it answered Code {code}"),
            ));
        }
        Ok(Credentials {
            access_key_id: a.access_key_id,
            secret_access_key: Secret::new(a.secret_access_key),
            session_token: a.token.map(Secret::new),
            expires: a.expiration.as_deref().and_then(parse_time),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    #[test]
    fn profiles_are_read_from_both_files_the_credentials_file_winning() {
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("config");
        let creds = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile prod]\nregion = us-east-2\naws_access_key_id = FROMCONFIG\n",
        )
        .expect("write");
        std::fs::write(
            &creds,
            "# comment\n[prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = s3cr3t\n[other]\naws_access_key_id = NO\n",
        )
        .expect("write");
        let e = env(&[
            ("AWS_CONFIG_FILE", config.to_str().expect("utf8")),
            ("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().expect("utf8")),
        ]);
        let files = ProfileFiles::load(&e, Some("prod")).expect("load");
        assert_eq!(files.region().as_deref(), Some("us-east-2"));
        match CredentialSource::find(&e, &files, true, "us-east-2").expect("find") {
            CredentialSource::Static { credentials, .. } => {
                assert_eq!(credentials.access_key_id, "AKIDPROD");
                assert_eq!(credentials.secret_access_key.expose(), "s3cr3t");
            }
            other => panic!("{other:?}"),
        }
        let missing = ProfileFiles::load(&e, Some("nope")).expect_err("missing");
        assert!(
            missing.to_string().contains("no profile \"nope\""),
            "{missing}"
        );
        let default = ProfileFiles::load(&e, None).expect("load");
        assert_eq!(default.region().as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn the_chain_takes_the_first_configured_source() {
        let none = ProfileFiles::default();
        let source =
            |pairs: &[(&str, &str)]| CredentialSource::find(&env(pairs), &none, false, "eu-west-1");
        assert!(matches!(
            source(&[
                ("AWS_ACCESS_KEY_ID", "a"),
                ("AWS_SECRET_ACCESS_KEY", "b"),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1/x")
            ]),
            Ok(CredentialSource::Static { .. })
        ));
        assert!(source(&[("AWS_ACCESS_KEY_ID", "a")])
            .expect_err("half")
            .to_string()
            .contains("AWS_SECRET_ACCESS_KEY"));
        match source(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
        ]) {
            Ok(CredentialSource::WebIdentity { endpoint, .. }) => {
                assert_eq!(endpoint, "https://sts.eu-west-1.amazonaws.com")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            source(&[("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")]),
            Ok(CredentialSource::Container { url, .. }) if url == "http://169.254.170.2/v2/credentials/x"
        ));
        assert!(source(&[(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "http://example.com/creds"
        )])
        .expect_err("plain http elsewhere")
        .to_string()
        .contains("neither loopback"));
        assert!(matches!(
            source(&[]),
            Ok(CredentialSource::InstanceMetadata { endpoint }) if endpoint == "http://169.254.169.254"
        ));
        assert!(source(&[("AWS_EC2_METADATA_DISABLED", "true")]).is_err());
    }

    #[test]
    fn temporary_credentials_are_refreshed_five_minutes_or_a_quarter_of_their_life_early() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            refresh_at(now, Some(now + Duration::from_secs(3600))),
            Some(now + Duration::from_secs(3300))
        );
        assert_eq!(
            refresh_at(now, Some(now + Duration::from_secs(4))),
            Some(now + Duration::from_secs(3))
        );
        assert_eq!(refresh_at(now, None), None);
    }

    #[test]
    fn sts_answers_are_read() {
        let xml = "<X><Credentials><AccessKeyId>ASIA1</AccessKeyId><SessionToken> t </SessionToken></Credentials></X>";
        assert_eq!(xml_value(xml, "AccessKeyId"), Some("ASIA1"));
        assert_eq!(xml_value(xml, "SessionToken"), Some("t"));
        assert_eq!(xml_value(xml, "Expiration"), None);
    }
}

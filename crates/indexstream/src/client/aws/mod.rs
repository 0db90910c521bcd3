//! AWS SigV4 request signing, for Amazon OpenSearch Service domains (`es`) and OpenSearch
//! Serverless collections (`aoss`).
//!
//! The crate choice: `aws-sigv4` (AWS's own signer, the one the SDK uses; 54 crates and 9.3 s
//! of a debug build in a fresh project, about 28 of them new to our tree) with a small credential
//! chain of our own (`credentials.rs`). `reqsign` brings its own HTTP stack and a wider set of
//! services; the SDK's `aws-config` brings the whole smithy runtime, its own hyper client and
//! TLS stack and more than doubles the build. What we sign is one kind of request, so the
//! signer alone and the five credential sources below are the lean choice.

mod credentials;

use std::time::SystemTime;

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

pub(crate) use credentials::CredentialCache;
pub use credentials::{CredentialSource, Credentials};

use super::error::ClientError;

/// Which AWS service a cluster is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AwsService {
    /// An Amazon OpenSearch Service domain (signing name `es`).
    Es,
    /// An OpenSearch Serverless collection (signing name `aoss`): no shard-level stats, so
    /// exact mode cannot read it.
    Aoss,
}

impl AwsService {
    /// The signing name.
    pub fn signing_name(self) -> &'static str {
        match self {
            AwsService::Es => "es",
            AwsService::Aoss => "aoss",
        }
    }
}

impl std::str::FromStr for AwsService {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "es" => Ok(AwsService::Es),
            "aoss" => Ok(AwsService::Aoss),
            other => Err(format!(
                "{other:?} is not an AWS service this signs for: es (an OpenSearch Service domain) or aoss (a Serverless collection)"
            )),
        }
    }
}

/// SigV4 settings of a client. In a config file: `[aws] service = "es", region = "...",
/// profile = "..."`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct AwsConfig {
    /// The service to sign for.
    pub service: AwsService,
    /// The region; when unset, `AWS_REGION`, `AWS_DEFAULT_REGION` or the profile's `region`.
    #[serde(default)]
    pub region: Option<String>,
    /// The profile of the shared config and credentials files; when set, the environment's
    /// keys are passed over for it.
    #[serde(default)]
    pub profile: Option<String>,
}

impl AwsConfig {
    /// Signing for `service`, with the region and credentials found in the environment.
    pub fn new(service: AwsService) -> Self {
        AwsConfig {
            service,
            region: None,
            profile: None,
        }
    }

    /// The same settings with a region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The same settings with a profile.
    pub fn with_profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }
}

/// Signs requests: the service, the region, and the credentials (fetched and refreshed).
#[derive(Debug)]
pub(crate) struct Signer {
    service: AwsService,
    region: String,
    credentials: CredentialCache,
}

impl Signer {
    /// Finds the region and the credential source; fails, naming what was looked at, when
    /// there is no region or no source. Fetches nothing yet.
    pub(crate) fn new(config: &AwsConfig) -> Result<Self, ClientError> {
        let env = credentials::Env::process();
        let files = credentials::ProfileFiles::load(&env, config.profile.as_deref())?;
        let region = config
            .region
            .clone()
            .or_else(|| env.get("AWS_REGION"))
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .or_else(|| files.region())
            .ok_or_else(|| ClientError::Setting {
                setting: "aws-region",
                reason: format!(
                    "SigV4 needs the cluster's region: give --aws-region, set AWS_REGION, or set region in the profile {:?}",
                    files.profile()
                ),
            })?;
        let source = CredentialSource::find(&env, &files, config.profile.is_some(), &region)?;
        tracing::info!(service = config.service.signing_name(), region = %region, credentials = %source, "signing requests with AWS SigV4");
        Ok(Signer {
            service: config.service,
            region,
            credentials: CredentialCache::new(source),
        })
    }

    pub(crate) fn service(&self) -> AwsService {
        self.service
    }

    /// Forgets the cached credentials (the cluster said they expired).
    pub(crate) async fn invalidate(&self) {
        self.credentials.invalidate().await
    }

    /// Adds the SigV4 headers (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and
    /// `x-amz-security-token` for temporary credentials) to `req`.
    pub(crate) async fn sign(&self, req: &mut reqwest::Request) -> Result<(), ClientError> {
        let creds = self.credentials.get().await?;
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().to_string(),
            creds.session_token.as_ref().map(|t| t.expose().to_string()),
            creds.expires,
            "indexstream",
        )
        .into();
        let mut settings = SigningSettings::default();
        // Serverless requires the payload hash header; domains accept it.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| ClientError::Setting {
                setting: "aws-sigv4",
                reason: e.to_string(),
            })?
            .into();
        let body: &[u8] = req.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let headers: Vec<(&str, &str)> = req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)))
            .collect();
        let signable = SignableRequest::new(
            req.method().as_str(),
            req.url().as_str(),
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .and_then(|s| sign(s, &params))
        .map_err(|e| ClientError::Setting {
            setting: "aws-sigv4",
            reason: format!("cannot sign the request: {e}"),
        })?;
        let (instructions, _) = signable.into_parts();
        let mut add = Vec::new();
        for (name, value) in instructions.headers() {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|e| {
                ClientError::Setting {
                    setting: "aws-sigv4",
                    reason: format!("a signed header is not a header value: {e}"),
                }
            })?;
            if matches!(name, "authorization" | "x-amz-security-token") {
                value.set_sensitive(true);
            }
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                ClientError::Setting {
                    setting: "aws-sigv4",
                    reason: format!("a signed header's name is not a header name: {e}"),
                }
            })?;
            add.push((name, value));
        }
        for (name, value) in add {
            req.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

/// Whether a 403's reason says the session token expired (the credentials are then fetched
/// again and the request sent once more).
pub(crate) fn token_expired(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("security token") && r.contains("expired")
}

//! AWS Signature Version 4 as Amazon OpenSearch Service checks it, and the credential endpoints
//! a consumer on AWS gets temporary credentials from (ECS container credentials, EC2 instance
//! metadata with IMDSv2 sessions, STS `AssumeRoleWithWebIdentity`), so the consumer's signing
//! and its credential chain are tested end to end.
//!
//! The check is written here from AWS's specification, not with the consumer's signing crate,
//! so that it is an independent check of it; it is itself checked against AWS's published test
//! vectors (the tests below).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hyper::HeaderMap;
use serde_json::json;

use crate::api::Reply;

/// What the fake checks signatures with, and how long the temporary credentials it issues last.
#[derive(Clone)]
pub struct FakeSigV4 {
    /// The region a signature must be scoped to (`us-east-1`).
    pub region: String,
    /// The access key id of the one identity the fake knows.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret_access_key: String,
    /// How long a session token issued by the fake's credential endpoints stays valid.
    pub credential_lifetime: Duration,
    /// The lifetime the endpoints state in `Expiration`, when it differs from the real one (a
    /// token revoked or expiring early: the client learns it from the 403).
    pub claimed_lifetime: Option<Duration>,
}

impl std::fmt::Debug for FakeSigV4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeSigV4")
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("credential_lifetime", &self.credential_lifetime)
            .finish_non_exhaustive()
    }
}

/// The services a signature may be scoped to: managed domains and Serverless collections.
const SERVICES: [&str; 2] = ["es", "aoss"];
/// How far a request's `x-amz-date` may be from the fake's clock, as AWS allows.
const SKEW: Duration = Duration::from_secs(15 * 60);
/// The role the fake's instance metadata names.
const ROLE: &str = "indexstream-fake-role";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// The check and the session tokens issued so far.
#[derive(Debug)]
pub(crate) struct SigV4State {
    config: FakeSigV4,
    /// Session token to when it expires.
    issued: Mutex<HashMap<String, SystemTime>>,
    /// IMDSv2 session tokens handed out.
    imds_sessions: Mutex<Vec<String>>,
}

fn forbidden(message: &str) -> Reply {
    let mut reply = Reply::json(403, &json!({ "message": message }));
    reply
        .headers
        .push(("x-amzn-errortype", "AccessDeniedException".into()));
    reply
}

impl SigV4State {
    pub(crate) fn new(config: FakeSigV4) -> Self {
        SigV4State {
            config,
            issued: Mutex::new(HashMap::new()),
            imds_sessions: Mutex::new(Vec::new()),
        }
    }

    /// A new session token, and the expiry the endpoints state for it.
    fn issue(&self, now: SystemTime) -> (String, SystemTime) {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let token = format!("fake-session-token-{}", issued.len() + 1);
        let expires = now + self.config.credential_lifetime;
        issued.insert(token.clone(), expires);
        let claimed = now
            + self
                .config
                .claimed_lifetime
                .unwrap_or(self.config.credential_lifetime);
        (token, claimed)
    }

    /// How many session tokens the credential endpoints have issued.
    pub(crate) fn issued(&self) -> usize {
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn credentials_json(&self, now: SystemTime) -> serde_json::Value {
        let (token, expires) = self.issue(now);
        json!({
            "Code": "Success",
            "Type": "AWS-HMAC",
            "AccessKeyId": self.config.access_key_id,
            "SecretAccessKey": self.config.secret_access_key,
            "Token": token,
            "Expiration": iso(expires),
            "LastUpdated": iso(now),
        })
    }

    /// Serves `/_fake/aws/...`: `credentials` (ECS container credentials), `imds/latest/...`
    /// (EC2 instance metadata, IMDSv2 only), `sts` (`AssumeRoleWithWebIdentity`) and `issued`
    /// (how many session tokens were handed out). `None` for other paths.
    pub(crate) fn endpoint(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Option<Reply> {
        let now = SystemTime::now();
        let rest = path.strip_prefix("/_fake/aws/")?;
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        Some(match rest {
            "credentials" => Reply::json(200, &self.credentials_json(now)),
            "issued" => Reply::json(200, &json!({ "issued": self.issued() })),
            "imds/latest/api/token" if method == "PUT" => {
                if header("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                    return Some(Reply::text(400, "missing the token ttl header".into()));
                }
                let mut sessions = self.imds_sessions.lock().unwrap_or_else(|p| p.into_inner());
                let token = format!("imds-session-{}", sessions.len() + 1);
                sessions.push(token.clone());
                Reply::text(200, token)
            }
            r if r.starts_with("imds/latest/meta-data/iam/security-credentials/") => {
                let known = header("x-aws-ec2-metadata-token").is_some_and(|t| {
                    self.imds_sessions
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                        .any(|s| s == t)
                });
                if !known {
                    // IMDSv2 only: a request without a session token is refused.
                    return Some(Reply::text(401, String::new()));
                }
                match r.rsplit('/').next() {
                    Some("") => Reply::text(200, ROLE.into()),
                    Some(ROLE) => Reply::json(200, &self.credentials_json(now)),
                    _ => Reply::text(404, String::new()),
                }
            }
            "sts" => {
                let form = if method == "POST" {
                    String::from_utf8_lossy(body).into_owned()
                } else {
                    query.to_string()
                };
                let params: HashMap<String, String> = form_pairs(&form).into_iter().collect();
                if params.get("Action").map(String::as_str) != Some("AssumeRoleWithWebIdentity")
                    || params.get("WebIdentityToken").is_none_or(|t| t.is_empty())
                    || !params.contains_key("RoleArn")
                {
                    return Some(Reply::text(
                        400,
                        "<ErrorResponse><Error><Code>InvalidParameterValue</Code></Error></ErrorResponse>".into(),
                    ));
                }
                let (token, expires) = self.issue(now);
                let mut reply = Reply::text(
                    200,
                    format!(
                        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>{}</SecretAccessKey><SessionToken>{}</SessionToken><Expiration>{}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>",
                        self.config.access_key_id, self.config.secret_access_key, token, iso(expires)
                    ),
                );
                reply.content_type = "text/xml";
                reply
            }
            _ => Reply::text(404, String::new()),
        })
    }

    /// Checks a request's signature as Amazon OpenSearch Service does; the 403 to answer when
    /// it is missing, stale, made with another key or wrong.
    pub(crate) fn check(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), Reply> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let Some(auth) = header("authorization") else {
            return Err(forbidden("Missing Authentication Token"));
        };
        let Some(parsed) = Authorization::parse(auth) else {
            return Err(forbidden(&format!(
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256). Authorization={auth:.60}"
            )));
        };
        if parsed.access_key_id != self.config.access_key_id {
            return Err(forbidden(
                "The security token included in the request is invalid.",
            ));
        }
        if parsed.region != self.config.region {
            return Err(forbidden(&format!(
                "Credential should be scoped to a valid region. (got {}, this endpoint is in {})",
                parsed.region, self.config.region
            )));
        }
        if !SERVICES.contains(&parsed.service.as_str()) {
            return Err(forbidden(&format!(
                "Credential should be scoped to correct service: 'es'. (got {})",
                parsed.service
            )));
        }
        let signed: Vec<&str> = parsed.signed_headers.split(';').collect();
        if !signed.contains(&"host") {
            return Err(forbidden(
                "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let Some(amz_date) = header("x-amz-date") else {
            return Err(forbidden(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
            ));
        };
        let Some(at) = parse_amz_date(amz_date) else {
            return Err(forbidden(&format!("Invalid X-Amz-Date: {amz_date}")));
        };
        let skew = now
            .duration_since(at)
            .or_else(|e| Ok::<_, ()>(e.duration()));
        if skew.is_ok_and(|d| d > SKEW) {
            return Err(forbidden(&format!(
                "Signature expired: {amz_date} is now earlier than the allowed skew of 15 minutes."
            )));
        }
        if !amz_date.starts_with(&parsed.date) {
            return Err(forbidden(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.",
            ));
        }
        if let Some(token) = header("x-amz-security-token") {
            let expires = self
                .issued
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(token)
                .copied();
            match expires {
                None => {
                    return Err(forbidden(
                        "The security token included in the request is invalid.",
                    ))
                }
                Some(e) if e <= now => {
                    return Err(forbidden(
                        "The security token included in the request is expired",
                    ))
                }
                Some(_) => {}
            }
        }
        let body_hash = sha256_hex(body);
        let payload_hash =
            match header("x-amz-content-sha256") {
                Some(h) if h != body_hash => return Err(forbidden(
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                )),
                Some(h) => h.to_string(),
                None if parsed.service == "aoss" => {
                    return Err(forbidden(
                        "Serverless requires the x-amz-content-sha256 header to be signed.",
                    ))
                }
                None => body_hash,
            };
        let mut values = Vec::with_capacity(signed.len());
        for name in &signed {
            let joined: Vec<&str> = headers
                .get_all(*name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if joined.is_empty() {
                return Err(forbidden(&format!(
                    "The signed header {name} is not in the request."
                )));
            }
            values.push((name.to_string(), joined.join(",")));
        }
        let canonical = canonical_request(
            method,
            path,
            query,
            &values,
            &parsed.signed_headers,
            &payload_hash,
        );
        let scope = format!(
            "{}/{}/{}/aws4_request",
            parsed.date, parsed.region, parsed.service
        );
        let expected = signature(
            &self.config.secret_access_key,
            &parsed.date,
            &parsed.region,
            &parsed.service,
            &string_to_sign(amz_date, &scope, &canonical),
        );
        if expected != parsed.signature {
            tracing::debug!(canonical = %canonical, "signature mismatch");
            return Err(forbidden(MISMATCH));
        }
        Ok(())
    }
}

fn iso(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let t = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", s)
        .ok()?
        .to_datetime()
        .ok()?
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some(SystemTime::from(t))
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: String,
    signature: String,
}

impl Authorization {
    fn parse(header: &str) -> Option<Self> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let (k, v) = part.trim().split_once('=')?;
            match k {
                "Credential" => credential = Some(v),
                "SignedHeaders" => signed_headers = Some(v),
                "Signature" => signature = Some(v),
                _ => return None,
            }
        }
        let mut scope = credential?.split('/');
        let (access_key_id, date, region, service, terminator) = (
            scope.next()?,
            scope.next()?,
            scope.next()?,
            scope.next()?,
            scope.next()?,
        );
        if terminator != "aws4_request" || scope.next().is_some() {
            return None;
        }
        Some(Authorization {
            access_key_id: access_key_id.into(),
            date: date.into(),
            region: region.into(),
            service: service.into(),
            signed_headers: signed_headers?.into(),
            signature: signature?.into(),
        })
    }
}

/// What SigV4 leaves unencoded: the unreserved characters of RFC 3986.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

/// `key=value` pairs of a query string or form body, decoded (`+` is a space).
fn form_pairs(s: &str) -> Vec<(String, String)> {
    let decode = |p: &str| {
        percent_encoding::percent_decode_str(&p.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The canonical request. The path is encoded once more as it arrived (every service but S3
/// signs each segment encoded twice), the query decoded and encoded again, sorted by name and
/// value; header values are trimmed with inner runs of spaces made one.
fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    let path = if path.is_empty() { "/" } else { path };
    let canonical_path: Vec<String> = path.split('/').map(uri_encode).collect();
    let mut pairs: Vec<(String, String)> = form_pairs(query)
        .into_iter()
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut out = format!(
        "{method}\n{}\n{}\n",
        canonical_path.join("/"),
        canonical_query.join("&")
    );
    for (name, value) in headers {
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push_str(&format!("{name}:{value}\n"));
    }
    out.push_str(&format!("\n{signed_headers}\n{payload_hash}"));
    out
}

fn string_to_sign(amz_date: &str, scope: &str, canonical: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    )
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    ring::hmac::sign(&key, data.as_bytes()).as_ref().to_vec()
}

fn signature(secret: &str, date: &str, region: &str, service: &str, to_sign: &str) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    hex(&hmac(&k_signing, to_sign))
}

fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20150830T123600Z";

    fn vector(
        method: &str,
        path: &str,
        query: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> String {
        let mut headers = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), DATE.to_string()),
        ];
        for (k, v) in extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let canonical = canonical_request(
            method,
            path,
            query,
            &headers,
            &names.join(";"),
            &sha256_hex(body),
        );
        let to_sign = string_to_sign(DATE, "20150830/us-east-1/service/aws4_request", &canonical);
        signature(SECRET, "20150830", "us-east-1", "service", &to_sign)
    }

    /// AWS's SigV4 test suite (aws-c-auth `tests/aws-signing-test-suite/v4/*/
    /// header-signed-request.txt`), with AKIDEXAMPLE's published secret.
    #[test]
    fn matches_the_aws_test_suite() {
        assert_eq!(
            vector("GET", "/", "", &[], b""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "get-vanilla"
        );
        assert_eq!(
            vector("GET", "/", "Param2=value2&Param1=value1", &[], b""),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            "get-vanilla-query-order-key-case: the query is sorted"
        );
        assert_eq!(
            vector("POST", "/", "", &[], b""),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            "post-vanilla"
        );
        assert_eq!(
            vector("GET", "/ሴ", "", &[], b""),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            "get-utf8: the path is encoded"
        );
        assert_eq!(
            vector(
                "GET",
                "/",
                "",
                &[(
                    "x-amz-security-token",
                    "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"
                )],
                b""
            ),
            "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
            "get-vanilla-with-session-token"
        );
    }

    fn state() -> SigV4State {
        SigV4State::new(FakeSigV4 {
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SECRET.into(),
            credential_lifetime: Duration::from_secs(60),
            claimed_lifetime: None,
        })
    }

    fn signed_request(secret: &str, token: Option<&str>) -> (HeaderMap, SystemTime) {
        let at = parse_amz_date(DATE).expect("date");
        let mut values = vec![
            ("host".to_string(), "example.amazonaws.com".to_string()),
            ("x-amz-date".to_string(), DATE.to_string()),
        ];
        if let Some(t) = token {
            values.push(("x-amz-security-token".into(), t.into()));
        }
        let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
        let signed = names.join(";");
        let canonical = canonical_request("GET", "/", "", &values, &signed, &sha256_hex(b""));
        let sig = signature(
            secret,
            "20150830",
            "us-east-1",
            "es",
            &string_to_sign(DATE, "20150830/us-east-1/es/aws4_request", &canonical),
        );
        let mut headers = HeaderMap::new();
        for (k, v) in &values {
            headers.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        headers.insert(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/es/aws4_request, SignedHeaders={signed}, Signature={sig}")
                .parse()
                .expect("value"),
        );
        (headers, at)
    }

    fn message(r: Reply) -> String {
        assert_eq!(r.status, 403);
        serde_json::from_str::<serde_json::Value>(&r.body).expect("json")["message"]
            .as_str()
            .expect("message")
            .to_string()
    }

    #[test]
    fn a_good_signature_passes_and_a_wrong_secret_or_a_stale_date_does_not() {
        let s = state();
        let (h, at) = signed_request(SECRET, None);
        assert!(s.check("GET", "/", "", &h, b"", at).is_ok());
        let (h, at) = signed_request("not-the-secret", None);
        let e = s
            .check("GET", "/", "", &h, b"", at)
            .expect_err("wrong secret");
        assert!(message(e).starts_with("The request signature we calculated does not match"));
        let (h, at) = signed_request(SECRET, None);
        let e = s
            .check("GET", "/", "", &h, b"", at + Duration::from_secs(16 * 60))
            .expect_err("stale");
        assert!(message(e).starts_with("Signature expired"));
        let (h, at) = signed_request(SECRET, None);
        let e = s
            .check("GET", "/other", "", &h, b"", at)
            .expect_err("another path");
        assert!(message(e).starts_with("The request signature we calculated"));
        assert!(s
            .check("GET", "/", "", &HeaderMap::new(), b"", at)
            .is_err_and(|r| message(r) == "Missing Authentication Token"));
    }

    #[test]
    fn a_session_token_is_accepted_until_it_expires() {
        let s = state();
        let at = parse_amz_date(DATE).expect("date");
        let (token, expires) = s.issue(at);
        let (h, _) = signed_request(SECRET, Some(&token));
        assert!(s.check("GET", "/", "", &h, b"", at).is_ok());
        let e = s
            .check("GET", "/", "", &h, b"", expires + Duration::from_secs(1))
            .expect_err("expired");
        assert_eq!(
            message(e),
            "The security token included in the request is expired"
        );
        let (h, _) = signed_request(SECRET, Some("never-issued"));
        let e = s.check("GET", "/", "", &h, b"", at).expect_err("unknown");
        assert_eq!(
            message(e),
            "The security token included in the request is invalid."
        );
    }
}

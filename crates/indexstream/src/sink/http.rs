//! `http://…` and `https://…`: each batch POSTed to a webhook (a SIEM collector, a function
//! endpoint) as JSON Lines or a JSON array, in requests of at most `max_records` records and
//! `max_bytes` bytes.
//!
//! Every line carries a stable `key` (`index/id/position`, the position being the `_seq_no` or
//! the timestamp), the same on every redelivery, and each request an `Idempotency-Key` derived
//! from the keys it carries, so a receiver can drop what it has already taken. A 2xx
//! acknowledges the request; 408, 409, 425, 429, 5xx (but 501 and 505), timeouts and
//! connection failures are sent again within the sink (honouring `Retry-After`), then
//! reported as passing failures. A 400 or 422 blames the content (a 413 its size): the
//! request's records are sent one by one to find the ones refused, which the consumer
//! dead-letters. A redirect, and any other 4xx or 5xx (401, 403, 404, 501, ...), would refuse
//! every document: the consumer stops, naming the response.

use std::time::Duration;

use base64::Engine as _;

use super::{Sink, SinkError};
use crate::backoff::Backoff;
use crate::client::Secret;
use crate::record::{push_str, Record};

/// A request refused with 429 or 5xx, or timed out, is sent this many times in all within the
/// sink, with backoff (about 11 s of waits without `Retry-After`), before the consumer is told.
const ATTEMPTS: u32 = 8;
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
/// The longest `Retry-After` honoured; a longer one is waited this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// How much of a refusal's body its error quotes.
const QUOTED_BODY: usize = 300;

/// How a request's records are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpFormat {
    /// One JSON object per line (`application/x-ndjson`), the default.
    Lines,
    /// One JSON array of the objects (`application/json`).
    Array,
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpAuth {
    /// No `Authorization` header (the default).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
}

/// The settings of an HTTP sink; `--sink-option` names each field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpSinkConfig {
    /// Where batches are POSTed.
    pub url: String,
    /// Option `format`: `lines` or `array`.
    pub format: HttpFormat,
    /// Option `max-records`: records per request at most (default 500).
    pub max_records: usize,
    /// Option `max-bytes`: body bytes per request at most (default 4 MiB); a single record
    /// larger than this is sent alone.
    pub max_bytes: usize,
    /// Option `timeout`: how long one request may take (default 10 s).
    pub timeout: Duration,
    /// Option `header` (repeatable, `Name: value`): headers sent with every request. Their
    /// values are treated as secrets (an API key often travels in one).
    pub headers: Vec<(String, Secret)>,
    /// Options `bearer-token` and `basic-auth` (`user:password`).
    pub auth: HttpAuth,
}

impl HttpSinkConfig {
    /// The defaults for `url`, which must be an http(s) URL without credentials in it.
    pub fn new(url: &str) -> Result<Self, String> {
        // The URL is not quoted in these errors: it may hold credentials.
        let parsed =
            reqwest::Url::parse(url).map_err(|e| format!("the webhook URL is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err("the webhook URL is not an http(s) URL with a host".into());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(
                "the webhook URL holds credentials: give them with --sink-option basic-auth=USER:PASSWORD instead, which is never logged"
                    .into(),
            );
        }
        Ok(HttpSinkConfig {
            url: url.to_string(),
            format: HttpFormat::Lines,
            max_records: 500,
            max_bytes: 4 << 20,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            auth: HttpAuth::None,
        })
    }

    /// Applies one `--sink-option`; `Ok(false)` when the sink has no option `key`.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let bad = |why: &str| format!("sink option {key}={value:?}: {why}");
        match key {
            "format" => {
                self.format = match value {
                    "lines" | "jsonl" | "ndjson" => HttpFormat::Lines,
                    "array" | "json" => HttpFormat::Array,
                    _ => return Err(bad("expected lines or array")),
                }
            }
            "max-records" => {
                self.max_records = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a number of records, at least 1"))?
            }
            "max-bytes" => {
                self.max_bytes = super::parse_size(value)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("expected a size such as 1048576, 512KiB or 4MiB"))?
            }
            "timeout" => {
                self.timeout = crate::serde_duration::parse(value)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("expected a duration above 0, such as 10s"))?
            }
            "header" => {
                // The value is a secret: the error never repeats it.
                let Some((name, v)) = value.split_once(':') else {
                    return Err("sink option header: expected \"Name: value\"".into());
                };
                let name = name.trim();
                if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v.trim()).is_err()
                {
                    return Err(format!(
                        "sink option header: {name:?} is not a valid header name, or its value is not a valid header value"
                    ));
                }
                self.headers
                    .push((name.to_string(), Secret::new(v.trim().to_string())));
            }
            "bearer-token" => {
                if value.is_empty() {
                    return Err("sink option bearer-token: empty".into());
                }
                self.auth = HttpAuth::Bearer(Secret::new(value.to_string()))
            }
            "basic-auth" => {
                let Some((user, password)) = value.split_once(':') else {
                    return Err("sink option basic-auth: expected USER:PASSWORD".into());
                };
                self.auth = HttpAuth::Basic {
                    username: user.to_string(),
                    password: Secret::new(password.to_string()),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The options it takes, for an error naming them.
    pub(crate) const OPTIONS: &'static str =
        "format, max-records, max-bytes, timeout, header, bearer-token, basic-auth";
}

/// A sink POSTing batches to a webhook (see the module docs).
#[derive(Debug)]
pub struct HttpSink {
    config: HttpSinkConfig,
    http: reqwest::Client,
    /// Each record's line, and its key, for the batch being written.
    lines: Vec<String>,
    keys: Vec<String>,
}

/// What one request's answer says.
#[derive(Debug)]
enum Outcome {
    Taken,
    /// Send it again, after at least this long (`Retry-After`).
    Retry(String, Option<Duration>),
    /// The content was refused.
    Refused(String),
    /// Every request would be refused.
    Stop(String),
    /// Too large (413).
    TooLarge(String),
}

impl HttpSink {
    /// A sink for `config`, with a connection pool of its own.
    pub fn new(config: HttpSinkConfig) -> Result<Self, SinkError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .timeout(config.timeout)
            .pool_max_idle_per_host(4)
            // A redirect would turn the POST into a GET without the batch (and take the
            // headers elsewhere): it is answered as a refusal naming where it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SinkError::permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpSink {
            config,
            http,
            lines: Vec::new(),
            keys: Vec::new(),
        })
    }

    /// Each record's line (`{"key": ..., "index": ..., ... "source": ...}`) and key.
    fn encode(&mut self, records: &[Record]) {
        self.lines.clear();
        self.keys.clear();
        let mut rest = String::new();
        for r in records {
            let key = r.position_key();
            rest.clear();
            r.to_json_line(&mut rest);
            let mut line = String::with_capacity(rest.len() + key.len() + 12);
            line.push_str("{\"key\":");
            push_str(&mut line, &key);
            line.push(',');
            line.push_str(&rest[1..]);
            self.lines.push(line);
            self.keys.push(key);
        }
    }

    /// The requests for lines `0..n`: ranges of at most `max_records` lines and `max_bytes`
    /// bytes (a longer line alone).
    fn chunks(&self) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut bytes = 0;
        for (i, line) in self.lines.iter().enumerate() {
            let len = line.len() + 1;
            if i > start
                && (i - start >= self.config.max_records || bytes + len > self.config.max_bytes)
            {
                out.push(start..i);
                start = i;
                bytes = 0;
            }
            bytes += len;
        }
        if start < self.lines.len() {
            out.push(start..self.lines.len());
        }
        out
    }

    fn body(&self, range: std::ops::Range<usize>) -> String {
        let lines = &self.lines[range];
        let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
        match self.config.format {
            HttpFormat::Lines => {
                for l in lines {
                    body.push_str(l);
                    body.push('\n');
                }
            }
            HttpFormat::Array => {
                body.push('[');
                for (i, l) in lines.iter().enumerate() {
                    if i > 0 {
                        body.push(',');
                    }
                    body.push_str(l);
                }
                body.push(']');
            }
        }
        body
    }

    /// POSTs lines `range` once.
    async fn post(&self, range: std::ops::Range<usize>) -> Outcome {
        let idempotency_key = idempotency_key(&self.keys[range.clone()]);
        let content_type = match self.config.format {
            HttpFormat::Lines => "application/x-ndjson",
            HttpFormat::Array => "application/json",
        };
        let mut req = self
            .http
            .post(&self.config.url)
            .header("content-type", content_type)
            .header("idempotency-key", idempotency_key)
            .body(self.body(range));
        for (name, value) in &self.config.headers {
            let mut value = reqwest::header::HeaderValue::from_str(value.expose())
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
            value.set_sensitive(true);
            req = req.header(name.as_str(), value);
        }
        req = match &self.config.auth {
            HttpAuth::None => req,
            HttpAuth::Bearer(t) => req.bearer_auth(t.expose()),
            HttpAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose()))
            }
        };
        let url = &shown_url(&self.config.url);
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Outcome::Retry(
                    format!("{url} did not answer within {:?}", self.config.timeout),
                    None,
                )
            }
            Err(e) => {
                return Outcome::Retry(
                    format!("cannot reach {url}: {}", error_chain(&e.without_url())),
                    None,
                )
            }
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            // Drain the body so the connection goes back to the pool.
            let _ = response.bytes().await;
            return Outcome::Taken;
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(shown_url);
        let body = response.text().await.unwrap_or_default();
        let mut quoted: String = body.chars().take(QUOTED_BODY).collect();
        if quoted.len() < body.len() {
            quoted.push('…');
        }
        let why = format!("{url} answered {status}: {}", quoted.trim());
        match status {
            // 409: under the Idempotency-Key draft, a request with this key still being
            // processed (a resend after a timeout).
            408 | 409 | 425 | 429 | 500 | 502..=504 | 507..=599 => Outcome::Retry(why, retry_after),
            300..=399 => Outcome::Stop(format!(
                "{url} answered {status}, a redirect to {}: give the URL it points to",
                location.as_deref().unwrap_or("nowhere")
            )),
            400 | 422 => Outcome::Refused(why),
            413 => Outcome::TooLarge(why),
            _ => Outcome::Stop(why),
        }
    }

    /// Sends lines `range`, again while the receiver pushes back, with backoff.
    async fn send(&self, range: std::ops::Range<usize>) -> Outcome {
        let mut attempt = 0;
        loop {
            match self.post(range.clone()).await {
                Outcome::Retry(why, after) if attempt + 1 < ATTEMPTS => {
                    let wait = after
                        .map(|a| a.min(MAX_RETRY_AFTER))
                        .unwrap_or_else(|| BACKOFF.ceiling(attempt));
                    tracing::warn!(url = %shown_url(&self.config.url), attempt = attempt + 1, wait = ?wait, reason = %why, "webhook request failed; sending it again");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Outcome::Retry(why, _) => {
                    return Outcome::Retry(format!("{why} ({ATTEMPTS} attempts)"), None)
                }
                other => return other,
            }
        }
    }
}

/// The `Idempotency-Key` of a request carrying `keys`: SHA-256 of the keys, one per line,
/// base64url without padding (43 characters).
fn idempotency_key(keys: &[String]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for k in keys {
        ctx.update(k.as_bytes());
        ctx.update(b"\n");
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.finish().as_ref())
}

/// `url` as logs and errors show it: without its query, which may carry a token
/// (`?token=...`), shown as `?…`.
fn shown_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = jiff::fmt::rfc2822::parse(v.trim()).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    Some(Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
}

/// An error with its causes (reqwest's own message rarely says why a connection failed).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl Sink for HttpSink {
    fn kind(&self) -> &'static str {
        "http"
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.write_each(records).await.map_err(|(_, e)| e)
    }

    /// Every request was acknowledged by its 2xx.
    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    /// The batch in requests, in order. A request whose content is refused is sent again one
    /// record at a time, to name the refused record; the records before it were taken.
    async fn write_each(&mut self, records: &[Record]) -> Result<(), (usize, SinkError)> {
        self.encode(records);
        for range in self.chunks() {
            match self.send(range.clone()).await {
                Outcome::Taken => {}
                Outcome::Retry(why, _) => return Err((range.start, SinkError::transient(why))),
                Outcome::Stop(why) => return Err((range.start, SinkError::stop(why))),
                Outcome::Refused(why) | Outcome::TooLarge(why) if range.len() == 1 => {
                    return Err((range.start, SinkError::permanent(why)))
                }
                Outcome::Refused(_) | Outcome::TooLarge(_) => {
                    for i in range {
                        match self.send(i..i + 1).await {
                            Outcome::Taken => {}
                            Outcome::Retry(why, _) => return Err((i, SinkError::transient(why))),
                            Outcome::Stop(why) => return Err((i, SinkError::stop(why))),
                            Outcome::Refused(why) | Outcome::TooLarge(why) => {
                                return Err((i, SinkError::permanent(why)))
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, seq: i64) -> Record {
        Record {
            index: "audit".into(),
            id: id.into(),
            shard: Some(0),
            seq_no: Some(seq),
            primary_term: Some(1),
            timestamp: None,
            source: crate::record::Source::from_json("{\"a\":1}").unwrap(),
        }
    }

    #[test]
    fn lines_carry_a_stable_key_and_requests_respect_both_limits() {
        let mut config = HttpSinkConfig::new("http://127.0.0.1:1/hook").unwrap();
        config.max_records = 3;
        config.max_bytes = 250;
        let mut sink = HttpSink::new(config).unwrap();
        let records: Vec<Record> = (0..7).map(|i| record(&format!("d{i}"), i)).collect();
        sink.encode(&records);
        let line: serde_json::Value = serde_json::from_str(&sink.lines[2]).unwrap();
        assert_eq!(line["key"], "audit/d2/2");
        assert_eq!(line["id"], "d2");
        assert_eq!(line["source"]["a"], 1);
        // Each line is about 100 bytes: two fit in 250, not three.
        assert!(sink.lines[0].len() > 90 && sink.lines[0].len() < 120);
        assert_eq!(sink.chunks(), vec![0..2, 2..4, 4..6, 6..7]);
        sink.config.max_bytes = 1 << 20;
        assert_eq!(sink.chunks(), vec![0..3, 3..6, 6..7]);
        // A line longer than max-bytes goes alone.
        sink.config.max_bytes = 10;
        assert_eq!(sink.chunks().len(), 7);
        sink.config.format = HttpFormat::Array;
        let body: serde_json::Value = serde_json::from_str(&sink.body(0..3)).unwrap();
        assert_eq!(body.as_array().unwrap().len(), 3);
        // The idempotency key depends on the keys only, and on all of them.
        let a = idempotency_key(&sink.keys[0..2]);
        assert_eq!(a, idempotency_key(&sink.keys[0..2]));
        assert_ne!(a, idempotency_key(&sink.keys[0..3]));
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn options_are_checked_and_secrets_stay_out_of_debug_and_errors() {
        let mut c = HttpSinkConfig::new("https://siem.example/hook").unwrap();
        assert!(c.set("format", "array").unwrap());
        assert_eq!(c.format, HttpFormat::Array);
        assert!(c.set("max-bytes", "512KiB").unwrap());
        assert_eq!(c.max_bytes, 512 << 10);
        assert!(c.set("bearer-token", "tok-s3cret").unwrap());
        assert!(c.set("header", "X-Api-Key: key-s3cret").unwrap());
        assert!(!c.set("brokers", "x").unwrap());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let e = c.set("header", "X Bad: v-s3cret").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        let e = c.set("header", "novalue-s3cret").unwrap_err();
        assert!(e.contains("Name: value") && !e.contains("s3cret"), "{e}");
        let e = HttpSinkConfig::new("http://user:pa55@/x").unwrap_err();
        assert!(!e.contains("pa55"), "{e}");
        assert_eq!(shown_url("https://h/hook?token=s3cret"), "https://h/hook?…");
        for (k, v) in [
            ("format", "xml"),
            ("max-records", "0"),
            ("max-bytes", "lots"),
            ("timeout", "0s"),
        ] {
            assert!(c.set(k, v).is_err(), "{k}={v}");
        }
        let e = HttpSinkConfig::new("http://user:pw@h/x").unwrap_err();
        assert!(e.contains("credentials") && !e.contains("pw@"), "{e}");
        assert!(HttpSinkConfig::new("ftp://h/x").is_err());
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}

//! A request as the API sees it (method, path segments, parameters, body) and its reply.

use serde_json::Value;

use crate::engine::ResolveOpts;
use crate::error::{ApiError, ApiResult};

/// A response before it is written to the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, v: &Value) -> Self {
        Reply {
            status,
            body: v.to_string(),
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn raw_json(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn text(status: u16, body: String) -> Self {
        Reply {
            status,
            body,
            content_type: "text/plain; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            body: String::new(),
            content_type: "application/json; charset=UTF-8",
            headers: vec![],
        }
    }

    pub fn error(e: &ApiError) -> Self {
        Reply::json(e.status, &e.body())
    }
}

/// One parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub segments: Vec<String>,
    pub params: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> ApiResult<bool> {
        match self.param(name) {
            None => Ok(false),
            Some("" | "true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ApiError::illegal_argument(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    }

    pub fn flag_or(&self, name: &str, default: bool) -> ApiResult<bool> {
        if self.param(name).is_none() {
            return Ok(default);
        }
        self.flag(name)
    }

    /// How an index expression in this request resolves: `ignore_unavailable`,
    /// `allow_no_indices` (default given per API) and `expand_wildcards` (`open`, `closed`,
    /// `hidden`, `all`, `none`; the fake has no closed indices).
    pub fn resolve_opts(&self, allow_no_indices: bool) -> ApiResult<ResolveOpts> {
        let mut hidden = false;
        if let Some(v) = self.param("expand_wildcards") {
            for w in v.split(',').map(str::trim) {
                match w {
                    "all" | "hidden" => hidden = true,
                    "open" | "closed" | "none" | "" => {}
                    other => {
                        return Err(ApiError::illegal_argument(format!(
                            "No enum constant org.opensearch.action.support.IndicesOptions.WildcardStates.{}",
                            other.to_ascii_uppercase()
                        )))
                    }
                }
            }
        }
        Ok(ResolveOpts {
            ignore_unavailable: self.flag("ignore_unavailable")?,
            allow_no_indices: self.flag_or("allow_no_indices", allow_no_indices)?,
            aliases: true,
            hidden,
        })
    }

    pub fn int_param(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.param(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::illegal_argument(format!(
                    "Failed to parse int parameter [{name}] with value [{v}]"
                ))
            }),
        }
    }

    /// The JSON body, `None` when empty.
    pub fn json_body(&self) -> ApiResult<Option<Value>> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            if let Some(source) = self.param("source") {
                return serde_json::from_str(source)
                    .map(Some)
                    .map_err(|e| json_error(&e));
            }
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|e| json_error(&e))
    }

    pub fn body_text(&self) -> ApiResult<&str> {
        std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::parsing("request body is not valid UTF-8"))
    }
}

pub fn json_error(e: &serde_json::Error) -> ApiError {
    ApiError::new(
        400,
        "json_parse_exception",
        format!("Unexpected character or end-of-input: {e}"),
    )
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

pub fn parse_query_string(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

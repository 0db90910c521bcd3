//! Executes REST YAML test steps: `do` (with `catch`, `headers`, `ignore`), `match`, `length`,
//! `is_true`, `is_false`, `set`, `gt`/`gte`/`lt`/`lte`, `contains` and `skip`.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::spec::ApiSpec;
use super::yaml_test::{Suite, TestCase};

pub enum Outcome {
    Passed,
    Failed(String),
    Skipped(String),
}

/// Runner features this runner implements (a test needing another one is skipped).
const FEATURES: &[&str] = &[
    "headers",
    "contains",
    "stash_in_path",
    "stash_in_key",
    "arbitrary_key",
    "allowed_warnings",
    "allowed_warnings_regex",
];

/// Tests of the shared corpus (taken from OpenSearch's main branch) that are newer than some
/// versions answering them, with what those versions do instead: skipped when the cluster is
/// older than the version that brought the test. `(file, test, first version, why)`.
const NEWER_THAN_CLUSTER: &[(&str, &str, &str, &str)] = &[(
    "search/90_search_after.yml",
    "search with null search after value",
    "3.0.0",
    "added after 2.19 with its fix: OpenSearch 2.19.6 answers a null search_after value with a 500 (NullPointerException)",
)];

pub struct Runner {
    url: String,
    client: reqwest::Client,
    specs: HashMap<String, ApiSpec>,
    version: (u64, u64, u64, u64),
    stash: HashMap<String, Value>,
    last: Value,
}

/// A comparable version. As in OpenSearch's `Version`, a major of 5 or more is a legacy
/// Elasticsearch version, which sorts before every OpenSearch version (1.0.0 and later).
fn parse_version(v: &str) -> (u64, u64, u64, u64) {
    let mut it = v
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    );
    (if major >= 5 { 0 } else { 1 }, major, minor, patch)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn encode(part: &str) -> String {
    let mut out = String::new();
    for b in part.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~*,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn equal(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| equal(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| equal(v, w)))
        }
        (Value::String(a), Value::Number(_)) | (Value::String(a), Value::Bool(_)) => {
            *a == value_text(actual)
        }
        (a, b) => a == b,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty() && s != "false",
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(_) => true,
    }
}

impl Runner {
    pub async fn new(url: String, specs: HashMap<String, ApiSpec>) -> Self {
        let client = reqwest::Client::new();
        let version = match client.get(&url).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v["version"]["number"].as_str().map(parse_version))
                .unwrap_or((0, 0, 0, 0)),
            Err(_) => (0, 0, 0, 0),
        };
        Runner {
            url: url.trim_end_matches('/').to_string(),
            client,
            specs,
            version,
            stash: HashMap::new(),
            last: Value::Null,
        }
    }

    fn skip_reason(&self, skip: &Value) -> Option<String> {
        if let Some(features) = skip.get("features") {
            let list: Vec<String> = match features {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a.iter().map(value_text).collect(),
                _ => vec![],
            };
            for f in list {
                if !FEATURES.contains(&f.as_str()) {
                    return Some(format!("runner feature [{f}] not supported"));
                }
            }
        }
        if let Some(range) = skip.get("version").map(value_text) {
            let reason = skip.get("reason").map(value_text).unwrap_or_default();
            for r in range.split(',') {
                let r = r.trim();
                if r == "all" {
                    return Some(format!("all versions: {reason}"));
                }
                let (lo, hi) = r.split_once('-').unwrap_or((r, r));
                let lo = if lo.trim().is_empty() {
                    (0, 0, 0, 0)
                } else {
                    parse_version(lo)
                };
                let hi = if hi.trim().is_empty() {
                    (u64::MAX, 0, 0, 0)
                } else {
                    parse_version(hi)
                };
                if lo <= self.version && self.version <= hi {
                    return Some(format!("version {r}: {reason}"));
                }
            }
        }
        None
    }

    /// Replaces `$name` values and `${name}` inside strings with stashed values.
    fn unstash(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => {
                if let Some(name) = s.strip_prefix('$') {
                    if let Some(val) = self
                        .stash
                        .get(name.trim_start_matches('{').trim_end_matches('}'))
                    {
                        if !name.starts_with('{')
                            || s.ends_with('}')
                                && s.matches("${").count() == 1
                                && s.starts_with("${")
                        {
                            return val.clone();
                        }
                    }
                }
                if s.contains("${") {
                    let mut out = s.clone();
                    for (k, val) in &self.stash {
                        out = out.replace(&format!("${{{k}}}"), &value_text(val));
                    }
                    return Value::String(out);
                }
                v.clone()
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.unstash(x)).collect()),
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, val) in o {
                    let key = match k.strip_prefix('$').and_then(|n| self.stash.get(n)) {
                        Some(s) => value_text(s),
                        None => k.clone(),
                    };
                    out.insert(key, self.unstash(val));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    fn lookup(&self, path: &str) -> Option<Value> {
        if path == "$body" || path.is_empty() {
            return Some(self.last.clone());
        }
        let mut parts = Vec::new();
        let mut cur = String::new();
        let mut chars = path.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' && chars.peek() == Some(&'.') {
                cur.push('.');
                chars.next();
            } else if c == '.' {
                parts.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
        }
        parts.push(cur);
        let mut v = &self.last;
        let last = parts.len().saturating_sub(1);
        for (i, p) in parts.into_iter().enumerate() {
            let p = match p.strip_prefix('$').and_then(|n| self.stash.get(n)) {
                Some(s) => value_text(s),
                None => p,
            };
            // `_arbitrary_key_`: any key of the object; at the end of a path, the key itself.
            if p == "_arbitrary_key_" {
                let (key, value) = v.as_object()?.iter().next()?;
                if i == last {
                    return Some(Value::String(key.clone()));
                }
                v = value;
                continue;
            }
            v = match v {
                Value::Object(o) => o.get(&p)?,
                Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v.clone())
    }

    /// Leaves the cluster as a test found it, as OpenSearch's own runner does: every index
    /// (hidden ones too), data stream, template, pipeline and snapshot repository deleted,
    /// and every persistent and transient cluster setting reset (a test that disables shard
    /// allocation would otherwise break every later one). Endpoints the fake does not serve
    /// answer 400 there, which is ignored.
    async fn wipe(&mut self) {
        for path in [
            "/_search/point_in_time/_all",
            "/_search/scroll/_all",
            "/_data_stream/*?expand_wildcards=all",
            "/*?expand_wildcards=all",
            "/_template/*",
            "/_index_template/*",
            "/_component_template/*",
            "/_ingest/pipeline/*",
            "/_search/pipeline/*",
            "/_snapshot/*",
        ] {
            let _ = self
                .client
                .delete(format!("{}{path}", self.url))
                .send()
                .await;
        }
        let settings = match self
            .client
            .get(format!("{}/_cluster/settings?flat_settings=true", self.url))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let mut reset = Map::new();
        for scope in ["persistent", "transient"] {
            if let Some(keys) = settings[scope].as_object().filter(|o| !o.is_empty()) {
                let nulls: Map<String, Value> =
                    keys.keys().map(|k| (k.clone(), Value::Null)).collect();
                reset.insert(scope.to_string(), Value::Object(nulls));
            }
        }
        if !reset.is_empty() {
            let _ = self
                .client
                .put(format!("{}/_cluster/settings", self.url))
                .header("content-type", "application/json")
                .body(Value::Object(reset).to_string())
                .send()
                .await;
        }
    }

    async fn run_do(&mut self, spec: &Value) -> Result<(), String> {
        let obj = spec.as_object().ok_or("`do` must be a mapping")?;
        let mut catch: Option<String> = None;
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut call: Option<(&String, &Value)> = None;
        for (k, v) in obj {
            match k.as_str() {
                "catch" => catch = Some(value_text(v)),
                "headers" => {
                    if let Some(h) = v.as_object() {
                        headers.extend(h.iter().map(|(k, v)| (k.clone(), value_text(v))));
                    }
                }
                "warnings" | "allowed_warnings" | "allowed_warnings_regex" | "node_selector" => {}
                _ => call = Some((k, v)),
            }
        }
        let (api, params) = call.ok_or("`do` without an API call")?;
        let api_spec = self
            .specs
            .get(api)
            .ok_or_else(|| format!("no API spec for [{api}]"))?
            .clone();
        let params = self.unstash(params);
        let mut params: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
        let body = params.remove("body");
        let ignore: Vec<u16> = match params.remove("ignore") {
            Some(Value::Number(n)) => vec![n.as_u64().unwrap_or(0) as u16],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_u64().map(|n| n as u16))
                .collect(),
            _ => vec![],
        };
        let path = match api_spec
            .paths
            .iter()
            .filter(|p| p.parts.iter().all(|part| params.contains_key(part)))
            .max_by_key(|p| p.parts.len())
        {
            Some(p) => p.clone(),
            // `catch: param`: the request cannot be built from its parameters (a client error).
            None if catch.as_deref() == Some("param") => return Ok(()),
            None => {
                return Err(format!(
                    "no path of [{api}] fits the parameters {:?}",
                    params.keys().collect::<Vec<_>>()
                ))
            }
        };
        let mut url_path = path.path.clone();
        for part in &path.parts {
            let val = params
                .remove(part)
                .map(|v| value_text(&v))
                .unwrap_or_default();
            url_path = url_path.replace(&format!("{{{part}}}"), &encode(&val));
        }
        url_path = url_path.replace("//", "/");
        let method = {
            let has = |m: &str| path.methods.iter().any(|x| x == m);
            if body.is_some() && has("POST") {
                "POST"
            } else if body.is_some() && has("PUT") {
                "PUT"
            } else if has("GET") {
                "GET"
            } else {
                path.methods.first().map(String::as_str).unwrap_or("GET")
            }
        };
        let query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.clone(), value_text(v)))
            .collect();
        let mut url = format!("{}{}", self.url, url_path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(
                &query
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&"),
            );
        }
        let mut request = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?,
            &url,
        );
        if let Some(body) = &body {
            let text = match body {
                Value::String(s) => s.clone(),
                Value::Array(items) if api_spec.bulk_body => {
                    let mut s = String::new();
                    for item in items {
                        s.push_str(&match item {
                            Value::String(line) => line.clone(),
                            other => other.to_string(),
                        });
                        s.push('\n');
                    }
                    s
                }
                other => other.to_string(),
            };
            // A test that sets its own Content-Type (e.g. `application/x-ndjson`) replaces ours:
            // OpenSearch refuses a request with two.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                request = request.header("content-type", "application/json");
            }
            request = request.body(text);
        }
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        self.last = if method == "HEAD" {
            Value::Bool(status < 300)
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
        };
        match catch {
            None => {
                if status >= 400 && !ignore.contains(&status) && method != "HEAD" {
                    return Err(format!("{method} {url} answered {status}: {text}"));
                }
            }
            Some(c) => {
                let ok = match c.as_str() {
                    "missing" => status == 404,
                    "conflict" => status == 409,
                    "bad_request" => status == 400,
                    "unauthorized" => status == 401,
                    "forbidden" => status == 403,
                    "request_timeout" => status == 408,
                    "unavailable" => status == 503,
                    "request" => status >= 400,
                    "param" => false,
                    regex if regex.starts_with('/') && regex.ends_with('/') && regex.len() > 1 => {
                        let re = Regex::new(&regex[1..regex.len() - 1])
                            .map_err(|e| format!("bad catch regex {regex}: {e}"))?;
                        status >= 400 && re.is_match(&text)
                    }
                    other => return Err(format!("unknown catch [{other}]")),
                };
                if !ok {
                    return Err(format!(
                        "{method} {url}: expected catch [{c}], got {status}: {text}"
                    ));
                }
            }
        }
        Ok(())
    }

    fn assert_step(&mut self, kind: &str, spec: &Value) -> Result<(), String> {
        let pairs: Vec<(String, Value)> = match spec {
            Value::Object(o) => o.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Value::String(s) => vec![(s.clone(), Value::Null)],
            other => return Err(format!("malformed [{kind}] step: {other}")),
        };
        for (path, expected) in pairs {
            let actual = self.lookup(&path);
            let expected = self.unstash(&expected);
            let fail = |why: String| Err(format!("[{kind}] {path}: {why}"));
            match kind {
                "match" => {
                    let actual = actual.unwrap_or(Value::Null);
                    if let Value::String(s) = &expected {
                        let t = s.trim();
                        if t.len() > 1 && t.starts_with('/') && t.ends_with('/') {
                            let re = Regex::new(&format!("(?x){}", &t[1..t.len() - 1]))
                                .map_err(|e| e.to_string())?;
                            if !re.is_match(&value_text(&actual)) {
                                return fail(format!("{} does not match {t}", value_text(&actual)));
                            }
                            continue;
                        }
                    }
                    if !equal(&expected, &actual) {
                        return fail(format!("expected {expected}, got {actual}"));
                    }
                }
                "length" => {
                    let n = match &actual {
                        Some(Value::Array(a)) => a.len(),
                        Some(Value::Object(o)) => o.len(),
                        Some(Value::String(s)) => s.len(),
                        other => return fail(format!("no length for {other:?}")),
                    };
                    if Some(n as u64) != expected.as_u64() {
                        return fail(format!("expected length {expected}, got {n}"));
                    }
                }
                "is_true" => {
                    if !truthy(actual.as_ref()) {
                        return fail(format!("expected a true value, got {actual:?}"));
                    }
                }
                "is_false" => {
                    if truthy(actual.as_ref()) {
                        return fail(format!("expected a false value, got {actual:?}"));
                    }
                }
                "set" => {
                    let name = value_text(&expected);
                    let v = actual.ok_or_else(|| format!("[set] {path}: no value"))?;
                    self.stash.insert(name, v);
                }
                "gt" | "gte" | "lt" | "lte" => {
                    let a = actual
                        .as_ref()
                        .and_then(|v| v.as_f64())
                        .ok_or_else(|| format!("[{kind}] {path}: not a number: {actual:?}"))?;
                    let e = expected
                        .as_f64()
                        .ok_or_else(|| format!("[{kind}] {path}: expected a number"))?;
                    let ok = match kind {
                        "gt" => a > e,
                        "gte" => a >= e,
                        "lt" => a < e,
                        _ => a <= e,
                    };
                    if !ok {
                        return fail(format!("{a} is not {kind} {e}"));
                    }
                }
                "contains" => {
                    let ok = match &actual {
                        Some(Value::Array(items)) => items.iter().any(|i| {
                            equal(&expected, i)
                                || (expected.is_object()
                                    && expected.as_object().is_some_and(|o| {
                                        o.iter().all(|(k, v)| i.get(k).is_some_and(|w| equal(v, w)))
                                    }))
                        }),
                        Some(Value::String(s)) => s.contains(&value_text(&expected)),
                        _ => false,
                    };
                    if !ok {
                        return fail(format!("{actual:?} does not contain {expected}"));
                    }
                }
                other => return Err(format!("unknown step [{other}]")),
            }
        }
        Ok(())
    }

    async fn run_steps(&mut self, steps: &[Value]) -> Result<Option<String>, String> {
        for step in steps {
            let (kind, spec) = step
                .as_object()
                .and_then(|o| o.iter().next())
                .ok_or_else(|| format!("malformed step {step}"))?;
            match kind.as_str() {
                "skip" => {
                    if let Some(why) = self.skip_reason(spec) {
                        return Ok(Some(why));
                    }
                }
                "do" => self.run_do(spec).await?,
                other => self.assert_step(other, spec)?,
            }
        }
        Ok(None)
    }

    pub async fn run_test(&mut self, file: &str, suite: &Suite, test: &TestCase) -> Outcome {
        for (f, name, since, why) in NEWER_THAN_CLUSTER {
            if *f == file && *name == test.name && self.version < parse_version(since) {
                return Outcome::Skipped(format!("needs {since}: {why}"));
            }
        }
        self.stash.clear();
        self.last = Value::Null;
        self.wipe().await;
        // A skip in the test itself is checked before setup runs.
        if let Some(skip) = test.steps.iter().find_map(|s| s.get("skip")) {
            if let Some(why) = self.skip_reason(skip) {
                return Outcome::Skipped(why);
            }
        }
        let result = async {
            if let Some(why) = self
                .run_steps(&suite.setup)
                .await
                .map_err(|e| format!("setup: {e}"))?
            {
                return Ok(Some(why));
            }
            self.run_steps(&test.steps).await
        }
        .await;
        let teardown = self.run_steps(&suite.teardown).await;
        self.wipe().await;
        match (result, teardown) {
            (Ok(Some(why)), _) => Outcome::Skipped(why),
            (Ok(None), Ok(_)) => Outcome::Passed,
            (Err(e), _) => Outcome::Failed(e),
            (Ok(None), Err(e)) => Outcome::Failed(format!("teardown: {e}")),
        }
    }
}

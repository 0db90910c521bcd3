//! Errors shaped the way OpenSearch shapes them: `{"error": {"root_cause": [..], "type", "reason", ..}, "status"}`.

use serde_json::{json, Map, Value};

/// An API error with the HTTP status, the OpenSearch exception type and its reason (boxed, so
/// that results stay small).
#[derive(Debug, Clone)]
pub struct ApiError(Box<ErrorBody>);

#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub status: u16,
    pub kind: String,
    pub reason: String,
    /// Extra fields OpenSearch adds beside `type` and `reason` (`index`, `index_uuid`, `shard`, ...).
    pub extra: Map<String, Value>,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;
    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(status: u16, kind: &str, reason: impl Into<String>) -> Self {
        ApiError(Box::new(ErrorBody {
            status,
            kind: kind.to_string(),
            reason: reason.into(),
            extra: Map::new(),
        }))
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }

    pub fn illegal_argument(reason: impl Into<String>) -> Self {
        Self::new(400, "illegal_argument_exception", reason)
    }

    pub fn parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "parsing_exception", reason)
    }

    pub fn validation(problems: &[String]) -> Self {
        let mut reason = String::from("Validation Failed: ");
        for (i, p) in problems.iter().enumerate() {
            reason.push_str(&format!("{}: {};", i + 1, p));
        }
        Self::new(400, "action_request_validation_exception", reason)
    }

    pub fn index_not_found(index: &str) -> Self {
        Self::index_not_found_with_reason(index, format!("no such index [{index}]"))
    }

    pub fn index_not_found_with_reason(index: &str, reason: String) -> Self {
        Self::new(404, "index_not_found_exception", reason)
            .with("index", index)
            .with("resource.id", index)
            .with("resource.type", "index_or_alias")
            .with("index_uuid", "_na_")
    }

    pub fn version_conflict(index: &str, uuid: &str, shard: u32, reason: String) -> Self {
        Self::new(409, "version_conflict_engine_exception", reason)
            .with("index", index)
            .with("shard", shard.to_string())
            .with("index_uuid", uuid)
    }

    pub fn document_missing(index: &str, uuid: &str, shard: u32, id: &str) -> Self {
        Self::new(
            404,
            "document_missing_exception",
            format!("[{id}]: document missing"),
        )
        .with("index", index)
        .with("shard", shard.to_string())
        .with("index_uuid", uuid)
    }

    pub fn mapper_parsing(reason: impl Into<String>) -> Self {
        Self::new(400, "mapper_parsing_exception", reason)
    }

    /// The `error` object alone (also used inside bulk items and mget docs).
    pub fn cause(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("type".into(), Value::String(self.kind.clone()));
        obj.insert("reason".into(), Value::String(self.reason.clone()));
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    pub fn body(&self) -> Value {
        let cause = self.cause();
        let mut error = Map::new();
        error.insert("root_cause".into(), Value::Array(vec![cause.clone()]));
        if let Value::Object(fields) = cause {
            error.extend(fields);
        }
        json!({"error": Value::Object(error), "status": self.status})
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

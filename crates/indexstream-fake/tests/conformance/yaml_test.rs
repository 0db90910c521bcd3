//! Parsing REST YAML test files: `setup`, `teardown` and named tests, each a list of steps.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub steps: Vec<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct Suite {
    pub setup: Vec<Value>,
    pub teardown: Vec<Value>,
    pub tests: Vec<TestCase>,
}

pub fn find_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Converts YAML to JSON values (keys become strings).
pub fn to_json(v: serde_yaml::Value) -> Value {
    match v {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => Value::Array(seq.into_iter().map(to_json).collect()),
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    other => serde_yaml::to_string(&other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                out.insert(key, to_json(v));
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => to_json(t.value),
    }
}

pub fn parse_file(path: &Path) -> Result<Suite, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut suite = Suite::default();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string())?;
        let Value::Object(map) = to_json(value) else {
            continue;
        };
        for (name, steps) in map {
            let steps = match steps {
                Value::Array(a) => a,
                Value::Null => vec![],
                other => return Err(format!("section [{name}] is not a list of steps: {other}")),
            };
            match name.as_str() {
                "setup" => suite.setup = steps,
                "teardown" => suite.teardown = steps,
                _ => suite.tests.push(TestCase { name, steps }),
            }
        }
    }
    Ok(suite)
}

use serde::Deserialize;

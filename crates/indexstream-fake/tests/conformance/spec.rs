//! The REST API specs (`api/*.json`): which paths and methods an API name maps to.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct ApiPath {
    pub path: String,
    pub methods: Vec<String>,
    pub parts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ApiSpec {
    pub paths: Vec<ApiPath>,
    pub bulk_body: bool,
}

pub fn load(dir: &Path) -> std::io::Result<HashMap<String, ApiSpec>> {
    let mut specs = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        let Some((name, body)) = doc.as_object().and_then(|o| o.iter().next()) else {
            continue;
        };
        let paths = body["url"]["paths"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| ApiPath {
                        path: p["path"].as_str().unwrap_or_default().to_string(),
                        methods: p["methods"]
                            .as_array()
                            .map(|m| {
                                m.iter()
                                    .filter_map(|x| x.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        parts: p["parts"]
                            .as_object()
                            .map(|o| o.keys().cloned().collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let bulk_body = body["body"]["serialize"].as_str() == Some("bulk");
        specs.insert(name.clone(), ApiSpec { paths, bulk_body });
    }
    Ok(specs)
}

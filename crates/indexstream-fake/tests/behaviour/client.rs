//! A minimal HTTP helper for the tests.

use serde_json::Value;

pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub fn new(base: String) -> Self {
        Http {
            base,
            client: reqwest::Client::new(),
        }
    }

    /// Sends a request; a JSON body is sent when `body` is given. Returns status and JSON (or
    /// `Value::String` of the raw text when the answer is not JSON).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", self.base, path),
        );
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert!(status < 300, "{method} {path} -> {status}: {v}");
        v
    }

    pub async fn bulk(&self, path: &str, ndjson: String) -> Value {
        let resp = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        resp.json().await.unwrap()
    }

    pub async fn count(&self, index: &str, query: Value) -> u64 {
        self.ok(
            "POST",
            &format!("/{index}/_count"),
            Some(serde_json::json!({"query": query})),
        )
        .await["count"]
            .as_u64()
            .unwrap()
    }

    /// `(global_checkpoint, max_seq_no, external_refresh_total, docs)` of every shard's primary.
    pub async fn shard_stats(&self, index: &str) -> Vec<(i64, i64, u64, u64)> {
        let v = self
            .ok(
                "GET",
                &format!("/{index}/_stats/refresh,docs?level=shards"),
                None,
            )
            .await;
        let shards = v["indices"][index]["shards"].as_object().unwrap();
        let mut out = vec![(0, 0, 0, 0); shards.len()];
        for (num, copies) in shards {
            let primary = copies
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["routing"]["primary"] == true)
                .unwrap();
            out[num.parse::<usize>().unwrap()] = (
                primary["seq_no"]["global_checkpoint"].as_i64().unwrap(),
                primary["seq_no"]["max_seq_no"].as_i64().unwrap(),
                primary["refresh"]["external_total"].as_u64().unwrap(),
                primary["docs"]["count"].as_u64().unwrap(),
            );
        }
        out
    }
}

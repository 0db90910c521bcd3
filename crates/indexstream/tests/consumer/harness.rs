//! Where tests run: an in-process fake, or `OPENSEARCH_URL`.

use std::collections::HashMap;
use std::time::Duration;

use indexstream::{ClientConfig, Consumer, MemorySink, Record, RunOptions};
use indexstream_fake::FakeCluster;
use serde_json::{json, Value};

pub struct Target {
    pub url: String,
    /// `None` against a real cluster.
    pub fake: Option<FakeCluster>,
    pub http: reqwest::Client,
    /// Prefix of every index and group this test creates (real clusters are shared).
    pub prefix: String,
}

pub async fn target(name: &str) -> Target {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_000;
    let prefix = format!("it-{name}-{nonce}");
    match std::env::var("OPENSEARCH_URL") {
        Ok(url) => Target {
            url,
            fake: None,
            http: reqwest::Client::new(),
            prefix,
        },
        Err(_) => {
            let fake = FakeCluster::builder()
                .refresh_interval(Some(Duration::from_millis(200)))
                .start()
                .await
                .unwrap();
            Target {
                url: fake.url(),
                fake: Some(fake),
                http: reqwest::Client::new(),
                prefix,
            }
        }
    }
}

impl Target {
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig::new(self.url.clone())
    }

    /// The in-process fake, for tests that inject faults or read its request log. Such tests
    /// live in `faults` modules, which the real-node run skips (`-- --skip faults::`); one run
    /// against a real cluster anyway fails here rather than pass without testing anything.
    pub fn fault_api(&self) -> &FakeCluster {
        self.fake.as_ref().unwrap_or_else(|| {
            panic!("this test needs the fake's fault API, and OPENSEARCH_URL points at a real cluster: run the real-node tier with `-- --skip faults::`")
        })
    }

    pub fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{}", self.url, path),
        );
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {v}");
        v
    }

    pub async fn create_index(&self, index: &str, shards: u32, refresh: &str) {
        self.call("PUT", &format!("/{index}"), Some(json!({"settings": {"number_of_shards": shards, "number_of_replicas": 0, "refresh_interval": refresh}}))).await;
    }

    /// Bulk-writes `(id, source)` pairs.
    pub async fn write(&self, index: &str, docs: &[(String, Value)]) {
        let mut body = String::new();
        for (id, src) in docs {
            body.push_str(&format!(
                "{}\n{}\n",
                json!({"index": {"_index": index, "_id": id}}),
                src
            ));
        }
        let resp = self
            .http
            .post(format!("{}/_bulk", self.url))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["errors"], false, "bulk failed: {v}");
    }

    /// Consumes `index` as `group` until idle for `idle`, returning what was delivered.
    pub async fn consume(
        &self,
        index: &str,
        group: &str,
        idle: Duration,
        tune: impl FnOnce(indexstream::ConsumerBuilder) -> indexstream::ConsumerBuilder,
    ) -> Vec<Record> {
        let builder = Consumer::builder(self.client_config(), index, group)
            .with_page_size(500)
            .with_poll_interval(Duration::from_millis(50))
            .with_commit_every(1000, Duration::from_millis(500))
            .with_offsets_index(self.name("offsets"));
        let mut consumer = tune(builder).build().await.unwrap();
        let mut sink = MemorySink::default();
        consumer
            .run(
                &mut sink,
                RunOptions::default().with_until_idle(idle),
                std::future::pending(),
            )
            .await
            .unwrap();
        consumer.close().await.unwrap();
        let records = sink.records.lock().unwrap().clone();
        records
    }
}

/// How many times each id was delivered.
pub fn counts(records: &[Record]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r.id.clone()).or_insert(0) += 1;
    }
    m
}

impl Target {
    /// Writes `n` documents with ids `{prefix}0..` and sources `{"i": i}`.
    pub async fn write_n(&self, index: &str, prefix: &str, n: usize) {
        let docs: Vec<(String, Value)> = (0..n)
            .map(|i| (format!("{prefix}{i}"), json!({"i": i})))
            .collect();
        self.write(index, &docs).await;
    }
}

/// A consumer running in the background into a [`MemorySink`], until [`Running::stop`].
pub struct Running {
    pub records: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<indexstream::Result<indexstream::RunSummary>>,
}

impl Running {
    pub fn start(mut consumer: Consumer, opts: RunOptions) -> Running {
        let sink = MemorySink::default();
        let records = sink.records.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut sink = sink;
            let r = consumer
                .run(&mut sink, opts, async {
                    let _ = stopped.await;
                })
                .await;
            consumer.close().await.unwrap();
            r
        });
        Running {
            records,
            stop,
            task,
        }
    }

    /// Stops the consumer (final commit, lease released) and returns its outcome.
    pub async fn stop(self) -> indexstream::Result<indexstream::RunSummary> {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

//! The HTTP webhook sink (`HttpSink`) against a receiver in the test that fails requests on
//! purpose: every id arrives, a redelivery is recognisable by its `key`, refused documents go
//! to the dead letters and a refusal of every request stops the consumer.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use indexstream::{Consumer, HttpSink, HttpSinkConfig, RunOptions, SinkSpec};
use serde_json::Value;

use super::harness::{target, Target};

/// What the receiver answers to its `n`-th request (from 0) holding these lines.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    /// This status; the lines are not kept.
    Status(u16),
    /// Keeps the lines, then answers 200 only after this long: the sink has given up waiting,
    /// so it sends them again.
    Late(Duration),
}

type Rule = dyn Fn(u64, &[Value]) -> Answer + Send + Sync;

#[derive(Default)]
struct Seen {
    /// Every line kept, in order of arrival.
    lines: Vec<Value>,
    requests: u64,
    statuses: HashMap<u16, u64>,
    late: u64,
    /// The keys each Idempotency-Key came with (every time).
    idempotency: HashMap<String, Vec<Vec<String>>>,
    /// Headers of every request: (content-type, authorization).
    headers: HashSet<(String, String)>,
}

/// A webhook receiver on a loopback port.
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    async fn start(rule: impl Fn(u64, &[Value]) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let rule: Arc<Rule> = Arc::new(rule);
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, rule) = (state.clone(), rule.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (state, rule) = (state.clone(), rule.clone());
                        async move {
                            Ok::<_, std::convert::Infallible>(answer(req, &state, &*rule).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, seen, task }
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    state: &Mutex<Seen>,
    rule: &Rule,
) -> hyper::Response<String> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, auth, key) = (
        header("content-type"),
        header("authorization"),
        header("idempotency-key"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&body).unwrap();
    let lines: Vec<Value> = if content_type == "application/json" {
        serde_json::from_str::<Vec<Value>>(text).unwrap()
    } else {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let n = {
        let mut s = state.lock().unwrap();
        s.requests += 1;
        s.headers.insert((content_type, auth));
        let keys = lines
            .iter()
            .map(|l| l["key"].as_str().unwrap().to_string())
            .collect();
        s.idempotency.entry(key).or_default().push(keys);
        s.requests - 1
    };
    let status = match rule(n, &lines) {
        Answer::Ok => {
            state.lock().unwrap().lines.extend(lines);
            200
        }
        Answer::Late(after) => {
            {
                let mut s = state.lock().unwrap();
                s.late += 1;
                s.lines.extend(lines);
            }
            tokio::time::sleep(after).await;
            200
        }
        Answer::Status(status) => {
            *state.lock().unwrap().statuses.entry(status).or_default() += 1;
            status
        }
    };
    let mut response = hyper::Response::new(format!("{{\"status\":{status}}}"));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    if (300..400).contains(&status) {
        response.headers_mut().insert(
            "location",
            hyper::header::HeaderValue::from_static("https://elsewhere.example/hook"),
        );
    }
    if status == 503 && n % 2 == 0 {
        response
            .headers_mut()
            .insert("retry-after", hyper::header::HeaderValue::from_static("0"));
    }
    response
}

/// The sink for `receiver` with these options (parsed as `--sink` and `--sink-option` are).
fn http_sink(receiver: &Receiver, options: &[(&str, &str)]) -> HttpSink {
    let SinkSpec::Http(config) = SinkSpec::parse(&receiver.url)
        .unwrap()
        .with_options(options.iter().copied())
        .unwrap()
    else {
        panic!("an http sink")
    };
    HttpSink::new(config).unwrap()
}

async fn run(
    t: &Target,
    index: &str,
    sink: &mut HttpSink,
    dead_letter: Option<&std::path::Path>,
) -> indexstream::Result<indexstream::RunSummary> {
    let mut consumer = Consumer::builder(t.client_config(), index, t.name("g"))
        .with_page_size(100)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(500, Duration::from_millis(300))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let mut opts = RunOptions::default().with_until_idle(Duration::from_millis(1500));
    if let Some(p) = dead_letter {
        opts = opts.with_dead_letter(p);
    }
    let r = consumer.run(sink, opts, std::future::pending()).await;
    consumer.close().await.unwrap();
    r
}

/// The done-when of the webhook sink: a receiver answering 503 to one request in five (half of
/// them with `Retry-After: 0`) and too late to one in a hundred. Every id arrives; what came
/// twice (the late answers) has the same `key`, so de-duplicating by key gives exactly the
/// cluster's ids. A request sent again carries the same Idempotency-Key, and every request the
/// bearer token.
#[tokio::test]
async fn a_flaky_receiver_gets_every_id_and_keys_deduplicate_to_the_cluster_ids() {
    let t = target("webhook").await;
    let index = t.name("src");
    t.create_index(&index, 2, "100ms").await;
    t.write_n(&index, "d", 2000).await;
    let receiver = Receiver::start(|n, _| match n {
        n if n % 100 == 37 => Answer::Late(Duration::from_millis(1200)),
        n if n % 5 == 2 => Answer::Status(503),
        _ => Answer::Ok,
    })
    .await;
    let mut sink = http_sink(
        &receiver,
        &[
            ("max-records", "10"),
            ("timeout", "400ms"),
            ("bearer-token", "tok-0123"),
        ],
    );
    run(&t, &index, &mut sink, None).await.unwrap();
    let seen = receiver.seen.lock().unwrap();
    eprintln!(
        "webhook: {} requests, statuses {:?}, {} late, {} lines kept",
        seen.requests,
        seen.statuses,
        seen.late,
        seen.lines.len()
    );
    assert!(seen.requests >= 230, "{} requests", seen.requests);
    assert!(seen.statuses[&503] >= 40, "{:?}", seen.statuses);
    assert!(seen.late >= 2, "{} late answers", seen.late);
    let mut by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    for line in &seen.lines {
        by_key
            .entry(line["key"].as_str().unwrap())
            .or_default()
            .push(line);
    }
    let ids: HashSet<&str> = by_key
        .values()
        .map(|lines| lines[0]["id"].as_str().unwrap())
        .collect();
    let expected: HashSet<String> = (0..2000).map(|i| format!("d{i}")).collect();
    assert_eq!(ids.len(), 2000, "one key per document");
    assert!(ids.iter().all(|id| expected.contains(*id)));
    assert!(
        seen.lines.len() > 2000,
        "the late answers' lines came twice ({} lines)",
        seen.lines.len()
    );
    for (key, lines) in &by_key {
        let first = lines[0];
        assert!(
            lines.iter().all(|l| *l == first),
            "a key names one version: {key}"
        );
        assert_eq!(
            *key,
            format!(
                "{}/{}/{}",
                first["index"].as_str().unwrap(),
                first["id"].as_str().unwrap(),
                first["seq_no"]
            )
        );
    }
    for (key, sends) in &seen.idempotency {
        assert!(
            sends.iter().all(|k| *k == sends[0]),
            "Idempotency-Key {key} came with other keys"
        );
    }
    assert!(
        seen.idempotency.values().any(|sends| sends.len() > 1),
        "requests sent again kept their Idempotency-Key"
    );
    assert_eq!(
        seen.headers,
        HashSet::from([(
            "application/x-ndjson".to_string(),
            "Bearer tok-0123".to_string()
        )])
    );
}

/// A 400 for requests holding one document: the documents sent with it arrive (the request is
/// split to find it) and it alone goes to the dead letters, with the response in its error.
/// A 401 to every request stops the consumer naming the response; nothing is dead-lettered.
#[tokio::test]
async fn a_refused_document_is_dead_lettered_alone_and_a_refusal_of_everything_stops() {
    let t = target("webhook-refusal").await;
    let index = t.name("src");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 200).await;
    let receiver = Receiver::start(|_, lines| {
        if lines.iter().any(|l| l["id"] == "d13") {
            Answer::Status(422)
        } else {
            Answer::Ok
        }
    })
    .await;
    let dir = std::env::temp_dir().join(t.name("dlq"));
    std::fs::create_dir_all(&dir).unwrap();
    let dead = dir.join("dead.jsonl");
    let mut sink = http_sink(&receiver, &[("format", "array"), ("max-records", "50")]);
    run(&t, &index, &mut sink, Some(&dead)).await.unwrap();
    {
        let seen = receiver.seen.lock().unwrap();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for l in &seen.lines {
            *ids.entry(l["id"].as_str().unwrap()).or_default() += 1;
        }
        assert_eq!(ids.len(), 199);
        assert!(!ids.contains_key("d13"));
        assert!(ids.values().all(|n| *n == 1), "none twice");
        assert!(seen
            .headers
            .iter()
            .all(|(ct, auth)| ct == "application/json" && auth.is_empty()));
    }
    let entries: Vec<Value> = std::fs::read_to_string(&dead)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["record"]["id"], "d13");
    assert!(
        entries[0]["error"]
            .as_str()
            .unwrap()
            .contains("answered 422"),
        "{}",
        entries[0]
    );

    let closed = Receiver::start(|_, _| Answer::Status(401)).await;
    let index2 = t.name("src2");
    t.create_index(&index2, 1, "100ms").await;
    t.write_n(&index2, "e", 20).await;
    let dead2 = dir.join("dead2.jsonl");
    let mut sink = http_sink(&closed, &[]);
    let e = run(&t, &index2, &mut sink, Some(&dead2)).await.unwrap_err();
    assert!(matches!(e, indexstream::Error::Sink(_)), "{e}");
    assert!(e.to_string().contains("answered 401"), "{e}");
    assert_eq!(closed.seen.lock().unwrap().requests, 1, "not retried");
    assert_eq!(std::fs::read_to_string(&dead2).unwrap_or_default(), "");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An unreachable receiver is a passing failure: the sink tries again with backoff, then the
/// consumer's own attempts; the error names the URL.
#[tokio::test]
async fn an_unreachable_receiver_is_a_passing_failure_naming_the_url() {
    let config = HttpSinkConfig::new("http://127.0.0.1:9/hook").unwrap();
    let mut sink = HttpSink::new(config).unwrap();
    let r = indexstream::Record {
        index: "i".into(),
        id: "x".into(),
        shard: None,
        seq_no: None,
        primary_term: None,
        timestamp: None,
        source: indexstream::Source::from_json("{}").unwrap(),
    };
    tokio::time::pause();
    let e = indexstream::Sink::write(&mut sink, &[r]).await.unwrap_err();
    assert!(e.is_retriable());
    assert!(e.to_string().contains("127.0.0.1:9/hook"), "{e}");
    assert!(e.to_string().contains("8 attempts"), "{e}");
}

/// A redirect is not followed (it would turn the POST into a GET without the batch): the
/// consumer stops naming where it points, and nothing is taken.
#[tokio::test]
async fn a_redirect_stops_the_consumer_naming_where_it_points() {
    let t = target("webhook-redirect").await;
    let index = t.name("src");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 10).await;
    let moved = Receiver::start(|_, _| Answer::Status(302)).await;
    let mut sink = http_sink(&moved, &[("header", "X-Api-Key: key-s3cret")]);
    let e = run(&t, &index, &mut sink, None).await.unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("a redirect to https://elsewhere.example/hook"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
    let seen = moved.seen.lock().unwrap();
    assert_eq!(seen.requests, 1, "not followed, not retried");
    assert!(seen.lines.is_empty());
}

/// A shutdown while the sink waits on a receiver that does not answer ends the run at once,
/// not after the sink's own attempts, and commits nothing: the next run delivers every
/// document.
#[tokio::test]
async fn a_shutdown_during_a_hanging_write_ends_the_run_without_a_commit() {
    let t = target("webhook-hang").await;
    let index = t.name("src");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 30).await;
    let hanging = Receiver::start(|_, _| Answer::Late(Duration::from_secs(60))).await;
    let mut sink = http_sink(&hanging, &[("timeout", "30s")]);
    let mut consumer = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let summary = consumer
        .run(
            &mut sink,
            RunOptions::default(),
            tokio::time::sleep(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    consumer.close().await.unwrap();
    assert_eq!(summary.stop, indexstream::StopReason::Shutdown);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "stopped after {:?}",
        started.elapsed()
    );
    let again = t
        .consume(&index, &t.name("g"), Duration::from_millis(600), |b| b)
        .await;
    assert_eq!(
        super::harness::counts(&again).len(),
        30,
        "nothing was committed"
    );
}

//! Tests that need the fake's fault API or request log: the retry policy and the circuit
//! breakers under injected faults, partial shard failures, and request counts. Against a real
//! cluster (`OPENSEARCH_URL`) they cannot run: the real-node tier skips this module with
//! `-- --skip faults::`, and each one fails loudly if run there anyway.

use std::time::{Duration, Instant};

use indexstream::{
    BreakerConfig, Client, Consumer, ConsumerBuilder, HealthStatus, MemorySink, RetryPolicy,
    RunOptions,
};
use indexstream_fake::{FaultAction, FaultRule};
use serde_json::json;

use super::harness::{counts, target, Running};
use super::timestamp::{at, ts_builder, ts_settings, wait_for, T0};

/// The gaps between a request's attempts, read from the fake's request log, lie in
/// `[0, min(max_delay, base * 2^n)]` (plus the time a request takes), and `Retry-After` wins.
#[tokio::test]
async fn backoff_gaps_in_the_request_log_are_bounded_and_capped() {
    let t = target("backoff").await;
    let fake = t.fault_api();
    let index = t.name("b");
    t.create_index(&index, 1, "100ms").await;
    let policy = RetryPolicy::builder()
        .max_attempts(7)
        .base_delay(Duration::from_millis(40))
        .max_delay(Duration::from_millis(150))
        .build();
    let client = Client::new(&t.client_config())
        .unwrap()
        .with_retry(policy.clone());
    let seed = 17;
    eprintln!("fault seed {seed}");
    fake.add_fault(
        FaultRule::new("search", FaultAction::Error)
            .status(503)
            .index(&index)
            .count(6)
            .seed(seed),
    )
    .unwrap();
    let before = fake.requests().len();
    let r = client.search(&index, &[], json!({"size": 0})).await;
    let log: Vec<_> = fake.requests()[before..]
        .iter()
        .map(|r| (r.path.clone(), r.status, r.at_ms))
        .collect();
    assert!(r.is_ok(), "{r:?} {log:?}");
    let attempts: Vec<f64> = fake.requests()[before..]
        .iter()
        .filter(|r| r.path == format!("/{index}/_search"))
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(attempts.len(), 7, "six failures, then success");
    let tolerance = 30.0; // the time one request takes on a loaded machine
    for (n, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let ceiling = policy.ceiling(n as u32).as_secs_f64() * 1000.0;
        assert!(
            gap >= 0.0 && gap <= ceiling + tolerance,
            "gap {n} was {gap:.1} ms, ceiling {ceiling} ms (seed {seed})"
        );
        assert!(ceiling <= 150.0, "capped at max_delay");
    }
    // A Retry-After from the cluster is honoured (up to max_delay).
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_secs(5))
        .build();
    let client = Client::new(&t.client_config()).unwrap().with_retry(policy);
    let mut rule = FaultRule::new("search", FaultAction::Error)
        .status(429)
        .index(&index)
        .count(1);
    rule.retry_after_s = Some(1);
    fake.add_fault(rule).unwrap();
    let started = Instant::now();
    client
        .search(&index, &[], json!({"size": 0}))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured ({:?})",
        started.elapsed()
    );
    // Not retried: 400, 404.
    fake.add_fault(
        FaultRule::new("search", FaultAction::Error)
            .status(404)
            .index(&index)
            .count(1),
    )
    .unwrap();
    let before = fake.requests().len();
    assert!(client
        .search(&index, &[], json!({"size": 0}))
        .await
        .is_err());
    assert_eq!(
        fake.requests()[before..]
            .iter()
            .filter(|r| r.path.ends_with("_search"))
            .count(),
        1,
        "a 404 is not retried"
    );
}

/// An outage opens the fetch breaker (health UNHEALTHY, calls failing fast), and consumption
/// resumes within twice the open timeout once the faults stop; nothing lost, nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_opens_the_breaker_and_consumption_resumes_after_it() {
    let t = target("breaker").await;
    let fake = t.fault_api();
    let index = t.name("o");
    t.create_index(&index, 2, "100ms").await;
    t.write_n(&index, "a", 200).await;
    let open_timeout = Duration::from_secs(3);
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .with_commit_every(100, Duration::from_millis(200))
        .build_config();
    config.breaker = BreakerConfig::new(3, open_timeout);
    config.retry = RetryPolicy::builder()
        .max_attempts(2)
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .build();
    config.lease_ttl = Duration::from_secs(60);
    let consumer = indexstream::ConsumerBuilder::from_config(config)
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let running = Running::start(
        consumer,
        RunOptions::default().with_max_consecutive_failures(1000),
    );
    let records = running.records.clone();
    wait("the first 200 documents", Duration::from_secs(20), || {
        records.lock().unwrap().len() >= 200
    })
    .await;
    let rule = fake
        .add_fault(FaultRule::new("*", FaultAction::Error).status(503))
        .unwrap();
    let t2 = telemetry.clone();
    wait("an open breaker", Duration::from_secs(20), move || {
        t2.health().status == HealthStatus::Unhealthy
            && t2
                .health()
                .reasons
                .iter()
                .any(|r| r.contains("circuit breaker is open"))
    })
    .await;
    assert!(telemetry
        .encode_metrics()
        .contains("indexstream_circuit_breaker_state{group="));
    fake.remove_fault(rule);
    let recovered_at = Instant::now();
    t.write_n(&index, "b", 100).await;
    wait(
        "consumption to resume within twice the open timeout",
        open_timeout * 2,
        || records.lock().unwrap().len() >= 300,
    )
    .await;
    eprintln!(
        "resumed {:?} after the faults stopped (open timeout {open_timeout:?})",
        recovered_at.elapsed()
    );
    running.stop().await.unwrap();
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 300);
    assert!(c.values().all(|n| *n == 1), "nothing twice");
    let report = telemetry.report();
    assert!(!report.contains("Circuit Breaker Trips: 0"), "{report}");
}

async fn wait(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The offset store failing for 30 s (every commit answered 503): delivery goes on up to the
/// backlog bound, then pauses; once commits get through again, delivery resumes and nothing is lost or
/// repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_store_outage_pauses_delivery_at_the_backlog_bound_then_catches_up() {
    let t = target("offsets-outage").await;
    let fake = t.fault_api();
    let index = t.name("o");
    t.create_index(&index, 1, "100ms").await;
    t.write(&index, &[("first".to_string(), json!({"i": -1}))])
        .await;
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(100)
        .with_poll_interval(Duration::from_millis(20))
        .with_commit_every(100, Duration::from_millis(100))
        .with_offsets_index(t.name("offsets"))
        .build_config();
    config.breaker = BreakerConfig::new(3, Duration::from_millis(500));
    config.retry = RetryPolicy::builder()
        .max_attempts(2)
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50))
        .build();
    let consumer = indexstream::ConsumerBuilder::from_config(config)
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    let opts = RunOptions::default()
        .with_max_uncommitted(500)
        .with_max_consecutive_failures(1000);
    let running = Running::start(consumer, opts);
    let records = running.records.clone();
    wait("the first document", Duration::from_secs(20), || {
        !records.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Commits go to `POST /<offsets index>/_bulk`: a rule scoped to that index fails only them.
    let rule = fake
        .add_fault(
            FaultRule::new("bulk", FaultAction::Error)
                .status(503)
                .index(&t.name("offsets")),
        )
        .unwrap();
    let outage_started = Instant::now();
    // A producer keeps writing while the offset store is down.
    for chunk in 0..30 {
        t.write(
            &index,
            &(0..100)
                .map(|i| (format!("d{}", chunk * 100 + i), json!({"i": i})))
                .collect::<Vec<_>>(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait(
        "delivery up to the backlog bound",
        Duration::from_secs(20),
        || records.lock().unwrap().len() >= 500,
    )
    .await;
    // The offsets index stays unavailable for 30 s: delivery stays at the bound all along.
    while outage_started.elapsed() < Duration::from_secs(30) {
        let during = records.lock().unwrap().len();
        // The bound is checked between batches: at most one batch (100) past it, plus the first
        // document, which was committed before the outage.
        assert!(during <= 601, "{during} delivered with commits failing: the backlog bound (500, batches of 100) was not kept");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        telemetry.encode_metrics().contains("result=\"error\""),
        "failed commits are counted"
    );
    fake.remove_fault(rule);
    wait(
        "commits to catch up and delivery to finish",
        Duration::from_secs(20),
        || records.lock().unwrap().len() >= 3001,
    )
    .await;
    running.stop().await.unwrap();
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 3001);
    assert!(c.values().all(|n| *n == 1));
    let again = t
        .consume(&index, &t.name("g"), Duration::from_millis(500), |b| b)
        .await;
    assert!(
        again.is_empty(),
        "everything was committed in the end ({} repeated)",
        again.len()
    );
}

/// A shutdown while commits fail ends within the shutdown timeout and says how many delivered
/// events were left uncommitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_during_an_offset_store_outage_ends_within_its_timeout() {
    let t = target("shutdown").await;
    let fake = t.fault_api();
    let index = t.name("s");
    t.create_index(&index, 1, "100ms").await;
    let mut consumer = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_poll_interval(Duration::from_millis(20))
        .with_commit_every(10, Duration::from_millis(100))
        .with_offsets_index(t.name("offsets"))
        .build()
        .await
        .unwrap();
    fake.add_fault(
        FaultRule::new("bulk", FaultAction::Error)
            .status(503)
            .index(&t.name("offsets")),
    )
    .unwrap();
    t.write_n(&index, "d", 50).await;
    let mut sink = MemorySink::default();
    let records = sink.records.clone();
    let shutdown = async move {
        wait("delivery", Duration::from_secs(20), || {
            records.lock().unwrap().len() >= 50
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let timeout = Duration::from_secs(1);
    let result = consumer
        .run(
            &mut sink,
            RunOptions::default().with_shutdown_timeout(timeout),
            shutdown,
        )
        .await;
    let stopped_at = Instant::now();
    match result {
        Err(indexstream::Error::ShutdownTimeout { uncommitted, .. }) => assert_eq!(uncommitted, 50),
        other => panic!("expected a shutdown timeout, got {other:?}"),
    }
    assert!(stopped_at.elapsed() < Duration::from_secs(1));
    // Releasing the lease fails too (the offsets breaker is open); the lease then expires.
    let _ = consumer.close().await;
}

/// 30% of the consumer's requests fail (429, 503, dropped connections) for 60 s while 50k
/// documents are written and consumed, with a 3 s full outage in the middle: nothing lost,
/// nothing twice, the breaker opened and closed again, and consumption resumed within twice the
/// open timeout after the faults stopped. The fault seeds are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_seconds_of_thirty_percent_failures_lose_and_repeat_nothing() {
    let t = target("chaos60").await;
    let fake = t.fault_api();
    let index = t.name("c");
    let offsets = t.name("offsets");
    t.create_index(&index, 3, "200ms").await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("chaos seed {seed}");
    let open_timeout = Duration::from_secs(2);
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(500)
        .with_poll_interval(Duration::from_millis(100))
        .with_commit_every(2000, Duration::from_millis(500))
        .with_offsets_index(&offsets)
        .build_config();
    config.breaker = BreakerConfig::new(5, open_timeout);
    config.retry = RetryPolicy::builder()
        .max_attempts(3)
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(200))
        .build();
    let consumer = indexstream::ConsumerBuilder::from_config(config)
        .build()
        .await
        .unwrap();
    let telemetry = consumer.telemetry();
    // About 30% of the consumer's requests fail: reads of the index and commits to the offsets index.
    let mut rules = Vec::new();
    for (i, rule) in [
        FaultRule::new("search", FaultAction::Error)
            .status(429)
            .index(&index)
            .probability(0.12),
        FaultRule::new("search", FaultAction::Error)
            .status(503)
            .index(&index)
            .probability(0.12),
        FaultRule::new("search", FaultAction::Drop)
            .index(&index)
            .probability(0.08),
        FaultRule::new("stats", FaultAction::Error)
            .status(503)
            .index(&index)
            .probability(0.3),
        FaultRule::new("bulk", FaultAction::Error)
            .status(503)
            .index(&offsets)
            .probability(0.3),
    ]
    .into_iter()
    .enumerate()
    {
        rules.push(
            fake.add_fault(rule.seed(seed.wrapping_add(i as u64)))
                .unwrap(),
        );
    }
    let opts = RunOptions::default().with_max_consecutive_failures(100_000);
    let running = Running::start(consumer, opts);
    let records = running.records.clone();
    let started = Instant::now();
    let mut outage = None;
    let mut saw_open = false;
    for chunk in 0..100u64 {
        t.write(
            &index,
            &(0..500)
                .map(|i| (format!("e{}", chunk * 500 + i), json!({"i": i})))
                .collect::<Vec<_>>(),
        )
        .await;
        if chunk == 50 {
            outage = Some(
                fake.add_fault(
                    FaultRule::new("search", FaultAction::Error)
                        .status(503)
                        .index(&index),
                )
                .unwrap(),
            );
        }
        if chunk == 56 {
            if let Some(id) = outage.take() {
                fake.remove_fault(id);
            }
        }
        saw_open |= telemetry
            .encode_metrics()
            .lines()
            .any(|l| l.starts_with("indexstream_circuit_breaker_state") && l.ends_with(" 2"));
        let due = started + Duration::from_millis(600 * (chunk + 1));
        tokio::time::sleep_until(due.into()).await;
    }
    while started.elapsed() < Duration::from_secs(60) {
        saw_open |= telemetry
            .encode_metrics()
            .lines()
            .any(|l| l.starts_with("indexstream_circuit_breaker_state") && l.ends_with(" 2"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in rules {
        fake.remove_fault(id);
    }
    let stopped_at = Instant::now();
    let written_during = records.lock().unwrap().len();
    wait(
        "every document, within twice the open timeout of the faults stopping",
        open_timeout * 2,
        || records.lock().unwrap().len() >= 50_000,
    )
    .await;
    eprintln!(
        "{written_during} delivered during the faults; all 50000 {:?} after they stopped",
        stopped_at.elapsed()
    );
    running.stop().await.unwrap();
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 50_000, "nothing lost (seed {seed})");
    let twice: Vec<_> = c.iter().filter(|(_, n)| **n > 1).take(3).collect();
    assert!(twice.is_empty(), "nothing twice: {twice:?} (seed {seed})");
    let metrics = telemetry.encode_metrics();
    assert!(saw_open, "the fetch breaker never opened (seed {seed})");
    assert!(
        metrics
            .lines()
            .filter(|l| l.starts_with("indexstream_circuit_breaker_state"))
            .all(|l| l.ends_with(" 0")),
        "every breaker closed again:\n{metrics}"
    );
}

/// A search answered with failed shards is retried, never taken for the end of the data.
#[tokio::test]
async fn partial_shard_failures_are_retried_not_taken_as_end_of_data() {
    let t = target("partial").await;
    let fake = t.fault_api();
    let index = t.name("p");
    t.create_index(&index, 3, "100ms").await;
    t.write_n(&index, "d", 3000).await;
    fake.add_fault(
        FaultRule::new("search", FaultAction::PartialShards)
            .index(&index)
            .probability(0.3)
            .seed(9),
    )
    .unwrap();
    let got = t
        .consume(&index, &t.name("g"), Duration::from_millis(1500), |b| {
            b.with_page_size(100)
        })
        .await;
    let c = counts(&got);
    assert_eq!(c.len(), 3000);
    assert!(c.values().all(|n| *n == 1));
}

/// The background counts (documents without a timestamp, documents missed behind the window)
/// run on the first poll and then at most every `missed_late_check_every`, not on every poll:
/// on a large index each is a `_count` over much of it.
#[tokio::test]
async fn background_counts_run_at_their_interval_not_on_every_poll() {
    let t = target("bg-counts").await;
    // Reads the fake's request log.
    let fake = t.fault_api();
    let index = t.name("c");
    t.create_index(&index, 1, "100ms").await;
    t.write(&index, &[("a".into(), json!({"@timestamp": at(T0)}))])
        .await;
    t.call("POST", &format!("/{index}/_refresh"), None).await;
    let builder = ts_builder(&t, &index, &t.name("g"), Duration::from_secs(30)).timestamp(
        ts_settings(Duration::from_secs(30))
            .with_missed_late_check_every(Duration::from_secs(3600)),
    );
    let before = fake.requests().len();
    let consumer = builder.build().await.unwrap();
    let run = Running::start(consumer, RunOptions::default());
    wait_for(|| run.records.lock().unwrap().len() == 1).await;
    // About 20 polls of 50 ms.
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.stop().await.unwrap();
    let log = &fake.requests()[before..];
    let of = |api: &str| {
        log.iter()
            .filter(|r| r.path == format!("/{index}/{api}"))
            .count()
    };
    let (polls, background) = (of("_search"), of("_count"));
    assert!(polls >= 10, "only {polls} searches");
    assert!(
        background <= 2,
        "{background} counts in {polls} searches: one per poll"
    );
}

/// The breaker counts requests, not attempts: errors that the retry policy gets past (here the
/// first two attempts of a search fail, as during a failover) never open it, even with a
/// threshold of one failed request (counting attempts, the first error would open it for 60 s).
#[tokio::test]
async fn errors_that_retries_get_past_never_open_the_breaker() {
    let t = target("breaker-retries").await;
    let fake = t.fault_api();
    let index = t.name("r");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 500).await;
    fake.add_fault(
        FaultRule::new("search", FaultAction::Error)
            .index(&index)
            .status(503)
            .count(2),
    )
    .unwrap();
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(50)
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(t.name("offsets"))
        .build_config();
    config.breaker = BreakerConfig::new(1, Duration::from_secs(60));
    config.retry = RetryPolicy::builder()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .build();
    let consumer = ConsumerBuilder::from_config(config).build().await.unwrap();
    let telemetry = consumer.telemetry();
    let running = Running::start(consumer, RunOptions::default());
    let records = running.records.clone();
    wait("all 500 documents", Duration::from_secs(30), || {
        records.lock().unwrap().len() >= 500
    })
    .await;
    running.stop().await.unwrap();
    let report = telemetry.report();
    assert!(report.contains("Circuit Breaker Trips: 0"), "{report}");
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 500);
    assert!(c.values().all(|n| *n == 1));
}

/// A commit or a lease renewal whose write lands but whose answer is lost (the node that took it
/// died before replying) is sent again and meets its own write (409): the consumer recognises
/// its write and goes on, rather than stop as if another member had taken the group over.
#[tokio::test]
async fn a_write_whose_answer_was_lost_is_not_taken_for_a_takeover() {
    let t = target("lost-answer").await;
    let fake = t.fault_api();
    let index = t.name("l");
    let offsets = t.name("offsets");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "a", 300).await;
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_page_size(50)
        .with_poll_interval(Duration::from_millis(50))
        .with_commit_every(50, Duration::from_millis(100))
        .with_offsets_index(&offsets)
        .build_config();
    config.lease_ttl = Duration::from_secs(1);
    config.retry = RetryPolicy::builder()
        .max_attempts(3)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(5))
        .build();
    let consumer = ConsumerBuilder::from_config(config).build().await.unwrap();
    // From now on: two commits and two lease renewals lose their answers.
    fake.add_fault(
        FaultRule::new("bulk", FaultAction::DropAnswer)
            .index(&offsets)
            .count(2),
    )
    .unwrap();
    fake.add_fault(
        FaultRule::new("index", FaultAction::DropAnswer)
            .index(&offsets)
            .count(2),
    )
    .unwrap();
    let running = Running::start(consumer, RunOptions::default());
    let records = running.records.clone();
    wait("the first 300 documents", Duration::from_secs(20), || {
        records.lock().unwrap().len() >= 300
    })
    .await;
    // Long enough for several lease renewals (every third of a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.write_n(&index, "b", 100).await;
    wait("100 more", Duration::from_secs(20), || {
        records.lock().unwrap().len() >= 400
    })
    .await;
    running.stop().await.unwrap();
    let fired = fake
        .requests()
        .iter()
        .filter(|r| r.faults.iter().any(|f| f.contains("drop_answer")))
        .count();
    assert_eq!(fired, 4, "the lost answers happened");
    let c = counts(&records.lock().unwrap());
    assert_eq!(c.len(), 400);
    assert!(c.values().all(|n| *n == 1));
}

/// When an open breaker ends a run, the error names the failure that opened it (the status and
/// the cause), not only that a breaker is open.
#[tokio::test]
async fn the_error_of_an_open_breaker_names_the_failure_that_opened_it() {
    let t = target("breaker-cause").await;
    let fake = t.fault_api();
    let index = t.name("o");
    // Three shards: three searches at once, so that one's retry meets the breaker another opened.
    t.create_index(&index, 3, "100ms").await;
    t.write_n(&index, "a", 30).await;
    let mut config = Consumer::builder(t.client_config(), &index, t.name("g"))
        .with_poll_interval(Duration::from_millis(20))
        .with_offsets_index(t.name("offsets"))
        .build_config();
    config.breaker = BreakerConfig::new(1, Duration::from_secs(60));
    config.retry = RetryPolicy::builder()
        .max_attempts(3)
        .base_delay(Duration::from_millis(20))
        .max_delay(Duration::from_millis(40))
        .build();
    let mut consumer = ConsumerBuilder::from_config(config).build().await.unwrap();
    fake.add_fault(
        FaultRule::new("search", FaultAction::Error)
            .status(503)
            .index(&index),
    )
    .unwrap();
    let mut sink = MemorySink::default();
    let r = consumer
        .run(
            &mut sink,
            RunOptions::default().with_max_consecutive_failures(6),
            std::future::pending(),
        )
        .await;
    fake.clear_faults();
    consumer.close().await.unwrap();
    let e = r.expect_err("the run gives up");
    let text = e.to_string();
    assert!(
        text.contains("circuit breaker is open") && text.contains("the last: HTTP 503"),
        "{text}"
    );
    assert_eq!(
        text.matches("circuit breaker is open").count(),
        1,
        "a refusal by the breaker is not a new cause: {text}"
    );
}

/// A member paused (or its renewals cut off) past its lease TTL stops delivering at once when
/// it resumes: its claims lapsed, so the batch it had read is not handed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_claims_lapsed_hands_out_nothing_more() {
    let t = target("lapsed").await;
    let index = t.name("x");
    let offsets = t.name("offsets");
    t.create_index(&index, 1, "100ms").await;
    t.write_n(&index, "d", 50).await;
    let group = t.name("g");
    let mut member = Consumer::builder(t.client_config(), &index, &group)
        .with_member_id("paused")
        .with_retry(
            RetryPolicy::builder()
                .max_attempts(2)
                .base_delay(Duration::from_millis(10))
                .build(),
        )
        .with_lease_ttl(Duration::from_secs(1))
        .with_poll_interval(Duration::from_millis(50))
        .with_offsets_index(&offsets)
        .build()
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        got.extend(member.poll(10 - got.len()).await.unwrap());
    }
    // The offsets index fails every request: renewals fail, the claim lapses after its TTL
    // (and cannot be claimed again while the offsets index is down).
    let rule = t
        .fault_api()
        .add_fault(
            FaultRule::new("*", FaultAction::Error)
                .status(503)
                .index(&offsets),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..5 {
        if let Ok(batch) = member.poll(10).await {
            assert!(
                batch.is_empty(),
                "nothing handed out after the claim lapsed"
            );
        }
    }
    assert!(member.status().is_empty(), "{:?}", member.status());
    let metrics = member.telemetry().encode_metrics();
    let has = |prefix: &str| {
        metrics.lines().any(|l| {
            l.starts_with(prefix) && l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() >= 1.0
        })
    };
    assert!(
        has("indexstream_lease_renewals_total{group=") && metrics.contains("result=\"error\""),
        "failed renewals are counted: {metrics}"
    );
    assert!(
        has("indexstream_partitions_lost_total{") && metrics.contains("reason=\"lost\""),
        "the lapsed partition is counted as lost: {metrics}"
    );
    t.fault_api().remove_fault(rule);
    member.close().await.unwrap();
}

//! The HTTP server: accepts connections, applies fault rules, logs requests and hands them to
//! the API. Connections are served with hyper directly (not `axum::serve`) because the `drop`
//! fault must close one particular connection without answering, which needs a handle on it.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::{self, Reply, Request};
use crate::faults::RequestRecord;
use crate::state::Shared;

/// Largest request body accepted, as OpenSearch's default `http.max_content_length`.
const MAX_BODY: usize = 100 * 1024 * 1024;

fn to_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type);
    for (k, v) in reply.headers {
        builder = builder.header(k, v);
    }
    builder
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new())))
}

fn fault_error(status: u16, retry_after: Option<u64>) -> Reply {
    use crate::error::ApiError;
    let mut reply = match status {
        429 => Reply::error(&ApiError::new(
            429,
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [injected fault]",
        )),
        502 => Reply::text(502, "Bad Gateway (injected fault)".into()),
        504 => Reply::text(504, "Gateway Timeout (injected fault)".into()),
        503 => Reply::error(&ApiError::new(
            503,
            "unavailable_shards_exception",
            "primary shard is not active (injected fault)",
        )),
        s => Reply::error(&ApiError::new(
            s,
            "exception",
            format!("injected fault with status {s}"),
        )),
    };
    if let Some(s) = retry_after {
        reply.headers.push(("retry-after", s.to_string()));
    }
    reply
}

async fn serve_one(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
    abort: Arc<Notify>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let arrived = Instant::now();
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let opaque_id = req
        .headers()
        .get("x-opaque-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let headers = req.headers().clone();
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > MAX_BODY {
        return Ok(to_response(Reply::error(&crate::error::ApiError::new(
            413,
            "content_too_long",
            format!("Request content-length [{declared}] exceeds the limit [{MAX_BODY}]"),
        ))));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => Vec::new(),
    };
    if let Some(sigv4) = &shared.sigv4 {
        let answer = if path.starts_with("/_fake/aws/") {
            sigv4.endpoint(&method, &path, &query, &headers, &body)
        } else if path.starts_with("/_fake/") {
            None
        } else {
            sigv4
                .check(
                    &method,
                    &path,
                    &query,
                    &headers,
                    &body,
                    std::time::SystemTime::now(),
                )
                .err()
        };
        if let Some(reply) = answer {
            tracing::debug!(method = %method, path = %path, status = reply.status, "request answered by the SigV4 side");
            return Ok(to_response(reply));
        }
    }
    let segments = api::split_path(&path);
    let (kind, indices) = api::classify(&method, &segments);
    let verdict = shared.faults().judge(kind, &indices);
    let mut record = RequestRecord {
        seq: 0,
        at_ms: arrived.duration_since(shared.started).as_secs_f64() * 1000.0,
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        api: kind,
        indices,
        status: None,
        faults: verdict.fired.clone(),
        opaque_id,
    };
    if let Some(d) = verdict.delay {
        tokio::time::sleep(d).await;
    }
    if verdict.drop {
        shared.log().push(record.clone());
        abort.notify_one();
        // The connection task drops this request's future once it sees the abort.
        std::future::pending::<()>().await;
    }
    let reply = match verdict.error {
        Some((status, retry_after)) => fault_error(status, retry_after),
        None => {
            let request = Request {
                method,
                path,
                segments,
                params: api::parse_query_string(&query),
                body,
            };
            api::handle(
                &shared,
                request,
                verdict.partial_shards,
                &verdict.reject_items,
            )
            .await
        }
    };
    record.status = Some(reply.status);
    tracing::debug!(method = %record.method, path = %record.path, query = %record.query, status = reply.status, ms = arrived.elapsed().as_secs_f64() * 1000.0, faults = ?record.faults, "request");
    shared.log().push(record);
    if verdict.drop_answer {
        abort.notify_one();
        std::future::pending::<()>().await;
    }
    Ok(to_response(reply))
}

/// Serves one connection until it ends or a fault aborts it.
async fn serve_connection<S>(io: S, shared: Arc<Shared>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let abort = Arc::new(Notify::new());
    let service = {
        let abort = abort.clone();
        service_fn(move |req| serve_one(shared.clone(), req, abort.clone()))
    };
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = abort.notified() => {}
    }
}

/// Serves connections from `listener` until `shutdown` resolves, over TLS when `tls` is set.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    let ticker = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                interval.tick().await;
                let refreshed = shared.lock().tick(Instant::now());
                if refreshed {
                    shared.refreshed.notify_waiters();
                }
            }
        })
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_connection(stream, shared).await,
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => serve_connection(stream, shared).await,
                            // The client's side reports why (it refused our certificate, or
                            // had none of its own to give).
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        },
                    }
                });
            }
        }
    }
    ticker.abort();
}

//! An "instant sink": answers every `_bulk` request at once with `errors: false` and one
//! item per action, without indexing anything, and forwards every other request (`GET /`,
//! index creation and mappings) to a real server. With it the daemon's own ceiling shows:
//! what it reaches when the sink costs nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes, to_bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};

/// A running instant sink; stops when dropped.
pub struct InstantSink {
    pub url: String,
    /// `_bulk` requests answered.
    pub requests: Arc<AtomicU64>,
    /// Actions (documents) answered.
    pub items: Arc<AtomicU64>,
    /// When each numeric `_id` first arrived, if the sink was started with
    /// [`start_recording`] (the moment the daemon handed the change to the sink).
    pub arrivals: Option<Arc<Arrivals>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for InstantSink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
    }
}

/// When each numeric `_id` first reached the sink.
type Arrivals = Mutex<HashMap<u64, Instant>>;

/// The action lines of an NDJSON `_bulk` body: a `delete` is one line, every other action
/// two (the action, then its source).
fn action_lines(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut lines = body.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    std::iter::from_fn(move || {
        let action = lines.next()?;
        if !action.starts_with(b"{\"delete\"") {
            lines.next();
        }
        Some(action)
    })
}

/// Actions in an NDJSON `_bulk` body.
pub fn actions(body: &[u8]) -> usize {
    action_lines(body).count()
}

/// The numeric `_id` of each action of an NDJSON `_bulk` body.
fn ids(body: &[u8]) -> impl Iterator<Item = u64> + '_ {
    const KEY: &[u8] = br#""_id":""#;
    action_lines(body).filter_map(|action| {
        let at = action.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
        let digits = &action[at..];
        let end = digits.iter().position(|b| !b.is_ascii_digit())?;
        std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
    })
}

/// Starts an instant sink in front of `upstream` (`http://host:port`).
pub async fn start(upstream: &str) -> InstantSink {
    start_with(upstream, None).await
}

/// As [`start`], recording when each document id arrives ([`InstantSink::arrivals`]).
pub async fn start_recording(upstream: &str) -> InstantSink {
    start_with(upstream, Some(Arc::default())).await
}

async fn start_with(upstream: &str, arrivals: Option<Arc<Arrivals>>) -> InstantSink {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicU64::new(0));
    let items = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let upstream = upstream.trim_end_matches('/').to_string();
    let http = reqwest::Client::new();
    let (r, i, a) = (Arc::clone(&requests), Arc::clone(&items), arrivals.clone());
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (http, upstream, requests, items, arrivals) = (
            http.clone(),
            upstream.clone(),
            Arc::clone(&r),
            Arc::clone(&i),
            a.clone(),
        );
        async move {
            answer(
                req,
                &http,
                &upstream,
                &requests,
                &items,
                arrivals.as_deref(),
            )
            .await
        }
    });
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                stopped.await.ok();
            })
            .await
            .ok();
    });
    InstantSink {
        url,
        requests,
        items,
        arrivals,
        stop: Some(stop),
    }
}

async fn answer(
    req: Request<Body>,
    http: &reqwest::Client,
    upstream: &str,
    requests: &AtomicU64,
    items: &AtomicU64,
    arrivals: Option<&Arrivals>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body: Bytes = to_bytes(body, 1 << 30).await.unwrap();
    let path = parts.uri.path();
    if path.ends_with("/_bulk") {
        if let Some(arrivals) = arrivals {
            let now = Instant::now();
            let mut arrivals = arrivals.lock().unwrap();
            for id in ids(&body) {
                arrivals.entry(id).or_insert(now);
            }
        }
        let n = actions(&body);
        requests.fetch_add(1, Ordering::Relaxed);
        items.fetch_add(n as u64, Ordering::Relaxed);
        let mut text = String::with_capacity(30 + n * 26);
        text.push_str(r#"{"took":0,"errors":false,"items":["#);
        for k in 0..n {
            if k > 0 {
                text.push(',');
            }
            text.push_str(r#"{"index":{"status":201}}"#);
        }
        text.push_str("]}");
        let mut resp = Response::new(Body::from(text));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    let target = parts
        .uri
        .path_and_query()
        .map_or(path.to_string(), |p| p.to_string());
    let mut forwarded = http.request(parts.method.clone(), format!("{upstream}{target}"));
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        forwarded = forwarded.header(header::CONTENT_TYPE, ct.as_bytes());
    }
    let got = forwarded.body(body).send().await.unwrap();
    let status = StatusCode::from_u16(got.status().as_u16()).unwrap();
    let ct = got.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = got.bytes().await.unwrap();
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    if let Some(ct) = ct {
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(ct.as_bytes()).unwrap(),
        );
    }
    resp
}

//! The operations endpoint (SPEC §7): `/metrics` (Prometheus text), `/healthz`
//! (process alive), `/readyz` (streaming, and lag under a threshold) and
//! `POST /resync?table=db.t` (re-copy one table while streaming; `binlog2es resync`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::Uri;
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::snapshot::ResyncRequest;

use super::metrics;
use super::progress::Progress;

/// The endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address is taken or not allowed.
    #[error(
        "cannot listen on {addr} (http.listen): {source}; choose another address or set http.enabled = false"
    )]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What the handlers read.
#[derive(Clone)]
struct AppState {
    prometheus: Option<PrometheusHandle>,
    progress: Arc<Progress>,
    ready_max_lag: Duration,
    silence: Duration,
    resync: Option<mpsc::Sender<ResyncRequest>>,
}

/// What the endpoint serves besides metrics.
pub struct Endpoint {
    /// Readiness and lag.
    pub progress: Arc<Progress>,
    /// `/readyz` threshold.
    pub ready_max_lag: Duration,
    /// How long a healthy connection may stay quiet.
    pub silence: Duration,
    /// Where `/resync` requests go.
    pub resync: Option<mpsc::Sender<ResyncRequest>>,
}

/// Installs the Prometheus recorder for this process; `None` if one is already
/// installed (a second daemon in the same process, as in tests).
pub fn install_recorder() -> Option<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(metrics::BULK_DURATION_SECONDS.into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )
        .ok()?
        .install_recorder()
        .ok()
}

/// Binds `addr` now (so a taken port fails start-up) and serves until `stop`.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(
    addr: SocketAddr,
    prometheus: Option<PrometheusHandle>,
    endpoint: Endpoint,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let state = AppState {
        prometheus,
        progress: endpoint.progress,
        ready_max_lag: endpoint.ready_max_lag,
        silence: endpoint.silence,
        resync: endpoint.resync,
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/resync", post(resync))
        .with_state(state);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "HTTP endpoint stopped.");
        }
    });
    Ok((local, task))
}

async fn metrics_text(State(s): State<AppState>) -> (StatusCode, String) {
    metrics::lag(s.progress.lag(s.silence).as_secs_f64());
    match &s.prometheus {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder not installed in this process\n".into(),
        ),
    }
}

async fn resync(State(s): State<AppState>, uri: Uri) -> (StatusCode, String) {
    let Some(table) = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("table="))
        .map(percent_decode)
    else {
        return (
            StatusCode::BAD_REQUEST,
            "name the table: POST /resync?table=db.table\n".into(),
        );
    };
    let Some((db, name)) = table.split_once('.') else {
        return (
            StatusCode::BAD_REQUEST,
            format!("`{table}` is not of the form db.table\n"),
        );
    };
    let Some(tx) = &s.resync else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not accepting re-syncs yet (still starting)\n".into(),
        );
    };
    let (reply, rx) = oneshot::channel();
    let request = ResyncRequest {
        db: db.to_owned(),
        table: name.to_owned(),
        reply,
    };
    if tx.send(request).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping\n".into(),
        );
    }
    match rx.await {
        Ok(Ok(text)) => (StatusCode::ACCEPTED, format!("{text}\n")),
        Ok(Err(text)) => (StatusCode::CONFLICT, format!("{text}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping\n".into(),
        ),
    }
}

/// Decodes `%XX` escapes and `+` in a query value.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let lag = s.progress.lag(s.silence);
    if !s.progress.streaming() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not streaming\n".into(),
        );
    }
    if lag > s.ready_max_lag {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: lag {:.1}s > {:?}\n",
                lag.as_secs_f64(),
                s.ready_max_lag
            ),
        );
    }
    (
        StatusCode::OK,
        format!("ready: lag {:.1}s\n", lag.as_secs_f64()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("shop.orders"), "shop.orders");
        assert_eq!(percent_decode("my%20db.t%60x"), "my db.t`x");
        assert_eq!(percent_decode("a+b%"), "a b%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}

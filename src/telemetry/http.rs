//! The operations endpoint (SPEC §7): `/metrics` (Prometheus text), `/healthz`
//! (process alive) and `/readyz` (streaming, and lag under a threshold).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

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
    progress: Arc<Progress>,
    ready_max_lag: Duration,
    silence: Duration,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), HttpError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let state = AppState {
        prometheus,
        progress,
        ready_max_lag,
        silence,
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
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

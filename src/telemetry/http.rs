//! The operations endpoint (SPEC §7): `/metrics` (Prometheus text), `/healthz`
//! (process alive), `/readyz` (streaming, and lag under a threshold) and
//! `POST /resync?table=db.t` (re-copy one table while streaming; `binlog2es resync`) and
//! `POST /reindex?index=NAME` (rebuild an index behind its alias, SPEC §10).
//!
//! Loopback by default. With `http.username` every request must carry that basic-auth
//! user and password (401 otherwise); with `http.tls_cert_file` it is served over https.
//! TLS handshakes run in tasks of their own, so a client that stalls its handshake does
//! not hold up the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use super::metrics;
use super::progress::Progress;
use crate::config::{ConfigError, HttpConfig, secret};

/// A TLS handshake with the endpoint must finish within this; a stalled client is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may use the endpoint, and over what; from `[http]`.
#[derive(Clone, Default)]
pub struct Access {
    /// The exact `Authorization` header value a request must carry.
    basic: Option<Arc<[u8]>>,
    /// Serve https with this configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Access {
    /// Reads the password file and the certificate and key files of `[http]`.
    ///
    /// # Errors
    /// Unreadable or unusable files, naming the key and path.
    pub fn from_config(h: &HttpConfig) -> Result<Self, ConfigError> {
        let password = secret("http.password_file", &h.password, &h.password_file)?;
        let basic = match (&h.username, password) {
            (Some(user), Some(pw)) => {
                let pair = format!("{user}:{}", pw.expose());
                let value = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                );
                Some(Arc::from(value.into_bytes()))
            }
            _ => None,
        };
        let tls = match (&h.tls_cert_file, &h.tls_key_file) {
            (Some(cert), Some(key)) => {
                let id = crate::tls::ClientIdentity::load("http", cert, key)?;
                let config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .and_then(|b| b.with_no_client_auth().with_single_cert(id.certs, id.key))
                    .map_err(|e| ConfigError::TlsFile {
                        key: "http.tls_key_file".into(),
                        path: key.clone(),
                        message: e.to_string(),
                    })?;
                Some(Arc::new(config))
            }
            _ => None,
        };
        Ok(Self { basic, tls })
    }

    /// Whether requests must authenticate.
    pub fn authenticates(&self) -> bool {
        self.basic.is_some()
    }

    /// Whether the endpoint speaks https.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

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

/// A `POST /resync` call, handed to whoever copies tables (the app forwards it to the copy
/// coordinator: telemetry serves every stage and imports none).
#[derive(Debug)]
pub struct ResyncCall {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// The answer; dropped unanswered when the daemon is stopping.
    pub reply: oneshot::Sender<ResyncReply>,
}

/// A `POST /reindex` call (SPEC §10), handed to the rebuild coordinator.
#[derive(Debug)]
pub struct ReindexCall {
    /// The index name readers use.
    pub index: String,
    /// The answer; dropped unanswered when the daemon is stopping.
    pub reply: oneshot::Sender<ResyncReply>,
}

/// The answer to a [`ResyncCall`] or a [`ReindexCall`], in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncReply {
    /// The copy is queued (HTTP 202).
    Accepted(String),
    /// Not done, and why (HTTP 409).
    Refused(String),
}

/// What the handlers read.
#[derive(Clone)]
struct AppState {
    prometheus: Option<PrometheusHandle>,
    progress: Arc<Progress>,
    ready_max_lag: Duration,
    silence: Duration,
    resync: Option<mpsc::Sender<ResyncCall>>,
    reindex: Option<mpsc::Sender<ReindexCall>>,
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
    pub resync: Option<mpsc::Sender<ResyncCall>>,
    /// Where `/reindex` requests go.
    pub reindex: Option<mpsc::Sender<ReindexCall>>,
}

/// CPU, resident memory, open fds … of this process (`process_*`, as other exporters name
/// them), read at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let c = metrics_process::Collector::default();
        c.describe();
        c
    })
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
#[allow(clippy::too_many_arguments)] // one call site, each argument a distinct setting
pub async fn bind(
    addr: SocketAddr,
    access: Access,
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
        reindex: endpoint.reindex,
    };
    let mut app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/resync", post(resync))
        .route("/reindex", post(reindex))
        .with_state(state);
    if let Some(expected) = access.basic.clone() {
        app = app.layer(middleware::from_fn_with_state(expected, require_basic_auth));
    }
    let task = match access.tls {
        None => tokio::spawn(serve(listener, app, stop)),
        Some(tls) => {
            let (tx, rx) = mpsc::channel(16);
            tokio::spawn(accept_tls(
                listener,
                TlsAcceptor::from(tls),
                tx,
                stop.clone(),
            ));
            tokio::spawn(serve(TlsListener { rx, local }, app, stop))
        }
    };
    Ok((local, task))
}

async fn serve<L>(listener: L, app: Router, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::warn!(error = %e, "HTTP endpoint stopped.");
    }
}

/// 401 unless the request carries exactly the configured basic-auth credentials.
async fn require_basic_auth(
    State(expected): State<Arc<[u8]>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if crate::tls::same_secret(presented, &expected) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"binlog2es\"")],
        "authentication required\n",
    )
        .into_response()
}

/// Accepts TCP connections and hands each finished TLS handshake to the server.
async fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "Accepting an HTTP connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    ready.send((tls, peer)).await.ok();
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake on the HTTP endpoint failed.")
                }
                Err(_) => tracing::debug!(%peer, "TLS handshake on the HTTP endpoint timed out."),
            }
        });
    }
}

/// Connections whose TLS handshake is done, as axum's listener.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (shutdown): wait for the graceful stop.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn metrics_text(State(s): State<AppState>) -> (StatusCode, String) {
    let lag = s.progress.lag(s.silence);
    metrics::scrape(lag, s.progress.streaming() && lag <= s.ready_max_lag);
    process_collector().collect();
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
    let request = ResyncCall {
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
    answer(rx.await)
}

async fn reindex(State(s): State<AppState>, uri: Uri) -> (StatusCode, String) {
    let Some(index) = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("index="))
        .map(percent_decode)
        .filter(|i| !i.is_empty())
    else {
        return (
            StatusCode::BAD_REQUEST,
            "name the index: POST /reindex?index=NAME\n".into(),
        );
    };
    let Some(tx) = &s.reindex else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not accepting rebuilds yet (still starting)\n".into(),
        );
    };
    let (reply, rx) = oneshot::channel();
    if tx.send(ReindexCall { index, reply }).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is stopping\n".into(),
        );
    }
    answer(rx.await)
}

/// The HTTP answer for an operations call's reply.
fn answer(reply: Result<ResyncReply, oneshot::error::RecvError>) -> (StatusCode, String) {
    match reply {
        Ok(ResyncReply::Accepted(text)) => (StatusCode::ACCEPTED, format!("{text}\n")),
        Ok(ResyncReply::Refused(text)) => (StatusCode::CONFLICT, format!("{text}\n")),
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

//! An https front for the plain-http test Elasticsearch, the way a secured cluster or a
//! cloud deployment looks to the daemon: TLS with the test PKI's server certificate,
//! one accepted `Authorization` value (basic auth, API key or bearer token), optionally a
//! required client certificate, and optionally a path prefix (`https://host/prefix/…`).
//!
//! Requests without the expected credentials get 401 with an Elasticsearch-style body; a
//! path outside the prefix gets 404. The rest is forwarded to the upstream as it is.
//! Like the fault proxy it runs on a thread and runtime of its own, and stops when dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::certs::TestPki;

/// What the front demands; see [`TlsEsProxy::start`].
#[derive(Clone, Default)]
pub struct TlsFront {
    /// The one `Authorization` header value accepted (none: no authentication).
    pub authorization: Option<String>,
    /// Demand a client certificate signed by the test CA.
    pub client_cert: bool,
    /// Serve under this path prefix, e.g. `/es` (none: at the root).
    pub prefix: Option<String>,
}

impl TlsFront {
    /// Basic auth with this user and password.
    pub fn basic(user: &str, password: &str) -> TlsFront {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        TlsFront {
            authorization: Some(format!("Basic {pair}")),
            ..TlsFront::default()
        }
    }

    /// `Authorization: <scheme> <credential>`, e.g. `("ApiKey", "…")` or `("Bearer", "…")`.
    pub fn token(scheme: &str, credential: &str) -> TlsFront {
        TlsFront {
            authorization: Some(format!("{scheme} {credential}")),
            ..TlsFront::default()
        }
    }
}

struct Shared {
    upstream: String,
    front: TlsFront,
    http: reqwest::Client,
    refused: AtomicU64,
}

/// The running front; see the module docs.
pub struct TlsEsProxy {
    port: u16,
    prefix: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsEsProxy {
    /// Starts the front for `upstream` (`http://host:port`) on a free port of 127.0.0.1.
    pub fn start(upstream: &str, pki: &TestPki, front: TlsFront) -> TlsEsProxy {
        let tls = Arc::new(server_config(pki, front.client_cert));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let prefix = front.prefix.clone().unwrap_or_default();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            front,
            http: reqwest::Client::new(),
            refused: AtomicU64::new(0),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TlsListener {
                    tcp: TcpListener::from_std(std_listener).unwrap(),
                    acceptor: TlsAcceptor::from(tls),
                };
                let app = Router::new().fallback(forward).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        stop_rx.await.ok();
                    })
                    .await
                    .ok();
            });
        });
        TlsEsProxy {
            port,
            prefix,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `https://localhost:PORT[/prefix]`: the name the certificate holds.
    pub fn url(&self) -> String {
        format!("https://localhost:{}{}", self.port, self.prefix)
    }

    /// `https://127.0.0.1:PORT[/prefix]`: an address the certificate does not name.
    pub fn ip_url(&self) -> String {
        format!("https://127.0.0.1:{}{}", self.port, self.prefix)
    }

    /// Requests refused for missing or wrong credentials so far.
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for TlsEsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        // Open keep-alive connections would hold a graceful shutdown: do not wait for it.
        drop(self.thread.take());
    }
}

fn server_config(pki: &TestPki, client_cert: bool) -> rustls::ServerConfig {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pki.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pki.server_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = if client_cert {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(certs, key).unwrap()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let front = &shared.front;
    if let Some(expected) = &front.authorization {
        let presented = request.headers().get(header::AUTHORIZATION);
        if presented.map(HeaderValue::as_bytes) != Some(expected.as_bytes()) {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            let body = r#"{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}"#;
            return (
                StatusCode::UNAUTHORIZED,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
        }
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let prefix = front.prefix.as_deref().unwrap_or("");
    let Some(rest) = path_and_query.strip_prefix(prefix) else {
        return (StatusCode::NOT_FOUND, "outside the path prefix\n").into_response();
    };
    let rest = if rest.starts_with('/') {
        rest.to_string()
    } else {
        format!("/{rest}")
    };
    let method = request.method().clone();
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = shared
        .http
        .request(method, format!("{}{rest}", shared.upstream))
        .body(body);
    if let Some(ct) = content_type {
        upstream = upstream.header(header::CONTENT_TYPE, ct);
    }
    match upstream.send().await {
        Ok(resp) => {
            let status = resp.status();
            let ct = resp.headers().get(header::CONTENT_TYPE).cloned();
            let bytes = resp.bytes().await.unwrap_or_default();
            let mut out = Response::new(Body::from(bytes));
            *out.status_mut() = status;
            if let Some(ct) = ct {
                out.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            out
        }
        Err(e) => (StatusCode::BAD_GATEWAY, format!("upstream: {e}\n")).into_response(),
    }
}

/// TLS on accept (handshakes one at a time: enough for tests).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, peer)) = self.tcp.accept().await else {
                continue;
            };
            // A client refusing our certificate (a "wrong CA" test) ends here; keep serving.
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

//! The Elasticsearch connection: HTTP client and TLS set-up, credentials, server info,
//! raw `_bulk` sends.
//!
//! Requests go through `reqwest` with a rustls configuration of our own, so that the
//! server can be checked against a CA file, the public roots or a pinned SHA-256
//! fingerprint, with an optional client certificate next to any credential. Node URLs
//! may carry a path prefix (`https://host/elasticsearch`); request paths are joined
//! under it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue,
};
use reqwest::{Method, Url};

use crate::config::{ConfigError, EsConfig, redact_url, secret};
use crate::tls::{CertProblem, ClientIdentity, ServerCheck};

/// The client cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad URL or credential, or the HTTP stack refused its set-up.
    #[error("{0}")]
    Setup(String),
    /// A secret, certificate or key file named in `[elasticsearch]` is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A scroll over an index failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrollError {
    /// The request did not get an answer.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The server refused the search or its continuation.
    #[error("{what} on `{index}` answered HTTP {status}: {body}")]
    Refused {
        /// `_search` or `scroll`.
        what: &'static str,
        /// The index.
        index: String,
        /// HTTP status.
        status: u16,
        /// The answer.
        body: serde_json::Value,
    },
}

/// Failure of one request, split by whether sending it again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connection refused/reset, timeout, TLS failure in transit …
    #[error("{0}")]
    Transport(String),
    /// The server's certificate was refused (or ours was): the whole message, with the fix.
    #[error("{0}")]
    Certificate(String),
    /// The server answered with a non-success status for the whole request.
    #[error("HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Start of the response body.
        body: String,
    },
}

/// Which server we talk to, from `GET /`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// `version.distribution` is `opensearch` (absent on Elasticsearch).
    pub opensearch: bool,
    /// Major version (`u32::MAX` when unparsable: treated as the newest).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl ServerInfo {
    /// Reads the answer of `GET /`; an unparsable version counts as the newest.
    pub fn from_root(root: &serde_json::Value) -> Self {
        let opensearch = root["version"]["distribution"].as_str() == Some("opensearch");
        let mut parts = root["version"]["number"]
            .as_str()
            .unwrap_or_default()
            .split(['.', '-'])
            .map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => Self {
                opensearch,
                major,
                minor,
            },
            _ => Self {
                opensearch,
                major: u32::MAX,
                minor: 0,
            },
        }
    }

    /// Whether the server is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

/// A configured Elasticsearch endpoint: one HTTP client (connection pool, TLS) over the
/// configured nodes, used in turn.
#[derive(Clone)]
pub struct EsClient {
    http: reqwest::Client,
    /// Node base URLs, each ending in `/` so that a path prefix (`https://host/es/`) is kept.
    nodes: Arc<[Url]>,
    next: Arc<AtomicUsize>,
    /// `Authorization` value (marked sensitive: never logged by the HTTP stack).
    auth: Option<HeaderValue>,
    request_timeout: Duration,
    display: String,
    /// What the certificate was checked against, for messages.
    trust: Arc<str>,
}

impl EsClient {
    /// Builds the client from configuration (no request is sent).
    ///
    /// # Errors
    /// Bad URL, unreadable secret, unusable certificate or key file.
    pub fn new(cfg: &EsConfig) -> Result<Self, ClientError> {
        let nodes: Vec<Url> = cfg
            .all_urls()
            .iter()
            .map(|u| {
                let mut url = u.parse::<Url>().map_err(|e| {
                    ClientError::Setup(format!("elasticsearch url `{}`: {e}", redact_url(u)))
                })?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                Ok(url)
            })
            .collect::<Result<_, ClientError>>()?;
        if nodes.is_empty() {
            return Err(ClientError::Setup(
                "elasticsearch.url: missing; set url = \"http://host:9200\"".into(),
            ));
        }
        let display = nodes
            .iter()
            .map(|u| {
                format!(
                    "{}:{}",
                    u.host_str().unwrap_or("?"),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let auth = authorization(cfg)?;
        let (tls, trust) = tls_config(cfg)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(cfg.request_timeout)
            .build()
            .map_err(|e| ClientError::Setup(format!("elasticsearch client: {e}")))?;
        Ok(Self {
            http,
            nodes: nodes.into(),
            next: Arc::new(AtomicUsize::new(0)),
            auth,
            request_timeout: cfg.request_timeout,
            display,
            trust: trust.into(),
        })
    }

    /// Whether a credential goes to a node over plain http.
    pub fn sends_credentials_in_clear(&self) -> bool {
        self.auth.is_some() && self.nodes.iter().any(|u| u.scheme() == "http")
    }

    /// `host:port` of the configured nodes, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// `GET /`: the cluster's version string.
    ///
    /// # Errors
    /// Unreachable, or a non-success answer (e.g. 401).
    pub async fn info(&self) -> Result<String, SendError> {
        let body = self
            .request(Method::GET, "/", None::<&()>, None, HeaderMap::new())
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let dist = v["version"]["distribution"]
            .as_str()
            .unwrap_or("elasticsearch");
        let num = v["version"]["number"].as_str().unwrap_or("unknown");
        Ok(format!("{dist} {num}"))
    }

    /// One JSON request whose answer the caller interprets whatever its status: returns
    /// the status and the body (`null` when it is not JSON, e.g. after `HEAD`).
    ///
    /// # Errors
    /// Only transport failures (connection refused/reset, timeout …).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value), SendError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = self
            .send(method, path, HeaderMap::new(), None::<&()>, body)
            .await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    /// Scrolls every hit of `index` for `query` (a search body without `size`), calling
    /// `on_hit` for each. A missing index has no hits.
    ///
    /// # Errors
    /// Transport failures and refused requests.
    pub async fn scroll(
        &self,
        index: &str,
        mut query: serde_json::Value,
        mut on_hit: impl FnMut(&serde_json::Value),
    ) -> Result<(), ScrollError> {
        query["size"] = serde_json::json!(1000);
        let mut scroll = Scroll::open(self, index, &query).await?;
        while let Some(hits) = scroll.next_page().await? {
            hits.iter().for_each(&mut on_hit);
        }
        scroll.close().await;
        Ok(())
    }

    /// `POST /_bulk` with an NDJSON body; returns the (filtered) response body.
    ///
    /// # Errors
    /// Transport failure or a non-2xx status.
    pub async fn bulk(&self, body: Bytes) -> Result<Bytes, SendError> {
        self.bulk_with(body, false).await
    }

    /// [`EsClient::bulk`], the body gzipped when `gzip` (`writer.gzip`).
    ///
    /// # Errors
    /// Transport failure or a non-2xx status.
    pub async fn bulk_with(&self, body: Bytes, gzip: bool) -> Result<Bytes, SendError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        let body = match gzip.then(|| gzip_body(&body)).flatten() {
            Some(compressed) => {
                headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                compressed
            }
            None => body,
        };
        self.request(
            Method::POST,
            "/_bulk",
            Some(&[("filter_path", super::response::FILTER_PATH)]),
            Some(body),
            headers,
        )
        .await
    }

    /// Sends one request and reads the whole answer, whatever its status.
    async fn send<Q: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        query: Option<&Q>,
        body: Option<Bytes>,
    ) -> Result<(u16, Bytes), SendError> {
        let node = &self.nodes[self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len()];
        let url = node
            .join(path.trim_start_matches('/'))
            .map_err(|e| SendError::Transport(format!("bad request path `{path}`: {e}")))?;
        let mut request = self
            .http
            .request(method, url)
            .timeout(self.request_timeout)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request = request.headers(headers);
        if let Some(q) = query {
            request = request.query(q);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        let resp = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| self.transport_error(e))?;
        Ok((status, bytes))
    }

    /// A failed send: a refused certificate gets its own variant (retrying does not help
    /// at start-up); the URL is left out of the text (it may hold credentials).
    fn transport_error(&self, e: reqwest::Error) -> SendError {
        let e = e.without_url();
        match CertProblem::find(&e) {
            Some(problem) => SendError::Certificate(format!(
                "TLS with Elasticsearch at {} failed: {}; {}",
                self.display,
                problem.describe(&self.trust),
                cert_fix(&problem)
            )),
            None => SendError::Transport(error_chain(&e)),
        }
    }

    pub(crate) async fn request<Q: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<Bytes>,
        headers: HeaderMap,
    ) -> Result<Bytes, SendError> {
        let (status, bytes) = self.send(method, path, headers, query, body).await?;
        if !(200..300).contains(&status) {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            text.truncate(500);
            return Err(SendError::Status { status, body: text });
        }
        Ok(bytes)
    }
}

/// The pages of a scroll over one index (a fixed view of it: writing meanwhile does not
/// move the pages). Refreshes the index first, so that recent writes are seen.
pub struct Scroll<'a> {
    client: &'a EsClient,
    index: &'a str,
    scroll_id: Option<String>,
    /// The first page's answer, not handed out yet.
    first: Option<serde_json::Value>,
}

impl<'a> Scroll<'a> {
    /// Refreshes `index` and opens a scroll over it for `query` (a search body with its
    /// page `size`); a missing index has no pages.
    ///
    /// # Errors
    /// Transport failures and a refused search.
    pub async fn open(
        client: &'a EsClient,
        index: &'a str,
        query: &serde_json::Value,
    ) -> Result<Scroll<'a>, ScrollError> {
        let mut scroll = Scroll {
            client,
            index,
            scroll_id: None,
            first: None,
        };
        let (status, _) = client
            .json(Method::POST, &format!("/{index}/_refresh"), None)
            .await?;
        if status == 404 {
            return Ok(scroll);
        }
        let (status, body) = client
            .json(
                Method::POST,
                &format!("/{index}/_search?scroll=1m"),
                Some(query),
            )
            .await?;
        if status == 404 {
            return Ok(scroll);
        }
        if !(200..300).contains(&status) {
            return Err(scroll.refused("_search", status, body));
        }
        scroll.scroll_id = body["_scroll_id"].as_str().map(str::to_owned);
        scroll.first = Some(body);
        Ok(scroll)
    }

    /// The hits of the next page, or `None` at the end.
    ///
    /// # Errors
    /// Transport failures and a refused continuation.
    pub async fn next_page(&mut self) -> Result<Option<Vec<serde_json::Value>>, ScrollError> {
        let mut body = match self.first.take() {
            Some(body) => body,
            None => {
                let Some(scroll_id) = &self.scroll_id else {
                    return Ok(None);
                };
                let (status, body) = self
                    .client
                    .json(
                        Method::POST,
                        "/_search/scroll",
                        Some(&serde_json::json!({ "scroll": "1m", "scroll_id": scroll_id })),
                    )
                    .await?;
                if !(200..300).contains(&status) {
                    return Err(self.refused("scroll", status, body));
                }
                if let Some(id) = body["_scroll_id"].as_str() {
                    self.scroll_id = Some(id.to_owned());
                }
                body
            }
        };
        match body["hits"]["hits"].take() {
            serde_json::Value::Array(hits) if !hits.is_empty() => Ok(Some(hits)),
            _ => Ok(None),
        }
    }

    /// Frees the scroll on the server (it would expire after a minute anyway).
    pub async fn close(self) {
        if let Some(scroll_id) = self.scroll_id {
            let _ = self
                .client
                .json(
                    Method::DELETE,
                    "/_search/scroll",
                    Some(&serde_json::json!({ "scroll_id": scroll_id })),
                )
                .await;
        }
    }

    fn refused(&self, what: &'static str, status: u16, body: serde_json::Value) -> ScrollError {
        ScrollError::Refused {
            what,
            index: self.index.to_owned(),
            status,
            body,
        }
    }
}

/// The `Authorization` header for the configured credential (at most one kind, see
/// `Config::validate`), marked sensitive.
fn authorization(cfg: &EsConfig) -> Result<Option<HeaderValue>, ClientError> {
    let value = if let Some(key) = secret(
        "elasticsearch.api_key_file",
        &cfg.api_key,
        &cfg.api_key_file,
    )? {
        format!("ApiKey {}", key.expose())
    } else if let Some(token) = secret(
        "elasticsearch.bearer_token_file",
        &cfg.bearer_token,
        &cfg.bearer_token_file,
    )? {
        format!("Bearer {}", token.expose())
    } else if let Some(user) = &cfg.username {
        let password = secret(
            "elasticsearch.password_file",
            &cfg.password,
            &cfg.password_file,
        )?;
        let pair = format!(
            "{user}:{}",
            password.as_ref().map(|p| p.expose()).unwrap_or_default()
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    } else {
        return Ok(None);
    };
    let mut header = HeaderValue::from_str(&value).map_err(|_| {
        ClientError::Setup(
            "elasticsearch credentials contain characters not allowed in an HTTP header \
             (a newline in a secret file?)"
                .into(),
        )
    })?;
    header.set_sensitive(true);
    Ok(Some(header))
}

/// The rustls configuration from `[elasticsearch]`, and how the trust is described in
/// messages.
fn tls_config(cfg: &EsConfig) -> Result<(rustls::ClientConfig, String), ClientError> {
    let (check, trust) = match (&cfg.tls_ca_file, &cfg.ca_fingerprint) {
        (Some(ca), _) => (
            ServerCheck::Roots(crate::tls::load_roots("elasticsearch.tls_ca_file", ca)?),
            format!("elasticsearch.tls_ca_file {}", ca.display()),
        ),
        (None, Some(f)) => (
            ServerCheck::Fingerprint(crate::config::parse_fingerprint(f).map_err(|e| {
                ConfigError::invalid("elasticsearch.ca_fingerprint", e.to_string())
            })?),
            "elasticsearch.ca_fingerprint".to_owned(),
        ),
        (None, None) => (
            ServerCheck::Roots(crate::tls::public_roots()),
            "the public web roots; set elasticsearch.tls_ca_file or ca_fingerprint for a \
             private CA"
                .to_owned(),
        ),
    };
    let identity = match (&cfg.tls_cert_file, &cfg.tls_key_file) {
        (Some(cert), Some(key)) => Some(ClientIdentity::load("elasticsearch", cert, key)?),
        _ => None,
    };
    let config = crate::tls::client_config(
        check,
        identity,
        "elasticsearch.tls_key_file",
        cfg.tls_key_file.as_deref(),
    )?;
    Ok((config, trust))
}

/// How to fix a refused Elasticsearch certificate.
fn cert_fix(problem: &CertProblem) -> &'static str {
    match problem {
        CertProblem::UnknownIssuer | CertProblem::Expired | CertProblem::Other(_) => {
            "set elasticsearch.tls_ca_file to the CA that signed the server's certificate \
             (or ca_fingerprint to its SHA-256 fingerprint)"
        }
        CertProblem::WrongName { .. } => {
            "use a host name the certificate lists in elasticsearch.url, or pin the server's \
             certificate with elasticsearch.ca_fingerprint"
        }
        CertProblem::FingerprintMismatch(_) => {
            "check elasticsearch.ca_fingerprint against `openssl x509 -noout -fingerprint \
             -sha256` of the server's CA or certificate"
        }
        CertProblem::ClientCertRefused(_) => {
            "set elasticsearch.tls_cert_file and tls_key_file to a certificate the cluster trusts"
        }
    }
}

/// Gzip at the fastest level: NDJSON of similar documents shrinks 5-10x even so, and a
/// higher level would cost the lane more CPU than the link saves.
/// `None` if compressing fails (it cannot into memory); the body then goes as it is.
fn gzip_body(body: &[u8]) -> Option<Bytes> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

/// An error with its causes, `outer: inner: innermost`, so a retry log line says
/// whether the connection was refused, reset or timed out.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let part = c.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = c.source();
    }
    text
}

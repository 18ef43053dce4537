//! The Elasticsearch connection: transport set-up, server info, raw `_bulk` sends.

use std::time::Duration;

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, Transport, TransportBuilder,
};
use elasticsearch::http::{Method, Url};

use super::WriterError;
use crate::config::{EsConfig, read_secret, redact_url};

/// Failure of one request, split by whether sending it again can help.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Connection refused/reset, timeout, TLS failure in transit …
    #[error("{0}")]
    Transport(String),
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

/// A configured Elasticsearch endpoint.
#[derive(Clone)]
pub struct EsClient {
    transport: Transport,
    request_timeout: Duration,
    display: String,
}

impl EsClient {
    /// Builds the transport from configuration (no request is sent).
    ///
    /// # Errors
    /// Bad URL, unreadable secret or CA file.
    pub fn new(cfg: &EsConfig) -> Result<Self, WriterError> {
        let urls: Vec<Url> = cfg
            .all_urls()
            .iter()
            .map(|u| {
                u.parse::<Url>().map_err(|e| {
                    WriterError::Setup(format!("elasticsearch url `{}`: {e}", redact_url(u)))
                })
            })
            .collect::<Result<_, _>>()?;
        let display = urls
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
        let mut builder = if urls.len() == 1 {
            TransportBuilder::new(SingleNodeConnectionPool::new(urls[0].clone()))
        } else {
            TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None))
        };
        let secret = |key: &str, inline: &Option<String>, file: &Option<std::path::PathBuf>| match (
            inline, file,
        ) {
            (Some(v), _) => Ok(Some(v.clone())),
            (None, Some(p)) => read_secret(key, p).map(Some),
            (None, None) => Ok(None),
        };
        let setup = |e: crate::config::ConfigError| WriterError::Setup(e.to_string());
        if let Some(key) = secret(
            "elasticsearch.api_key_file",
            &cfg.api_key,
            &cfg.api_key_file,
        )
        .map_err(setup)?
        {
            builder = builder.auth(Credentials::EncodedApiKey(key));
        } else if let Some(user) = &cfg.username {
            let pw = secret(
                "elasticsearch.password_file",
                &cfg.password,
                &cfg.password_file,
            )
            .map_err(setup)?
            .unwrap_or_default();
            builder = builder.auth(Credentials::Basic(user.clone(), pw));
        }
        if let Some(ca) = &cfg.tls_ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                WriterError::Setup(format!("elasticsearch.tls_ca_file {}: {e}", ca.display()))
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                WriterError::Setup(format!("elasticsearch.tls_ca_file {}: {e}", ca.display()))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .timeout(cfg.request_timeout)
            .enable_meta_header(false)
            .build()
            .map_err(|e| WriterError::Setup(format!("elasticsearch client: {e}")))?;
        Ok(Self {
            transport,
            request_timeout: cfg.request_timeout,
            display,
        })
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
            .request(Method::Get, "/", None::<&()>, None, HeaderMap::new())
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
            Method::Post,
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
        let resp = self
            .transport
            .send(
                method,
                path,
                headers,
                query,
                body,
                Some(self.request_timeout),
            )
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        let status = resp.status_code().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| SendError::Transport(error_chain(&e)))?;
        Ok((status, bytes))
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

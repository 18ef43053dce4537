//! `binlog2es resync --table db.table`: asks the running daemon, through its operations
//! endpoint (`POST /resync`), to copy one table again while it keeps streaming;
//! `binlog2es reindex --index NAME` (`POST /reindex`, SPEC §10), to rebuild an index behind
//! its alias; and `binlog2es probe`, which asks the same endpoint's `/readyz` (a container
//! health check).

use std::time::Duration;

use crate::config::{Config, ConfigError};

/// Why a re-sync request did not reach the daemon or was refused.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    /// `http.enabled = false`: there is no endpoint to ask.
    #[error(
        "the daemon's HTTP endpoint is disabled (http.enabled = false); enable it to send the \
         daemon requests"
    )]
    Disabled,
    /// The HTTP client cannot be set up.
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The endpoint's password file cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Nothing answers at the endpoint's address.
    #[error(
        "cannot reach the daemon at {base} ({source}); is `binlog2es run` running with this \
         configuration?"
    )]
    Unreachable {
        /// `http[s]://address`.
        base: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The endpoint refused our basic-auth credentials.
    #[error(
        "the daemon at {base} refused our credentials (HTTP 401); check http.username and \
         http.password / http.password_file"
    )]
    Unauthorized {
        /// `http[s]://address`.
        base: String,
    },
    /// The daemon refused the request; its own words.
    #[error("{0}")]
    Refused(String),
}

/// Sends a re-sync request to a running daemon's HTTP endpoint; returns its answer.
///
/// # Errors
/// The endpoint is off or unreachable, or the daemon refused the request.
pub async fn request_resync(config: &Config, table: &str) -> Result<String, ResyncError> {
    let endpoint = Endpoint::new(config)?;
    let request = endpoint
        .request(reqwest::Method::POST, "/resync")
        .query(&[("table", table)]);
    endpoint.send(request).await
}

/// Asks a running daemon to rebuild `index` behind its alias; returns its answer once the
/// rebuild's start is recorded.
///
/// # Errors
/// The endpoint is off or unreachable, or the daemon refused the request.
pub async fn request_reindex(config: &Config, index: &str) -> Result<String, ResyncError> {
    let endpoint = Endpoint::new(config)?;
    let request = endpoint
        .request(reqwest::Method::POST, "/reindex")
        .query(&[("index", index)])
        // The answer comes once the new index exists and the start is committed.
        .timeout(Duration::from_secs(600));
    endpoint.send(request).await
}

/// `binlog2es probe`: asks the running daemon's `/readyz`; its answer when ready.
///
/// # Errors
/// The endpoint is off or unreachable, or the daemon is not ready (the reason in its words).
pub async fn probe(config: &Config) -> Result<String, ResyncError> {
    let endpoint = Endpoint::new(config)?;
    let request = endpoint.request(reqwest::Method::GET, "/readyz");
    endpoint.send(request).await
}

/// The daemon's operations endpoint as a client reaches it.
struct Endpoint {
    client: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

impl Endpoint {
    fn new(config: &Config) -> Result<Self, ResyncError> {
        if !config.http.enabled {
            return Err(ResyncError::Disabled);
        }
        let h = &config.http;
        // A wildcard listen address is reached on loopback.
        let mut addr = h.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let tls = h.tls_cert_file.is_some();
        let base = format!("{}://{addr}", if tls { "https" } else { "http" });
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        if tls {
            // The daemon's own certificate is not issued for the address we dial; on loopback
            // nothing sits between us, elsewhere the certificate must chain to the system roots.
            builder = builder.danger_accept_invalid_certs(addr.ip().is_loopback());
        }
        let client = builder.build().map_err(ResyncError::Client)?;
        let password = crate::config::secret("http.password_file", &h.password, &h.password_file)?;
        let credentials = match (&h.username, password) {
            (Some(user), Some(pw)) => Some((user.clone(), pw.expose().to_owned())),
            _ => None,
        };
        Ok(Self {
            client,
            base,
            credentials,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.credentials {
            Some((user, pw)) => request.basic_auth(user, Some(pw)),
            None => request,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, ResyncError> {
        let resp = request
            .send()
            .await
            .map_err(|source| ResyncError::Unreachable {
                base: self.base.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        match status {
            200..=299 => Ok(text.trim().to_owned()),
            401 => Err(ResyncError::Unauthorized {
                base: self.base.clone(),
            }),
            _ => Err(ResyncError::Refused(text.trim().to_owned())),
        }
    }
}

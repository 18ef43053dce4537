//! Connecting to MySQL: options from `[mysql]` (URL, password, TLS mode, CA, client
//! certificate) and the connect step every MySQL connection of the process goes through.
//!
//! Certificate and key files are read and checked here, once, so that a bad file stops
//! start-up with its key and path. `tls_mode = "preferred"` asks for TLS and falls back
//! to plain TCP only when the server does not offer TLS at all (a failed handshake is an
//! error, not a reason to downgrade); the fallback is logged once per process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mysql_async::{ClientIdentity, Conn, DriverError, Opts, OptsBuilder, SslOpts};
use tracing::warn;

use crate::config::{ConfigError, MysqlConfig, TlsMode, secret};
use crate::tls::CertProblem;

/// Whether the "server does not offer TLS" warning was logged (once per process).
static PLAIN_FALLBACK_WARNED: AtomicBool = AtomicBool::new(false);

/// Where and how to connect to MySQL; cheap to clone.
#[derive(Clone)]
pub struct MysqlSource {
    opts: Opts,
    /// `preferred` only: the same options without TLS, for servers that do not offer it.
    plain: Option<Opts>,
    host: String,
    mode: TlsMode,
    /// `tls_ca_file`, for messages.
    ca_file: Option<String>,
    /// `verify_ca` only: the options naming the host as the server's certificate does, once
    /// learnt (see [`MysqlSource::connect`]).
    by_certificate_name: Arc<Mutex<Option<Opts>>>,
}

impl MysqlSource {
    /// Options from `[mysql]`; reads the password, CA and client certificate files.
    ///
    /// # Errors
    /// Bad URL, unreadable secret, unusable certificate or key file.
    pub fn new(m: &MysqlConfig) -> Result<Self, ConfigError> {
        let base = Opts::from_url(&m.url).map_err(|e| ConfigError::Invalid {
            key: "mysql.url".into(),
            message: e.to_string(),
        })?;
        let host = format!("{}:{}", base.ip_or_hostname(), base.tcp_port());
        let mut b = OptsBuilder::from_opts(base)
            .prefer_socket(false)
            .conn_ttl(None::<Duration>)
            .tcp_keepalive(Some(Duration::from_secs(30)));
        if let Some(p) = secret("mysql.password_file", &m.password, &m.password_file)? {
            b = b.pass(Some(p.expose().to_owned()));
        }
        let plain = b.clone().ssl_opts(None::<SslOpts>);
        let ssl = match m.tls_mode {
            TlsMode::Disabled => None,
            TlsMode::Preferred | TlsMode::Required => Some(
                SslOpts::default()
                    .with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
                let mut s = SslOpts::default();
                if let Some(ca) = &m.tls_ca_file {
                    crate::tls::load_roots("mysql.tls_ca_file", ca)?;
                    // The file's CAs only: a public CA must not vouch for a private server.
                    s = s
                        .with_root_certs(vec![read("mysql.tls_ca_file", ca)?.into()])
                        .with_disable_built_in_roots(true);
                }
                Some(s.with_danger_skip_domain_validation(m.tls_mode == TlsMode::VerifyCa))
            }
        };
        let ssl = match (ssl, &m.tls_cert_file, &m.tls_key_file) {
            (Some(s), Some(cert), Some(key)) => {
                crate::tls::ClientIdentity::load("mysql", cert, key)?;
                Some(s.with_client_identity(Some(ClientIdentity::new(
                    read("mysql.tls_cert_file", cert)?.into(),
                    read("mysql.tls_key_file", key)?.into(),
                ))))
            }
            (s, _, _) => s,
        };
        Ok(Self {
            opts: b.ssl_opts(ssl).into(),
            plain: (m.tls_mode == TlsMode::Preferred).then(|| plain.into()),
            host,
            mode: m.tls_mode,
            ca_file: m.tls_ca_file.as_ref().map(|p| p.display().to_string()),
            by_certificate_name: Arc::default(),
        })
    }

    /// `host:port`, for messages (never the URL: it may hold the password).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Opens a connection (TLS as configured; `preferred` falls back to plain TCP when the
    /// server does not offer TLS).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn connect(&self) -> Result<Conn, mysql_async::Error> {
        let learnt = self.by_certificate_name.lock().ok().and_then(|o| o.clone());
        let opts = learnt.unwrap_or_else(|| self.opts.clone());
        match Conn::new(opts).await {
            Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)) => {
                let Some(plain) = &self.plain else {
                    return Err(DriverError::NoClientSslFlagFromServer.into());
                };
                if !PLAIN_FALLBACK_WARNED.swap(true, Ordering::Relaxed) {
                    warn!(host = %self.host, "MySQL does not offer TLS; connecting without it (tls_mode = \"preferred\"). Enable TLS on the server, or set tls_mode = \"disabled\" to silence this.");
                }
                Conn::new(plain.clone()).await
            }
            Err(e) if self.mode == TlsMode::VerifyCa => self.verify_ca_by_certificate_name(e).await,
            other => other,
        }
    }

    /// `verify_ca` checks the chain, not the name. mysql_async 0.37 fails to ignore a name
    /// mismatch with the rustls in use (it matches on the text of an older rustls error), so
    /// when only the name is wrong, connect again naming the host as the certificate does:
    /// the chain is still checked against `tls_ca_file` in full.
    async fn verify_ca_by_certificate_name(
        &self,
        err: mysql_async::Error,
    ) -> Result<Conn, mysql_async::Error> {
        let Some(CertProblem::WrongName { presented, .. }) = CertProblem::find(&err) else {
            return Err(err);
        };
        let Some(name) = presented.first() else {
            return Err(err);
        };
        // A wildcard name stands for any label: pick one.
        let name = name.replace("*.", "wildcard.");
        let Some(ssl) = self.opts.ssl_opts().cloned() else {
            return Err(err);
        };
        let opts: Opts = OptsBuilder::from_opts(self.opts.clone())
            .ssl_opts(Some(ssl.with_danger_tls_hostname_override(Some(name))))
            .into();
        let conn = Conn::new(opts.clone()).await?;
        if let Ok(mut slot) = self.by_certificate_name.lock() {
            *slot = Some(opts);
        }
        Ok(conn)
    }

    /// A fatal explanation for errors that retrying cannot fix: a refused certificate, or
    /// a server without TLS when TLS is required. `None` for everything else.
    pub fn explain_tls(&self, err: &mysql_async::Error) -> Option<String> {
        if matches!(
            err,
            mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
        ) {
            return Some(format!(
                "MySQL at {} does not offer TLS, and mysql.tls_mode = \"{}\" requires it; \
                 enable TLS on the server (ssl_cert, ssl_key), or set tls_mode = \"preferred\"",
                self.host,
                mode_name(self.mode)
            ));
        }
        let problem = CertProblem::find(err)?;
        let trust = match &self.ca_file {
            Some(f) => format!("mysql.tls_ca_file {f}"),
            None => "the public web roots; set mysql.tls_ca_file for a private CA".to_owned(),
        };
        let fix = match &problem {
            CertProblem::UnknownIssuer | CertProblem::Expired | CertProblem::Other(_) => format!(
                "point mysql.tls_ca_file at the CA that signed the server's certificate, or use \
                 tls_mode = \"required\" to encrypt without verifying (currently \"{}\")",
                mode_name(self.mode)
            ),
            CertProblem::WrongName { .. } => "connect with a host name the certificate lists \
                 (in mysql.url), or use tls_mode = \"verify_ca\" to check the CA only"
                .to_owned(),
            CertProblem::FingerprintMismatch(_) => String::new(),
            CertProblem::ClientCertRefused(_) => "set mysql.tls_cert_file and tls_key_file to \
                 a certificate signed by a CA the server trusts (its ssl_ca)"
                .to_owned(),
        };
        Some(format!(
            "TLS with MySQL at {} failed: {}; {fix}",
            self.host,
            problem.describe(&trust)
        ))
    }
}

fn mode_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Disabled => "disabled",
        TlsMode::Preferred => "preferred",
        TlsMode::Required => "required",
        TlsMode::VerifyCa => "verify_ca",
        TlsMode::VerifyIdentity => "verify_identity",
    }
}

fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::TlsFile {
        key: key.to_owned(),
        path: path.to_owned(),
        message: e.to_string(),
    })
}

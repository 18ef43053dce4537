//! TLS material shared by the three connections: MySQL (client), Elasticsearch (client)
//! and the operations endpoint (server).
//!
//! Files are read once, when a connection is configured, so that a missing or malformed
//! certificate stops start-up with the key and path that name it rather than failing at
//! the first handshake. rustls runs on `ring` everywhere (no C toolchain needed).
//! Certificate failures found during a handshake are turned into [`CertProblem`]s, which
//! the callers word with the host and the setting that fixes them.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

/// The crypto provider of every TLS connection.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(key: &str, path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError::TlsFile {
        key: key.to_owned(),
        path: path.to_owned(),
        message: message.into(),
    }
}

/// The certificates of a PEM file (`-----BEGIN CERTIFICATE-----` blocks), at least one.
///
/// # Errors
/// Unreadable file, bad PEM, or no certificate in it; the error names `key` and `path`.
pub(crate) fn load_certs(
    key: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| file_error(key, path, e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(key, path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(
            key,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1; the first one).
///
/// # Errors
/// Unreadable file or no usable key; the error names `key` and `path`.
pub(crate) fn load_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let pem = std::fs::read(path).map_err(|e| file_error(key, path, e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        file_error(
            key,
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

/// A root store holding exactly the certificates of `path`.
///
/// # Errors
/// As [`load_certs`], or a certificate that cannot be a trust anchor.
pub(crate) fn load_roots(key: &str, path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(key, path)? {
        roots
            .add(cert)
            .map_err(|e| file_error(key, path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The public web roots (Mozilla's list, built in).
pub(crate) fn public_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A client certificate chain and its key, loaded and checked to belong together.
pub(crate) struct ClientIdentity {
    pub(crate) certs: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Loads `cert_path` (PEM chain, leaf first) and `key_path` (PEM key).
    ///
    /// # Errors
    /// Either file unusable, or the key does not match the certificate.
    pub(crate) fn load(
        section: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, ConfigError> {
        let cert_key = format!("{section}.tls_cert_file");
        let key_key = format!("{section}.tls_key_file");
        let certs = load_certs(&cert_key, cert_path)?;
        let key = load_key(&key_key, key_path)?;
        let signing = provider()
            .key_provider
            .load_private_key(key.clone_key())
            .map_err(|e| file_error(&key_key, key_path, format!("unusable private key: {e}")))?;
        rustls::sign::CertifiedKey::new(certs.clone(), signing)
            .keys_match()
            .map_err(|_| {
                file_error(
                    &key_key,
                    key_path,
                    format!(
                        "does not belong to the certificate in {cert_key} ({})",
                        cert_path.display()
                    ),
                )
            })?;
        Ok(Self { certs, key })
    }
}

/// How a client checks the server's certificate.
pub(crate) enum ServerCheck {
    /// Chain up to one of these roots, and the host name.
    Roots(RootCertStore),
    /// A certificate of the presented chain has this SHA-256 fingerprint: the leaf (pinned,
    /// nothing else checked) or a CA (then the chain and host name are checked against it).
    Fingerprint([u8; 32]),
}

/// A rustls client configuration for `check`, with `identity` as client certificate.
///
/// # Errors
/// A key type rustls cannot sign with.
pub(crate) fn client_config(
    check: ServerCheck,
    identity: Option<ClientIdentity>,
    key_key: &str,
    key_path: Option<&Path>,
) -> Result<ClientConfig, ConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::invalid(key_key, format!("TLS set-up: {e}")))?;
    let builder = match check {
        ServerCheck::Roots(roots) => builder.with_root_certificates(roots),
        ServerCheck::Fingerprint(fingerprint) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(FingerprintVerifier { fingerprint })),
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(id) => builder
            .with_client_auth_cert(id.certs, id.key)
            .map_err(|e| {
                file_error(
                    key_key,
                    key_path.unwrap_or(Path::new("?")),
                    format!("unusable client key: {e}"),
                )
            }),
    }
}

/// `AA:BB:…`, as `openssl x509 -fingerprint -sha256` prints it.
pub(crate) fn fingerprint_text(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts a server whose presented chain contains the pinned certificate (see
/// [`ServerCheck::Fingerprint`]).
#[derive(Debug)]
struct FingerprintVerifier {
    fingerprint: [u8; 32],
}

impl ServerCertVerifier for FingerprintVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let matches =
            |c: &CertificateDer<'_>| Sha256::digest(c.as_ref()).as_slice() == self.fingerprint;
        if matches(end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(ca) = intermediates.iter().find(|c| matches(c)) else {
            let presented = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| fingerprint_text(c.as_ref()))
                .collect();
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(FingerprintMismatch { presented })),
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// No certificate of the presented chain has the configured fingerprint.
#[derive(Debug, thiserror::Error)]
#[error("no certificate in the server's chain has the configured fingerprint")]
struct FingerprintMismatch {
    /// Fingerprints of the presented chain, leaf first.
    presented: Vec<String>,
}

/// Why a server's certificate was refused, in the terms an operator fixes it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertProblem {
    /// Not signed by a trusted CA.
    UnknownIssuer,
    /// Valid, but not for the name we connected to.
    WrongName {
        /// The name we connected to.
        expected: String,
        /// The names the certificate holds.
        presented: Vec<String>,
    },
    /// No certificate of the chain matches the configured fingerprint; these are the
    /// fingerprints it presented, leaf first.
    FingerprintMismatch(Vec<String>),
    /// Outside its validity period.
    Expired,
    /// We sent no or a refused client certificate.
    ClientCertRefused(String),
    /// Anything else rustls refused.
    Other(String),
}

impl CertProblem {
    /// The certificate problem in `err` or its causes, if any.
    pub(crate) fn find(err: &(dyn std::error::Error + 'static)) -> Option<CertProblem> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = next {
            if let Some(r) = e.downcast_ref::<rustls::Error>() {
                return Self::from_rustls(r);
            }
            // io::Error hides the error it wraps from `source()` (and connectors wrap an
            // io::Error in another): look inside.
            let wrapped = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| Self::find(inner));
            if wrapped.is_some() {
                return wrapped;
            }
            next = e.source();
        }
        None
    }

    fn from_rustls(e: &rustls::Error) -> Option<CertProblem> {
        match e {
            rustls::Error::InvalidCertificate(c) => Some(match c {
                CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                    CertProblem::UnknownIssuer
                }
                CertificateError::NotValidForName => CertProblem::WrongName {
                    expected: String::new(),
                    presented: Vec::new(),
                },
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => CertProblem::WrongName {
                    expected: server_name_text(expected),
                    presented: presented.iter().map(|n| subject_name(n)).collect(),
                },
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => CertProblem::Expired,
                CertificateError::Other(o) => match o.0.downcast_ref::<FingerprintMismatch>() {
                    Some(m) => CertProblem::FingerprintMismatch(m.presented.clone()),
                    None => CertProblem::Other(o.to_string()),
                },
                other => CertProblem::Other(format!("{other:?}")),
            }),
            rustls::Error::AlertReceived(alert) => {
                use rustls::AlertDescription as A;
                match alert {
                    A::CertificateRequired
                    | A::BadCertificate
                    | A::UnknownCA
                    | A::CertificateUnknown
                    | A::HandshakeFailure => {
                        Some(CertProblem::ClientCertRefused(format!("{alert:?}")))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// What is wrong, one clause: "its certificate is not signed by …".
    pub(crate) fn describe(&self, trust: &str) -> String {
        match self {
            CertProblem::UnknownIssuer => {
                format!("its certificate is not signed by a CA we trust ({trust})")
            }
            CertProblem::WrongName {
                expected,
                presented,
            } => {
                let names = if presented.is_empty() {
                    "other names".to_owned()
                } else {
                    presented.join(", ")
                };
                if expected.is_empty() {
                    format!("its certificate is for {names}, not the host we connected to")
                } else {
                    format!("its certificate is for {names}, not `{expected}`")
                }
            }
            CertProblem::FingerprintMismatch(presented) => format!(
                "no certificate it presented has the configured SHA-256 fingerprint (it \
                 presented {})",
                presented.join(" and ")
            ),
            CertProblem::Expired => "its certificate is expired or not valid yet".to_owned(),
            CertProblem::ClientCertRefused(alert) => format!(
                "it refused the TLS handshake ({alert}): it wants a client certificate it trusts"
            ),
            CertProblem::Other(what) => format!("its certificate was refused: {what}"),
        }
    }
}

/// `localhost` from rustls's `DnsName("localhost")` (and an address from `IpAddress(…)`).
fn subject_name(presented: &str) -> String {
    let inner = presented
        .strip_prefix("DnsName(")
        .or_else(|| presented.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    match inner {
        Some(name) => name.trim_matches('"').to_owned(),
        None => presented.to_owned(),
    }
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

/// Equality whose time does not depend on where the inputs differ (only on their length),
/// for comparing presented credentials.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_fingerprint;

    /// The text printed for a presented certificate is what `ca_fingerprint` accepts.
    #[test]
    fn printed_fingerprints_parse_back() {
        let text = fingerprint_text(b"x");
        assert_eq!(
            parse_fingerprint(&text).unwrap().to_vec(),
            Sha256::digest(b"x").to_vec()
        );
    }

    /// Connectors wrap the rustls error in an io::Error, sometimes twice, under errors
    /// of their own: it is found all the same.
    #[test]
    fn certificate_problems_are_found_inside_wrapped_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let rustls_error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let outer = Outer(std::io::Error::other(inner));
        assert_eq!(CertProblem::find(&outer), Some(CertProblem::UnknownIssuer));
        let unrelated = Outer(std::io::Error::other("connection refused"));
        assert_eq!(CertProblem::find(&unrelated), None);
    }

    #[test]
    fn subject_names_read_plainly() {
        assert_eq!(subject_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(subject_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(subject_name("db.example"), "db.example");
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret(b"hunter2", b"hunter2"));
        assert!(!same_secret(b"hunter2", b"hunter3"));
        assert!(!same_secret(b"hunter2", b"hunter22"));
        assert!(!same_secret(b"", b"x"));
        assert!(!same_secret(b"x", b""));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn bad_files_name_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = load_certs("mysql.tls_ca_file", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mysql.tls_ca_file") && e.contains("missing.pem"),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all").unwrap();
        let e = load_certs("elasticsearch.tls_ca_file", &junk)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no PEM certificate") && e.contains("junk.pem"),
            "{e}"
        );
        let e = load_key("http.tls_key_file", &junk)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.tls_key_file") && e.contains("private key"),
            "{e}"
        );
    }
}

//! Test certificates: a private CA, server and client certificates it signs, and a second,
//! unrelated CA for "wrong CA" cases. Written as PEM files into a directory that lives as
//! long as the test process.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

/// One set of PEM files. Server certificates name `localhost` only (no IP address), so
/// connecting to `127.0.0.1` is the "wrong host name" case.
pub struct TestPki {
    dir: PathBuf,
    /// The CA that signed everything below.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    /// Server certificate (leaf then CA) and key, for `localhost`.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate (CN `binlog2es`) and key, for mutual TLS.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// SHA-256 of the CA and of the server's leaf certificate, `AA:BB:…`.
    pub ca_fingerprint: String,
    pub leaf_fingerprint: String,
}

impl TestPki {
    /// Generates everything into a fresh directory (kept: servers read it while they run).
    pub fn generate() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("b2e-pki-")
            .tempdir()
            .unwrap()
            .keep();
        let ca = ca("binlog2es test CA");
        let other = ca_pem("some other CA");

        let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server.distinguished_name = name("localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &ca).unwrap();

        let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
        client.distinguished_name = name("binlog2es");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &ca).unwrap();

        let write = |file: &str, text: &str| -> PathBuf {
            let path = dir.join(file);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestPki {
            ca: write("ca.pem", &ca.pem()),
            other_ca: write("other-ca.pem", &other),
            server_cert: write("server.pem", &format!("{}{}", server_cert.pem(), ca.pem())),
            server_key: write("server-key.pem", &server_key.serialize_pem()),
            client_cert: write("client.pem", &client_cert.pem()),
            client_key: write("client-key.pem", &client_key.serialize_pem()),
            ca_fingerprint: fingerprint(ca.der()),
            leaf_fingerprint: fingerprint(server_cert.der()),
            dir,
        }
    }

    /// A file in the PKI directory with `text` in it (e.g. a broken PEM).
    pub fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = name(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn ca_pem(cn: &str) -> String {
    ca(cn).pem()
}

fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

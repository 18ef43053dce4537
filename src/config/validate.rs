//! [`Config::validate`]: every check that needs no I/O, each naming the offending key.

use std::path::PathBuf;

use super::{
    Config, ConfigError, DeadLetterKind, MAX_PIPELINE_DEPTH, TableRule, TlsMode, redact_url,
};

impl Config {
    /// Every check that needs no I/O; names the offending key.
    ///
    /// # Errors
    /// The first invalid setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        mysql_async::Opts::from_url(&self.mysql.url).map_err(|e| {
            ConfigError::invalid(
                "mysql.url",
                format!("{e}; expected mysql://user:password@host:port"),
            )
        })?;
        if self.mysql.server_id == 0 {
            return Err(ConfigError::invalid(
                "mysql.server_id",
                "must be a non-zero id unique among the server's replicas",
            ));
        }
        self.validate_mysql_tls()?;
        let urls = self.elasticsearch.all_urls();
        if urls.is_empty() {
            return Err(ConfigError::invalid(
                "elasticsearch.url",
                "missing; set url = \"http://host:9200\"",
            ));
        }
        for u in &urls {
            let parsed = u.parse::<reqwest::Url>().map_err(|e| {
                // "127.0.0.1:9200" parses as a relative URL, or as scheme "127.0.0.1".
                let fix = if u.contains("://") {
                    String::new()
                } else {
                    format!("; add the scheme: \"http://{u}\" (or https://)")
                };
                ConfigError::invalid(
                    "elasticsearch.url",
                    format!("`{}`: {e}{fix}", redact_url(u)),
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::invalid(
                    "elasticsearch.url",
                    format!(
                        "scheme must be http or https; write \"http://{}\"",
                        redact_url(u)
                    ),
                ));
            }
        }
        self.validate_es_security(&urls)?;
        self.validate_http_security()?;
        if self.checkpoint.path.as_os_str().is_empty() {
            return Err(ConfigError::invalid("checkpoint.path", "must not be empty"));
        }
        for (key, v) in [
            ("snapshot.chunk_size", self.snapshot.chunk_size),
            ("snapshot.parallelism", self.snapshot.parallelism),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        let w = &self.writer;
        for (key, v) in [
            ("writer.lanes", w.lanes),
            ("writer.max_docs", w.max_docs),
            ("writer.queue_capacity", w.queue_capacity),
        ] {
            if v == 0 {
                return Err(ConfigError::invalid(key, "must be at least 1"));
            }
        }
        if !(1..=MAX_PIPELINE_DEPTH).contains(&w.pipeline_depth) {
            return Err(ConfigError::invalid(
                "writer.pipeline_depth",
                format!("must be between 1 and {MAX_PIPELINE_DEPTH}"),
            ));
        }
        if w.lanes > 256 {
            return Err(ConfigError::invalid("writer.lanes", "must be at most 256"));
        }
        if w.max_bytes < 1024 {
            return Err(ConfigError::invalid(
                "writer.max_bytes",
                "must be at least 1024",
            ));
        }
        if w.max_buffered_bytes < w.max_bytes {
            return Err(ConfigError::invalid(
                "writer.max_buffered_bytes",
                format!(
                    "must be at least writer.max_bytes ({}): batches are filled from it",
                    w.max_bytes
                ),
            ));
        }
        if w.retry_initial_ms == 0 || w.retry_max_ms < w.retry_initial_ms {
            return Err(ConfigError::invalid(
                "writer.retry_max_ms",
                "need 0 < retry_initial_ms <= retry_max_ms",
            ));
        }
        let dl = &self.dead_letter;
        match dl.destination {
            DeadLetterKind::File if dl.index.is_some() => {
                return Err(ConfigError::invalid(
                    "dead_letter.index",
                    "is for type = \"index\"; remove it or set type = \"index\"",
                ));
            }
            DeadLetterKind::Index if dl.path.is_some() => {
                return Err(ConfigError::invalid(
                    "dead_letter.path",
                    "is for type = \"file\"; remove it or set type = \"file\"",
                ));
            }
            DeadLetterKind::Index => {
                let name = self.dead_letter_index();
                if name.is_empty()
                    || name != name.to_lowercase()
                    || name.starts_with(['_', '-', '+'])
                    || name.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'])
                {
                    return Err(ConfigError::invalid(
                        "dead_letter.index",
                        format!(
                            "`{name}` is not a valid index name (lowercase, no spaces or \\/*?\"<>|,#:)"
                        ),
                    ));
                }
            }
            DeadLetterKind::File => {}
        }
        if self.tables.is_empty() {
            return Err(ConfigError::invalid(
                "tables",
                "no [[tables]] rule; add one with match = \"db.table\"",
            ));
        }
        for (i, t) in self.tables.iter().enumerate() {
            let key = format!("tables[{i}].match");
            let Some((db, table)) = t.pattern.split_once('.') else {
                return Err(ConfigError::invalid(
                    &key,
                    format!("`{}` must be `db.table` (wildcards allowed)", t.pattern),
                ));
            };
            if db.is_empty() || table.is_empty() || table.contains('.') {
                return Err(ConfigError::invalid(
                    &key,
                    format!("`{}` must be `db.table` (wildcards allowed)", t.pattern),
                ));
            }
            for (j, skip) in t.skip_tables.iter().enumerate() {
                let valid = skip
                    .split_once('.')
                    .is_some_and(|(d, t)| !d.is_empty() && !t.is_empty() && !t.contains('.'));
                if !valid {
                    return Err(ConfigError::invalid(
                        &format!("tables[{i}].skip_tables[{j}]"),
                        format!("`{skip}` must be `db.table` (wildcards allowed), as `match`"),
                    ));
                }
            }
            if let Some(unknown) = unknown_placeholder(&t.index) {
                return Err(ConfigError::invalid(
                    &format!("tables[{i}].index"),
                    format!(
                        "`{unknown}` is not a placeholder; use {{db}} and {{table}} (e.g. \"{{db}}_{{table}}\")"
                    ),
                ));
            }
            let sample = t.index_for("db", "table");
            if sample.is_empty()
                || sample.starts_with(['_', '-', '+'])
                || sample.chars().any(|c| {
                    matches!(
                        c,
                        '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ' ' | ',' | '#' | ':'
                    )
                })
            {
                return Err(ConfigError::invalid(
                    &format!("tables[{i}].index"),
                    format!("`{}` does not give a valid index name", t.index),
                ));
            }
            validate_mapping(i, t)?;
            super::document::validate_rule(i, t)?;
        }
        super::document::validate_relation_indices(&self.tables)?;
        Ok(())
    }
}

impl Config {
    /// `[mysql]` password and TLS keys: each file where it has an effect.
    fn validate_mysql_tls(&self) -> Result<(), ConfigError> {
        let m = &self.mysql;
        not_both(
            ("mysql.password", m.password.is_some()),
            ("mysql.password_file", m.password_file.is_some()),
        )?;
        cert_and_key("mysql", &m.tls_cert_file, &m.tls_key_file)?;
        let files = [
            ("mysql.tls_ca_file", m.tls_ca_file.is_some()),
            ("mysql.tls_cert_file", m.tls_cert_file.is_some()),
        ];
        match m.tls_mode {
            TlsMode::Disabled => {
                if let Some((key, _)) = files.iter().find(|(_, set)| *set) {
                    return Err(ConfigError::invalid(
                        key,
                        "has no effect with tls_mode = \"disabled\"; remove it or choose a TLS mode",
                    ));
                }
            }
            TlsMode::Preferred | TlsMode::Required if m.tls_ca_file.is_some() => {
                return Err(ConfigError::invalid(
                    "mysql.tls_ca_file",
                    "is only checked with tls_mode = \"verify_ca\" or \"verify_identity\" \
                     (preferred and required do not verify the server); set one of them",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// `[elasticsearch]` credentials (one kind) and TLS keys (only for https URLs).
    fn validate_es_security(&self, urls: &[String]) -> Result<(), ConfigError> {
        let es = &self.elasticsearch;
        not_both(
            ("elasticsearch.password", es.password.is_some()),
            ("elasticsearch.password_file", es.password_file.is_some()),
        )?;
        not_both(
            ("elasticsearch.api_key", es.api_key.is_some()),
            ("elasticsearch.api_key_file", es.api_key_file.is_some()),
        )?;
        not_both(
            ("elasticsearch.bearer_token", es.bearer_token.is_some()),
            (
                "elasticsearch.bearer_token_file",
                es.bearer_token_file.is_some(),
            ),
        )?;
        let kinds = [
            (
                "username/password",
                es.username.is_some() || es.password.is_some() || es.password_file.is_some(),
            ),
            ("api_key", es.api_key.is_some() || es.api_key_file.is_some()),
            (
                "bearer_token",
                es.bearer_token.is_some() || es.bearer_token_file.is_some(),
            ),
        ];
        let set: Vec<&str> = kinds.iter().filter(|k| k.1).map(|k| k.0).collect();
        if set.len() > 1 {
            return Err(ConfigError::invalid(
                "elasticsearch",
                format!(
                    "{} are set; choose one way to authenticate",
                    set.join(" and ")
                ),
            ));
        }
        let url_credentials = urls.iter().any(|u| {
            u.parse::<reqwest::Url>()
                .is_ok_and(|p| !p.username().is_empty() || p.password().is_some())
        });
        if url_credentials && !set.is_empty() {
            return Err(ConfigError::invalid(
                "elasticsearch.url",
                format!(
                    "carries credentials and {} is set too; keep one (preferably {} with a \
                     *_file, out of the URL)",
                    set[0], set[0]
                ),
            ));
        }
        if es.username.is_none() && (es.password.is_some() || es.password_file.is_some()) {
            return Err(ConfigError::invalid(
                "elasticsearch.username",
                "missing: a password needs a username",
            ));
        }
        not_both(
            ("elasticsearch.tls_ca_file", es.tls_ca_file.is_some()),
            ("elasticsearch.ca_fingerprint", es.ca_fingerprint.is_some()),
        )?;
        if let Some(f) = &es.ca_fingerprint {
            parse_fingerprint(f)
                .map_err(|e| ConfigError::invalid("elasticsearch.ca_fingerprint", e.to_string()))?;
        }
        cert_and_key("elasticsearch", &es.tls_cert_file, &es.tls_key_file)?;
        let tls_keys = [
            ("elasticsearch.tls_ca_file", es.tls_ca_file.is_some()),
            ("elasticsearch.ca_fingerprint", es.ca_fingerprint.is_some()),
            ("elasticsearch.tls_cert_file", es.tls_cert_file.is_some()),
        ];
        if !urls.iter().any(|u| u.starts_with("https://"))
            && let Some((key, _)) = tls_keys.iter().find(|(_, set)| *set)
        {
            return Err(ConfigError::invalid(
                key,
                "has no effect: no elasticsearch URL is https://",
            ));
        }
        Ok(())
    }

    /// `[http]` basic auth (user and password together) and TLS (certificate and key).
    fn validate_http_security(&self) -> Result<(), ConfigError> {
        let h = &self.http;
        not_both(
            ("http.password", h.password.is_some()),
            ("http.password_file", h.password_file.is_some()),
        )?;
        let has_password = h.password.is_some() || h.password_file.is_some();
        match (h.username.is_some(), has_password) {
            (true, false) => Err(ConfigError::invalid(
                "http.password",
                "missing: http.username needs password or password_file",
            )),
            (false, true) => Err(ConfigError::invalid(
                "http.username",
                "missing: a password needs a username",
            )),
            _ => cert_and_key("http", &h.tls_cert_file, &h.tls_key_file),
        }
    }
}

/// At most one of two alternative keys.
/// The first `{…}` in an index template other than `{db}` and `{table}`, which would
/// otherwise end up in the index name literally.
fn unknown_placeholder(template: &str) -> Option<&str> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let end = after.find('}').map_or(after.len(), |c| c + 1);
        let token = &after[..end];
        if token != "{db}" && token != "{table}" {
            return Some(token);
        }
        rest = &after[end..];
    }
    rest.contains('}').then_some("}")
}

fn not_both(a: (&str, bool), b: (&str, bool)) -> Result<(), ConfigError> {
    if a.1 && b.1 {
        return Err(ConfigError::invalid(
            b.0,
            format!("set `{}` or `{}`, not both", a.0, b.0),
        ));
    }
    Ok(())
}

/// `tls_cert_file` and `tls_key_file` of `section`: both or neither.
fn cert_and_key(
    section: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    match (cert.is_some(), key.is_some()) {
        (true, false) => Err(ConfigError::invalid(
            &format!("{section}.tls_key_file"),
            "missing: tls_cert_file needs its private key",
        )),
        (false, true) => Err(ConfigError::invalid(
            &format!("{section}.tls_cert_file"),
            "missing: tls_key_file needs its certificate",
        )),
        _ => Ok(()),
    }
}

/// A secret given inline or as a file (`file_key` names the file key in errors).
///
/// # Errors
/// and neither set when `create_index = false` (they would have no effect).
fn validate_mapping(i: usize, t: &TableRule) -> Result<(), ConfigError> {
    if !t.create_index {
        for (key, set) in [
            ("mapping", !t.mapping.is_empty()),
            ("index_settings", !t.index_settings.is_empty()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    &format!("tables[{i}].{key}"),
                    "has no effect with create_index = false; remove it, or set create_index = true",
                ));
            }
        }
    }
    for (field, def) in &t.mapping {
        let key = format!("tables[{i}].mapping.{field}");
        if field.is_empty() {
            return Err(ConfigError::invalid(&key, "field names must not be empty"));
        }
        let Some(table) = def.as_object() else {
            return Err(ConfigError::invalid(
                &key,
                "must be a table like { type = \"keyword\" }",
            ));
        };
        match table.get("type").and_then(serde_json::Value::as_str) {
            Some(ty) if !ty.is_empty() => {}
            _ => {
                return Err(ConfigError::invalid(
                    &key,
                    "needs a `type`, e.g. { type = \"keyword\" } (use type = \"object\" for objects)",
                ));
            }
        }
    }
    Ok(())
}

/// A `ca_fingerprint` that is not 32 bytes of hex.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{text}` is not a SHA-256 fingerprint (64 hex digits, colons allowed), e.g. from \
     `openssl x509 -noout -fingerprint -sha256 -in ca.pem`"
)]
pub struct FingerprintError {
    /// The setting as written.
    pub text: String,
}

/// Parses `AA:BB:…` or `aabb…` (64 hex digits, colons and spaces ignored).
///
/// # Errors
/// Not 32 bytes of hex.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], FingerprintError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    let bad = || FingerprintError {
        text: text.to_owned(),
    };
    if digits.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        out[i] = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, load_str};
    use crate::config::{DEFAULT_DEAD_LETTER_INDEX, DEFAULT_MAX_BUFFERED_BYTES, SnapshotMode};
    #[test]
    fn unknown_index_placeholders_and_schemeless_urls_are_refused_with_the_fix() {
        let e = load_str(&format!("{MINIMAL}index = \"{{database}}_{{table}}\"\n"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tables[0].index") && e.contains("`{database}`"),
            "{e}"
        );
        load_str(&format!("{MINIMAL}index = \"{{db}}_{{table}}_v2\"\n"))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(unknown_placeholder("x}"), Some("}"));
        assert_eq!(unknown_placeholder("{db"), Some("{db"));
        let text = MINIMAL.replace("\"http://127.0.0.1:9200\"", "\"127.0.0.1:9200\"");
        let e = load_str(&text).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("http://127.0.0.1:9200"), "{e}");
        let text = MINIMAL.replace("\"http://127.0.0.1:9200\"", "\"localhost:9200\"");
        let e = load_str(&text).unwrap().validate().unwrap_err().to_string();
        assert!(e.contains("http://localhost:9200"), "{e}");
    }

    #[test]
    fn validate_names_the_key() {
        let mut c = load_str(MINIMAL).unwrap();
        c.tables[0].pattern = "nodot".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("tables[0].match"), "{e}");
        let mut c = load_str(MINIMAL).unwrap();
        c.writer.lanes = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("writer.lanes")
        );
        let mut c = load_str(MINIMAL).unwrap();
        c.snapshot.mode = SnapshotMode::Initial;
        c.validate().unwrap();
        c.snapshot.chunk_size = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("snapshot.chunk_size")
        );
    }

    #[test]
    fn a_byte_budget_smaller_than_a_batch_is_refused() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(c.writer.max_buffered_bytes, DEFAULT_MAX_BUFFERED_BYTES);
        let c = load_str(&format!(
            "{MINIMAL}\n[writer]\nmax_bytes = 2097152\nmax_buffered_bytes = 1048576\n"
        ))
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("writer.max_buffered_bytes") && e.contains("max_bytes"),
            "{e}"
        );
    }

    #[test]
    fn index_options_are_validated() {
        let bad = [
            (
                "mapping = { title = \"keyword\" }",
                "tables[0].mapping.title",
            ),
            ("mapping = { title = { index = false } }", "needs a `type`"),
            (
                "create_index = false\nmapping = { title = { type = \"keyword\" } }",
                "tables[0].mapping",
            ),
            (
                "create_index = false\nindex_settings = { number_of_shards = 1 }",
                "tables[0].index_settings",
            ),
        ];
        for (lines, expected) in bad {
            let c = load_str(&format!("{MINIMAL}{lines}\n")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        let err = load_str(&format!("{MINIMAL}index_settings = 3\n")).unwrap_err();
        assert!(err.to_string().contains("index_settings"), "{err}");
        let c = load_str(&format!("{MINIMAL}create_index = false\n")).unwrap();
        c.validate().unwrap();
        assert!(!c.tables[0].create_index);
    }

    #[test]
    fn dead_letter_destination_keys_must_fit_the_type() {
        let c = load_str(&format!("{MINIMAL}\n[dead_letter]\ntype = \"index\"\n")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.dead_letter_index(), DEFAULT_DEAD_LETTER_INDEX);
        let c = load_str(&format!(
            "{MINIMAL}\n[dead_letter]\ntype = \"index\"\npath = \"/x\"\n"
        ))
        .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("dead_letter.path")
        );
        let c = load_str(&format!("{MINIMAL}\n[dead_letter]\nindex = \"dl\"\n")).unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("dead_letter.index")
        );
        let c = load_str(&format!(
            "{MINIMAL}\n[dead_letter]\ntype = \"index\"\nindex = \"Bad Name\"\n"
        ))
        .unwrap();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("not a valid index name")
        );
    }

    #[test]
    fn preferred_is_the_default_tls_mode_and_security_keys_are_validated() {
        let c = load_str(MINIMAL).unwrap();
        assert_eq!(c.mysql.tls_mode, TlsMode::Preferred);
        let https = MINIMAL.replace("http://127.0.0.1:9200", "https://127.0.0.1:9200");
        let bad = [
            (
                "[mysql]\n",
                "tls_mode = \"disabled\"\ntls_ca_file = \"/ca\"\n",
                "mysql.tls_ca_file",
            ),
            (
                "[mysql]\n",
                "tls_mode = \"required\"\ntls_ca_file = \"/ca\"\n",
                "verify_ca",
            ),
            (
                "[mysql]\n",
                "tls_mode = \"verify_ca\"\ntls_cert_file = \"/c\"\n",
                "mysql.tls_key_file",
            ),
            (
                "[mysql]\n",
                "password = \"a\"\npassword_file = \"/p\"\n",
                "mysql.password_file",
            ),
            (
                "[elasticsearch]\n",
                "username = \"u\"\napi_key = \"k\"\n",
                "choose one way",
            ),
            (
                "[elasticsearch]\n",
                "bearer_token = \"t\"\napi_key_file = \"/k\"\n",
                "choose one way",
            ),
            (
                "[elasticsearch]\n",
                "password = \"p\"\n",
                "elasticsearch.username",
            ),
            (
                "[elasticsearch]\n",
                "tls_ca_file = \"/ca\"\n",
                "no elasticsearch URL is https",
            ),
            (
                "[elasticsearch]\n",
                "ca_fingerprint = \"12:34\"\n",
                "elasticsearch.ca_fingerprint",
            ),
            (
                "[elasticsearch]\n",
                "tls_key_file = \"/k\"\n",
                "elasticsearch.tls_cert_file",
            ),
        ];
        for (section, lines, expected) in bad {
            let base = if lines.contains("tls_ca_file") && section.contains("elastic") {
                MINIMAL.to_owned()
            } else {
                https.clone()
            };
            let c = load_str(&base.replace(section, &format!("{section}{lines}"))).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        for (lines, expected) in [
            ("username = \"u\"\n", "http.password"),
            ("password = \"p\"\n", "http.username"),
            ("tls_cert_file = \"/c\"\n", "http.tls_key_file"),
        ] {
            let c = load_str(&format!("{MINIMAL}\n[http]\n{lines}")).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(expected), "{lines}: {e}");
        }
        let in_url = https
            .replace("https://", "https://u:secret@")
            .replace("[elasticsearch]\n", "[elasticsearch]\napi_key = \"k\"\n");
        let e = load_str(&in_url)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("elasticsearch.url") && !e.contains("secret"),
            "{e}"
        );
        let good = https.replace(
            "[elasticsearch]\n",
            &format!(
                "[elasticsearch]\nca_fingerprint = \"{}\"\n",
                "ab:".repeat(31) + "ab"
            ),
        );
        load_str(&good).unwrap().validate().unwrap();
    }

    #[test]
    fn fingerprints_parse_with_or_without_colons() {
        let hex = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xAB; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xAB; 32]);
        assert!(parse_fingerprint("AB:CD").is_err());
        let e = parse_fingerprint(&"ZZ".repeat(32)).unwrap_err().to_string();
        assert!(e.contains("not a SHA-256 fingerprint"), "{e}");
    }
}

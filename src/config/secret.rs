//! Secrets: values that never reach a log ([`Secret`]), secret files, and URLs with their
//! password hidden.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConfigError;

/// A password, API key or token: `Debug` and `Display` show `<redacted>`, never the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Unreadable file.
pub fn secret(
    file_key: &str,
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(v), _) => Ok(Some(v.clone())),
        (None, Some(p)) => read_secret(file_key, p).map(Secret::new).map(Some),
        (None, None) => Ok(None),
    }
}

/// `mapping` and `index_settings` of rule `i`: each mapping value a table with a `type`,
/// Reads a secret file, trimming one trailing newline.
///
/// # Errors
/// Unreadable file.
pub fn read_secret(key: &str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Secret {
        key: key.to_owned(),
        path: path.to_owned(),
        source,
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// `scheme://user:***@host…`: a URL with its password hidden, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.split_once('@') {
        Some((a, h)) if !a.contains('/') => (a, h),
        _ => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, load_str};
    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("mysql://u:secret@h:1/db"),
            "mysql://u:***@h:1/db"
        );
        let c = load_str(MINIMAL).unwrap();
        assert!(!format!("{c:?}").contains("secret"));
        let text = MINIMAL
            .replace("[mysql]\n", "[mysql]\npassword = \"secret-my\"\n")
            .replace(
                "[elasticsearch]\n",
                "[elasticsearch]\nbearer_token = \"secret-bearer\"\n",
            );
        let text = format!("{text}\n[http]\nusername = \"u\"\npassword = \"secret-http\"\n");
        let c = load_str(&text).unwrap();
        c.validate().unwrap();
        let debug = format!(
            "{c:?} {:?} {}",
            c.mysql.password,
            c.http.password.clone().unwrap()
        );
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let es = MINIMAL.replace(
            "[elasticsearch]\n",
            "[elasticsearch]\napi_key = \"secret-key\"\n",
        );
        assert!(!format!("{:?}", load_str(&es).unwrap()).contains("secret"));
    }
}

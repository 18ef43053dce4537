//! Loading: the TOML file, then `BINLOG2ES__SECTION__KEY` environment overrides, into
//! [`Config`], strictly (no string read as a number or boolean from the file). Every error
//! names the key, where its value came from (file and line, or the environment variable) and
//! the fix.

use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;
use sha2::{Digest, Sha256};
use toml::de::{DeTable, DeValue};

use super::{Config, ConfigError};

/// Environment variables that override keys start with this.
pub const ENV_PREFIX: &str = "BINLOG2ES__";

/// One `BINLOG2ES__SECTION__KEY=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvOverride {
    /// The variable's name, for messages.
    pub var: String,
    /// The key it sets, lowercase (`["mysql", "url"]`).
    pub path: Vec<String>,
    /// Its value.
    pub value: String,
}

/// Which keys the file or environment set themselves (the rest are defaults).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Given {
    /// `mysql.server_id`.
    pub server_id: bool,
}

/// The overrides among `vars`, in name order (so a conflict resolves the same way each time).
pub(crate) fn env_overrides(vars: impl Iterator<Item = (String, String)>) -> Vec<EnvOverride> {
    let mut out: Vec<EnvOverride> = vars
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix(ENV_PREFIX)?;
            let path: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            (!path.iter().any(String::is_empty)).then_some(EnvOverride { var, path, value })
        })
        .collect();
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

/// Parses `text` (the file at `path`), applies `env` and deserializes.
pub(crate) fn deserialize(
    path: &Path,
    text: &str,
    env: &[EnvOverride],
) -> Result<(Config, Given), ConfigError> {
    let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    // An environment value is text: read as a boolean or number where it looks like one, and
    // as text again where the key turns out to want text (a numeric password, say).
    let mut as_text = vec![false; env.len()];
    loop {
        let mut merged = file.clone();
        for (o, &text_only) in env.iter().zip(&as_text) {
            set(&mut merged, o, typed(&o.value, text_only))?;
        }
        let given = Given {
            server_id: merged
                .get("mysql")
                .and_then(|m| m.get("server_id"))
                .is_some(),
        };
        let err = match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(merged)) {
            Ok(config) => return Ok((config, given)),
            Err(e) => e,
        };
        // toml appends "\nin `key`" on lines of its own: the key is said once, below.
        let full = err.inner().to_string();
        let message = full.lines().next().unwrap_or_default().trim().to_owned();
        let mut key: Vec<Segment> = err.path().iter().cloned().collect();
        // serde names an unknown or missing key in its message, and the path ends at its table.
        if let Some(name) = quoted_after(&message, "unknown field `")
            .or_else(|| quoted_after(&message, "missing field `"))
            && !matches!(key.last(), Some(Segment::Map { key: k }) if k == name)
        {
            key.push(Segment::Map {
                key: name.to_owned(),
            });
        }
        let dotted = dotted(&key);
        let from_env = env.iter().position(|o| starts_with(&key, &o.path));
        if let Some(i) = from_env {
            if !as_text[i] && message.contains("expected a string") {
                as_text[i] = true;
                continue;
            }
            return Err(ConfigError::At {
                key: dotted,
                origin: format!("environment variable {}", env[i].var),
                message: explain(&message),
            });
        }
        let origin = match line_of(text, &key) {
            Some(line) => format!("{}:{line}", path.display()),
            None => path.display().to_string(),
        };
        let mut message = explain(&message);
        if message.starts_with("missing field") {
            let var = format!("{ENV_PREFIX}{}", dotted.replace('.', "__").to_uppercase());
            message.push_str(&format!("; add it to the file, or set {var}"));
        }
        return Err(ConfigError::At {
            key: dotted,
            origin,
            message,
        });
    }
}

/// `p` as written when absolute; else relative to `dir`, the configuration file's directory
/// (not the working directory, which differs between a shell, systemd and a container).
pub(crate) fn beside(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() || p.as_os_str().is_empty() {
        return p.to_owned();
    }
    let joined = dir.join(p);
    std::path::absolute(&joined).unwrap_or(joined)
}

/// A replica id for a configuration that sets none: a hash of this host's name and the
/// checkpoint path, so it stays the same across restarts and differs between two instances
/// (each has its own checkpoint). Kept away from 0 (invalid) and the small ids servers use.
pub fn derive_server_id(checkpoint: &Path) -> u32 {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut h = Sha256::new();
    h.update(host.trim().as_bytes());
    h.update([0]);
    h.update(checkpoint.as_os_str().as_encoded_bytes());
    let d = h.finalize();
    let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    // 1,000,000 ..= u32::MAX
    1_000_000 + n % (u32::MAX - 1_000_000)
}

/// Sets `o`'s key in `table`, creating its sections.
fn set(table: &mut toml::Table, o: &EnvOverride, value: toml::Value) -> Result<(), ConfigError> {
    let Some((last, sections)) = o.path.split_last() else {
        return Ok(());
    };
    let mut at = table;
    for (depth, name) in sections.iter().enumerate() {
        let entry = at
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::At {
                    key: o.path[..=depth].join("."),
                    origin: format!("environment variable {}", o.var),
                    message: "is a value, not a section; name a key inside a section, as \
                              BINLOG2ES__MYSQL__URL"
                        .into(),
                });
            }
        };
    }
    at.insert(last.clone(), value);
    Ok(())
}

/// An environment value as TOML would read it unquoted (`true`, `42`, `1.5`), else text.
fn typed(raw: &str, text_only: bool) -> toml::Value {
    if !text_only {
        match raw {
            "true" => return toml::Value::Boolean(true),
            "false" => return toml::Value::Boolean(false),
            _ => {}
        }
        if let Ok(i) = raw.parse::<i64>() {
            return toml::Value::Integer(i);
        }
        if raw.contains('.')
            && let Ok(f) = raw.parse::<f64>()
            && raw
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        {
            return toml::Value::Float(f);
        }
    }
    toml::Value::String(raw.to_owned())
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

fn starts_with(key: &[Segment], prefix: &[String]) -> bool {
    key.len() >= prefix.len()
        && key.iter().zip(prefix).all(|(s, p)| match s {
            Segment::Map { key } => key.eq_ignore_ascii_case(p),
            _ => false,
        })
}

fn dotted(key: &[Segment]) -> String {
    let mut out = String::new();
    for s in key {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// serde's message, with the fix spelled out: the closest known key, the allowed values,
/// quotes to remove.
fn explain(message: &str) -> String {
    let mut out = message.to_owned();
    if let Some(unknown) = quoted_after(message, "unknown field `")
        && let Some(close) = closest(unknown, &expected(message))
    {
        out.push_str(&format!("; did you mean `{close}`?"));
    }
    if let Some(unknown) = quoted_after(message, "unknown variant `") {
        let values = expected(message);
        if let Some(v) = values.iter().find(|v| v.eq_ignore_ascii_case(unknown)) {
            out.push_str(&format!("; values are lowercase: write \"{v}\""));
        } else if let Some(close) = closest(unknown, &values) {
            out.push_str(&format!("; did you mean \"{close}\"?"));
        }
    }
    if message.starts_with("invalid type: string") {
        if message.contains("expected a boolean") {
            out.push_str("; write true or false, without quotes");
        } else if message.contains("expected u") || message.contains("expected i") {
            out.push_str("; write the number without quotes");
        }
    }
    out
}

/// The names serde lists after "expected one of" / "expected `x`".
fn expected(message: &str) -> Vec<&str> {
    let Some(at) = message.find("expected") else {
        return Vec::new();
    };
    message[at..].split('`').skip(1).step_by(2).collect()
}

/// The candidate within two edits of `word`, if one is.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The 1-based line of `key` in `text` (or of the nearest enclosing key written there).
fn line_of(text: &str, key: &[Segment]) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut span = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for s in key {
        match (s, table, value) {
            (Segment::Map { key }, Some(t), _) => {
                let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref() == key) else {
                    break;
                };
                span = Some(k.span());
                value = Some(v.get_ref());
                table = match v.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                };
            }
            (Segment::Seq { index }, _, Some(DeValue::Array(items))) => {
                let Some(item) = items.get(*index) else {
                    break;
                };
                span = Some(item.span());
                value = Some(item.get_ref());
                table = match item.get_ref() {
                    DeValue::Table(t) => Some(t),
                    _ => None,
                };
            }
            _ => break,
        }
    }
    let start = span?.start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, load_str};

    fn env_err(text: &str, vars: &[(&str, &str)]) -> String {
        let env = env_overrides(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        match deserialize(Path::new("/etc/b.toml"), text, &env) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_wrong_enum_value_lists_the_values_and_the_line() {
        let text = MINIMAL.replace("mode = \"never\"", "mode = \"Initial\"");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("`snapshot.mode`"), "{e}");
        assert!(e.contains("c.toml:9)"), "{e}");
        assert!(e.contains("`initial`, `never`, `when_needed`"), "{e}");
        assert!(e.contains("write \"initial\""), "{e}");
    }

    #[test]
    fn a_typo_key_gets_its_line_and_a_suggestion() {
        let text = MINIMAL.replace("[mysql]\n", "[mysql]\nurll = \"x\"\n");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("`mysql.urll`"), "{e}");
        assert!(e.contains("c.toml:3)"), "{e}");
        assert!(e.contains("did you mean `url`?"), "{e}");
        let text = MINIMAL.replace("match = ", "mach = ");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(e.contains("`tables[0].mach`"), "{e}");
        assert!(e.contains("did you mean `match`?"), "{e}");
    }

    #[test]
    fn quoted_numbers_and_booleans_in_the_file_are_refused() {
        let e = load_str(&format!("{MINIMAL}\n[writer]\ngzip = \"yes\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`writer.gzip`") && e.contains("true or false"),
            "{e}"
        );
        let text = MINIMAL.replace("[mysql]\n", "[mysql]\nserver_id = \"4201\"\n");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(
            e.contains("`mysql.server_id`") && e.contains("without quotes"),
            "{e}"
        );
    }

    #[test]
    fn environment_errors_name_the_variable() {
        let e = env_err(MINIMAL, &[("BINLOG2ES__MYSQL__URLL", "x")]);
        assert!(
            e.contains("environment variable BINLOG2ES__MYSQL__URLL"),
            "{e}"
        );
        assert!(e.contains("did you mean `url`?"), "{e}");
        let e = env_err(MINIMAL, &[("BINLOG2ES__WRITER__GZIP", "yes")]);
        assert!(
            e.contains("environment variable BINLOG2ES__WRITER__GZIP"),
            "{e}"
        );
    }

    #[test]
    fn environment_values_take_the_type_the_key_wants() {
        let vars = [
            ("BINLOG2ES__MYSQL__SERVER_ID", "77"),
            ("BINLOG2ES__MYSQL__PASSWORD", "12345"),
            ("BINLOG2ES__WRITER__GZIP", "true"),
            ("BINLOG2ES_CONFIG", "/elsewhere.toml"),
        ];
        let env = env_overrides(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let (c, given) = deserialize(Path::new("/etc/b.toml"), MINIMAL, &env).unwrap();
        assert_eq!(c.mysql.server_id, 77);
        assert!(given.server_id);
        assert_eq!(c.mysql.password.unwrap().expose(), "12345");
        assert!(c.writer.gzip);
    }

    #[test]
    fn a_missing_key_says_where_to_set_it() {
        let text = MINIMAL.replace("url = \"mysql://u:secret@127.0.0.1:3306\"\n", "");
        let e = load_str(&text).unwrap_err().to_string();
        assert!(
            e.contains("`mysql.url`") && e.contains("BINLOG2ES__MYSQL__URL"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            MINIMAL.replace("/tmp/x/checkpoint.json", "state/checkpoint.json"),
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.checkpoint.path, dir.path().join("state/checkpoint.json"));
        assert_eq!(
            c.dead_letter_path(),
            dir.path().join("state/dead-letter.jsonl")
        );
    }

    #[test]
    fn derived_server_ids_are_stable_and_differ_per_checkpoint() {
        let a = derive_server_id(Path::new("/var/lib/a/checkpoint.json"));
        assert_eq!(a, derive_server_id(Path::new("/var/lib/a/checkpoint.json")));
        assert_ne!(a, derive_server_id(Path::new("/var/lib/b/checkpoint.json")));
        assert!(a >= 1_000_000);
    }
}

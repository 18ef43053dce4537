//! Drift (SPEC §10): an index binlog2es created no longer matches its rule, because the
//! rule changed since (its `_meta.rule_fingerprint` differs) or a field has another type
//! than the rule now wants. Only a rebuild into a new index applies such a change; fields
//! that are merely missing are added in place and are no drift. Pure: no requests.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{Config, TableRule, rules_writing};

/// Rule keys that choose tables or decide whether binlog2es manages the index, but do not
/// shape its documents or mapping: changing them is no drift.
const NOT_SHAPING: [&str; 5] = [
    "match",
    "index",
    "skip_tables",
    "create_index",
    "on_keyless",
];

/// A stable hex hash of the keys of `rule` that shape documents or the index (every key
/// but [`NOT_SHAPING`]), over canonical JSON: key order in the TOML, and keys left at
/// their empty default, do not matter, so a later version adding an optional key does
/// not make every index drift.
pub fn rule_fingerprint(rule: &TableRule) -> String {
    let mut value = serde_json::to_value(rule).unwrap_or(Value::Null);
    if let Value::Object(keys) = &mut value {
        for key in NOT_SHAPING {
            keys.remove(key);
        }
    }
    prune_defaults(&mut value);
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    hex(&Sha256::digest(canonical.as_bytes())[..16])
}

/// The fingerprint an index records: its rule's, or, when several rules can write the index
/// (tables sharing it), one over all of theirs (`rule` always among them).
pub fn index_fingerprint(config: &Config, rule: &TableRule, index: &str) -> String {
    let mut prints: Vec<String> = rules_writing(config, index)
        .into_iter()
        .map(rule_fingerprint)
        .collect();
    prints.push(rule_fingerprint(rule));
    prints.sort();
    prints.dedup();
    match prints.as_slice() {
        [one] => one.clone(),
        many => hex(&Sha256::digest(many.join(",").as_bytes())[..16]),
    }
}

/// Drops the members of a rule (and of its relations) left at their default: `null`, `[]`,
/// `{}`, except `include_columns`, whose `[]` differs from absent. The values under
/// `mapping` and `index_settings` are the user's JSON and are kept as written.
fn prune_defaults(value: &mut Value) {
    let Value::Object(keys) = value else {
        return;
    };
    keys.retain(|key, v| {
        let empty = match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty() && key != "include_columns",
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        !empty
    });
    for key in ["join", "nest"] {
        if let Some(Value::Array(relations)) = keys.get_mut(key) {
            relations.iter_mut().for_each(prune_defaults);
        }
    }
}

/// JSON with object keys sorted at every depth and no whitespace.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A field whose type in the index is not the one the rule wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The field.
    pub field: String,
    /// Its type in the index.
    pub existing: String,
    /// The type the current rule and columns give it.
    pub wanted: String,
}

/// How an index differs from its rule; empty when it matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drift {
    /// `_meta.rule_fingerprint` is not the current rule's.
    pub rule_changed: bool,
    /// Fields with another type.
    pub fields: Vec<FieldConflict>,
}

impl Drift {
    /// Compares an index's recorded fingerprint (`None`: not recorded, taken as matching)
    /// and field definitions with what the rule wants now.
    pub fn of(
        recorded: Option<&str>,
        current: &str,
        existing: &Map<String, Value>,
        wanted: &Map<String, Value>,
    ) -> Self {
        let rule_changed = recorded.is_some_and(|r| r != current);
        let fields = wanted
            .iter()
            .filter_map(|(field, def)| {
                let have = existing.get(field)?;
                let (existing, wanted) = (type_of(have), type_of(def));
                (existing != wanted).then(|| FieldConflict {
                    field: field.clone(),
                    existing,
                    wanted,
                })
            })
            .collect();
        Self {
            rule_changed,
            fields,
        }
    }

    /// Whether the index matches its rule.
    pub fn is_empty(&self) -> bool {
        !self.rule_changed && self.fields.is_empty()
    }

    /// The operator's message: what differs and the command that rebuilds the index.
    pub fn message(&self, index: &str, config_file: Option<&Path>) -> String {
        let mut what = Vec::new();
        if self.rule_changed {
            what.push("its [[tables]] rule changed since the index was created".to_owned());
        }
        for c in &self.fields {
            what.push(format!(
                "field `{}` is `{}` in the index, the rule wants `{}`",
                c.field, c.existing, c.wanted
            ));
        }
        format!(
            "Index `{index}` no longer matches its rule ({}); rebuild it with: {}",
            what.join("; "),
            reindex_command(index, config_file)
        )
    }
}

/// A field definition's type; `object` when it has only `properties`, as Elasticsearch
/// reports it.
fn type_of(def: &Value) -> String {
    match def.get("type").and_then(Value::as_str) {
        Some(t) => t.to_owned(),
        None => "object".to_owned(),
    }
}

/// `binlog2es reindex --config FILE --index NAME`, with a placeholder for an unknown file.
pub fn reindex_command(index: &str, config_file: Option<&Path>) -> String {
    let file = config_file.map_or_else(
        || "<your configuration file>".to_owned(),
        |p| p.display().to_string(),
    );
    format!("binlog2es reindex --config {file} --index {index}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(toml_text: &str) -> TableRule {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn fingerprint_ignores_key_order_defaults_and_non_shaping_keys() {
        let a = rule(
            "match = \"shop.orders\"\nrename = { a = \"x\", b = \"y\" }\n\
             mapping = { t = { type = \"keyword\", ignore_above = 10 } }",
        );
        let b = rule(
            "mapping = { t = { ignore_above = 10, type = \"keyword\" } }\n\
             rename = { b = \"y\", a = \"x\" }\nmatch = \"other.*\"\nindex = \"elsewhere\"\n\
             skip_tables = [\"other.tmp\"]\ncreate_index = true\non_keyless = \"skip\"\n\
             exclude_columns = []\nwhere = {}",
        );
        assert_eq!(rule_fingerprint(&a), rule_fingerprint(&b));
        assert_eq!(rule_fingerprint(&a).len(), 32);
        assert!(rule_fingerprint(&a).bytes().all(|c| c.is_ascii_hexdigit()));
        // Fixed across builds and processes: a changed value here means every index drifts.
        assert_eq!(
            rule_fingerprint(&rule("match = \"a.b\"")),
            hex(&Sha256::digest(b"{}")[..16])
        );
    }

    #[test]
    fn fingerprint_changes_with_what_shapes_documents() {
        let base = rule_fingerprint(&rule("match = \"shop.orders\""));
        for shaping in [
            "rename = { a = \"x\" }",
            "mapping = { t = { type = \"keyword\" } }",
            "index_settings = { number_of_shards = 2 }",
            "include_columns = []",
            "include_columns = [\"a\"]",
            "exclude_columns = [\"a\"]",
            "where = { s = [1] }",
            "routing = \"a\"",
            "id_columns = [\"a\"]",
            "[[join]]\nfield = \"u\"\ntable = \"user\"\non = { uid = \"id\" }",
        ] {
            let changed = rule_fingerprint(&rule(&format!("match = \"shop.orders\"\n{shaping}")));
            assert_ne!(changed, base, "{shaping}");
        }
        let relation = |extra: &str| {
            rule_fingerprint(&rule(&format!(
                "match = \"a.b\"\n[[nest]]\nfield = \"c\"\ntable = \"c\"\non = {{ id = \"b_id\" }}\n{extra}"
            )))
        };
        assert_eq!(relation(""), relation("order_by = []"));
        assert_ne!(relation(""), relation("order_by = [\"id\"]"));
    }

    #[test]
    fn shared_indices_combine_the_fingerprints_of_their_rules() {
        let config = |tables: &str| -> Config {
            let text = format!(
                "[mysql]\nurl = \"mysql://u@h/\"\n[elasticsearch]\nurl = \"http://h:9200\"\n\
                 [checkpoint]\npath = \"c.json\"\n{tables}"
            );
            toml::from_str(&text).unwrap()
        };
        let one = config(
            "[[tables]]\nmatch = \"shop.orders\"\nindex = \"orders\"\nrename = { a = \"b\" }\n\
             [[tables]]\nmatch = \"shop.*\"\nindex = \"{db}_{table}\"",
        );
        // The wildcard cannot write `orders`; `shop_orders` is the first rule's table's only
        // by name, and the first rule takes shop.orders.
        assert_eq!(
            index_fingerprint(&one, &one.tables[0], "orders"),
            rule_fingerprint(&one.tables[0])
        );
        assert_eq!(
            index_fingerprint(&one, &one.tables[1], "shop_items"),
            rule_fingerprint(&one.tables[1])
        );
        let shared = config(
            "[[tables]]\nmatch = \"shop.orders\"\nindex = \"all\"\nrename = { a = \"b\" }\n\
             [[tables]]\nmatch = \"shop.items\"\nindex = \"all\"",
        );
        let both = index_fingerprint(&shared, &shared.tables[0], "all");
        assert_eq!(both, index_fingerprint(&shared, &shared.tables[1], "all"));
        assert_ne!(both, rule_fingerprint(&shared.tables[0]));
        assert_ne!(both, rule_fingerprint(&shared.tables[1]));
    }

    #[test]
    fn drift_names_what_differs_and_the_command() {
        let existing = json!({"id": {"type": "long"}, "title": {"type": "text"},
            "author": {"properties": {"name": {"type": "text"}}}});
        let wanted = json!({"id": {"type": "long"}, "title": {"type": "keyword"},
            "author": {"type": "object", "properties": {}}, "new": {"type": "long"}});
        let (existing, wanted) = (existing.as_object().unwrap(), wanted.as_object().unwrap());
        assert!(Drift::of(None, "f1", existing, existing).is_empty());
        assert!(Drift::of(Some("f1"), "f1", existing, existing).is_empty());
        let drift = Drift::of(Some("f0"), "f1", existing, wanted);
        assert_eq!(
            drift.message("orders", Some(Path::new("/etc/binlog2es.toml"))),
            "Index `orders` no longer matches its rule (its [[tables]] rule changed since the \
             index was created; field `title` is `text` in the index, the rule wants \
             `keyword`); rebuild it with: binlog2es reindex --config /etc/binlog2es.toml \
             --index orders"
        );
        let only_rule = Drift::of(Some("f0"), "f1", existing, existing);
        assert!(
            only_rule
                .message("o", None)
                .ends_with("(its [[tables]] rule changed since the index was created); rebuild it with: binlog2es reindex --config <your configuration file> --index o"),
            "{}",
            only_rule.message("o", None)
        );
    }
}

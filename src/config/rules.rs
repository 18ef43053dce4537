//! `[[tables]]` rules: which tables are synced, to which index, and how (pattern matching
//! with `*`, `skip_tables`, the keyless policy, the rule lookup and index sharing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::document::{Relation, WhereValue};
use super::{Config, d_index, d_true};

/// `[[tables]]`: one sync rule.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TableRule {
    /// `db.table`, `*` wildcards allowed.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Index name template with `{db}` and `{table}`.
    #[serde(default = "d_index")]
    pub index: String,
    /// Columns forming `_id` when the table has no primary key (or to override it).
    #[serde(default)]
    pub id_columns: Vec<String>,
    /// `db.table` patterns (same `*` syntax as `match`) this rule does not take; a later
    /// rule may match them. Default empty.
    #[serde(default)]
    pub skip_tables: Vec<String>,
    /// What to do with a matched table that has no primary key and no `id_columns`; default
    /// [`KeylessPolicy::default_for`] the pattern (skip under a wildcard, fail for one table).
    #[serde(default)]
    pub on_keyless: Option<KeylessPolicy>,
    /// Whether binlog2es may create the index (mapping derived from the column types) and
    /// add fields for new columns; default true. `false`: indices of this rule are never
    /// created or altered (Elasticsearch's own auto-creation and dynamic mapping apply).
    #[serde(default = "d_true")]
    pub create_index: bool,
    /// Field definitions that replace the derived ones (whole definitions, per field), e.g.
    /// `{ title = { type = "keyword" } }`; used when binlog2es creates or extends the index.
    /// Default empty.
    #[serde(default)]
    pub mapping: BTreeMap<String, serde_json::Value>,
    /// Index settings sent when binlog2es creates the index (e.g.
    /// `{ number_of_shards = 1 }`); default empty: the cluster's defaults and templates.
    #[serde(default)]
    pub index_settings: serde_json::Map<String, serde_json::Value>,
    /// SPEC §9: only these columns become fields, in this order; default all.
    #[serde(default)]
    pub include_columns: Option<Vec<String>>,
    /// SPEC §9: columns that never become fields; default none.
    #[serde(default)]
    pub exclude_columns: Vec<String>,
    /// SPEC §9: column → field name.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// SPEC §9 `where`: column → values; a row is a document when each column holds one.
    #[serde(default, rename = "where")]
    pub where_any_of: BTreeMap<String, Vec<WhereValue>>,
    /// SPEC §9: columns that must be NULL for a row to be a document.
    #[serde(default)]
    pub where_null: Vec<String>,
    /// SPEC §9: columns that must not be NULL for a row to be a document.
    #[serde(default)]
    pub where_not_null: Vec<String>,
    /// SPEC §9: the column whose value (as text) is every write's and delete's `routing`.
    #[serde(default)]
    pub routing: Option<String>,
    /// SPEC §9 `[[tables.join]]`: many-to-one relations (an object or null).
    #[serde(default)]
    pub join: Vec<Relation>,
    /// SPEC §9 `[[tables.nest]]`: one-to-many relations (an array).
    #[serde(default)]
    pub nest: Vec<Relation>,
}

/// A rule matching nothing, with every option at its default (for code building rules).
impl Default for TableRule {
    fn default() -> Self {
        Self {
            pattern: String::new(),
            index: d_index(),
            id_columns: Vec::new(),
            skip_tables: Vec::new(),
            on_keyless: None,
            create_index: true,
            mapping: BTreeMap::new(),
            index_settings: serde_json::Map::new(),
            include_columns: None,
            exclude_columns: Vec::new(),
            rename: BTreeMap::new(),
            where_any_of: BTreeMap::new(),
            where_null: Vec::new(),
            where_not_null: Vec::new(),
            routing: None,
            join: Vec::new(),
            nest: Vec::new(),
        }
    }
}

/// `[[tables]] on_keyless`: a matched table without a primary key (and no `id_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeylessPolicy {
    /// Leave the table out, with one WARN naming it and a metric; the others go on.
    Skip,
    /// Refuse to start, or stop the daemon, naming the table and the fix.
    Fail,
}

impl KeylessPolicy {
    /// The default for a `match` pattern: a rule naming one table exactly exists for that
    /// table, so it cannot be left out silently (`fail`); a wildcard rule may meet tables
    /// nobody planned for (created later, scratch copies), which must not stop the others
    /// (`skip`, SPEC §2.5).
    pub fn default_for(pattern: &str) -> Self {
        if pattern.contains('*') {
            Self::Skip
        } else {
            Self::Fail
        }
    }
}

impl TableRule {
    /// Whether `db.table` matches this rule: its pattern and none of its `skip_tables`.
    pub fn matches(&self, db: &str, table: &str) -> bool {
        pattern_matches(&self.pattern, db, table)
            && !self
                .skip_tables
                .iter()
                .any(|p| pattern_matches(p, db, table))
    }

    /// The policy for keyless tables: `on_keyless`, or the default for the pattern.
    pub fn keyless_policy(&self) -> KeylessPolicy {
        self.on_keyless
            .unwrap_or_else(|| KeylessPolicy::default_for(&self.pattern))
    }

    /// The index name for `db.table` (lowercased: Elasticsearch index names must be).
    pub fn index_for(&self, db: &str, table: &str) -> String {
        self.index
            .replace("{db}", db)
            .replace("{table}", table)
            .to_lowercase()
    }
}

/// Whether `db.table` matches the `db.table` pattern `pattern` (`*` wildcards).
fn pattern_matches(pattern: &str, db: &str, table: &str) -> bool {
    let Some((pd, pt)) = pattern.split_once('.') else {
        return false;
    };
    glob(pd, db) && glob(pt, table)
}

/// `*` matches any run of characters (also empty); everything else literally.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

impl Config {
    /// The first rule matching `db.table`, if any.
    pub fn rule_for(&self, db: &str, table: &str) -> Option<&TableRule> {
        self.tables.iter().find(|r| r.matches(db, table))
    }

    /// The first rule matching `db.table` with its position in `tables` (the `N` of
    /// `tables[N]` in messages), cloned.
    pub fn rule_index_for(&self, db: &str, table: &str) -> Option<(usize, TableRule)> {
        self.tables
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(db, table))
            .map(|(i, r)| (i, r.clone()))
    }
}

/// Whether every document in the index of `db.table` comes from that table, so emptying
/// the index empties exactly the table's documents: no other table, under its own rule or
/// another one, can resolve to the same index name. Index names are lowercased, so names
/// that differ only in letter case count as one table.
pub fn index_is_per_table(config: &Config, db: &str, table: &str) -> bool {
    let Some(rule) = config.rule_for(db, table) else {
        return false;
    };
    let name = rule.index_for(db, table);
    let me = (db.to_lowercase(), table.to_lowercase());
    !config
        .tables
        .iter()
        .any(|other| resolves_for_another(other, &name, &me))
}

/// The rules that can give the index name `name` to a table they take (a table an earlier
/// rule takes is not theirs, when the name tells which table it is): the rules whose
/// documents may be in that index.
pub fn rules_writing<'a>(config: &'a Config, name: &str) -> Vec<&'a TableRule> {
    let name = name.to_lowercase();
    let takes = |rule: &TableRule| {
        let Some((pd, pt)) = rule.pattern.split_once('.') else {
            return false;
        };
        let (pd, pt) = (pd.to_lowercase(), pt.to_lowercase());
        let fixed = |part: &str| (!part.contains('*')).then(|| part.to_owned());
        solve_template(&rule.index, &name)
            .into_iter()
            .any(|(d, t)| {
                let d = d.or_else(|| fixed(&pd));
                let t = t.or_else(|| fixed(&pt));
                let fits =
                    |part: &str, v: &Option<String>| v.as_ref().is_none_or(|v| glob(part, v));
                if !fits(&pd, &d) || !fits(&pt, &t) {
                    return false;
                }
                match (&d, &t) {
                    (Some(d), Some(t)) => config
                        .rule_for(d, t)
                        .is_some_and(|first| std::ptr::eq(first, rule)),
                    // A free part: some table of the pattern may be the one.
                    _ => true,
                }
            })
    };
    config.tables.iter().filter(|r| takes(r)).collect()
}

/// Whether `rule` can give the index name `name` to a table it matches other than `me`
/// (lowercased). The template is solved for the names it contains; a part it does not
/// contain can be any name the pattern's part matches. Tables an earlier rule takes are
/// not excluded: that can only make an index count as shared, never the reverse.
fn resolves_for_another(rule: &TableRule, name: &str, me: &(String, String)) -> bool {
    let Some((pd, pt)) = rule.pattern.split_once('.') else {
        return false;
    };
    let (pd, pt) = (pd.to_lowercase(), pt.to_lowercase());
    // A pattern part without a wildcard fixes that part even when the template omits it.
    let fixed = |part: &str| (!part.contains('*')).then(|| part.to_owned());
    solve_template(&rule.index, name).into_iter().any(|(d, t)| {
        let d = d.or_else(|| fixed(&pd));
        let t = t.or_else(|| fixed(&pt));
        let fits = |part: &str, v: &Option<String>| v.as_ref().is_none_or(|v| glob(part, v));
        if !fits(&pd, &d) || !fits(&pt, &t) {
            return false;
        }
        if let (Some(d), Some(t)) = (&d, &t)
            && rule.skip_tables.iter().any(|p| {
                p.to_lowercase()
                    .split_once('.')
                    .is_some_and(|(sd, st)| glob(sd, d) && glob(st, t))
            })
        {
            return false;
        }
        // A free part (wildcard, not in the template) can always be another name.
        d.as_ref().is_none_or(|d| *d != me.0) || t.as_ref().is_none_or(|t| *t != me.1)
    })
}

/// A piece of an index template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Db,
    Table,
}

/// Every (db, table) assignment, lowercased, for which `template` gives `name` (already
/// lowercased); `None` for a part the template does not contain.
fn solve_template(template: &str, name: &str) -> Vec<(Option<String>, Option<String>)> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let next = [("{db}", Piece::Db), ("{table}", Piece::Table)]
            .into_iter()
            .filter_map(|(tag, piece)| rest.find(tag).map(|at| (at, tag, piece)))
            .min_by_key(|(at, ..)| *at);
        match next {
            Some((at, tag, piece)) => {
                if at > 0 {
                    pieces.push(Piece::Text(rest[..at].to_lowercase()));
                }
                pieces.push(piece);
                rest = &rest[at + tag.len()..];
            }
            None => {
                pieces.push(Piece::Text(rest.to_lowercase()));
                rest = "";
            }
        }
    }
    let mut out = Vec::new();
    solve(&pieces, name, (None, None), &mut out);
    out
}

fn solve(
    pieces: &[Piece],
    rest: &str,
    bound: (Option<String>, Option<String>),
    out: &mut Vec<(Option<String>, Option<String>)>,
) {
    let Some((piece, later)) = pieces.split_first() else {
        if rest.is_empty() {
            out.push(bound);
        }
        return;
    };
    let slot = match piece {
        Piece::Text(text) => {
            if let Some(after) = rest.strip_prefix(text.as_str()) {
                solve(later, after, bound, out);
            }
            return;
        }
        Piece::Db => &bound.0,
        Piece::Table => &bound.1,
    };
    if let Some(value) = slot {
        if let Some(after) = rest.strip_prefix(value.as_str()) {
            solve(later, after, bound.clone(), out);
        }
        return;
    }
    // MySQL names are never empty.
    for end in (1..=rest.len()).filter(|&e| rest.is_char_boundary(e)) {
        let value = rest[..end].to_owned();
        let next = match piece {
            Piece::Db => (Some(value), bound.1.clone()),
            _ => (bound.0.clone(), Some(value)),
        };
        solve(later, &rest[end..], next, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{MINIMAL, load_str};
    #[test]
    fn globs_match() {
        assert!(glob("shop", "shop"));
        assert!(glob("*", "anything"));
        assert!(glob("ord*", "orders"));
        assert!(glob("*_log", "audit_log"));
        assert!(!glob("ord*", "customers"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
    }

    #[test]
    fn skip_tables_hand_tables_to_the_next_rule() {
        let text = format!(
            "{}skip_tables = [\"shop.tmp_*\", \"shop.audit\"]\non_keyless = \"fail\"\n\
             [[tables]]\nmatch = \"shop.*\"\nindex = \"scratch\"\n",
            MINIMAL
        );
        let c = load_str(&text).unwrap();
        c.validate().unwrap();
        let index = |t: &str| c.rule_for("shop", t).map(|r| r.index_for("shop", t));
        assert_eq!(index("orders").as_deref(), Some("shop.orders"));
        assert_eq!(index("tmp_1").as_deref(), Some("scratch"));
        assert_eq!(index("audit").as_deref(), Some("scratch"));
        assert_eq!(index("audit2").as_deref(), Some("shop.audit2"));
        assert_eq!(c.tables[0].keyless_policy(), KeylessPolicy::Fail);
        assert_eq!(c.tables[1].keyless_policy(), KeylessPolicy::Skip);

        let mut c = load_str(MINIMAL).unwrap();
        c.tables[0].skip_tables = vec!["nodot".into()];
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("tables[0].skip_tables[0]") && e.contains("nodot"),
            "{e}"
        );
        let e = load_str(&format!("{MINIMAL}on_keyless = \"ignore\"\n")).unwrap_err();
        assert!(e.to_string().contains("ignore"), "{e}");
    }

    #[test]
    fn keyless_default_depends_on_the_pattern() {
        assert_eq!(KeylessPolicy::default_for("shop.*"), KeylessPolicy::Skip);
        assert_eq!(KeylessPolicy::default_for("*.orders"), KeylessPolicy::Skip);
        assert_eq!(
            KeylessPolicy::default_for("shop.orders"),
            KeylessPolicy::Fail
        );
    }

    /// (pattern, index, skip_tables) of a rule.
    type Rule<'a> = (&'a str, Option<&'a str>, &'a [&'a str]);

    /// The shipped config with these rules.
    fn config(rules: &[Rule<'_>]) -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/binlog2es.toml");
        let mut c = Config::load(&path).unwrap();
        c.tables = rules
            .iter()
            .map(|(pattern, index, skip)| {
                let mut r = TableRule {
                    pattern: (*pattern).into(),
                    skip_tables: skip.iter().map(|s| (*s).to_owned()).collect(),
                    ..TableRule::default()
                };
                if let Some(index) = index {
                    r.index = (*index).into();
                }
                r
            })
            .collect();
        c
    }

    #[test]
    fn resolved_index_names_decide_sharing() {
        // (rules, table, alone in its index)
        let cases: Vec<(Vec<Rule<'_>>, (&str, &str), bool)> = vec![
            // Two rules with the default index: one index per table.
            (
                vec![("shop.orders", None, &[]), ("shop.items", None, &[])],
                ("shop", "orders"),
                true,
            ),
            (
                vec![("shop.orders", None, &[]), ("shop.items", None, &[])],
                ("shop", "items"),
                true,
            ),
            (vec![("shop.*", None, &[])], ("shop", "orders"), true),
            (vec![("*.*", None, &[])], ("shop", "orders"), true),
            // A specific rule before a wildcard one, both default: the wildcard rule never
            // takes shop.orders, and its other tables get other names.
            (
                vec![("shop.orders", None, &[]), ("shop.*", None, &[])],
                ("shop", "orders"),
                true,
            ),
            (
                vec![("shop.orders", None, &[]), ("shop.*", None, &[])],
                ("shop", "items"),
                true,
            ),
            // The template does not tell the pattern's tables apart.
            (
                vec![("shop.*", Some("shop"), &[])],
                ("shop", "orders"),
                false,
            ),
            (
                vec![("*.orders", Some("{table}"), &[])],
                ("shop", "orders"),
                false,
            ),
            (
                vec![("shop.orders", Some("{table}"), &[])],
                ("shop", "orders"),
                true,
            ),
            // Another rule resolves to the same name.
            (
                vec![
                    ("shop.*", Some("{table}"), &[]),
                    ("blog.*", Some("{table}"), &[]),
                ],
                ("shop", "users"),
                false,
            ),
            (
                vec![
                    ("shop.orders", Some("x"), &[]),
                    ("shop.items", Some("x"), &[]),
                ],
                ("shop", "orders"),
                false,
            ),
            (
                vec![
                    ("shop.orders", Some("orders"), &[]),
                    ("shop.*", Some("{table}"), &[]),
                ],
                ("shop", "orders"),
                true,
            ),
            (
                vec![
                    ("shop.orders", Some("all-orders"), &[]),
                    ("shop.*", Some("all-{table}"), &[]),
                ],
                ("shop", "orders"),
                true,
            ),
            (
                vec![
                    ("shop.orders", Some("all-items"), &[]),
                    ("shop.*", Some("all-{table}"), &[]),
                ],
                ("shop", "orders"),
                false,
            ),
            // Index names are lowercased: a literal that only differs in case collides.
            (
                vec![
                    ("shop.orders", Some("Orders"), &[]),
                    ("blog.*", Some("{table}"), &[]),
                ],
                ("shop", "orders"),
                false,
            ),
            // Separators inside names: a.`b-c` and `a-b`.c both give a-b-c.
            (
                vec![
                    ("a.*", Some("{db}-{table}"), &[]),
                    ("a-b.*", Some("{db}-{table}"), &[]),
                ],
                ("a", "b-c"),
                false,
            ),
            (
                vec![
                    ("a.*", Some("{db}-{table}"), &[]),
                    ("x.*", Some("{db}-{table}"), &[]),
                ],
                ("a", "b-c"),
                true,
            ),
            // A table skipped by a rule is not that rule's.
            (
                vec![
                    ("shop.*", Some("{table}"), &["shop.users"]),
                    ("blog.users", Some("users"), &[]),
                ],
                ("blog", "users"),
                true,
            ),
            (
                vec![
                    ("shop.*", Some("{table}"), &["shop.u*"]),
                    ("blog.users", Some("users"), &[]),
                ],
                ("blog", "users"),
                true,
            ),
            (
                vec![
                    ("shop.*", Some("{table}"), &["shop.x"]),
                    ("blog.users", Some("users"), &[]),
                ],
                ("blog", "users"),
                false,
            ),
            // Repeated placeholders must agree.
            (
                vec![
                    ("d.*", Some("{table}-{table}"), &[]),
                    ("e.*", Some("{table}"), &[]),
                ],
                ("d", "t"),
                false,
            ),
            (
                vec![
                    ("d.*", Some("{table}-{table}"), &[]),
                    ("e.*", Some("{table}x"), &[]),
                ],
                ("d", "t"),
                true,
            ),
        ];
        for (rules, (db, table), alone) in cases {
            let c = config(&rules);
            assert_eq!(
                index_is_per_table(&c, db, table),
                alone,
                "{db}.{table} under {rules:?}"
            );
        }
        // No rule: nothing to say the index is the table's.
        assert!(!index_is_per_table(
            &config(&[("x.y", None, &[])]),
            "shop",
            "orders"
        ));
    }

    #[test]
    fn templates_are_solved_for_their_names() {
        let some = |d: &str, t: &str| (Some(d.to_owned()), Some(t.to_owned()));
        assert_eq!(
            solve_template("{db}.{table}", "shop.orders"),
            vec![some("shop", "orders")]
        );
        assert_eq!(
            solve_template("{db}-{table}", "a-b-c"),
            vec![some("a", "b-c"), some("a-b", "c")]
        );
        assert_eq!(
            solve_template("{table}", "t"),
            vec![(None, Some("t".into()))]
        );
        assert_eq!(solve_template("Fixed", "fixed"), vec![(None, None)]);
        assert!(solve_template("fixed", "other").is_empty());
        assert!(solve_template("{table}-{table}", "a-b").is_empty());
    }
}

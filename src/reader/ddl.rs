//! DDL statements that change which documents exist, read from query events.
//!
//! Column changes need nothing here: they arrive as a new table map (names from
//! `binlog_row_metadata=FULL`, or re-read from `information_schema`). What needs
//! action is a statement that changes rows without row events: TRUNCATE, DROP
//! TABLE, DROP DATABASE, RENAME (the old name's rows are gone, the new name's appear),
//! and the partition or tablespace operations that remove, swap or import rows.

use crate::config::{Config, TableRule, glob};

/// A table named in a statement: database (the statement's default when not
/// qualified) and table.
pub type TableName = (String, String);

/// A statement that affects synced documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ddl {
    /// `TRUNCATE [TABLE] t`.
    Truncate(TableName),
    /// `DROP TABLE [IF EXISTS] t1, t2 …` (not `DROP TEMPORARY TABLE`).
    Drop(Vec<TableName>),
    /// `RENAME TABLE a TO b, …` or `ALTER TABLE a RENAME [TO|AS] b`.
    Rename(Vec<(TableName, TableName)>),
    /// `DROP {DATABASE|SCHEMA} [IF EXISTS] db`.
    DropDatabase(String),
    /// Rows of these tables changed without row events: `ALTER TABLE t {TRUNCATE|DROP}
    /// PARTITION`, `EXCHANGE PARTITION p WITH TABLE t2` (both tables), `IMPORT
    /// {TABLESPACE|PARTITION}`. Their documents are rebuilt by copying the tables again.
    Recopy(Vec<TableName>),
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

/// Parses the statements binlog2es acts on; anything else is `None`.
pub fn parse(sql: &str, default_db: &str) -> Option<Ddl> {
    let tokens = tokenize(sql);
    let mut t = tokens.iter().map(String::as_str).peekable();
    let upper = |s: Option<&&str>| s.map(|s| s.to_ascii_uppercase());
    match upper(t.peek())?.as_str() {
        "TRUNCATE" => {
            t.next();
            if upper(t.peek()).as_deref() == Some("TABLE") {
                t.next();
            }
            Some(Ddl::Truncate(name(&mut t, default_db)?))
        }
        "DROP" => {
            t.next();
            match upper(t.next().as_ref())?.as_str() {
                "TABLE" => {}
                "DATABASE" | "SCHEMA" => {
                    if upper(t.peek()).as_deref() == Some("IF") {
                        t.next();
                        t.next();
                    }
                    return t.next().map(unquote).map(Ddl::DropDatabase);
                }
                _ => return None,
            }
            if upper(t.peek()).as_deref() == Some("IF") {
                t.next();
                t.next();
            }
            let mut names = vec![name(&mut t, default_db)?];
            while t.peek() == Some(&",") {
                t.next();
                names.push(name(&mut t, default_db)?);
            }
            Some(Ddl::Drop(names))
        }
        "RENAME" => {
            t.next();
            if upper(t.next().as_ref())?.as_str() != "TABLE" {
                return None;
            }
            let mut pairs = Vec::new();
            loop {
                let from = name(&mut t, default_db)?;
                if upper(t.next().as_ref())?.as_str() != "TO" {
                    return None;
                }
                pairs.push((from, name(&mut t, default_db)?));
                if t.peek() != Some(&",") {
                    break;
                }
                t.next();
            }
            Some(Ddl::Rename(pairs))
        }
        "ALTER" => {
            t.next();
            if upper(t.peek()).as_deref() == Some("ONLINE")
                || upper(t.peek()).as_deref() == Some("IGNORE")
            {
                t.next();
            }
            if upper(t.next().as_ref())?.as_str() != "TABLE" {
                return None;
            }
            let from = name(&mut t, default_db)?;
            while let Some(tok) = t.next() {
                let next_is = |t: &mut std::iter::Peekable<_>, word: &str| {
                    t.peek()
                        .is_some_and(|n: &&str| n.eq_ignore_ascii_case(word))
                };
                if (tok.eq_ignore_ascii_case("TRUNCATE") || tok.eq_ignore_ascii_case("DROP"))
                    && next_is(&mut t, "PARTITION")
                {
                    return Some(Ddl::Recopy(vec![from]));
                }
                if tok.eq_ignore_ascii_case("IMPORT")
                    && (next_is(&mut t, "PARTITION") || next_is(&mut t, "TABLESPACE"))
                {
                    return Some(Ddl::Recopy(vec![from]));
                }
                if tok.eq_ignore_ascii_case("EXCHANGE") && next_is(&mut t, "PARTITION") {
                    // EXCHANGE PARTITION p WITH TABLE other
                    while let Some(w) = t.next() {
                        if w.eq_ignore_ascii_case("WITH") {
                            if next_is(&mut t, "TABLE") {
                                t.next();
                            }
                            let other = name(&mut t, default_db)?;
                            return Some(Ddl::Recopy(vec![from, other]));
                        }
                    }
                    return None;
                }
                if tok.eq_ignore_ascii_case("RENAME") {
                    let mut next = t.next()?;
                    if next.eq_ignore_ascii_case("TO") || next.eq_ignore_ascii_case("AS") {
                        next = t.next()?;
                    }
                    if next.eq_ignore_ascii_case("COLUMN")
                        || next.eq_ignore_ascii_case("INDEX")
                        || next.eq_ignore_ascii_case("KEY")
                    {
                        return None;
                    }
                    let mut rest = std::iter::once(next).chain(t).peekable();
                    return Some(Ddl::Rename(vec![(from, name(&mut rest, default_db)?)]));
                }
            }
            None
        }
        _ => None,
    }
}

/// Reads `db.table`, `` `db`.`table` `` or `table`.
fn name<'a>(
    t: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    default_db: &str,
) -> Option<TableName> {
    let first = t.next()?;
    if matches!(first, "," | "(" | ")" | ";" | ".") {
        return None;
    }
    if t.peek() == Some(&".") {
        t.next();
        let second = t.next()?;
        return Some((unquote(first), unquote(second)));
    }
    Some((default_db.to_owned(), unquote(first)))
}

fn unquote(s: &str) -> String {
    match s.strip_prefix('`').and_then(|s| s.strip_suffix('`')) {
        Some(inner) => inner.replace("``", "`"),
        None => s.to_owned(),
    }
}

/// Splits SQL into identifiers/keywords, backquoted names and punctuation;
/// comments are dropped.
fn tokenize(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if (c == '-' && chars.get(i + 1) == Some(&'-')) || c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '`' {
            let start = i;
            i += 1;
            loop {
                match chars.get(i) {
                    None => break,
                    Some('`') if chars.get(i + 1) == Some(&'`') => i += 2,
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            out.push(chars[start..i.min(chars.len())].iter().collect());
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(db: &str, t: &str) -> TableName {
        (db.into(), t.into())
    }

    #[test]
    fn statements_are_recognised() {
        let cases: Vec<(&str, Option<Ddl>)> = vec![
            (
                "TRUNCATE TABLE orders",
                Some(Ddl::Truncate(n("shop", "orders"))),
            ),
            (
                "truncate `my db`.`t``x`",
                Some(Ddl::Truncate(n("my db", "t`x"))),
            ),
            (
                "DROP TABLE IF EXISTS `a`, other.b /* generated by server */",
                Some(Ddl::Drop(vec![n("shop", "a"), n("other", "b")])),
            ),
            ("DROP TEMPORARY TABLE t", None),
            ("DROP DATABASE shop", Some(Ddl::DropDatabase("shop".into()))),
            (
                "DROP SCHEMA IF EXISTS `my db`",
                Some(Ddl::DropDatabase("my db".into())),
            ),
            (
                "ALTER TABLE t TRUNCATE PARTITION p0, p1",
                Some(Ddl::Recopy(vec![n("shop", "t")])),
            ),
            (
                "alter table x.t drop partition p0",
                Some(Ddl::Recopy(vec![n("x", "t")])),
            ),
            (
                "ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.t2 WITHOUT VALIDATION",
                Some(Ddl::Recopy(vec![n("shop", "t"), n("other", "t2")])),
            ),
            (
                "ALTER TABLE t IMPORT TABLESPACE",
                Some(Ddl::Recopy(vec![n("shop", "t")])),
            ),
            ("ALTER TABLE t DROP COLUMN p", None),
            (
                "ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (30))",
                None,
            ),
            (
                "RENAME TABLE t TO t_old, t_new TO t",
                Some(Ddl::Rename(vec![
                    (n("shop", "t"), n("shop", "t_old")),
                    (n("shop", "t_new"), n("shop", "t")),
                ])),
            ),
            (
                "ALTER TABLE t ADD COLUMN x INT, RENAME TO x.t2",
                Some(Ddl::Rename(vec![(n("shop", "t"), n("x", "t2"))])),
            ),
            ("ALTER TABLE t RENAME COLUMN a TO b", None),
            ("ALTER TABLE t ADD COLUMN extra INT", None),
            ("/* c */ TRUNCATE t", Some(Ddl::Truncate(n("shop", "t")))),
            ("CREATE TABLE t (id INT PRIMARY KEY)", None),
            ("INSERT INTO t VALUES (1)", None),
        ];
        for (sql, want) in cases {
            assert_eq!(parse(sql, "shop"), want, "{sql}");
        }
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

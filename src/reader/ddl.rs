//! DDL statements that change which documents exist, read from query events.
//!
//! Column changes need nothing here: they arrive as a new table map (names from
//! `binlog_row_metadata=FULL`, or re-read from `information_schema`). What needs
//! action is a statement that changes rows without row events: TRUNCATE, DROP
//! TABLE, DROP DATABASE, RENAME (the old name's rows are gone, the new name's appear),
//! and the partition or tablespace operations that remove, swap or import rows.

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

/// The table an `ALTER TABLE` or `CREATE TABLE` statement gives a (new) shape, if any: what
/// a document rule using that table must be resolved against again.
pub fn reshaped_table(sql: &str, default_db: &str) -> Option<TableName> {
    let tokens = tokenize(sql);
    let mut t = tokens.iter().map(String::as_str).peekable();
    let verb = t.next()?.to_ascii_uppercase();
    if verb != "ALTER" && verb != "CREATE" {
        return None;
    }
    while let Some(word) = t.peek() {
        let w = word.to_ascii_uppercase();
        if matches!(
            w.as_str(),
            "ONLINE" | "IGNORE" | "OR" | "REPLACE" | "TEMPORARY"
        ) {
            if w == "TEMPORARY" {
                return None;
            }
            t.next();
        } else {
            break;
        }
    }
    if !t.next()?.eq_ignore_ascii_case("TABLE") {
        return None;
    }
    if t.peek().is_some_and(|w| w.eq_ignore_ascii_case("IF")) {
        // IF [NOT] EXISTS
        t.next();
        if t.peek().is_some_and(|w| w.eq_ignore_ascii_case("NOT")) {
            t.next();
        }
        t.next();
    }
    name(&mut t, default_db)
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
    fn reshaped_tables_are_named() {
        let cases = [
            ("ALTER TABLE t ADD COLUMN x INT", Some(n("shop", "t"))),
            (
                "alter online ignore table `b`.`c` drop y",
                Some(n("b", "c")),
            ),
            (
                "CREATE TABLE IF NOT EXISTS u (id INT)",
                Some(n("shop", "u")),
            ),
            ("CREATE OR REPLACE TABLE v (id INT)", Some(n("shop", "v"))),
            ("CREATE TEMPORARY TABLE w (id INT)", None),
            ("CREATE INDEX i ON t (x)", None),
            ("INSERT INTO t VALUES (1)", None),
        ];
        for (sql, want) in cases {
            assert_eq!(reshaped_table(sql, "shop"), want, "{sql}");
        }
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
}

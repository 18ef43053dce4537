//! Every `information_schema` query binlog2es makes, in one place: a table's columns and
//! primary key (for servers without full row metadata, and for SQL scans), MariaDB's JSON
//! alias columns, the user tables, a table's row estimate.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::table::{BINARY_COLLATION, SchemaError};

/// Column facts from `information_schema`, for servers without full row metadata.
pub struct CatalogColumns {
    /// Names in ordinal order.
    pub names: Vec<String>,
    /// Collation ids in ordinal order (0 when none).
    pub collations: Vec<u16>,
    /// Whether each column is unsigned.
    pub unsigned: Vec<bool>,
    /// Primary key column indexes in key order.
    pub key: Vec<usize>,
    /// ENUM/SET labels per column (empty for other columns).
    pub labels: Vec<Vec<String>>,
}

/// Locates a failed catalog query at its table.
fn query_failed<'a>(
    db: &'a str,
    table: &'a str,
) -> impl Fn(mysql_async::Error) -> SchemaError + 'a {
    move |source| SchemaError::Query {
        table: format!("{db}.{table}"),
        source,
    }
}

/// Reads a table's columns and primary key from `information_schema`.
///
/// # Errors
/// The query fails.
pub async fn read_catalog(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<CatalogColumns, SchemaError> {
    let qerr = query_failed(db, table);
    let rows: Vec<(String, Option<String>, String, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, COLLATION_NAME, COLUMN_TYPE, DATA_TYPE \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(&qerr)?;
    let names: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    // BINARY, VARBINARY and the BLOB types have no collation in information_schema; they
    // are the binary character set (base64 in documents), not text.
    let collations = rows
        .iter()
        .map(|r| match r.1.as_deref() {
            Some(name) => collation_id(name),
            None if is_binary_data_type(&r.3) => BINARY_COLLATION,
            None => 0,
        })
        .collect();
    let labels = rows.iter().map(|r| parse_labels(&r.2)).collect();
    let unsigned = rows
        .iter()
        .map(|r| r.2.to_ascii_lowercase().contains("unsigned"))
        .collect();
    let key_names = primary_key_columns(conn, db, table).await.map_err(&qerr)?;
    let key = key_names
        .iter()
        .filter_map(|k| names.iter().position(|n| n == k))
        .collect();
    Ok(CatalogColumns {
        names,
        collations,
        unsigned,
        key,
        labels,
    })
}

fn is_binary_data_type(data_type: &str) -> bool {
    matches!(
        data_type.to_ascii_lowercase().as_str(),
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// The labels of an `enum('a','b')` / `set('a','b')` COLUMN_TYPE, in definition order.
/// Labels are single-quoted; a quote inside is doubled (`''`) and a backslash escaped (`\\`).
/// Anything else (or a malformed list) gives no labels.
fn parse_labels(column_type: &str) -> Vec<String> {
    let lower = column_type.to_ascii_lowercase();
    let Some(start) = ["enum(", "set("]
        .iter()
        .find(|p| lower.starts_with(*p))
        .map(|p| p.len())
    else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut chars = column_type
        .get(start..)
        .unwrap_or_default()
        .chars()
        .peekable();
    loop {
        match chars.next() {
            Some('\'') => {}
            _ => return Vec::new(),
        }
        let mut label = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                Some('\'') => break,
                Some('\\') => match chars.next() {
                    Some(c) => label.push(c),
                    None => return Vec::new(),
                },
                Some(c) => label.push(c),
                None => return Vec::new(),
            }
        }
        labels.push(label);
        match chars.next() {
            Some(',') => {}
            Some(')') => return labels,
            _ => return Vec::new(),
        }
    }
}

/// Names of the columns of `db.table` that MariaDB's `JSON` alias created: a CHECK constraint
/// that is exactly `json_valid(`col`)`. MariaDB only: MySQL's CHECK_CONSTRAINTS has no
/// TABLE_NAME (and MySQL has a real JSON type).
///
/// # Errors
/// The query fails.
pub async fn read_json_columns(
    conn: &mut mysql_async::Conn,
    db: &str,
    table: &str,
) -> Result<Vec<String>, SchemaError> {
    let clauses: Vec<String> = conn
        .exec(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS \
             WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(query_failed(db, table))?;
    Ok(clauses
        .iter()
        .filter_map(|c| json_valid_column(c))
        .collect())
}

/// The column of a `json_valid(`col`)` check clause (case-insensitive function name, the column
/// backquoted with `` ` `` doubled inside, or bare), if that is the whole clause.
fn json_valid_column(clause: &str) -> Option<String> {
    let clause = clause.trim();
    let prefix = "json_valid(";
    if !clause.get(..prefix.len())?.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let inner = clause.get(prefix.len()..)?.strip_suffix(')')?.trim();
    if let Some(quoted) = inner.strip_prefix('`').and_then(|q| q.strip_suffix('`')) {
        let name = quoted.replace("``", "`");
        // A lone backquote inside would mean the clause is more than one identifier.
        (!quoted.replace("``", "").contains('`')).then_some(name)
    } else if !inner.is_empty()
        && inner
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        Some(inner.to_owned())
    } else {
        None
    }
}

/// The collation id for a collation name; names this mysql_common does not know
/// (newer MariaDB collations) fall back to their character set's default.
fn collation_id(name: &str) -> u16 {
    use mysql_common::collations::CollationId;
    let id = CollationId::from(name) as u16;
    if id != 0 {
        return id;
    }
    let charset = name.split('_').next().unwrap_or_default();
    match charset {
        "latin1" => 8,
        "ascii" => 11,
        "binary" => BINARY_COLLATION,
        "utf8mb3" | "utf8" => 33,
        _ => 45,
    }
}

/// The primary key's column names of `db.table`, in key order (empty without one).
///
/// # Errors
/// The query fails.
pub async fn primary_key_columns(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<String>, mysql_async::Error> {
    conn.exec(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
         AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
        (db, table),
    )
    .await
}

/// The columns of each unique index of `db.table` (the primary key included), each in
/// index order.
///
/// # Errors
/// The query fails.
pub async fn unique_keys(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<Vec<String>>, mysql_async::Error> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
             ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .await?;
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match keys.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => keys.push((index, vec![column])),
        }
    }
    Ok(keys.into_iter().map(|(_, cols)| cols).collect())
}

/// Whether `db.table` has a primary key.
///
/// # Errors
/// The query fails.
pub async fn has_primary_key(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<bool, mysql_async::Error> {
    let found: Option<u8> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY' LIMIT 1",
            (db, table),
        )
        .await?;
    Ok(found.is_some())
}

/// Every base table outside the server's own schemas, as (database, table), in name order.
///
/// # Errors
/// The catalog query fails.
pub async fn user_tables(conn: &mut Conn) -> Result<Vec<(String, String)>, mysql_async::Error> {
    conn.query(
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES \
         WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA NOT IN \
         ('mysql', 'information_schema', 'performance_schema', 'sys') \
         ORDER BY TABLE_SCHEMA, TABLE_NAME",
    )
    .await
}

/// The server's row estimate of `db.table`: `None` when the table does not exist,
/// `Some(None)` when the server keeps no estimate.
///
/// # Errors
/// The query fails.
pub async fn table_rows_estimate(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Option<Option<u64>>, mysql_async::Error> {
    conn.exec_first(
        "SELECT TABLE_ROWS FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (db, table),
    )
    .await
}

/// One column's SQL type facts from `information_schema.COLUMNS`, for reading the table
/// over SQL.
#[derive(Debug, Clone)]
pub struct ColumnTypeFacts {
    /// `DATA_TYPE` (`int`, `varchar`, …).
    pub data_type: String,
    /// `COLUMN_TYPE` (`int(10) unsigned`, `enum('a')`, …).
    pub column_type: String,
    /// `NUMERIC_PRECISION`.
    pub precision: Option<u64>,
    /// `NUMERIC_SCALE`.
    pub scale: Option<u64>,
    /// `DATETIME_PRECISION`.
    pub fsp: Option<u64>,
    /// `CHARACTER_OCTET_LENGTH`.
    pub octets: Option<u64>,
}

/// The SQL type facts of every column of `db.table`, in ordinal order.
///
/// # Errors
/// The query fails.
pub async fn column_type_facts(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<ColumnTypeFacts>, SchemaError> {
    type Row = (
        String,
        String,
        Option<u64>,
        Option<u64>,
        Option<u64>,
        Option<u64>,
    );
    let rows: Vec<Row> = conn
        .exec(
            "SELECT DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION, NUMERIC_SCALE, \
             DATETIME_PRECISION, CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .await
        .map_err(query_failed(db, table))?;
    Ok(rows
        .into_iter()
        .map(
            |(data_type, column_type, precision, scale, fsp, octets)| ColumnTypeFacts {
                data_type,
                column_type,
                precision,
                scale,
                fsp,
                octets,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_type_labels() {
        let cases: &[(&str, &[&str])] = &[
            ("enum('a','b')", &["a", "b"]),
            ("ENUM('x')", &["x"]),
            ("set('red','green','blue')", &["red", "green", "blue"]),
            (
                "enum('it''s','a,b','back\\\\slash','')",
                &["it's", "a,b", "back\\slash", ""],
            ),
            ("enum('é','😀')", &["é", "😀"]),
            ("int(11)", &[]),
            ("varchar(10)", &[]),
            ("enum('open", &[]),
            ("enum(a)", &[]),
        ];
        for (column_type, expected) in cases {
            assert_eq!(parse_labels(column_type), *expected, "{column_type}");
        }
    }

    #[test]
    fn json_valid_clauses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("json_valid(`doc`)", Some("doc")),
            ("JSON_VALID(`a b`)", Some("a b")),
            ("json_valid(`we``ird`)", Some("we`ird")),
            ("json_valid(doc)", Some("doc")),
            ("json_valid(`a`) and `b` > 0", None),
            ("json_valid(`a`) or `a` is null", None),
            ("`a` > 0", None),
            ("json_valid(`a`,`b`)", None),
            ("", None),
        ];
        for (clause, expected) in cases {
            assert_eq!(json_valid_column(clause).as_deref(), *expected, "{clause}");
        }
    }

    #[test]
    fn binary_data_types() {
        assert!(is_binary_data_type("LONGBLOB") && !is_binary_data_type("longtext"));
    }
}

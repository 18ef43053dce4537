//! Server prerequisites shared by `run` (fatal) and `check` (reported).
//!
//! Each finding says what is wrong and how to fix it. A setting that cannot be
//! read for lack of a privilege is a warning, not a failure (SPEC §3).

use mysql_async::prelude::Queryable;

use crate::checkpoint::{Flavor, ServerIdentity};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Fine.
    Ok,
    /// Works, but something should change.
    Warning,
    /// Cannot work.
    Error,
}

/// One checked prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Result.
    pub severity: Severity,
    /// What was checked.
    pub what: String,
    /// Observation and, when not ok, the fix.
    pub detail: String,
}

impl Finding {
    fn new(severity: Severity, what: &str, detail: impl Into<String>) -> Self {
        Self {
            severity,
            what: what.to_owned(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.severity {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{tag:<7} {}: {}", self.what, self.detail)
    }
}

/// Facts about the connected server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    /// `VERSION()`.
    pub version: String,
    /// Identity for checkpoints.
    pub identity: ServerIdentity,
    /// The server's own `server_id`.
    pub server_id: u32,
}

/// Reads version and identity.
///
/// # Errors
/// The queries fail.
pub async fn server_facts(conn: &mut mysql_async::Conn) -> Result<ServerFacts, mysql_async::Error> {
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await?
        .unwrap_or_default();
    let server_id: u32 = conn
        .query_first("SELECT @@server_id")
        .await?
        .unwrap_or_default();
    let identity = if version.to_ascii_lowercase().contains("mariadb") {
        let row: Option<(String, String)> =
            conn.query_first("SELECT @@hostname, @@datadir").await?;
        let (host, datadir) = row.unwrap_or_default();
        ServerIdentity {
            flavor: Flavor::Mariadb,
            id: format!("server_id={server_id} host={host} datadir={datadir}"),
        }
    } else {
        let uuid: String = conn
            .query_first("SELECT @@server_uuid")
            .await?
            .unwrap_or_default();
        ServerIdentity {
            flavor: Flavor::Mysql,
            id: uuid,
        }
    };
    Ok(ServerFacts {
        version,
        identity,
        server_id,
    })
}

async fn variable(
    conn: &mut mysql_async::Conn,
    name: &str,
) -> Result<Option<String>, mysql_async::Error> {
    // SHOW VARIABLES needs no privilege and tolerates variables a flavour lacks.
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await?;
    Ok(row.map(|r| r.1))
}

/// Checks binlog settings, replica id and replication privileges.
///
/// # Errors
/// A query fails for a reason other than a missing privilege.
pub async fn check_server(
    conn: &mut mysql_async::Conn,
    facts: &ServerFacts,
    our_server_id: u32,
) -> Result<Vec<Finding>, mysql_async::Error> {
    let mut out = Vec::new();
    out.push(Finding::new(
        Severity::Ok,
        "server",
        format!("{} ({})", facts.version, facts.identity),
    ));
    let expect = |name: &str, actual: Option<String>, want: &str, fix: &str| match actual {
        Some(v) if v.eq_ignore_ascii_case(want) => Finding::new(Severity::Ok, name, v),
        Some(v) => Finding::new(
            Severity::Error,
            name,
            format!("is {v}, must be {want}: {fix}"),
        ),
        None => Finding::new(
            Severity::Warning,
            name,
            format!("cannot be read; it must be {want}"),
        ),
    };
    let log_bin = variable(conn, "log_bin").await?;
    out.push(expect(
        "log_bin",
        log_bin,
        "ON",
        "start the server with --log-bin (binary logging is off)",
    ));
    out.push(expect(
        "binlog_format",
        variable(conn, "binlog_format").await?,
        "ROW",
        "SET GLOBAL binlog_format = 'ROW' and put binlog_format=ROW in the server config",
    ));
    out.push(expect(
        "binlog_row_image",
        variable(conn, "binlog_row_image").await?,
        "FULL",
        "SET GLOBAL binlog_row_image = 'FULL' and put it in the server config",
    ));
    match variable(conn, "binlog_row_metadata").await? {
        Some(v) if v.eq_ignore_ascii_case("FULL") => {
            out.push(Finding::new(Severity::Ok, "binlog_row_metadata", v));
        }
        other => out.push(Finding::new(
            Severity::Warning,
            "binlog_row_metadata",
            format!(
                "is {}; FULL is recommended so column names travel with each event (otherwise \
                 they are read from information_schema, which is wrong for events written \
                 before a later ALTER TABLE)",
                other.as_deref().unwrap_or("not available")
            ),
        )),
    }
    if facts.server_id == our_server_id {
        out.push(Finding::new(
            Severity::Error,
            "mysql.server_id",
            format!(
                "{our_server_id} is the server's own server_id; choose another id, unique among its replicas"
            ),
        ));
    } else {
        out.push(Finding::new(
            Severity::Ok,
            "mysql.server_id",
            format!("{our_server_id} (server is {})", facts.server_id),
        ));
    }
    // Reading the binlog head needs REPLICATION CLIENT (MariaDB: BINLOG MONITOR).
    match binlog_head(conn, facts.identity.flavor).await {
        Ok(Some(h)) => out.push(Finding::new(Severity::Ok, "binlog position", h.0.to_string())),
        Ok(None) => out.push(Finding::new(Severity::Error, "binlog position", "the server reports no binlog; enable --log-bin")),
        Err(mysql_async::Error::Server(e)) if crate::retry::mysql_privilege_error(e.code) => out.push(Finding::new(
            Severity::Error,
            "privileges",
            format!(
                "cannot read the binlog position ({}); GRANT REPLICATION CLIENT, REPLICATION SLAVE ON *.* \
                 (MariaDB: BINLOG MONITOR, REPLICATION SLAVE) to this user",
                e.message
            ),
        )),
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// The current end of the binlog and the GTID state there.
///
/// # Errors
/// The query fails (e.g. missing privilege).
pub async fn binlog_head(
    conn: &mut mysql_async::Conn,
    flavor: Flavor,
) -> Result<Option<(crate::position::BinlogPosition, crate::position::GtidState)>, mysql_async::Error>
{
    use crate::position::{BinlogPosition, GtidState};
    // MySQL 8.4 removed SHOW MASTER STATUS in favour of SHOW BINARY LOG STATUS.
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW BINARY LOG STATUS").await {
        Ok(r) => r,
        Err(mysql_async::Error::Server(e)) if e.code == 1064 => {
            conn.query_first("SHOW MASTER STATUS").await?
        }
        Err(e) => return Err(e),
    };
    let Some(row) = row else { return Ok(None) };
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    let (Some(file), Some(pos)) = (file, pos) else {
        return Ok(None);
    };
    let gtid = match flavor {
        Flavor::Mariadb => {
            let g: Option<Option<String>> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
                .await?;
            GtidState::parse_mariadb(&g.flatten().unwrap_or_default()).unwrap_or_default()
        }
        Flavor::Mysql => {
            let set: Option<String> = row.get(4);
            match set.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => {
                    GtidState::parse_mysql(&s.replace('\n', "")).unwrap_or_default()
                }
                _ => GtidState::None,
            }
        }
    };
    Ok(Some((BinlogPosition::new(file, pos), gtid)))
}

/// Binlog files the server still has with their sizes, in order.
///
/// # Errors
/// The query fails.
pub async fn binlog_file_sizes(
    conn: &mut mysql_async::Conn,
) -> Result<Vec<(String, u64)>, mysql_async::Error> {
    let rows: Vec<mysql_async::Row> = conn.query("SHOW BINARY LOGS").await?;
    Ok(rows
        .iter()
        .filter_map(|r| Some((r.get::<String, _>(0)?, r.get::<u64, _>(1)?)))
        .collect())
}

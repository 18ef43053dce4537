//! The reader's transaction boundaries, checked on recorded binlog files
//! (`../shared/binlog-samples`, see its README.md and INDEX.json) without any server.
//!
//! A real [`Reader`] gets each file's events through [`Reader::handle`], in the order
//! the binlog stream hands them over (a compressed transaction's inner events right
//! after its payload event, as `mysql_async` does). After each event the test drains
//! the lane queues, then the ticket queue, so what arrives is seen in the order the
//! reader sent it, event by event. The expected boundaries, GTIDs and row operations
//! are written out per file from the file's decoded text (`*.decoded*.txt`) and its
//! INDEX.json event list; row counts are cross-checked with mysql_common's own row
//! iterator.
//!
//! Tables whose table map carries column names and a key (or whose rule names
//! `id_columns`) need no catalog. For the other files the test plays the catalog: just
//! before each table map it stores the schema the daemon would build from the catalog
//! (names `@1`, `@2`, …; the rule's `id_columns` names the key), so the reader finds
//! the table known.
//! The MySQL URL points at a port nothing listens on: a catalog query would fail the
//! test rather than reach a server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mysql_common::binlog::consts::{BinlogVersion, EventType};
use mysql_common::binlog::events::{
    Event, EventData, RowsEventData, TableMapEvent, TransactionPayloadEvent,
};
use mysql_common::binlog::{BinlogFileHeader, EventStreamReader};
use tokio::sync::oneshot::error::TryRecvError;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Reader, ReaderSetup, StartMode, StreamState};
use crate::checkpoint::tracker::SyncRequest;
use crate::checkpoint::{Checkpoint, Flavor, ServerIdentity, TxnGtid, TxnStatus, TxnTicket};
use crate::config::Config;
use crate::ordering::{Change, Op, Routed, Router, lane_queue};
use crate::position::{BinlogPosition, GtidState, MariaGtid, Version};
use crate::source::MysqlSource;
use crate::telemetry::progress::Progress;
use crate::writer::indices::{IndexRequest, Indices};

/// Lanes of the test router (several, so changes of one transaction spread over them).
mod samples;

use samples::{mariadb_transactions_in_decoded_text, row_counts, stream_events};

const LANES: usize = 3;

/// The schema the daemon would build for a table map after asking the catalog, with names
/// `@1`, `@2`, … where the map has none (the rules name `@1` as the key).
fn catalog_stand_in(
    config: &Config,
    tme: &TableMapEvent<'_>,
) -> Option<crate::schema::TableSchema> {
    let (db, table) = (tme.database_name(), tme.table_name());
    let rule = config.rule_for(&db, &table)?;
    let mut map = crate::schema::read_table_map(tme, crate::decode::decode_label).unwrap();
    if !map.has_names {
        for (i, col) in map.columns.iter_mut().enumerate() {
            col.name = format!("@{}", i + 1);
        }
        map.has_names = true;
    }
    // Stand-in ENUM/SET labels `#1`, `#2`, … (the catalog would give the real ones).
    for col in &mut map.columns {
        if col.column_type.is_enum_or_set_type() && col.labels.is_empty() {
            col.labels = (1..=64).map(|i| format!("#{i}")).collect();
        }
    }
    Some(crate::schema::build(&db, &table, rule, map).unwrap())
}

/// One routed change as the test saw it.
struct Seen {
    index: String,
    id: String,
    delete: bool,
    version: Version,
    change: Change,
}

/// One transaction as the test saw it: its ticket's facts and the changes routed before it.
struct Txn {
    end: BinlogPosition,
    gtid: TxnGtid,
    /// `I index id` / `D index id` per change, sorted (deletes first).
    ops: Vec<String>,
}

/// What a run over one file gave.
struct Run {
    txns: Vec<Txn>,
    /// The index task's requests, in order: `prepare db.table`, `clear index`, `created pattern`.
    index_requests: Vec<String>,
}

/// How to read one file.
struct Case {
    file: &'static str,
    /// `[[tables]]` rules (TOML).
    rules: &'static str,
    flavor: Flavor,
    /// Play the catalog for tables whose table map lacks names or a key.
    catalog: bool,
    /// What the index task answers to a "which tables have indices" request.
    created: Vec<String>,
}

impl Case {
    fn new(file: &'static str, rules: &'static str) -> Self {
        Self {
            file,
            rules,
            flavor: Flavor::Mysql,
            catalog: false,
            created: Vec::new(),
        }
    }
}

fn config(rules: &str) -> Config {
    let text = format!(
        r#"
[mysql]
url = "mysql://u:p@127.0.0.1:9"
[elasticsearch]
url = "http://127.0.0.1:9"
[checkpoint]
path = "/tmp/reader-tests/checkpoint.json"
[snapshot]
mode = "never"
{rules}
"#
    );
    crate::config::tests::load_str(&text).unwrap()
}

/// Answers the reader's index requests at once, recording them.
fn serve_indices(
    mut rx: mpsc::Receiver<IndexRequest>,
    created: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
) {
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            match request {
                IndexRequest::Prepare { schema, done, .. } => {
                    log.lock()
                        .unwrap()
                        .push(format!("prepare {}", schema.qualified()));
                    let _ = done.send(());
                }
                IndexRequest::Clear { index, done, .. } => {
                    log.lock().unwrap().push(format!("clear {index}"));
                    let _ = done.send(0);
                }
                IndexRequest::CreatedTables { pattern, done, .. } => {
                    log.lock().unwrap().push(format!("created {pattern}"));
                    let _ = done.send(created.clone());
                }
                // The reader asks for no rebuild work in these tests.
                other => panic!("unexpected index request {other:?}"),
            }
        }
    });
}

/// Answers the reader's checkpoint-write requests at once, recording the leases.
fn serve_persist(mut rx: mpsc::Receiver<SyncRequest>, leases: Arc<Mutex<Vec<Version>>>) {
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            leases.lock().unwrap().push(request.lease);
            let _ = request.done.send(());
        }
    });
}

/// Feeds every event of `case.file` to a fresh reader and checks what holds for every
/// file: one ticket per transaction in version order, each change received before its
/// transaction's ticket with that transaction's version and acknowledgement, and every
/// change's version covered by a stored lease.
async fn read_file(case: Case) -> Run {
    let config = Arc::new(config(case.rules));
    let (indices, index_rx) = Indices::channel();
    let index_log = Arc::new(Mutex::new(Vec::new()));
    serve_indices(index_rx, case.created.clone(), Arc::clone(&index_log));
    let (persist, persist_rx) = mpsc::channel(16);
    let leases = Arc::new(Mutex::new(Vec::new()));
    serve_persist(persist_rx, Arc::clone(&leases));
    let (lane_tx, mut lanes): (Vec<_>, Vec<_>) = (0..LANES).map(|_| lane_queue(100_000)).unzip();
    let (tickets_tx, mut tickets) = mpsc::channel(100_000);
    let (resync, _resync_rx) = mpsc::channel(16);
    let identity = ServerIdentity {
        flavor: case.flavor,
        id: "recorded".into(),
    };
    let file_name = case.file.rsplit('/').next().unwrap();
    let start = BinlogPosition::new(file_name, 4);
    let (committed, committed_rx) = watch::channel(Checkpoint {
        server: identity.clone(),
        position: start.clone(),
        gtid: GtidState::None,
        version: Version(0),
        updated_at: SystemTime::now(),
        copies: Vec::new(),
        rebuilds: Vec::new(),
        version_lease: Version(0),
        tickets: 0,
        pinned: None,
    });
    let mut reader = Reader::new(ReaderSetup {
        config: Arc::clone(&config),
        source: MysqlSource::new(&config.mysql).unwrap(),
        host: "127.0.0.1:9".into(),
        identity,
        state: StreamState {
            position: start,
            gtid: GtidState::None,
            version: Version(0),
        },
        mode: StartMode::Position,
        router: Router::new(lane_tx, config.writer.max_buffered_bytes),
        tickets: tickets_tx,
        stop: CancellationToken::new(),
        indices,
        committed: committed_rx,
        progress: Arc::new(Progress::default()),
        copies: None,
        persist,
        leased: Version(0),
        rebuilds: Vec::new(),
        resync,
        documents: None,
    });

    let mut txns: Vec<Txn> = Vec::new();
    let mut pending: Vec<Seen> = Vec::new();
    let mut last_version: Option<Version> = None;
    for event in stream_events(case.file) {
        if case.catalog
            && let Ok(Some(EventData::TableMapEvent(tme))) = event.read_data()
        {
            let tme = tme.into_owned();
            if let Some(schema) = catalog_stand_in(&config, &tme) {
                reader
                    .tables
                    .insert(tme.table_id(), (tme, Some((Arc::new(schema), None))));
            }
        }
        // Everything sent so far is committed: a statement that waits for it goes on.
        let sent = txns.len() as u64;
        committed.send_modify(|c| c.tickets = sent);
        reader
            .handle(&event)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.file));
        for lane in &mut lanes {
            while let Ok(Routed { change, .. }) = lane.rx.try_recv() {
                let lease = leases.lock().unwrap().last().copied().unwrap_or_default();
                assert!(
                    change.version <= lease,
                    "{}: change of version {} routed before a lease covered it ({lease})",
                    case.file,
                    change.version
                );
                pending.push(Seen {
                    index: change.key.index.to_string(),
                    id: change.key.id.clone(),
                    delete: matches!(change.op, Op::Delete),
                    version: change.version,
                    change,
                });
            }
        }
        while let Ok(ticket) = tickets.try_recv() {
            for seen in &pending {
                assert_eq!(
                    seen.version, ticket.version,
                    "{}: a change arrived before ticket {} (ending at {}) with another version",
                    case.file, ticket.version, ticket.end
                );
            }
            if let Some(last) = last_version {
                assert!(
                    ticket.version > last,
                    "{}: versions must increase: {} after {last}",
                    case.file,
                    ticket.version
                );
            }
            last_version = Some(ticket.version);
            let changes = std::mem::take(&mut pending);
            // Lanes are drained one after the other: order across them means nothing.
            let mut ops: Vec<String> = changes
                .iter()
                .map(|c| format!("{} {} {}", if c.delete { 'D' } else { 'I' }, c.index, c.id))
                .collect();
            ops.sort();
            let (end, gtid) = (ticket.end.clone(), ticket.gtid.clone());
            check_ack(case.file, ticket, changes);
            txns.push(Txn { end, gtid, ops });
        }
    }
    assert!(
        pending.is_empty(),
        "{}: {} changes routed without a ticket after them",
        case.file,
        pending.len()
    );
    let index_requests = index_log.lock().unwrap().clone();
    Run {
        txns,
        index_requests,
    }
}

/// A ticket with changes is acknowledged exactly when all its changes are; one
/// without changes has nothing to wait for.
fn check_ack(file: &str, ticket: TxnTicket, changes: Vec<Seen>) {
    let end = ticket.end;
    let Some(mut done) = ticket.done else {
        assert!(changes.is_empty(), "{file}: {end}: changes but no ack");
        return;
    };
    assert!(
        !changes.is_empty(),
        "{file}: {end}: an ack to wait for, yet no changes"
    );
    assert_eq!(
        done.try_recv(),
        Err(TryRecvError::Empty),
        "{file}: {end}: acknowledged before its changes were"
    );
    for seen in changes {
        seen.change.ack.resolve(TxnStatus::Delivered);
    }
    assert_eq!(done.try_recv(), Ok(TxnStatus::Delivered), "{file}: {end}");
}

/// What one transaction must look like: end offset, GTID, and how many index (`I`) and
/// delete (`D`) changes, as `"I"`, `"DI"`, ….
struct Expect {
    end: u64,
    gtid: TxnGtid,
    ops: &'static str,
}

fn mysql_gtid(sid: &str, gno: u64) -> TxnGtid {
    TxnGtid::MySql {
        sid: sid.into(),
        gno,
    }
}

/// Checks the tickets against `expected`, and the changes against the rows of the
/// file's rows events: every written or updated row gives one index change, every
/// deleted row one delete (plus one delete per update that moved a row's key).
fn check(case_file: &str, run: &Run, expected: &[Expect], synced: impl Fn(&str, &str) -> bool) {
    let file_name = case_file.rsplit('/').next().unwrap();
    let got: Vec<(u64, &TxnGtid, String)> = run
        .txns
        .iter()
        .map(|t| {
            assert_eq!(t.end.file, file_name, "{case_file}");
            let ops: String = t.ops.iter().map(|o| &o[..1]).collect();
            (t.end.pos, &t.gtid, ops)
        })
        .collect();
    let want: Vec<(u64, &TxnGtid, String)> = expected
        .iter()
        .map(|e| (e.end, &e.gtid, e.ops.to_owned()))
        .collect();
    assert_eq!(got, want, "{case_file}: tickets (end, GTID, changes)");
    let (written, updated, deleted) = row_counts(&stream_events(case_file), synced);
    let indexed: usize = want.iter().map(|w| w.2.matches('I').count()).sum();
    let deletes: usize = want.iter().map(|w| w.2.matches('D').count()).sum();
    assert_eq!(
        indexed,
        written + updated,
        "{case_file}: rows written or updated"
    );
    assert!(
        deletes >= deleted && deletes <= deleted + updated,
        "{case_file}: {deletes} deletes for {deleted} deleted and {updated} updated rows"
    );
}

fn no_gtid(end: u64, ops: &'static str) -> Expect {
    Expect {
        end,
        gtid: TxnGtid::None,
        ops,
    }
}

/// MySQL 8.0 with GTIDs: two statements outside transactions (ALTER USER, CREATE TABLE),
/// then BEGIN … XID transactions inserting, updating (every column, the key included)
/// and deleting one row; the table map names the columns, the rule names the key.
#[tokio::test]
async fn mysql_gtid_transactions_with_named_columns() {
    let file = "rust_mysql_common/mysql-enum-string-set.000001";
    let run = read_file(Case::new(
        file,
        "[[tables]]\nmatch = \"mysql.t\"\nid_columns = [\"f3\"]",
    ))
    .await;
    let sid = "93e95066-a2f4-11ec-9b69-9657f0ae95e2";
    let expected = [
        // decoded text: `end_log_pos 493 … Query` (ALTER USER), `791` (CREATE TABLE),
        // then `Xid = 50` / `51` / `52` ending at 1560, 2659, 3331.
        Expect {
            end: 493,
            gtid: mysql_gtid(sid, 1),
            ops: "",
        },
        Expect {
            end: 791,
            gtid: mysql_gtid(sid, 2),
            ops: "",
        },
        Expect {
            end: 1560,
            gtid: mysql_gtid(sid, 3),
            ops: "I",
        },
        // `@3=1` becomes `@3=2`: the document moves to the new key.
        Expect {
            end: 2659,
            gtid: mysql_gtid(sid, 4),
            ops: "DI",
        },
        Expect {
            end: 3331,
            gtid: mysql_gtid(sid, 5),
            ops: "D",
        },
    ];
    check(file, &run, &expected, |db, t| (db, t) == ("mysql", "t"));
    // The key is the ENUM's label: `@3=1` is 'var1', `@3=2` 'variant2'.
    assert_eq!(run.txns[3].ops, ["D mysql.t var1", "I mysql.t variant2"]);
    assert_eq!(run.txns[4].ops, ["D mysql.t variant2"]);
    // The same table map in each transaction, and no DDL between: prepared once.
    assert_eq!(run.index_requests, ["prepare mysql.t"]);
}

/// The same shape with invisible columns; the update moves the row's key (`f3`).
#[tokio::test]
async fn mysql_gtid_transactions_with_invisible_columns() {
    let file = "rust_mysql_common/binlog-invisible-columns.000001";
    let run = read_file(Case::new(
        file,
        "[[tables]]\nmatch = \"mysql.t1\"\nid_columns = [\"f3\"]",
    ))
    .await;
    let sid = "97c7af02-4c50-11ec-acd8-681842034964";
    let expected = [
        Expect {
            end: 491,
            gtid: mysql_gtid(sid, 1),
            ops: "",
        },
        Expect {
            end: 787,
            gtid: mysql_gtid(sid, 2),
            ops: "",
        },
        Expect {
            end: 1120,
            gtid: mysql_gtid(sid, 3),
            ops: "I",
        },
        Expect {
            end: 1438,
            gtid: mysql_gtid(sid, 4),
            ops: "I",
        },
        // Ends with the XID at 1756 (31 bytes), before the STOP event.
        Expect {
            end: 1787,
            gtid: mysql_gtid(sid, 5),
            ops: "DI",
        },
    ];
    check(file, &run, &expected, |db, t| (db, t) == ("mysql", "t1"));
}

/// MariaDB 10.5: GTID events open the transactions (no BEGIN query), ANNOTATE_ROWS,
/// GTID_LIST and BINLOG_CHECKPOINT events in between, and a primary key in the
/// table map's metadata.
#[tokio::test]
async fn mariadb_gtid_transactions() {
    let file = "rust_mysql_common/mariadb-bin.000001";
    let mut case = Case::new(file, "[[tables]]\nmatch = \"toddy_test.*\"");
    case.flavor = Flavor::Mariadb;
    let run = read_file(case).await;
    let gtid = |seq| {
        TxnGtid::MariaDb(MariaGtid {
            domain: 0,
            server: 1,
            seq,
        })
    };
    // decoded text: `GTID 0-1-1 trans` … `Xid = 800` ending at 702; `GTID 0-1-2` … 1074.
    let expected = [
        Expect {
            end: 702,
            gtid: gtid(1),
            ops: "I",
        },
        Expect {
            end: 1074,
            gtid: gtid(2),
            ops: "I",
        },
    ];
    check(file, &run, &expected, |db, _| db == "toddy_test");
    // `@1=62`, `@1=63`: the primary key `id`.
    assert_eq!(run.txns[0].ops, ["I toddy_test.outbox 62"]);
    assert_eq!(run.txns[1].ops, ["I toddy_test.outbox 63"]);
}

/// MySQL 9.0 without GTIDs: DDL statements each a transaction of their own (anonymous
/// GTID, no BEGIN), transactions over two tables, and a DROP DATABASE of synced
/// tables, which clears their indices and routes nothing.
#[tokio::test]
async fn anonymous_transactions_and_drop_database() {
    let file = "rust_mysql_common/vector.binlog";
    let mut case = Case::new(file, "[[tables]]\nmatch = \"dtb.*\"");
    case.created = vec!["dtb.foo".into(), "dtb.bar".into()];
    let run = read_file(case).await;
    // INDEX.json event list: each statement's QUERY end, and the XIDs at 1401, 2853, 3412.
    let expected = [
        no_gtid(356, ""),      // CREATE DATABASE dtb
        no_gtid(580, ""),      // CREATE TABLE foo
        no_gtid(851, ""),      // CREATE TABLE bar
        no_gtid(1432, "IIII"), // two rows in each of two tables
        no_gtid(1610, ""),     // drop database dtb
        no_gtid(1808, ""),     // CREATE DATABASE dtb
        no_gtid(2032, ""),     // CREATE TABLE foo
        no_gtid(2303, ""),     // CREATE TABLE bar
        no_gtid(2884, "IIII"),
        no_gtid(3443, "DI"), // DELETE FROM bar, INSERT INTO bar
    ];
    check(file, &run, &expected, |db, _| db == "dtb");
    assert_eq!(
        run.txns[3].ops,
        ["I dtb.bar 1", "I dtb.bar 2", "I dtb.foo 1", "I dtb.foo 2"]
    );
    assert_eq!(
        run.index_requests,
        [
            "prepare dtb.foo",
            "prepare dtb.bar",
            "created dtb.*",
            "clear dtb.bar",
            "clear dtb.foo",
            "prepare dtb.foo",
            // The last transaction maps `bar` as before: nothing to prepare again.
            "prepare dtb.bar",
        ]
    );
}

/// MySQL 5.7 with GTIDs and no column names: thirteen DDL statements (DROP TABLE IF
/// EXISTS of synced tables among them, each clearing that table's index), then four
/// BEGIN … XID transactions over two tables.
#[tokio::test]
async fn mysql_57_gtids_with_ddl_before_the_rows() {
    let file = "zalora-binlog-parser/gtid-fixtures.mysql-bin.01";
    let mut case = Case::new(
        file,
        "[[tables]]\nmatch = \"test_db.*\"\nid_columns = [\"@1\"]",
    );
    case.catalog = true;
    let run = read_file(case).await;
    let sid = "10440e47-3885-11eb-ac5b-0242ac110002";
    // INDEX.json: GTIDs from :6 (17 of them); each QUERY's end, then the XIDs.
    let ddl_ends = [
        428, 631, 1011, 1216, 1558, 1758, 2024, 2226, 2704, 2904, 3238, 3437, 3951,
    ];
    let mut expected: Vec<Expect> = ddl_ends
        .iter()
        .map(|&end| Expect {
            end,
            gtid: TxnGtid::None,
            ops: "",
        })
        .collect();
    // decoded text: 2 buildings, 5 rooms inserted; 2 rooms updated; 1 building deleted.
    for (end, ops) in [(4413, "II"), (5126, "IIIII"), (5550, "II"), (5867, "D")] {
        expected.push(Expect {
            end,
            gtid: TxnGtid::None,
            ops,
        });
    }
    for (gno, e) in (6..).zip(&mut expected) {
        e.gtid = mysql_gtid(sid, gno);
    }
    check(file, &run, &expected, |db, _| db == "test_db");
    let clears: Vec<&String> = run
        .index_requests
        .iter()
        .filter(|r| r.starts_with("clear"))
        .collect();
    // Every `DROP TABLE IF EXISTS` of the dump, in its order.
    assert_eq!(
        clears,
        [
            "clear test_db.buildings",
            "clear test_db.departments",
            "clear test_db.filler",
            "clear test_db.language",
            "clear test_db.lookup",
            "clear test_db.rooms",
        ]
    );
}

/// MySQL 8.0 transaction compression: the rows come inside a TRANSACTION_PAYLOAD
/// event; the transaction ends where the payload event ends.
#[tokio::test]
async fn compressed_transactions() {
    let file = "mysql-binlog-connector-rust/mysql-bin.000057";
    let mut case = Case::new(file, "[[tables]]\nmatch = \"a.*\"\nid_columns = [\"@1\"]");
    case.catalog = true;
    let run = read_file(case).await;
    let sid = "76f3e7be-6720-11ed-9cad-0242ac110002";
    // INDEX.json: GTID :11 + `create table b(id int)` ending at 378; payloads at 457
    // (194 bytes) and 730 (553 bytes), after GTIDs :12 and :13.
    let expected = [
        Expect {
            end: 378,
            gtid: mysql_gtid(sid, 11),
            ops: "",
        },
        Expect {
            end: 651,
            gtid: mysql_gtid(sid, 12),
            ops: "I",
        },
        Expect {
            end: 1283,
            gtid: mysql_gtid(sid, 13),
            ops: "II",
        },
    ];
    check(file, &run, &expected, |db, _| db == "a");

    let file = "rust_mysql_common/transaction_compression.000001";
    let mut case = Case::new(
        file,
        "[[tables]]\nmatch = \"test.*\"\nid_columns = [\"@1\"]",
    );
    case.catalog = true;
    let run = read_file(case).await;
    // ANONYMOUS_GTID, then the payload at 274 (157 bytes), then ROTATE.
    check(file, &run, &[no_gtid(431, "I")], |db, _| db == "test");
}

/// A file no rule matches still gives one ticket per transaction (versions do not
/// depend on configuration), without changes.
#[tokio::test]
async fn unsynced_tables_still_get_tickets() {
    let file = "rust_mysql_common/mysql-enum-string-set.000001";
    let run = read_file(Case::new(file, "[[tables]]\nmatch = \"elsewhere.*\"")).await;
    let ends: Vec<u64> = run.txns.iter().map(|t| t.end.pos).collect();
    assert_eq!(ends, [493, 791, 1560, 2659, 3331]);
    assert!(run.txns.iter().all(|t| t.ops.is_empty()));
    assert!(run.index_requests.is_empty());
}

/// MariaDB 11.8, statement-based: each GTID group holds several statements (UPDATE,
/// DELETE, INSERT as query events whose `end_log_pos` is 0) and ends at its XID.
/// Statements inside a group do not end it, and without row events nothing is routed.
#[tokio::test]
async fn mariadb_statement_groups_end_at_their_xid() {
    for file in [
        "mariadb-poc/domain_id_0.mariadb-repl-bin.000005",
        "mariadb-poc/domain_id_0.mariadb-repl-bin.000007",
    ] {
        let mut case = Case::new(file, "[[tables]]\nmatch = \"sbtest-repl.*\"");
        case.flavor = Flavor::Mariadb;
        let run = read_file(case).await;
        let expected = mariadb_transactions_in_decoded_text(&format!("{file}.decoded.txt"));
        assert!(
            expected.len() > 60,
            "{file}: {} transactions",
            expected.len()
        );
        let got: Vec<(u64, TxnGtid)> = run
            .txns
            .iter()
            .map(|t| (t.end.pos, t.gtid.clone()))
            .collect();
        assert_eq!(got, expected, "{file}");
        assert!(run.txns.iter().all(|t| t.ops.is_empty()), "{file}");
    }
}

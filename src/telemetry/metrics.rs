//! Metric names (SPEC §7) and the few helpers that record them, per batch.
//!
//! Recorded through the `metrics` facade; without an installed recorder they cost
//! next to nothing.

use std::time::Duration;

/// Row changes read from the binlog, by `op` (insert, update, delete).
pub const CHANGES_TOTAL: &str = "binlog2es_changes_total";
/// Bulk requests by `outcome`.
pub const BULK_REQUESTS_TOTAL: &str = "binlog2es_bulk_requests_total";
/// Bulk request latency.
pub const BULK_DURATION_SECONDS: &str = "binlog2es_bulk_duration_seconds";
/// Documents rejected by Elasticsearch and dead-lettered.
pub const REJECTED_DOCUMENTS_TOTAL: &str = "binlog2es_rejected_documents_total";
/// Bulk retries after a transient failure.
pub const BULK_RETRIES_TOTAL: &str = "binlog2es_bulk_retries_total";
/// Lag, the one definition (README "Operations", alerts.yml): now minus
/// [`CHECKPOINT_TIMESTAMP_SECONDS`], i.e. how stale the index may be. While changes read
/// wait for Elasticsearch, the age of the last transaction it acknowledged; 0 when all that
/// was read is acknowledged and the connection is alive; else the connection's silence.
pub const LAG_SECONDS: &str = "binlog2es_lag_seconds";
/// Unix time up to which the index is known to equal MySQL (now − lag). It stops moving when
/// the daemon stalls, idle server or not: `changes(…[10m]) == 0` is the stall alert.
pub const CHECKPOINT_TIMESTAMP_SECONDS: &str = "binlog2es_checkpoint_timestamp_seconds";
/// 1 while `/readyz` answers 200 (streaming, lag under `http.ready_max_lag`), else 0.
pub const READY: &str = "binlog2es_ready";
/// Always 1; labels `version` and `revision` say which build runs.
pub const BUILD_INFO: &str = "binlog2es_build_info";
/// Binlog bytes between the committed checkpoint and the server's current position.
pub const BEHIND_BYTES: &str = "binlog2es_behind_bytes";
/// Requests the writer may have in flight now, summed over lanes: `writer.pipeline_depth`
/// each, or with `writer.adaptive_concurrency` the level each lane found (1 to the depth).
pub const WRITER_CONCURRENCY: &str = "binlog2es_writer_concurrency";
/// Rows copied by the snapshot.
pub const SNAPSHOT_ROWS_TOTAL: &str = "binlog2es_snapshot_rows_total";
/// Tables a rule matches that are not synced (no primary key, `on_keyless = "skip"`), by
/// `table`: 1 while skipped, 0 once the table has a key again.
pub const SKIPPED_TABLES: &str = "binlog2es_skipped_tables";
/// Documents of rules with relations built from MySQL when written (SPEC §9).
pub const DOCUMENTS_BUILT_TOTAL: &str = "binlog2es_documents_built_total";
/// Root documents a change of a relation table was found to affect (SPEC §9 fan-out).
pub const FANOUT_DOCUMENTS_TOTAL: &str = "binlog2es_fanout_documents_total";
/// 1 while an index rebuild runs (SPEC §10), else 0.
pub const REINDEX_RUNNING: &str = "binlog2es_reindex_running";
/// The running rebuild's phase: 0 none, 1 copying, 2 catching up, 3 switching, 4 deleting
/// the old index.
pub const REINDEX_PHASE: &str = "binlog2es_reindex_phase";
/// Rows copied into rebuilt indices.
pub const REINDEX_ROWS_COPIED_TOTAL: &str = "binlog2es_reindex_rows_copied_total";
/// Rebuilds finished (readers switched, old index deleted).
pub const REINDEX_COMPLETED_TOTAL: &str = "binlog2es_reindex_completed_total";

/// Changes never written because a later change to the same document took their place
/// (in one batch, or while waiting in a lane's backlog).
pub const COALESCED_CHANGES_TOTAL: &str = "binlog2es_coalesced_changes_total";

/// Values of `op` on [`CHANGES_TOTAL`].
pub const OPS: [&str; 3] = ["insert", "update", "delete"];
/// Values of `outcome` on [`BULK_REQUESTS_TOTAL`].
pub const OUTCOMES: [&str; 6] = [
    "success",
    "partial",
    "retry_items",
    "split",
    "refused",
    "error",
];

/// Registers every series at 0 (and `build_info` at 1), so a rule such as
/// `increase(…[15m]) > 0` sees the first burst: a series born at its first increment has no
/// earlier sample to increase from.
pub fn register_all() {
    for op in OPS {
        metrics::counter!(CHANGES_TOTAL, "op" => op).increment(0);
    }
    for outcome in OUTCOMES {
        metrics::counter!(BULK_REQUESTS_TOTAL, "outcome" => outcome).increment(0);
    }
    // A histogram series exists once it has a handle: its buckets read 0.
    let _ = metrics::histogram!(BULK_DURATION_SECONDS);
    metrics::counter!(REJECTED_DOCUMENTS_TOTAL).increment(0);
    metrics::counter!(BULK_RETRIES_TOTAL).increment(0);
    metrics::counter!(COALESCED_CHANGES_TOTAL).increment(0);
    metrics::counter!(SNAPSHOT_ROWS_TOTAL).increment(0);
    metrics::gauge!(REINDEX_RUNNING).set(0.0);
    metrics::gauge!(REINDEX_PHASE).set(0.0);
    metrics::counter!(REINDEX_ROWS_COPIED_TOTAL).increment(0);
    metrics::counter!(REINDEX_COMPLETED_TOTAL).increment(0);
    metrics::gauge!(LAG_SECONDS).set(0.0);
    // Moved by the lanes, not set: they may start before this.
    metrics::gauge!(WRITER_CONCURRENCY).increment(0.0);
    metrics::gauge!(BEHIND_BYTES).set(0.0);
    metrics::gauge!(READY).set(0.0);
    metrics::gauge!(CHECKPOINT_TIMESTAMP_SECONDS).set(0.0);
    metrics::gauge!(
        BUILD_INFO,
        "version" => env!("CARGO_PKG_VERSION"),
        "revision" => crate::GIT_REVISION
    )
    .set(1.0);
}

/// Sets the scrape-time gauges from the lag and readiness `/readyz` computes.
pub fn scrape(lag: Duration, ready: bool) {
    metrics::gauge!(LAG_SECONDS).set(lag.as_secs_f64());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(CHECKPOINT_TIMESTAMP_SECONDS).set(now.saturating_sub(lag).as_secs_f64());
    metrics::gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// Describes every metric once at start-up.
pub fn describe() {
    metrics::describe_counter!(CHANGES_TOTAL, "Row changes read from the binlog, by op.");
    metrics::describe_counter!(
        DOCUMENTS_BUILT_TOTAL,
        "Documents of rules with relations built from MySQL when written."
    );
    metrics::describe_counter!(
        FANOUT_DOCUMENTS_TOTAL,
        "Root documents affected by changes of relation tables."
    );
    metrics::describe_counter!(BULK_REQUESTS_TOTAL, "Bulk requests, by outcome.");
    metrics::describe_histogram!(
        BULK_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Bulk request latency."
    );
    metrics::describe_counter!(
        REJECTED_DOCUMENTS_TOTAL,
        "Documents rejected and dead-lettered."
    );
    metrics::describe_counter!(BULK_RETRIES_TOTAL, "Bulk retries after transient failures.");
    metrics::describe_counter!(
        COALESCED_CHANGES_TOTAL,
        "Changes not written because a later change to the same document replaced them."
    );
    metrics::describe_gauge!(
        LAG_SECONDS,
        metrics::Unit::Seconds,
        "How stale the index may be: now minus binlog2es_checkpoint_timestamp_seconds."
    );
    metrics::describe_gauge!(
        CHECKPOINT_TIMESTAMP_SECONDS,
        metrics::Unit::Seconds,
        "Unix time up to which the index is known to equal MySQL; stops moving on a stall."
    );
    metrics::describe_gauge!(READY, "1 while /readyz answers 200, else 0.");
    metrics::describe_gauge!(
        BUILD_INFO,
        "Always 1; labels say the version and git revision."
    );
    metrics::describe_gauge!(
        WRITER_CONCURRENCY,
        "Requests the writer may have in flight now, summed over lanes."
    );
    metrics::describe_counter!(SNAPSHOT_ROWS_TOTAL, "Rows copied by the snapshot.");
    metrics::describe_gauge!(REINDEX_RUNNING, "1 while an index rebuild runs, else 0.");
    metrics::describe_gauge!(
        REINDEX_PHASE,
        "Phase of the running rebuild: 0 none, 1 copying, 2 catching up, 3 switching, 4 deleting the old index."
    );
    metrics::describe_counter!(
        REINDEX_ROWS_COPIED_TOTAL,
        "Rows copied into rebuilt indices."
    );
    metrics::describe_counter!(REINDEX_COMPLETED_TOTAL, "Index rebuilds finished.");
    metrics::describe_gauge!(
        SKIPPED_TABLES,
        "Matched tables not synced for lack of a primary key (1 while skipped), by table."
    );
    metrics::describe_gauge!(
        BEHIND_BYTES,
        metrics::Unit::Bytes,
        "Binlog bytes between the checkpoint and the server's position."
    );
}

/// Counts `n` changes of kind `op`.
pub fn changes(op: &'static str, n: u64) {
    metrics::counter!(CHANGES_TOTAL, "op" => op).increment(n);
}

/// Counts one bulk request with its outcome.
pub fn bulk_request(outcome: &'static str) {
    metrics::counter!(BULK_REQUESTS_TOTAL, "outcome" => outcome).increment(1);
}

/// Records one bulk request's latency.
pub fn bulk_duration(d: Duration) {
    metrics::histogram!(BULK_DURATION_SECONDS).record(d.as_secs_f64());
}

/// Counts `n` rejected documents.
pub fn rejected(n: usize) {
    metrics::counter!(REJECTED_DOCUMENTS_TOTAL).increment(n as u64);
}

/// Counts `n` documents built from MySQL for rules with relations.
pub fn documents_built(n: usize) {
    metrics::counter!(DOCUMENTS_BUILT_TOTAL).increment(n as u64);
}

/// Counts `n` root documents a relation table's change affects.
pub fn fanout_documents(n: usize) {
    metrics::counter!(FANOUT_DOCUMENTS_TOTAL).increment(n as u64);
}

/// Counts `n` changes replaced by a later change to their document before being written.
pub fn coalesced(n: usize) {
    if n > 0 {
        metrics::counter!(COALESCED_CHANGES_TOTAL).increment(n as u64);
    }
}

/// Counts one retry.
pub fn retry() {
    metrics::counter!(BULK_RETRIES_TOTAL).increment(1);
}

/// Sets the binlog distance to the server's head.
pub fn behind_bytes(bytes: u64) {
    metrics::gauge!(BEHIND_BYTES).set(bytes as f64);
}

/// Counts `n` rows copied by a snapshot or re-sync.
pub fn snapshot_rows(n: u64) {
    metrics::counter!(SNAPSHOT_ROWS_TOTAL).increment(n);
}

/// Moves a lane's share of [`WRITER_CONCURRENCY`] from `from` to `to` requests.
pub fn writer_concurrency(from: usize, to: usize) {
    let gauge = metrics::gauge!(WRITER_CONCURRENCY);
    if to >= from {
        gauge.increment((to - from) as f64);
    } else {
        gauge.decrement((from - to) as f64);
    }
}

/// Sets the current lag.
pub fn lag(seconds: f64) {
    metrics::gauge!(LAG_SECONDS).set(seconds);
}

/// Marks `table` (`db.table`) as skipped (or synced again).
pub fn skipped_table(table: &str, skipped: bool) {
    metrics::gauge!(SKIPPED_TABLES, "table" => table.to_owned()).set(if skipped {
        1.0
    } else {
        0.0
    });
}

/// Counts `n` rows copied into a rebuilt index.
pub fn reindex_rows(n: u64) {
    metrics::counter!(REINDEX_ROWS_COPIED_TOTAL).increment(n);
}

/// Sets the rebuild gauges: `phase` 0 when no rebuild runs.
pub fn reindex_phase(phase: u8) {
    metrics::gauge!(REINDEX_RUNNING).set(if phase > 0 { 1.0 } else { 0.0 });
    metrics::gauge!(REINDEX_PHASE).set(f64::from(phase));
}

/// Counts one finished rebuild.
pub fn reindex_completed() {
    metrics::counter!(REINDEX_COMPLETED_TOTAL).increment(1);
}

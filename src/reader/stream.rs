//! The replication connection: connecting, asking for the stream (by position or GTID),
//! reconnecting after a loss, and following a failover to another server by GTID.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mysql_async::BinlogStreamRequest;
use mysql_async::prelude::Queryable;
use tracing::{info, warn};

use super::{Reader, ReaderError, StartMode, prerequisites};
use crate::checkpoint::Flavor;
use crate::position::GtidState;
use crate::retry::{Attempt, Failure, Retry, RetryError, mysql_privilege_error, retry_until};

impl Reader {
    /// Streams until `stop` fires (Ok) or a fatal error; reconnects on transient ones.
    ///
    /// # Errors
    /// A fatal reader error (privileges, purged position, undecodable row …).
    #[tracing::instrument(name = "reader", skip_all, fields(stage = "reader"))]
    pub async fn run(self) -> Result<(), ReaderError> {
        let (stop, host) = (self.stop.clone(), self.host.clone());
        let mut reader = self;
        // A stream that was established and then lost ends one round of retries, so each
        // outage starts its backoff afresh; the loss itself is the round's first failure.
        let mut lost: Option<Failure> = None;
        loop {
            let retry = Retry::new(
                200,
                30_000,
                &stop,
                "Replication stream lost, reconnecting.",
                &host,
            );
            let ((r, _), outcome) = retry_until(&retry, (reader, lost.take()), |(mut r, lost)| {
                async move {
                    if let Some(failure) = lost {
                        return ((r, None), Attempt::Again(failure));
                    }
                    let result = r.stream_once().await;
                    let established = r.after_stream();
                    let attempt = match result {
                        // The index task reports its own failure; a stop is a stop.
                        Ok(()) | Err(ReaderError::IndicesGone) => Attempt::Done(None),
                        Err(e) if e.is_transient() => {
                            let failure =
                                Failure::new(format!("{e} (resuming at {})", r.state.position));
                            if established {
                                Attempt::Done(Some(failure))
                            } else {
                                Attempt::Again(failure)
                            }
                        }
                        Err(e) => Attempt::Fail(e),
                    };
                    ((r, None), attempt)
                }
            })
            .await;
            reader = r;
            match outcome {
                Ok(Some(failure)) => lost = Some(failure),
                Ok(None) | Err(RetryError::Stopped { .. } | RetryError::Exhausted { .. }) => {
                    return Ok(());
                }
                Err(RetryError::Final(e)) => return Err(e),
            }
        }
    }

    /// Resets what a lost stream leaves behind; whether a stream had been established.
    pub(super) fn after_stream(&mut self) -> bool {
        self.progress.set_streaming(false);
        // The catalog connection may have died with the stream's.
        self.catalog = None;
        // A half-read transaction is read again whole after reconnecting.
        self.txn = None;
        std::mem::take(&mut self.streamed)
    }

    pub(super) fn conn_err(&self, source: mysql_async::Error) -> ReaderError {
        ReaderError::Connection {
            host: self.host.clone(),
            source,
        }
    }

    pub(super) async fn stream_once(&mut self) -> Result<(), ReaderError> {
        let mut conn = tokio::select! {
            c = self.source.connect() => c.map_err(|e| self.conn_err(e))?,
            _ = self.stop.cancelled() => return Ok(()),
        };
        let facts = prerequisites::server_facts(&mut conn)
            .await
            .map_err(|e| self.conn_err(e))?;
        if facts.identity != *self.identity {
            if self.state.gtid.is_none() || facts.identity.flavor != self.identity.flavor {
                return Err(ReaderError::Prerequisite(format!(
                    "the server at {} is now `{}`, not `{}` as before, and without GTIDs the \
                     position {} cannot be carried over; enable GTIDs, or delete the checkpoint to start over",
                    self.host, facts.identity, self.identity, self.state.position
                )));
            }
            warn!(from = %self.identity, to = %facts.identity, gtid = %self.state.gtid, "Server changed (failover); resuming by GTID.");
            self.identity = Arc::new(facts.identity.clone());
            self.mode = StartMode::Gtid;
            // Changes of a transaction lost with the old server may already be written
            // with versions up to the lease: continue above them (see `run`).
            self.state.version = self.state.version.max(self.leased);
            self.tables.clear();
            // Snapshot positions of the old server mean nothing on the new one.
            self.copies.invalidate_all();
            self.between(None).await;
        }
        let heartbeat = self.config.mysql.heartbeat_interval;
        let ns = heartbeat.as_nanos().min(u128::from(u64::MAX));
        let mut setup = vec![
            format!("SET @master_heartbeat_period = {ns}"),
            format!("SET @source_heartbeat_period = {ns}"),
            // mysql_async announces checksum support under the old name; MySQL 8.4
            // reads the new one.
            "SET @source_binlog_checksum = 'ALL'".to_owned(),
        ];
        if facts.identity.flavor == Flavor::Mariadb {
            // 4 = MARIA_SLAVE_CAPABILITY_GTID: send GTID events instead of dummies.
            setup.push("SET @mariadb_slave_capability = 4".into());
            if self.mode == StartMode::Gtid {
                setup.push(format!("SET @slave_connect_state = '{}'", self.state.gtid));
                setup.push("SET @slave_gtid_strict_mode = 1".into());
                setup.push("SET @slave_gtid_ignore_duplicates = 0".into());
            }
        }
        for q in setup {
            conn.query_drop(q).await.map_err(|e| self.conn_err(e))?;
        }
        let file = self.state.position.file.clone();
        let mut request = BinlogStreamRequest::new(self.config.mysql.server_id);
        match (self.mode, facts.identity.flavor) {
            (StartMode::Position, _) => {
                request = request
                    .with_filename(file.as_bytes())
                    .with_pos(self.state.position.pos);
            }
            (StartMode::Gtid, Flavor::Mariadb) => {
                // The connect state set above decides where the server starts.
                request = request.with_filename(b"").with_pos(4);
            }
            (StartMode::Gtid, Flavor::Mysql) => {
                let sids = mysql_sids(&self.state.gtid)?;
                request = request.with_gtid().with_gtid_set(sids).with_pos(4);
            }
        }
        let mut stream = conn
            .get_binlog_stream(request)
            .await
            .map_err(|e| self.refused_or_conn(e))?;
        info!(position = %self.state.position, gtid = %self.state.gtid, mode = ?self.mode, "Streaming binlog.");
        self.progress.set_streaming(true);
        self.streamed = true;
        let silence = heartbeat * 3 + Duration::from_secs(1);
        loop {
            let between = self.txn.is_none();
            let next = tokio::select! {
                biased;
                _ = self.stop.cancelled() => return Ok(()),
                req = self.copies.request(), if between => {
                    self.between(Some(req)).await;
                    continue;
                }
                n = tokio::time::timeout(silence, stream.next()) => n,
            };
            let event = match next {
                Err(_) => {
                    return Err(ReaderError::Silent {
                        host: self.host.clone(),
                        seconds: silence.as_secs(),
                    });
                }
                Ok(None) => {
                    return Err(self.conn_err(mysql_async::Error::Io(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "binlog stream ended",
                        )
                        .into(),
                    )));
                }
                Ok(Some(Err(e))) => return Err(self.refused_or_conn(e)),
                Ok(Some(Ok(ev))) => ev,
            };
            self.progress.touch();
            self.handle(&event).await?;
            // Only when a chunk waits: the check costs a position per event otherwise.
            if self.txn.is_none() && self.copies.has_pending() {
                self.between(None).await;
            }
        }
    }

    pub(super) fn refused_or_conn(&self, e: mysql_async::Error) -> ReaderError {
        if let mysql_async::Error::Server(se) = &e {
            let hint = if se.code == 1236 {
                "the position was probably purged from the server (PURGE BINARY LOGS, \
                 expire_logs_days); delete the checkpoint to start again at the current end"
            } else if mysql_privilege_error(se.code) {
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO the binlog2es user \
                 (MariaDB: REPLICATION SLAVE, BINLOG MONITOR)"
            } else {
                return self.conn_err(e);
            };
            return ReaderError::Refused {
                host: self.host.clone(),
                position: self.state.position.to_string(),
                message: se.message.clone(),
                hint,
            };
        }
        self.conn_err(e)
    }
}

/// A MySQL GTID state as `Sid`s for `COM_BINLOG_DUMP_GTID`.
fn mysql_sids(state: &GtidState) -> Result<Vec<mysql_async::Sid<'static>>, ReaderError> {
    let GtidState::MySql(map) = state else {
        return Err(ReaderError::Prerequisite(
            "no MySQL GTID set in the checkpoint to resume from".into(),
        ));
    };
    let mut out = Vec::new();
    for (sid, ivs) in map {
        let mut text = sid.clone();
        for (a, b) in ivs {
            text.push_str(&format!(":{a}-{b}"));
        }
        let parsed: mysql_async::Sid<'static> = text.parse().map_err(|e| {
            ReaderError::Prerequisite(format!("GTID set `{text}` cannot be sent: {e:?}"))
        })?;
        out.push(parsed);
    }
    Ok(out)
}

//! The daemon: [`run`] starts up (both servers reached, the start point chosen, see
//! [`startup`]), wires the stages together (see [`wiring`]) and drains them on shutdown.
//!
//! The start-up order is read here in one place: the operations endpoint, the checkpoint
//! file, Elasticsearch, MySQL, the start point, and only then the stages.

pub(crate) mod lag;
pub(crate) mod startup;
mod wiring;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::Error;
use crate::checkpoint::CheckpointStore;
use crate::config::Config;
use crate::snapshot::ResyncRequest;
use crate::telemetry::http::{self, ResyncCall, ResyncReply};
use crate::telemetry::metrics;
use crate::telemetry::progress::Progress;

/// Re-sync requests queued for the copy coordinator.
const RESYNC_QUEUE: usize = 16;

/// Runs the daemon until `shutdown` resolves or a fatal error occurs.
///
/// # Errors
/// Fatal errors; [`Error::Incomplete`] when the drain did not finish in time.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    config.validate()?;
    let config = Arc::new(config);
    let prometheus = if config.http.enabled {
        http::install_recorder()
    } else {
        None
    };
    metrics::describe();
    metrics::register_all();
    let progress = Arc::new(Progress::default());
    let http_stop = CancellationToken::new();
    // Drop guard: the endpoint stops with `run`, whichever way it returns.
    let _http_guard = http_stop.clone().drop_guard();
    let (resync_tx, resync_rx) = mpsc::channel(RESYNC_QUEUE);
    let reader_resync = resync_tx.clone();
    let reindex = if config.http.enabled {
        let (reindex_tx, reindex_rx) = mpsc::channel(RESYNC_QUEUE);
        let calls = Calls {
            resync: resync_tx,
            reindex: reindex_tx,
        };
        serve_endpoint(&config, prometheus, &progress, calls, &http_stop).await?;
        Some(reindex_rx)
    } else {
        drop(resync_tx);
        None
    };
    let store = CheckpointStore::new(config.checkpoint.path.clone());
    store.ensure_writable()?;
    let saved = store.load()?;

    let reach = async {
        let client = startup::open_es(&config).await?;
        let mut mysql = startup::open_mysql(&config).await?;
        let start = startup::choose_start(&config, &store, saved, &mut mysql).await?;
        let startup::Mysql {
            source, host, conn, ..
        } = mysql;
        drop(conn);
        let documents = startup::load_documents(
            &config,
            &source,
            (start.0.server.flavor, start.0.position.clone()),
        )
        .await?;
        Ok::<_, Error>((client, source, host, start, documents))
    };
    tokio::pin!(shutdown);
    // A signal while the servers are still being reached (up to connect_timeout) stops at
    // once: nothing was read yet, so there is nothing to drain.
    let (client, source, host, start, documents) = tokio::select! {
        reached = reach => reached?,
        () = &mut shutdown => {
            info!("Stopped during start-up.");
            return Ok(());
        }
    };

    let mut stages = wiring::Stages::spawn(
        &config,
        wiring::Upstream {
            client,
            source,
            host,
            documents,
        },
        start,
        &store,
        &progress,
        wiring::Resync {
            requests: resync_rx,
            reader: reader_resync,
            reindex,
        },
        &http_stop,
    );
    notify_systemd(&http_stop);
    let ended = stages.supervise(shutdown).await;
    // systemd (Type=notify) shows "deactivating" while the drain runs.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    stages.drain(ended, &config, &store).await
}

/// Under systemd `Type=notify` (NOTIFY_SOCKET set; a no-op elsewhere): READY=1 once both servers
/// are reached and the stages run, then WATCHDOG=1 at half the unit's `WatchdogSec` from a
/// task of this runtime, so a wedged runtime gets the process restarted. A sink outage does
/// not stop the pings: the daemon waits on purpose then, and restarting would not help.
fn notify_systemd(stop: &CancellationToken) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                }
                () = stop.cancelled() => return,
            }
        }
    });
}

/// Where the endpoint's operations calls go.
struct Calls {
    /// `/resync`: the copy coordinator.
    resync: mpsc::Sender<ResyncRequest>,
    /// `/reindex`: the rebuild coordinator.
    reindex: mpsc::Sender<http::ReindexCall>,
}

/// Binds the operations endpoint (a taken port fails start-up) and forwards its `/resync`
/// calls to the copy coordinator, its `/reindex` calls to the rebuild coordinator.
///
/// # Errors
/// Unusable `[http]` files, or the address cannot be bound.
async fn serve_endpoint(
    config: &Arc<Config>,
    prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
    progress: &Arc<Progress>,
    calls: Calls,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let Calls { resync, reindex } = calls;
    let silence = config.mysql.heartbeat_interval * 3 + Duration::from_secs(1);
    let (calls_tx, calls_rx) = mpsc::channel(RESYNC_QUEUE);
    let endpoint = http::Endpoint {
        progress: Arc::clone(progress),
        ready_max_lag: config.http.ready_max_lag,
        silence,
        resync: Some(calls_tx),
        reindex: Some(reindex),
    };
    let access = http::Access::from_config(&config.http)?;
    if !config.http.listen.ip().is_loopback() && !access.authenticates() {
        warn!(listen = %config.http.listen, "The operations endpoint is reachable from other hosts without authentication; set http.username and http.password_file, or listen on 127.0.0.1.");
    }
    let (addr, _task) = http::bind(
        config.http.listen,
        access.clone(),
        prometheus,
        endpoint,
        stop.clone(),
    )
    .await
    .map_err(|e| Error::Prerequisites(e.to_string()))?;
    // Asked per call, on a connection of its own: the coordinator would accept a table a
    // rule's pattern matches even when the server has no such table.
    let check = crate::source::MysqlSource::new(&config.mysql)
        .ok()
        .map(|source| (source, Arc::clone(config)));
    tokio::spawn(forward_resync(calls_rx, resync, check));
    info!(%addr, tls = access.is_tls(), basic_auth = access.authenticates(), "Serving /metrics, /healthz, /readyz, /resync and /reindex.");
    Ok(())
}

/// Hands each `/resync` call to the copy coordinator and its answer back, until the
/// endpoint stops or the coordinator is gone (then a call's reply is dropped: the
/// endpoint answers that the daemon is stopping).
async fn forward_resync(
    mut calls: mpsc::Receiver<ResyncCall>,
    coordinator: mpsc::Sender<ResyncRequest>,
    check: Option<(crate::source::MysqlSource, Arc<Config>)>,
) {
    while let Some(call) = calls.recv().await {
        // Only for a table a rule matches: the coordinator answers the others itself.
        if let Some((source, config)) = &check
            && config.rule_for(&call.db, &call.table).is_some()
            && table_exists(source, &call.db, &call.table).await == Some(false)
        {
            let text = format!("`{}.{}` is not a table on the server", call.db, call.table);
            let _ = call.reply.send(ResyncReply::Refused(text));
            continue;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = ResyncRequest {
            db: call.db,
            table: call.table,
            reply,
            since: None,
            into: None,
        };
        if coordinator.send(request).await.is_err() {
            return;
        }
        // Each answer is awaited in a task of its own, so calls reach the coordinator as
        // they come, as when the endpoint sent them itself.
        let caller = call.reply;
        tokio::spawn(async move {
            let reply = match answer.await {
                Ok(Ok(text)) => ResyncReply::Accepted(text),
                Ok(Err(text)) => ResyncReply::Refused(text),
                Err(_) => return,
            };
            let _ = caller.send(reply);
        });
    }
}

/// Whether the server has `db.table`; `None` when it cannot tell (the coordinator decides).
async fn table_exists(source: &crate::source::MysqlSource, db: &str, table: &str) -> Option<bool> {
    use mysql_async::prelude::Queryable;
    let mut conn = tokio::time::timeout(Duration::from_secs(5), source.connect())
        .await
        .ok()?
        .ok()?;
    let found: Result<Option<u8>, _> = conn
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await;
    let _ = conn.disconnect().await;
    Some(found.ok()?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(table: &str) -> (ResyncCall, tokio::sync::oneshot::Receiver<ResyncReply>) {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let call = ResyncCall {
            db: "shop".into(),
            table: table.into(),
            reply,
        };
        (call, rx)
    }

    /// The coordinator's answers come back as the endpoint's replies; once it is gone,
    /// a call is dropped unanswered (the endpoint says the daemon is stopping).
    #[tokio::test]
    async fn resync_calls_reach_the_coordinator_and_back() {
        let (calls_tx, calls_rx) = mpsc::channel(RESYNC_QUEUE);
        let (coordinator, mut requests) = mpsc::channel(RESYNC_QUEUE);
        tokio::spawn(forward_resync(calls_rx, coordinator, None));

        let (c, accepted) = call("orders");
        calls_tx.send(c).await.unwrap();
        let r = requests.recv().await.unwrap();
        assert_eq!(
            (r.db.as_str(), r.table.as_str(), r.since),
            ("shop", "orders", None)
        );
        r.reply.send(Ok("queued".into())).unwrap();
        assert_eq!(
            accepted.await.unwrap(),
            ResyncReply::Accepted("queued".into())
        );

        let (c, refused) = call("nope");
        calls_tx.send(c).await.unwrap();
        let r = requests.recv().await.unwrap();
        r.reply.send(Err("no rule".into())).unwrap();
        assert_eq!(
            refused.await.unwrap(),
            ResyncReply::Refused("no rule".into())
        );

        drop(requests);
        let (c, dropped) = call("late");
        calls_tx.send(c).await.unwrap();
        assert!(dropped.await.is_err());
    }
}

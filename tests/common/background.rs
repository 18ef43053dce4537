//! A background SQL load: one connection running generated statements until stopped, for
//! tests that change the table while the daemon streams or the sink misbehaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// Runs statements on its connection until [`Background::stop`].
pub struct Background {
    stop: Arc<AtomicBool>,
    statements: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Runs `next(k)` for k = 0, 1, …: statement k (several allowed, `;`-separated) and the
    /// pause after it. A statement that fails fails the test when stopped.
    pub fn spawn(
        mut conn: Conn,
        mut next: impl FnMut(u64) -> (String, Duration) + Send + 'static,
    ) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let statements = Arc::new(AtomicU64::new(0));
        let (stop_flag, count) = (Arc::clone(&stop), Arc::clone(&statements));
        let task = tokio::spawn(async move {
            let mut k = 0u64;
            while !stop_flag.load(Ordering::Relaxed) {
                let (sql, pause) = next(k);
                conn.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                count.fetch_add(1, Ordering::Relaxed);
                k += 1;
                tokio::time::sleep(pause).await;
            }
            conn.disconnect().await.ok();
        });
        Background {
            stop,
            statements,
            task,
        }
    }

    /// Stops it; returns the statements it ran.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        self.statements.load(Ordering::Relaxed)
    }
}

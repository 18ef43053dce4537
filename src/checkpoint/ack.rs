//! Per-transaction acknowledgement: every change of a transaction holds an
//! [`AckToken`]; when the last one is resolved and dropped, the transaction's
//! status reaches the tracker through a oneshot channel.
//!
//! A token dropped without being resolved counts as abandoned (e.g. a batch that
//! was still retrying at shutdown), so nothing is ever assumed delivered by default.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::oneshot;

/// Final status of one transaction; the worst status of its changes wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum TxnStatus {
    /// Every change acknowledged by Elasticsearch or dead-lettered.
    Delivered = 0,
    /// Some change was dropped unsent (shutdown, reconnect): stays behind the checkpoint.
    Abandoned = 1,
    /// Some change failed for good (`on_rejected = "fail"`): the daemon must stop.
    Failed = 2,
}

impl TxnStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Delivered,
            1 => Self::Abandoned,
            _ => Self::Failed,
        }
    }
}

struct TxnInner {
    worst: AtomicU8,
    tx: Option<oneshot::Sender<TxnStatus>>,
}

impl Drop for TxnInner {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            // The tracker may be gone at shutdown; nothing to report then.
            let _ = tx.send(TxnStatus::from_u8(self.worst.load(Ordering::Acquire)));
        }
    }
}

/// One change's share of its transaction's acknowledgement.
pub struct AckToken {
    inner: Arc<TxnInner>,
    resolved: bool,
}

impl AckToken {
    /// Opens a transaction: the first token, and the receiver of its final status.
    pub fn open() -> (AckToken, oneshot::Receiver<TxnStatus>) {
        let (tx, rx) = oneshot::channel();
        let inner = Arc::new(TxnInner {
            worst: AtomicU8::new(TxnStatus::Delivered as u8),
            tx: Some(tx),
        });
        (
            AckToken {
                inner,
                resolved: false,
            },
            rx,
        )
    }

    /// Records this change's outcome and releases the token.
    pub fn resolve(mut self, status: TxnStatus) {
        self.inner.worst.fetch_max(status as u8, Ordering::AcqRel);
        self.resolved = true;
    }
}

impl Clone for AckToken {
    /// A new, unresolved share of the same transaction.
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            resolved: false,
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if !self.resolved {
            self.inner
                .worst
                .fetch_max(TxnStatus::Abandoned as u8, Ordering::AcqRel);
        }
    }
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AckToken")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn status_is_sent_when_last_token_goes() {
        let (t, mut rx) = AckToken::open();
        let a = t.clone();
        let b = t.clone();
        t.resolve(TxnStatus::Delivered);
        a.resolve(TxnStatus::Delivered);
        assert!(rx.try_recv().is_err(), "one token still out");
        b.resolve(TxnStatus::Delivered);
        assert_eq!(rx.await.unwrap(), TxnStatus::Delivered);
    }

    #[tokio::test]
    async fn unresolved_drop_is_abandoned_and_failure_wins() {
        let (t, rx) = AckToken::open();
        let a = t.clone();
        t.resolve(TxnStatus::Delivered);
        drop(a);
        assert_eq!(rx.await.unwrap(), TxnStatus::Abandoned);

        let (t, rx) = AckToken::open();
        let a = t.clone();
        a.resolve(TxnStatus::Failed);
        drop(t);
        assert_eq!(rx.await.unwrap(), TxnStatus::Failed);
    }
}

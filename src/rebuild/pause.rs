//! The test hook of the rebuild (`BINLOG2ES_REBUILD_PAUSE`): holds a rebuild at one point so
//! that a test can kill the daemon exactly there and check that a restart finishes it.

use std::sync::OnceLock;

use tokio_util::sync::CancellationToken;
use tracing::info;

/// The environment variable naming the point to hold at.
pub const PAUSE_VAR: &str = "BINLOG2ES_REBUILD_PAUSE";

/// Where a rebuild can be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    /// After the first chunk copied into the new index.
    Copy,
    /// After the copies ended, before the switch is prepared.
    CatchUp,
    /// Just before the `_aliases` request.
    BeforeSwitch,
    /// Just after it was answered, before the checkpoint records it.
    AfterSwitch,
}

impl PausePoint {
    /// The point's name, as the variable gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Copy => "copy",
            Self::CatchUp => "catch-up",
            Self::BeforeSwitch => "before-switch",
            Self::AfterSwitch => "after-switch",
        }
    }
}

/// Holds here until `stop` when the variable names `point`; returns at once otherwise.
pub async fn pause_point(point: PausePoint, stop: &CancellationToken) {
    static WANTED: OnceLock<Option<String>> = OnceLock::new();
    let wanted = WANTED.get_or_init(|| std::env::var(PAUSE_VAR).ok());
    if wanted.as_deref() == Some(point.name()) {
        info!(point = point.name(), "Rebuild paused for a test.");
        stop.cancelled().await;
    }
}

//! Signals: SIGTERM or SIGINT start a drain (SPEC §2.7).

use std::future::Future;

/// A future that resolves on the first SIGTERM or SIGINT. The handlers are installed now,
/// not when the future is first polled, so a signal that arrives while the daemon is still
/// starting is kept for the drain instead of killing the process (exit 143). Must be called
/// inside the runtime (e.g. under `Runtime::enter`).
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        );
        async move {
            match handlers {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                // Without signal handlers we can still stop on Ctrl-C.
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

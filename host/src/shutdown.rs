//! The shutdown signal: a `watch` channel that turns true once, on
//! SIGINT/SIGTERM. Sources stop reading, transforms save state, sinks cut
//! their retries short (see the README's delivery guarantees).

use tokio::sync::watch;

/// Resolves once shutdown is asked for (never, if nobody can ask any more).
pub async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask any more; wait forever.
            std::future::pending::<()>().await;
        }
    }
}

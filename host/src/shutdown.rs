//! The shutdown signal: a `watch` channel that turns true once, on
//! SIGINT/SIGTERM. Sources stop reading, transforms save state, sinks cut
//! their retries short (see the README's delivery guarantees).
//!
//! The moment it turned true is kept too ([`mark`], [`elapsed`]): the time
//! a shutdown may take is one budget counted from then, not a deadline per
//! transform or per batch that adds up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// When the shutdown began (one pipeline per process runs at a time).
static STARTED: Mutex<Option<Instant>> = Mutex::new(None);

/// A run begins: no shutdown yet.
pub fn reset() {
    if let Ok(mut at) = STARTED.lock() {
        *at = None;
    }
}

/// The shutdown begins now (the first call counts).
pub fn mark() {
    if let Ok(mut at) = STARTED.lock() {
        at.get_or_insert_with(Instant::now);
    }
}

/// How long ago the shutdown began; `None` before it did.
pub fn elapsed() -> Option<Duration> {
    STARTED.lock().ok()?.map(|at| at.elapsed())
}

/// What is left of `budget` counted from the shutdown (all of it before).
pub fn remaining(budget: Duration) -> Duration {
    elapsed().map_or(budget, |e| budget.saturating_sub(e))
}

/// Resolves once shutdown is asked for (never, if nobody can ask any more).
pub async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            // The sender is gone: nobody can ask any more; wait forever.
            std::future::pending::<()>().await;
        }
    }
}

//! The processing time, the only clock a plugin ever sees (as an argument).

use std::time::{SystemTime, UNIX_EPOCH};

/// The processing time passed to plugins, Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

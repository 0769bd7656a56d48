//! Calls into the host, each a safe wrapper around one import of
//! [`HOST_MODULE`](crate::abi::HOST_MODULE). The raw imports are in `abi`,
//! compiled only for wasm32; natively `stub_abi` stands in with the same
//! functions, so a rule that logs still builds and runs as plain Rust.

use crate::abi::LogLevel;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(not(target_arch = "wasm32"))]
mod stub_abi;
#[cfg(not(target_arch = "wasm32"))]
use stub_abi as abi;

/// Logs a line through the host (natively: to stderr).
pub fn log(level: LogLevel, msg: &str) {
    // SAFETY: `msg` is `len` readable bytes for the whole call; the host
    // reads them from our memory, bounds-checked, and keeps no pointer.
    unsafe { abi::log(level as i32, msg.as_ptr(), msg.len()) }
}

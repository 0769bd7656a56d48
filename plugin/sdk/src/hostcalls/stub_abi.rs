//! The native stand-in for `abi.rs`: the same functions with the same
//! signatures, doing natively what the host would (a log line goes to
//! stderr), so the SDK and a rule build, run and test outside WebAssembly.

use crate::abi::LogLevel;

/// What the host's `log` does, on stderr.
///
/// # Safety
///
/// `ptr` points at `len` readable bytes, as the import's contract says.
pub unsafe fn log(level: i32, ptr: *const u8, len: usize) {
    // SAFETY: the caller's contract.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    let msg = String::from_utf8_lossy(bytes);
    eprintln!("plugin {:?}: {msg}", LogLevel::from_u32(level as u32));
}

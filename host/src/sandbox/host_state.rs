//! What a store holds for its instance: its resource limits, and the
//! budget of log lines the guest may write per call.

use std::sync::Arc;

use rulebox_abi as abi;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

use super::printable::printable;
use super::runtime::Limits;

/// What a store holds for its instance.
pub struct HostState {
    pub(super) limits: StoreLimits,
    plugin: Arc<str>,
    /// Guest log lines allowed before the next call resets the budget.
    pub(super) log_budget: u32,
    pub logs_dropped: u64,
    rng: u64,
}

impl HostState {
    pub(super) const LOG_BUDGET: u32 = 32;

    pub(super) fn new(plugin: Arc<str>, limits: &Limits) -> HostState {
        HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .instances(1)
                .memories(1)
                .tables(8)
                .table_elements(1 << 20)
                .build(),
            plugin,
            log_budget: Self::LOG_BUDGET,
            logs_dropped: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }

    fn take_log_budget(&mut self) -> bool {
        if self.log_budget == 0 {
            self.logs_dropped += 1;
            return false;
        }
        self.log_budget -= 1;
        true
    }

    pub(crate) fn log_guest_output(&mut self, fd: i32, text: &[u8]) {
        if self.take_log_budget() {
            let text = printable(text.trim_ascii_end());
            tracing::warn!(plugin = %self.plugin, fd, output = %text, "plugin wrote to stdout/stderr");
        }
    }

    pub(super) fn log(&mut self, level: u32, text: &[u8]) {
        if !self.take_log_budget() {
            return;
        }
        let text = printable(text);
        let plugin = &*self.plugin;
        match abi::LogLevel::from_u32(level) {
            abi::LogLevel::Error => tracing::error!(plugin, "{text}"),
            abi::LogLevel::Warn => tracing::warn!(plugin, "{text}"),
            abi::LogLevel::Info => tracing::info!(plugin, "{text}"),
            abi::LogLevel::Debug => tracing::debug!(plugin, "{text}"),
        }
    }

    /// xorshift64*: deterministic bytes for `random_get`.
    pub(crate) fn pseudo_random(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            out.extend_from_slice(&self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

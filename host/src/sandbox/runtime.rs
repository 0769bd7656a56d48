//! The process's one wasmtime engine, with epoch interruption driven by a
//! ticker thread, and the limits every instance runs under.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::Engine;

use super::error::PluginError;

/// How often the epoch advances; deadlines are whole multiples of this.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Per-instance limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Longest a single call into the plugin may run.
    pub deadline: Duration,
}

/// The engine and its epoch ticker. One per process.
pub struct Runtime {
    engine: Engine,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl Runtime {
    pub fn new() -> Result<Runtime, PluginError> {
        let mut cfg = wasmtime::Config::new();
        cfg.epoch_interruption(true);
        cfg.cranelift_opt_level(wasmtime::OptLevel::Speed);
        cfg.max_wasm_stack(1 << 20);
        let engine = Engine::new(&cfg).map_err(|e| PluginError::Trap(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (engine.clone(), stop.clone());
        let ticker = std::thread::Builder::new()
            .name("rulebox-epoch".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })
            .ok();
        Ok(Runtime {
            engine,
            stop,
            ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

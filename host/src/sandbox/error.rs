//! Why a plugin could not be loaded or a call into it failed.

use std::path::PathBuf;
use std::time::Duration;

use rulebox_abi::FrameError;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin module {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin module {path} is not a valid WebAssembly module: {message}")]
    Compile { path: PathBuf, message: String },
    #[error("plugin module {path} is refused before it runs: {message}")]
    TooCostly { path: PathBuf, message: String },
    #[error("plugin module {path} is refused before it is compiled: {source}")]
    Signature {
        path: PathBuf,
        source: super::signature::SignatureError,
    },
    #[error("plugin module {path} breaks the rulebox contract: {message}")]
    Contract { path: PathBuf, message: String },
    #[error("plugin ABI version {found} is not supported (this host speaks version {expected})")]
    AbiVersion { found: i64, expected: u32 },
    #[error("plugin rejected its configuration: {0}")]
    Config(String),
    #[error("plugin exceeded its deadline of {0:?}")]
    Deadline(Duration),
    #[error("plugin trapped: {0}")]
    Trap(String),
    #[error("plugin returned a bad frame: {0}")]
    Frame(FrameError),
    #[error("plugin returned an error: {0}")]
    Guest(String),
    #[error("plugin could not provide a buffer of {0} bytes")]
    Reserve(usize),
    /// The host's work resolving the plugin's path plan for a batch of
    /// this many bytes passed its budget (`PLAN_WORK_PER_BYTE`).
    #[error(
        "resolving the plugin's path plan for a batch of {0} bytes passed the host's budget \
         ({per_byte} units a byte + {floor})",
        per_byte = rulebox_abi::frame::index::PLAN_WORK_PER_BYTE,
        floor = rulebox_abi::frame::index::PLAN_WORK_FLOOR
    )]
    PlanBudget(usize),
}

impl PluginError {
    /// Every word [`PluginError::reason`] gives, once.
    pub const REASONS: [&'static str; 9] = [
        "deadline",
        "trap",
        "bad_frame",
        "plugin_error",
        "no_buffer",
        "plan_budget",
        "config",
        "contract",
        "load",
    ];

    /// A short, stable word for counters, tags and dead-letter records.
    pub fn reason(&self) -> &'static str {
        match self {
            PluginError::Deadline(_) => "deadline",
            PluginError::Trap(_) => "trap",
            PluginError::Frame(_) => "bad_frame",
            PluginError::Guest(_) => "plugin_error",
            PluginError::Reserve(_) => "no_buffer",
            PluginError::PlanBudget(_) => "plan_budget",
            PluginError::Config(_) => "config",
            PluginError::AbiVersion { .. } | PluginError::Contract { .. } => "contract",
            PluginError::Read { .. }
            | PluginError::Compile { .. }
            | PluginError::TooCostly { .. }
            | PluginError::Signature { .. } => "load",
        }
    }
}

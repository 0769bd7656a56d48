//! Transforms: `[transforms.<id>]` tables. One kind today, the sandboxed
//! wasm plugin ([`wasm`]); a new kind is a module here and a variant below.

pub mod wasm;

use serde::Deserialize;

use crate::config::Problem;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformConfig {
    /// A sandboxed plugin.
    Wasm(wasm::WasmTransformConfig),
}

impl TransformConfig {
    pub fn inputs(&self) -> &[String] {
        match self {
            TransformConfig::Wasm(w) => &w.inputs,
        }
    }

    /// Checks that need no plugin.
    pub fn check(&self) -> Vec<Problem> {
        match self {
            TransformConfig::Wasm(w) => w.check(),
        }
    }
}

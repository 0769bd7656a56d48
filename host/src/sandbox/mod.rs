//! The sandbox: one wasmtime [`Engine`](wasmtime::Engine) for the process
//! ([`Runtime`]), a compiled [`Plugin`] per module (validated against the
//! contract once, cached on disk as native code), and an [`Instance`] per
//! transform with a memory cap and an epoch deadline on every call.
//!
//! Invariant: nothing the guest returns is trusted. Pointers, lengths and
//! frames are bounds-checked here or in `rulebox_abi`; a guest can make a
//! call fail, never make the host panic.
//!
//! * `runtime`: the engine, its epoch ticker, per-instance [`Limits`];
//! * `plugin`: loading (compile or cache, contract check, linking);
//! * `contract`: what a module must export and may import;
//! * `signature`: a module's minisign signature, checked before anything
//!   else reads it;
//! * `admission`: caps on a module before and while it compiles, and its
//!   manifest section taken in the same pass;
//! * `manifest`: what a module says about itself (read from that section);
//! * `schema`: the JSON Schema subset a manifest's `config_schema` is read
//!   as, and the check of a configuration against it;
//! * `cache`: compiled native code on disk;
//! * `instance`: a live instance and its typed calls;
//! * `host_state`: what a store holds (limits, the guest's log budget);
//! * `wasi`: the deny-by-default answers to the wasip1 imports;
//! * `printable`: plugin text made safe to log (controls escaped, bounded).

mod admission;
mod cache;
mod contract;
mod error;
mod host_state;
mod instance;
mod manifest;
mod plugin;
mod printable;
mod runtime;
mod schema;
mod signature;
mod wasi;

pub use admission::{CompileLimits, to_wasm};
pub use error::PluginError;
pub use host_state::HostState;
pub use instance::{Events, Indexed, Indexer, Instance};
pub use manifest::Manifest;
pub use plugin::Plugin;
pub use printable::{MAX_PRINTED, printable, printable_str};
pub use runtime::{EPOCH_TICK, Limits, Runtime};
pub use schema::{Finding, Step};
pub use signature::{
    SignatureError, Trust, TrustedKey, Verified, default_signature_path, read_signature,
    signature_key_id,
};

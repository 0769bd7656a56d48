//! The rulebox host: runs sandboxed detection rules inside a log pipeline.
//!
//! Layers, each using only those above it: `batch`, `channel`, `shutdown`,
//! `durable`, `partition`, `codecs`, `config`, `secret`, `tls`, `nats` (the NATS
//! connection), `sandbox`; then the components
//! (`sources`, `transforms`, `sinks`); then `metrics` (their counters in
//! Prometheus' text format) and `api` (the endpoint serving them); then
//! `terminal` (the progress line, tables, `alerts`, `top`); then
//! `topology`, which reads a configuration, builds and runs it,
//! `inspect`, which describes one module, and `scaffold`, which writes a
//! new rule crate from the template. `main.rs` is the command line.
pub mod api;
pub mod batch;
pub mod channel;
pub mod codecs;
pub mod config;
pub mod durable;
pub mod inspect;
pub mod metrics;
pub mod nats;
pub mod partition;
pub mod ruletest;
pub mod sandbox;
pub mod scaffold;
pub mod secret;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod terminal;
pub mod tls;
pub mod topology;
pub mod transforms;

#[cfg(test)]
mod testing;

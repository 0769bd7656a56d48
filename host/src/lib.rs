//! The rulebox host: runs sandboxed detection rules inside a log pipeline.
pub mod batch;
pub mod config;
pub mod durable;
pub mod exec;
pub mod net;
pub mod pipeline;
pub mod sandbox;
pub mod transform;
pub mod wasi;

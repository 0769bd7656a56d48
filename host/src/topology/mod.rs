//! The topology: a configuration read and checked (`config`, `build`,
//! `mmexternal`), then run (`run`): sources, transforms and sinks wired
//! with bounded channels and driven until the input ends or shutdown.
//!
//! * sources read on their own threads or tasks and cut input into
//!   [`Batch`](crate::batch::Batch)es, forwarded to each consumer
//!   (`forward`);
//! * each transform is an async task (or, with `workers > 1`, worker
//!   threads) calling its plugin in place;
//! * sinks write on blocking threads or deliver as async tasks.
//!
//! Only sources and sinks do I/O.

mod build;
mod config;
mod forward;
mod mmexternal;
mod run;
mod summary;

pub use build::{Built, build};
pub use config::{Loaded, PipelineConfig};
pub use run::run;
pub use summary::{Summary, peak_rss_kib, table as summary_table};

//! The `null` sink: takes events, counts them and lets them go (their acks
//! released at once). For benchmarks, and for outputs a pipeline must read
//! but does not keep.

use std::sync::atomic::Ordering;

use serde::Deserialize;

use super::component::{Sink, SinkContext};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullConfig {
    pub inputs: Vec<String>,
}

impl Sink for NullConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn start(&self, cx: SinkContext) -> tokio::task::JoinHandle<()> {
        let SinkContext { mut rx, stats, .. } = cx;
        tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                stats.received(&b);
                stats.events.fetch_add(b.count() as u64, Ordering::Relaxed);
                stats.bytes.fetch_add(b.bytes().len() as u64, Ordering::Relaxed);
            }
        })
    }
}

//! The `tcp` source: NDJSON lines over TCP connections. A line still
//! unended past `max_line_bytes` closes its connection (the lines before
//! it are kept).

use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use std::sync::Arc;

use super::listener::{
    ListenCtx, Read, Timeouts, accept_loop, bind_tcp, check_address, read_connection, server_tls,
};
use crate::batch::LineSplitter;
use crate::config::{Paths, Problem};
use crate::tls::{self, Served, ServerTls};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    pub address: String,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// A line still unended past this closes its connection.
    #[serde(default = "super::component::default_max_message")]
    pub max_line_bytes: usize,
    /// A line must end this long after its first byte, or its connection
    /// is closed (what was read is passed on).
    #[serde(default = "super::component::default_line_timeout")]
    pub line_timeout_secs: u64,
    /// A connection silent this long (between lines) is closed; 0: never.
    #[serde(default = "super::component::default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// TLS: the certificate and key to serve, and optionally the CAs whose
    /// client certificates are required (the handshake within
    /// `line_timeout_secs`).
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

impl Source for TcpConfig {
    fn check(&self) -> Vec<Problem> {
        check_address(&self.address).into_iter().collect()
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        tls::check_server(self.tls.as_ref(), paths)
    }

    fn start(&self, cx: SourceContext) -> Started {
        let ctx = ListenCtx::new(&cx, self.batch_max_events);
        let Ok(tls) = server_tls(&cx, self.tls.as_ref()) else {
            return Started::listening();
        };
        match bind_tcp(&self.address) {
            Ok(l) => {
                let max_line_bytes = self.max_line_bytes;
                let t = Timeouts::from_secs(self.line_timeout_secs, self.idle_timeout_secs);
                tokio::spawn(accept_loop(ctx, l, move |stream, ctx| {
                    let tls = tls.clone();
                    async move { read_lines(stream, tls, &ctx, t, max_line_bytes).await }
                }));
            }
            Err(e) => ctx.cannot_listen(&self.address, e),
        }
        Started::listening()
    }
}

async fn read_lines(
    stream: tokio::net::TcpStream,
    tls: Option<Arc<Served>>,
    ctx: &ListenCtx,
    t: Timeouts,
    max_line_bytes: usize,
) {
    let mut lines = LineSplitter::new(ctx.batch_max_events);
    read_connection(stream, tls.as_ref(), ctx, t, |chunk, peer, out| {
        if chunk.is_empty() {
            lines.finish(out);
            return Read::Close;
        }
        lines.push(chunk, out);
        if lines.pending() > max_line_bytes {
            tracing::error!(source = %ctx.id, %peer, held = lines.pending(), max_line_bytes, "line over max_line_bytes with no end in sight: connection closed (the lines before it are kept)");
            ctx.error();
            return Read::Close;
        }
        if lines.pending() > 0 {
            Read::Partial
        } else {
            Read::Whole
        }
    })
    .await;
}

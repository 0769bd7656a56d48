//! The `http` source: NDJSON bodies POSTed to one path (gzip accepted),
//! answered `200 {"accepted":N}` once written.

use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use super::http_server::{self, Body, Endpoint, HttpOpts, Refusal, reply, text_reply};
use super::listener::{check_address, server_tls};
use crate::batch::{Batch, LineSplitter};
use crate::config::{Paths, Problem};
use crate::tls::{self, ServerTls};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub address: String,
    #[serde(default = "default_http_path")]
    pub path: String,
    #[serde(default = "super::component::default_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    #[serde(default = "super::component::default_ack_timeout")]
    pub ack_timeout_secs: u64,
    /// Longest a client takes to send a request's headers, and longest a
    /// kept-alive connection may stay idle.
    #[serde(default = "super::component::default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Longest a client takes to send a request's body (408 after it).
    #[serde(default = "super::component::default_body_timeout")]
    pub body_timeout_secs: u64,
    /// HTTPS: the certificate and key to serve, and optionally the CAs
    /// whose client certificates are required.
    #[serde(default)]
    pub tls: Option<ServerTls>,
}

fn default_http_path() -> String {
    "/".into()
}

impl Source for HttpConfig {
    fn check(&self) -> Vec<Problem> {
        check_address(&self.address).into_iter().collect()
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        tls::check_server(self.tls.as_ref(), paths)
    }

    fn start(&self, cx: SourceContext) -> Started {
        let opts = HttpOpts {
            max_body_bytes: self.max_body_bytes,
            ack_timeout: Duration::from_secs(self.ack_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            tls: None,
        };
        let Ok(tls) = server_tls(&cx, self.tls.as_ref()) else {
            return Started::listening();
        };
        let opts = HttpOpts { tls, ..opts };
        let path = Ndjson {
            path: self.path.clone(),
        };
        http_server::start(&cx, &self.address, self.batch_max_events, opts, path)
    }
}

/// NDJSON bodies on this path.
struct Ndjson {
    path: String,
}

impl Endpoint for Ndjson {
    type Route = ();

    fn route(&self, req: &Request<Incoming>) -> Result<(), hyper::Response<Body>> {
        if req.uri().path() != self.path {
            return Err(text_reply(404, "not found"));
        }
        Ok(())
    }

    fn read(&self, _: (), body: &[u8], _: Option<&str>, out: &mut Batch) -> Result<(), Refusal> {
        let mut s = LineSplitter::new(usize::MAX);
        let mut lines = Vec::new();
        s.push(body, &mut lines);
        s.finish(&mut lines);
        lines.into_iter().for_each(|b| out.extend(&b));
        Ok(())
    }

    fn accepted(&self, events: usize) -> hyper::Response<Body> {
        reply(200, format!("{{\"accepted\":{events}}}"))
    }

    fn busy(&self) -> hyper::Response<Body> {
        text_reply(503, "busy: retry")
    }

    fn undelivered(&self, why: &str) -> hyper::Response<Body> {
        text_reply(503, &format!("not delivered: {why}"))
    }
}

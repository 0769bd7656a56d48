//! The `http` source: NDJSON bodies POSTed to one path (gzip accepted),
//! answered `200 {"accepted":N}` once written. With `tokens`, a request
//! must carry `Authorization: Bearer <token>` (RFC 6750); one without it,
//! or with another token, is answered 401 and counted as refused.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::Request;
use hyper::body::Incoming;
use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use super::http_server::{self, Body, Endpoint, HttpOpts, Refusal, reply, text_reply};
use super::listener::{self, check_address, server_tls};
use crate::batch::{Batch, LineSplitter};
use crate::config::{Paths, Problem};
use crate::secret::{Secret, Tokens};
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
    /// Accepted bearer tokens, each a value or `{ env = ... }` /
    /// `{ file = ... }`; none: every request is taken.
    #[serde(default)]
    pub tokens: Vec<Secret>,
}

fn default_http_path() -> String {
    "/".into()
}

impl Source for HttpConfig {
    fn check(&self) -> Vec<Problem> {
        check_address(&self.address).into_iter().collect()
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        let mut found = tls::check_server(self.tls.as_ref(), paths);
        found.extend(listener::check_tokens(&self.tokens, paths));
        found
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
        let Ok(tokens) = listener::tokens(&cx, &self.tokens) else {
            return Started::listening();
        };
        let opts = HttpOpts { tls, ..opts };
        let path = Ndjson {
            path: self.path.clone(),
            tokens,
        };
        http_server::start(&cx, &self.address, self.batch_max_events, opts, path)
    }
}

/// NDJSON bodies on this path, from holders of one of the tokens (if any).
struct Ndjson {
    path: String,
    tokens: Tokens,
}

impl Endpoint for Ndjson {
    type Route = ();

    fn route(&self, req: &Request<Incoming>) -> Result<(), hyper::Response<Body>> {
        if req.uri().path() != self.path {
            return Err(text_reply(404, "not found"));
        }
        if self.tokens.is_empty() {
            return Ok(());
        }
        let auth = req.headers().get(header::AUTHORIZATION);
        match auth.and_then(|v| v.as_bytes().strip_prefix(b"Bearer ")) {
            Some(t) if self.tokens.accepts(t.trim_ascii()) => Ok(()),
            Some(_) => Err(bearer_refusal("invalid_token", "the token is not accepted")),
            None => Err(bearer_refusal("invalid_request", "a bearer token is required")),
        }
    }

    fn read(&self, _: (), body: &[Bytes], _: Option<&str>, out: &mut Batch) -> Result<(), Refusal> {
        let mut s = LineSplitter::new(usize::MAX);
        let mut lines = Vec::new();
        for frame in body {
            s.push(frame, &mut lines);
        }
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

/// 401 with RFC 6750's challenge (its `error` code) and a JSON text.
fn bearer_refusal(error: &'static str, text: &str) -> hyper::Response<Body> {
    let mut r = text_reply(401, text);
    let challenge = format!("Bearer realm=\"rulebox\", error=\"{error}\"");
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

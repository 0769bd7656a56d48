//! The `splunk_hec` source: Splunk's HTTP Event Collector.
//! `/services/collector/event` (and `/services/collector`) take one or more
//! concatenated envelopes, `/raw` one event per line, `/health` answers
//! healthy; the token is checked, gzip bodies are inflated, and answers and
//! codes are Splunk's. No indexer acknowledgement: a 200 already means
//! delivered.

use std::time::Duration;

use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header;
use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use super::http_server::{self, Body, Endpoint, HttpOpts, Refusal, reply, whole};
use super::listener::{self, check_address, server_tls};
use crate::batch::Batch;
use crate::codecs::hec;
use crate::config::{Paths, Problem};
use crate::secret::{Secret, Tokens};
use crate::tls::{self, ServerTls};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    pub address: String,
    /// Accepted tokens (`Authorization: Splunk <token>`), each a value or
    /// `{ env = ... }` / `{ file = ... }` (see `secret`).
    pub tokens: Vec<Secret>,
    #[serde(default = "super::component::default_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default = "super::component::default_batch_events")]
    pub batch_max_events: usize,
    /// Longest a request waits to be taken and written before it is
    /// answered 503 (the client then retries).
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

impl Source for SplunkHecConfig {
    fn check(&self) -> Vec<Problem> {
        let mut found: Vec<Problem> = check_address(&self.address).into_iter().collect();
        if self.tokens.is_empty() {
            found.push(Problem::at("tokens", "at least one token is required"));
        }
        found
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
        let hec = Collector { tokens };
        http_server::start(&cx, &self.address, self.batch_max_events, opts, hec)
    }
}

/// The collector's endpoints, with the accepted tokens.
struct Collector {
    tokens: Tokens,
}

/// What a collector request carries.
#[derive(Clone, Copy)]
enum Carries {
    Envelopes,
    Raw,
}

impl Endpoint for Collector {
    type Route = Carries;

    fn route(&self, req: &Request<Incoming>) -> Result<Carries, hyper::Response<Body>> {
        let carries = match req.uri().path().trim_end_matches('/') {
            "/services/collector/health" | "/services/collector/health/1.0" => {
                return Err(reply(200, hec::HEALTHY));
            }
            "/services/collector"
            | "/services/collector/event"
            | "/services/collector/event/1.0" => Carries::Envelopes,
            "/services/collector/raw" | "/services/collector/raw/1.0" => Carries::Raw,
            "/services/collector/ack" => {
                return Err(reply(400, r#"{"text":"ACK is disabled","code":14}"#));
            }
            _ => return Err(reply(404, hec::NOT_FOUND)),
        };
        let auth = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        check_token(auth, &self.tokens).map_err(|(status, body)| reply(status, body))?;
        Ok(carries)
    }

    fn read(
        &self,
        route: Carries,
        body: &[Bytes],
        query: Option<&str>,
        out: &mut Batch,
    ) -> Result<(), Refusal> {
        let read = match route {
            Carries::Envelopes => hec::read_event_frames(body, out),
            Carries::Raw => hec::read_raw_body(&whole(body), query, out),
        };
        read.map_err(|e| {
            let (status, body) = e.response();
            Refusal {
                status,
                body,
                reason: format!("{e:?}"),
            }
        })
    }

    fn accepted(&self, _events: usize) -> hyper::Response<Body> {
        reply(200, hec::SUCCESS)
    }

    fn busy(&self) -> hyper::Response<Body> {
        reply(503, hec::BUSY)
    }

    /// Still 503 with HEC's busy code, so clients keep and resend the
    /// events, but the text says what is wrong.
    fn undelivered(&self, why: &str) -> hyper::Response<Body> {
        let text = format!("Server is busy: {why}");
        let body = serde_json::json!({"text": text, "code": 9}).to_string();
        reply(503, body)
    }
}

/// The `Authorization` header checked against the tokens: `Splunk <token>`
/// (or the bare token, as Vector accepts). Errors are Splunk's.
pub fn check_token(header: Option<&[u8]>, tokens: &Tokens) -> Result<(), (u16, &'static str)> {
    let Some(h) = header else {
        return Err((401, r#"{"text":"Token is required","code":2}"#));
    };
    let token = match h.strip_prefix(b"Splunk ") {
        Some(t) => t,
        None if !h.contains(&b' ') => h,
        None => return Err((401, r#"{"text":"Invalid authorization","code":3}"#)),
    };
    if tokens.accepts(token.trim_ascii()) {
        Ok(())
    } else {
        Err((403, r#"{"text":"Invalid token","code":4}"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let t = Tokens::of(&["abc", "def"]);
        assert!(check_token(Some(b"Splunk def"), &t).is_ok());
        assert!(check_token(Some(b"def"), &t).is_ok());
        assert_eq!(check_token(None, &t).unwrap_err().0, 401);
        assert_eq!(check_token(Some(b"Basic eA=="), &t).unwrap_err().0, 401);
        assert_eq!(check_token(Some(b"Splunk nope"), &t).unwrap_err().0, 403);
    }
}

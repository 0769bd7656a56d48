//! The `opentelemetry` source: OTLP/HTTP logs, `POST /v1/logs` with a
//! protobuf (`application/x-protobuf`) or JSON (`application/json`)
//! `ExportLogsServiceRequest`, gzip accepted. Each log record becomes an
//! event (the mapping is in [`crate::codecs::otlp`]). Answered as the
//! OTLP/HTTP specification says, in the request's encoding: 200 with an
//! `ExportLogsServiceResponse` once every sink wrote the events; 400 with a
//! `google.rpc.Status` for a body that is not a request (refused whole:
//! nothing of it goes on); 503 with a `Status` when busy or a sink gave
//! the events up (the client retries); 413 for a body over
//! `max_body_bytes`; 415 for another content type.

use std::time::Duration;

use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use serde::Deserialize;

use super::component::{Source, SourceContext, Started};
use super::http_server::{self, Body, Done, Endpoint, HttpOpts, Refusal, text_reply, whole};
use super::listener::{check_address, server_tls};
use crate::batch::Batch;
use crate::codecs::otlp::{self, Encoding, Status};
use crate::config::{Paths, Problem};
use crate::tls::{self, ServerTls};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpentelemetryConfig {
    /// `host:port` to listen on (OTLP/HTTP's usual port is 4318).
    pub address: String,
    /// The path export requests are POSTed to.
    #[serde(default = "default_logs_path")]
    pub path: String,
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

fn default_logs_path() -> String {
    "/v1/logs".into()
}

impl Source for OpentelemetryConfig {
    fn check(&self) -> Vec<Problem> {
        let mut found: Vec<Problem> = check_address(&self.address).into_iter().collect();
        if !self.path.starts_with('/') {
            found.push(Problem::at("path", "must start with \"/\""));
        }
        found
    }

    fn check_paths(&self, paths: &Paths) -> Vec<Problem> {
        tls::check_server(self.tls.as_ref(), paths)
    }

    fn start(&self, cx: SourceContext) -> Started {
        let Ok(tls) = server_tls(&cx, self.tls.as_ref()) else {
            return Started::listening();
        };
        let opts = HttpOpts {
            max_body_bytes: self.max_body_bytes,
            ack_timeout: Duration::from_secs(self.ack_timeout_secs),
            header_timeout: Duration::from_secs(self.header_timeout_secs.max(1)),
            body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
            tls,
        };
        let logs = Logs {
            path: self.path.clone(),
        };
        http_server::start(&cx, &self.address, self.batch_max_events, opts, logs)
    }
}

/// The logs endpoint.
struct Logs {
    path: String,
}

impl Endpoint for Logs {
    /// A request's body encoding, which its answer uses too.
    type Route = Encoding;

    fn route(&self, req: &Request<Incoming>) -> Result<Encoding, hyper::Response<Body>> {
        if req.uri().path() != self.path {
            return Err(text_reply(404, "not found"));
        }
        req.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| Encoding::from_content_type(v.as_bytes()))
            .ok_or_else(|| {
                let why = "Content-Type must be application/x-protobuf or application/json";
                status_reply(415, Encoding::Json, otlp::INVALID_ARGUMENT, why)
            })
    }

    fn read(&self, enc: Encoding, body: &[Bytes], _: Option<&str>, out: &mut Batch) -> Result<(), Refusal> {
        let mark = out.len_bytes();
        otlp::read_request(&whole(body), enc, out).map_err(|e| {
            out.truncate_bytes(mark.0, mark.1);
            Refusal {
                status: 400,
                body: String::new(),
                reason: e.to_string(),
            }
        })
    }

    fn accepted(&self, _events: usize) -> hyper::Response<Body> {
        self.answer(&Encoding::Json, Done::Accepted(0))
    }

    fn busy(&self) -> hyper::Response<Body> {
        self.answer(&Encoding::Json, Done::Busy)
    }

    fn answer(&self, enc: &Encoding, done: Done) -> hyper::Response<Body> {
        let enc = *enc;
        match done {
            Done::Accepted(_) => {
                let body = otlp::encode(&ExportLogsServiceResponse::default(), enc);
                encoded_reply(200, enc, body)
            }
            Done::Busy => status_reply(503, enc, otlp::UNAVAILABLE, "busy: retry"),
            Done::Undelivered(why) => {
                status_reply(503, enc, otlp::UNAVAILABLE, &format!("not delivered: {why}"))
            }
            Done::Refused(r) => status_reply(r.status, enc, otlp::INVALID_ARGUMENT, &r.reason),
        }
    }
}

/// An OTLP error answer: a `google.rpc.Status` in `enc`.
fn status_reply(status: u16, enc: Encoding, code: i32, message: &str) -> hyper::Response<Body> {
    let s = Status {
        code,
        message: message.to_string(),
    };
    encoded_reply(status, enc, otlp::encode(&s, enc))
}

fn encoded_reply(status: u16, enc: Encoding, body: Vec<u8>) -> hyper::Response<Body> {
    let mut r = http_server::reply(status, Bytes::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    r
}

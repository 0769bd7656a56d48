//! The operator's endpoint, `[api]`: `GET /health` and `GET /metrics`
//! (Prometheus text format, see [`crate::metrics`]) on one small HTTP
//! server. It is started before every component and serves until the run
//! ends, shutdown included, so a probe sees the pipeline go from starting
//! (503) to ready (200) to stopping (503). A quarantined plugin makes it
//! unhealthy too (503): events still flow, but no longer through the rule.
//!
//! An operator endpoint, not a data path: a few connections at a time, no
//! keep-alive, headers read within [`HEADER_TIMEOUT`] and a connection
//! closed after [`CONNECTION_TIMEOUT`] whatever it does.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::config::Problem;
use crate::metrics::{Registry, render};
use crate::sources::check_address;

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 4;
/// Longest a client takes to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a connection stays open.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

/// `[api]`: where the health and metrics endpoint listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// `host:port` to listen on, e.g. `"127.0.0.1:8686"`.
    pub address: String,
}

impl ApiConfig {
    /// Checks that need nothing started (each problem found).
    pub fn check(&self) -> Vec<Problem> {
        check_address(&self.address).into_iter().collect()
    }
}

/// What the endpoint reports: set by the topology once every component
/// started (until then it is not ready and has no metrics).
#[derive(Default)]
pub struct Status {
    registry: OnceLock<Registry>,
}

impl Status {
    /// Every component started: here are their counters.
    pub fn started(&self, registry: Registry) {
        let _ = self.registry.set(registry);
    }

    /// The answer to `/health`: status and a word of why.
    fn health(&self) -> (u16, String) {
        if crate::shutdown::elapsed().is_some() {
            return (503, "shutting down".into());
        }
        let Some(r) = self.registry.get() else {
            return (503, "starting".into());
        };
        let quarantined: Vec<&str> = (r.transforms.iter())
            .filter(|(_, t, _)| t.quarantined.load(Ordering::Relaxed) > 0)
            .map(|(id, _, _)| id.as_str())
            .collect();
        if quarantined.is_empty() {
            (200, "ok".into())
        } else {
            (503, format!("quarantined: {}", quarantined.join(", ")))
        }
    }

    fn metrics(&self) -> String {
        self.registry.get().map(render).unwrap_or_default()
    }
}

/// Binds `cfg.address` now (a taken port is an error at start) and serves
/// `status` there until the task is aborted.
pub fn start(cfg: &ApiConfig, status: Arc<Status>) -> std::io::Result<JoinHandle<()>> {
    let l = std::net::TcpListener::bind(&cfg.address)?;
    l.set_nonblocking(true)?;
    let l = TcpListener::from_std(l)?;
    if let Ok(a) = l.local_addr() {
        tracing::info!(address = %a, "api listening");
    }
    Ok(tokio::spawn(serve(l, status)))
}

async fn serve(listener: TcpListener, status: Arc<Status>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "api: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let status = status.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let status = status.clone();
                async move { Ok::<_, Infallible>(answer(&status, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

/// `GET /health`, `GET /metrics`; other paths 404, other methods 405.
fn answer(status: &Status, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/health" && path != "/metrics" {
        return reply(404, "text/plain; charset=utf-8", "not found\n".into());
    }
    if req.method() != Method::GET {
        let mut r = reply(405, "text/plain; charset=utf-8", "only GET\n".into());
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if path == "/health" {
        let (code, why) = status.health();
        return reply(code, "text/plain; charset=utf-8", format!("{why}\n"));
    }
    let ctype = "text/plain; version=0.0.4; charset=utf-8";
    reply(200, ctype, status.metrics())
}

fn reply(code: u16, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_is_checked() {
        let bad = ApiConfig {
            address: "127.0.0.1:86860".into(),
        };
        assert_eq!(bad.check().len(), 1);
        let good = ApiConfig {
            address: "127.0.0.1:8686".into(),
        };
        assert!(good.check().is_empty());
    }
}

//! An HTTP/1.1 client for the HTTP sinks: one kept-alive connection
//! (reconnected as needed; TLS for `https://`), a POST per body, the
//! answer sorted into delivered, worth retrying (connection errors, TLS
//! failures, 5xx, 429, 408), or not.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::delivery::{Failure, Target};
use crate::config::{Paths, Problem};
use crate::secret::Secret;
use crate::tls::{self, ClientTls, Tls};

type Body = Full<Bytes>;

/// A network sink's request headers: `content-type`, `content-encoding:
/// gzip` when `gzip`, then the user's `extra` ones, their values revealed
/// by `paths` (none: empty values, for checks that read no secret).
pub fn headers(
    content_type: &str,
    gzip: bool,
    extra: &BTreeMap<String, Secret>,
    paths: Option<&Paths>,
) -> Result<Vec<(String, String)>, String> {
    let mut h = vec![("content-type".to_string(), content_type.to_string())];
    if gzip {
        h.push(("content-encoding".into(), "gzip".into()));
    }
    for (k, v) in extra {
        let value = match paths {
            Some(p) => v.reveal(p).map_err(|e| format!("headers.{k}: {e}"))?,
            None => String::new(),
        };
        h.push((k.clone(), value));
    }
    Ok(h)
}

pub struct HttpTarget {
    /// host:port to connect to.
    authority: String,
    host: String,
    https: bool,
    tls: Option<Tls>,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    sender: Option<hyper::client::conn::http1::SendRequest<Body>>,
}

impl HttpTarget {
    /// `uri` must be `http://host[:port]/path`; `headers` are sent on every
    /// request (with the content type and, when set, `Content-Encoding`).
    pub fn new(
        uri: &str,
        headers: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<HttpTarget, String> {
        let u: hyper::Uri = uri.parse().map_err(|e| format!("bad URI {uri:?}: {e}"))?;
        let https = match u.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "{uri}: the URI must start with http:// or https://"
                ));
            }
        };
        let host = u.host().ok_or_else(|| format!("{uri}: no host"))?;
        let port = u.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let path = u
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string());
        let headers = headers
            .into_iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| format!("header {k:?}: {e}"))?;
                // The error does not quote the value: it may be a secret.
                let mut value =
                    HeaderValue::from_str(&v).map_err(|e| format!("header {k:?}: {e}"))?;
                value.set_sensitive(true);
                Ok((name, value))
            })
            .collect::<Result<_, String>>()?;
        Ok(HttpTarget {
            authority,
            host: host.to_string(),
            https,
            tls: None,
            path,
            headers,
            timeout,
            sender: None,
        })
    }

    /// With `https://`, TLS as `tls` says (default: verified against the
    /// system's roots). `tls` on an `http://` endpoint is an error.
    pub fn with_tls(mut self, tls: Option<&ClientTls>, paths: &Paths) -> Result<Self, String> {
        match (self.https, tls) {
            (false, None) => {}
            (false, Some(_)) => return Err("tls applies to https:// endpoints".into()),
            (true, tls) => {
                let tls = tls.cloned().unwrap_or_default();
                self.tls = Some((tls.config(paths)?, tls.name_for(&self.host)?));
            }
        }
        Ok(self)
    }

    async fn connect(&mut self) -> Result<(), Failure> {
        let stream = tls::connect(&self.authority, self.timeout, self.tls.as_ref())
            .await
            .map_err(Failure::Retry)?;
        let sender = handshake(stream)
            .await
            .map_err(|e| Failure::Retry(format!("handshake {}: {e}", self.authority)))?;
        self.sender = Some(sender);
        Ok(())
    }

    async fn post(&mut self, body: &Bytes) -> Result<(), Failure> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            return Err(Failure::Retry("not connected".into()));
        };
        let mut req = Request::post(&self.path)
            .header(header::HOST, &self.authority)
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::Permanent(format!("request: {e}")))?;
        for (k, v) in &self.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        let res = tokio::time::timeout(self.timeout, async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        let (status, answer) = match res {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(Failure::Retry(format!(
                    "POST {}{}: {e}",
                    self.authority, self.path
                )));
            }
            Err(_) => {
                self.sender = None;
                return Err(Failure::Retry(format!(
                    "POST {}{}: no answer within {:?}",
                    self.authority, self.path, self.timeout
                )));
            }
        };
        if status.is_success() {
            return Ok(());
        }
        let msg = format!(
            "POST {}{}: {status} {}",
            self.authority,
            self.path,
            String::from_utf8_lossy(&answer[..answer.len().min(300)])
        );
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            Err(Failure::Retry(msg))
        } else {
            Err(Failure::Permanent(msg))
        }
    }
}

impl Target for HttpTarget {
    async fn deliver(&mut self, body: &Bytes) -> Result<(), Failure> {
        self.post(body).await
    }

    fn another(&self) -> Option<Self> {
        Some(HttpTarget {
            authority: self.authority.clone(),
            host: self.host.clone(),
            https: self.https,
            tls: self.tls.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            timeout: self.timeout,
            sender: None,
        })
    }
}

/// An HTTP/1.1 connection over `io`, its driver spawned.
async fn handshake<S>(io: S) -> Result<hyper::client::conn::http1::SendRequest<Body>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The checks of a sink's `tls` that read files: the configuration is
/// built once to see that it can be.
pub fn check_tls(
    target: Result<HttpTarget, String>,
    tls: Option<&ClientTls>,
    paths: &Paths,
) -> Vec<Problem> {
    match target.and_then(|t| t.with_tls(tls, paths)) {
        Ok(_) => Vec::new(),
        Err(e) => vec![Problem::at("tls", e)],
    }
}

//! A Splunk HEC client and receiver for tests and the HEC throughput
//! benchmark, written the way shippers talk HEC: batches of concatenated
//! envelopes, gzip, `Authorization: Splunk <token>`, retry with back-off on
//! 5xx, 429 and connection errors; and a receiver that records what it got,
//! with failures to inject (answer 500 to the first N requests), a round
//! trip to add (a receiver far away) and the requests it had open at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

type Body = Full<Bytes>;

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

/// An `/event` request body as a shipper sends it: each event in an
/// envelope with a `time`, `host` and `sourcetype`, one envelope a line.
pub fn envelope_body(events: &[Vec<u8>], sourcetype: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, e) in events.iter().enumerate() {
        body.extend_from_slice(
            format!(
                r#"{{"time":{}.{:03},"host":"shipper-{}","sourcetype":"{sourcetype}","event":"#,
                1_700_000_000 + i,
                i % 1000,
                i % 7,
            )
            .as_bytes(),
        );
        body.extend_from_slice(e);
        body.extend_from_slice(b"}\n");
    }
    body
}

/// What a receiver has seen.
#[derive(Debug, Default)]
pub struct Received {
    /// Every envelope accepted, in arrival order.
    pub envelopes: Mutex<Vec<Value>>,
    pub requests: AtomicU64,
    /// Requests answered 500 on purpose.
    pub failed: AtomicU64,
    /// Requests refused for a wrong token.
    pub unauthorised: AtomicU64,
    /// Envelopes accepted (also when they are not kept).
    pub count: AtomicU64,
    /// Requests being answered now, and the most there were at once.
    pub open: AtomicU64,
    pub most_open: AtomicU64,
}

/// How a receiver answers.
#[derive(Debug, Clone)]
pub struct Answering {
    /// Answer 500 to the first this many requests.
    pub fail_first: u64,
    /// Keep the envelopes (else only check and count them: a benchmark's
    /// receiver must stay cheap).
    pub keep: bool,
    /// Answer each request no sooner than this after it came: the round
    /// trip to an indexer far away.
    pub delay: Duration,
    /// Hold every request until this many were open at once (or 10 s
    /// passed): a test sees how many a client sends side by side.
    pub hold_until_open: u64,
}

impl Default for Answering {
    fn default() -> Answering {
        Answering {
            fail_first: 0,
            keep: true,
            delay: Duration::ZERO,
            hold_until_open: 0,
        }
    }
}

/// A HEC endpoint on loopback, on its own thread and runtime.
pub struct Receiver {
    pub address: String,
    pub got: Arc<Received>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on a free loopback port; answers 500 to the first
    /// `fail_first` requests, then accepts (token checked).
    pub fn start(token: &str, fail_first: u64) -> Receiver {
        let how = Answering {
            fail_first,
            ..Answering::default()
        };
        Receiver::start_with(token, how)
    }

    /// Listens on a free loopback port, answering as `how` says.
    pub fn start_with(token: &str, how: Answering) -> Receiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("addr").to_string();
        let got = Arc::new(Received::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (g, token, how) = (got.clone(), token.to_string(), Arc::new(how));
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let token = Arc::new(token);
                tokio::pin!(stop_rx);
                loop {
                    let (stream, _) = tokio::select! {
                        a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                        _ = &mut stop_rx => return,
                    };
                    let (g, token, how) = (g.clone(), token.clone(), how.clone());
                    tokio::spawn(async move {
                        let svc = hyper::service::service_fn(move |req| {
                            let (g, token, how) = (g.clone(), token.clone(), how.clone());
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    answered(req, &g, &token, &how).await,
                                )
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        });
        Receiver {
            address,
            got,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn envelopes(&self) -> Vec<Value> {
        self.got.envelopes.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.got.count.load(Ordering::Relaxed) as usize
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(status: u16, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r
}

/// [`receive`], counted as open meanwhile, and answered as `how` says.
async fn answered(
    req: Request<hyper::body::Incoming>,
    got: &Received,
    token: &str,
    how: &Answering,
) -> Response<Body> {
    let came = tokio::time::Instant::now();
    let open = got.open.fetch_add(1, Ordering::SeqCst) + 1;
    got.most_open.fetch_max(open, Ordering::SeqCst);
    let res = receive(req, got, token, how.fail_first, how.keep).await;
    let held = came + Duration::from_secs(10);
    while got.most_open.load(Ordering::SeqCst) < how.hold_until_open
        && tokio::time::Instant::now() < held
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep_until(came + how.delay).await;
    got.open.fetch_sub(1, Ordering::SeqCst);
    res
}

async fn receive(
    req: Request<hyper::body::Incoming>,
    got: &Received,
    token: &str,
    fail_first: u64,
    keep: bool,
) -> Response<Body> {
    let n = got.requests.fetch_add(1, Ordering::Relaxed);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != format!("Splunk {token}") {
        got.unauthorised.fetch_add(1, Ordering::Relaxed);
        return answer(403, r#"{"text":"Invalid token","code":4}"#);
    }
    let gz = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(400, r#"{"text":"Invalid data format","code":6}"#);
    };
    if n < fail_first {
        got.failed.fetch_add(1, Ordering::Relaxed);
        return answer(500, r#"{"text":"Internal server error","code":8}"#);
    }
    let body = if gz {
        match gunzip(&body) {
            Ok(b) => b,
            Err(_) => return answer(400, r#"{"text":"Invalid data format","code":6}"#),
        }
    } else {
        body.to_vec()
    };
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[allow(dead_code)]
        event: serde::de::IgnoredAny,
    }
    let mut parsed = Vec::new();
    let mut n = 0;
    if keep {
        for v in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
            match v {
                Ok(v) if v.get("event").is_some() => parsed.push(v),
                _ => return answer(400, r#"{"text":"Invalid data format","code":6}"#),
            }
        }
        n = parsed.len();
    } else {
        for v in serde_json::Deserializer::from_slice(&body).into_iter::<Envelope>() {
            if v.is_err() {
                return answer(400, r#"{"text":"Invalid data format","code":6}"#);
            }
            n += 1;
        }
    }
    got.envelopes.lock().unwrap().extend(parsed);
    got.count.fetch_add(n as u64, Ordering::Relaxed);
    answer(200, r#"{"text":"Success","code":0}"#)
}

/// How a client sends.
#[derive(Debug, Clone)]
pub struct ClientOpts {
    pub token: String,
    /// Envelopes per request.
    pub batch: usize,
    pub gzip: bool,
    /// Concurrent clients (each its own connection).
    pub clients: usize,
    pub sourcetype: String,
}

/// What the clients did.
#[derive(Debug, Default)]
pub struct Sent {
    pub events: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
}

/// Request bodies made ahead, as a shipper's buffer holds them: for each
/// client, its bodies (gzipped when the options say so) with the number
/// of events in each.
#[derive(Debug, Clone)]
pub struct Bodies {
    per_client: Vec<Vec<(Bytes, usize)>>,
}

impl Bodies {
    /// The events (JSON object lines) split across `o.clients` clients and
    /// cut into requests of `o.batch` envelopes.
    pub fn make(events: &[Vec<u8>], o: &ClientOpts) -> Bodies {
        let per = events.len().div_ceil(o.clients.max(1)).max(1);
        let per_client = events
            .chunks(per)
            .map(|chunk| {
                chunk
                    .chunks(o.batch.max(1))
                    .map(|batch| {
                        let body = envelope_body(batch, &o.sourcetype);
                        let body = if o.gzip { gzip(&body) } else { body };
                        (Bytes::from(body), batch.len())
                    })
                    .collect()
            })
            .collect();
        Bodies { per_client }
    }
}

/// Sends every event (JSON object lines) to `address` as HEC envelopes,
/// split across `clients` concurrent connections; each request is retried
/// until accepted. Blocks until all are accepted.
pub fn send(address: &str, events: &[Vec<u8>], o: &ClientOpts) -> Arc<Sent> {
    send_bodies(address, Bodies::make(events, o), o)
}

/// [`send`] with the bodies made beforehand (a benchmark times only this).
pub fn send_bodies(address: &str, bodies: Bodies, o: &ClientOpts) -> Arc<Sent> {
    let sent = Arc::new(Sent::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut tasks = Vec::new();
        for bodies in bodies.per_client {
            let (addr, o, sent) = (address.to_string(), o.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = None;
                for (body, n) in bodies {
                    let mut wait = Duration::from_millis(50);
                    loop {
                        sent.requests.fetch_add(1, Ordering::Relaxed);
                        match post(&mut conn, &addr, &o, body.clone()).await {
                            Ok(s) if s.is_success() => break,
                            Ok(s) if s.is_client_error() && s != StatusCode::TOO_MANY_REQUESTS => {
                                panic!("HEC refused a request: {s}")
                            }
                            _ => {
                                sent.retries.fetch_add(1, Ordering::Relaxed);
                                conn = None;
                                tokio::time::sleep(wait).await;
                                wait = (wait * 2).min(Duration::from_secs(2));
                            }
                        }
                    }
                    sent.events.fetch_add(n as u64, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
    });
    sent
}

type Conn = hyper::client::conn::http1::SendRequest<Body>;

async fn post(
    conn: &mut Option<Conn>,
    addr: &str,
    o: &ClientOpts,
    body: Bytes,
) -> Result<StatusCode, String> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = s.set_nodelay(true);
        let (c, driver) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(driver);
        *conn = Some(c);
    }
    let c = conn.as_mut().ok_or("no connection")?;
    let mut req = Request::post("/services/collector/event")
        .header("host", addr)
        .header("authorization", format!("Splunk {}", o.token))
        .header("content-type", "application/json");
    if o.gzip {
        req = req.header("content-encoding", "gzip");
    }
    let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
    c.ready().await.map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(60), c.send_request(req))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

//! What the NATS components share (the `nats` source and sink, and the
//! partition leases and window state of [`crate::partition`] kept in
//! JetStream key-value buckets): how a connection is configured and
//! opened.
//!
//! A connection is opened with retries: an unreachable server is logged
//! (the first time and then every 30 s) and tried again with back-off until
//! it answers or the pipeline shuts down; a refusal that trying again
//! cannot mend (wrong credentials, a TLS failure, an address that does not
//! parse) is an error at once. Once open, the client reconnects by itself
//! without end, and each disconnect and reconnect is logged.

pub mod partitions;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectErrorKind, ConnectOptions, Event};
use serde::Deserialize;

use crate::config::{Paths, Problem};
use crate::secret::Secret;
use crate::tls::ClientTls;

/// `auth = { ... }`: one way to prove who the client is.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// A token (`authorization { token }` in the server's configuration).
    #[serde(default)]
    pub token: Option<Secret>,
    /// A user and password (`authorization { users }`).
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// A `.creds` file (a user JWT and its NKey seed, decentralised auth).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

/// Where and how a component connects; each NATS component's table
/// carries these keys (`url`, `auth`, `tls`, `connect_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    pub url: &'a str,
    pub auth: Option<&'a Auth>,
    pub tls: Option<&'a ClientTls>,
    pub connect_timeout_secs: u64,
}

pub fn default_connect_timeout() -> u64 {
    5
}

/// How many times an open client lost its server. A publisher that sees
/// the count move while it awaits acks knows they will not come (the
/// server cannot answer over a connection that is gone) and tries again
/// at once instead of waiting out the timeout.
#[derive(Debug, Clone, Default)]
pub struct Disconnects(Arc<AtomicU64>);

impl Disconnects {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Returns once the count differs from `seen` (checked every 20 ms).
    pub async fn since(&self, seen: u64) {
        while self.count() == seen {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An open client and its [`Disconnects`].
pub struct Link {
    pub client: Client,
    pub disconnects: Disconnects,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectFailure {
    /// Trying again cannot help (credentials, TLS, the address).
    Refused(String),
    /// The pipeline shut down before the server answered.
    ShutDown,
}

impl Connection<'_> {
    /// Checks that need nothing opened.
    pub fn check(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        for u in self.url.split(',') {
            let u = u.trim();
            let scheme_ok =
                ["nats://", "tls://"].iter().any(|s| u.starts_with(s)) || !u.contains("://");
            if u.is_empty() || !scheme_ok {
                let why = format!(
                    "{u:?}: expected nats://host:port or tls://host:port (several: comma-separated)"
                );
                p.push(Problem::at("url", why));
            }
        }
        if let Some(a) = self.auth {
            let kinds = [
                a.token.is_some(),
                a.user.is_some(),
                a.credentials_file.is_some(),
            ];
            if kinds.iter().filter(|&&k| k).count() != 1 {
                p.push(Problem::at(
                    "auth",
                    "give exactly one of token, user (with password) or credentials_file",
                ));
            }
            if a.user.is_some() != a.password.is_some() {
                p.push(Problem::at("auth", "user and password go together"));
            }
        }
        p
    }

    /// The client options: credentials revealed, TLS read (relative to
    /// `paths`), events logged under `id`.
    async fn options(
        &self,
        id: &str,
        paths: &Paths,
        disconnects: &Disconnects,
    ) -> Result<ConnectOptions, String> {
        let mut o = ConnectOptions::new()
            .name(format!("rulebox {id}"))
            .connection_timeout(Duration::from_secs(self.connect_timeout_secs.max(1)))
            .max_reconnects(None);
        if let Some(a) = self.auth {
            if let Some(t) = &a.token {
                o = o.token(t.reveal(paths).map_err(|e| format!("auth.token: {e}"))?);
            }
            if let (Some(u), Some(p)) = (&a.user, &a.password) {
                let p = p.reveal(paths).map_err(|e| format!("auth.password: {e}"))?;
                o = o.user_and_password(u.clone(), p);
            }
            if let Some(f) = &a.credentials_file {
                let path = paths.resolve(f);
                o = o
                    .credentials_file(&path)
                    .await
                    .map_err(|e| format!("auth.credentials_file {}: {e}", path.display()))?;
            }
        }
        if let Some(t) = self.tls {
            let config = t.config(paths).map_err(|e| format!("tls: {e}"))?;
            o = o.require_tls(true).tls_client_config((*config).clone());
        }
        let id = id.to_string();
        let disconnects = disconnects.clone();
        Ok(o.event_callback(move |e| {
            let id = id.clone();
            if matches!(e, Event::Disconnected) {
                disconnects.0.fetch_add(1, Ordering::Relaxed);
            }
            async move { log_event(&id, e) }
        }))
    }

    /// Opens the connection, retrying while the server cannot be reached
    /// (see the module docs) until `stopping` says the pipeline is ending.
    pub async fn open(
        &self,
        id: &str,
        paths: &Paths,
        stopping: impl Fn() -> bool,
    ) -> Result<Link, ConnectFailure> {
        let mut wait = Duration::from_millis(100);
        let mut last_log: Option<Instant> = None;
        let disconnects = Disconnects::default();
        loop {
            let o = self
                .options(id, paths, &disconnects)
                .await
                .map_err(ConnectFailure::Refused)?;
            let e = match o.connect(self.url).await {
                Ok(client) => {
                    if last_log.is_some() {
                        tracing::info!(component = %id, url = %self.url, "connected to the NATS server");
                    }
                    return Ok(Link {
                        client,
                        disconnects,
                    });
                }
                Err(e) => e,
            };
            match e.kind() {
                ConnectErrorKind::Io | ConnectErrorKind::TimedOut | ConnectErrorKind::Dns => {}
                ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                    return Err(ConnectFailure::Refused(format!(
                        "the NATS server at {} refused the credentials ({e}): check auth",
                        self.url
                    )));
                }
                _ => {
                    return Err(ConnectFailure::Refused(format!(
                        "NATS server at {}: {e}",
                        self.url
                    )));
                }
            }
            if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                tracing::warn!(component = %id, url = %self.url, error = %e, "cannot reach the NATS server; trying again");
                last_log = Some(Instant::now());
            }
            let until = Instant::now() + wait;
            while Instant::now() < until {
                if stopping() {
                    return Err(ConnectFailure::ShutDown);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

fn log_event(id: &str, e: Event) {
    match e {
        Event::Disconnected => {
            tracing::warn!(component = %id, "disconnected from the NATS server; reconnecting")
        }
        Event::Connected => tracing::info!(component = %id, "connected to the NATS server"),
        Event::ClientError(err) => tracing::warn!(component = %id, error = %err, "NATS client"),
        Event::ServerError(err) => tracing::warn!(component = %id, error = %err, "NATS server"),
        Event::SlowConsumer(_) => tracing::warn!(component = %id, "NATS: slow consumer"),
        _ => {}
    }
}

/// A subject token from a value: the characters a subject cannot hold in
/// a token (`.`, `*`, `>`, whitespace, controls) become `_`, and an empty
/// value is `_`.
pub fn subject_token(value: &[u8], out: &mut String) {
    if value.is_empty() {
        out.push('_');
        return;
    }
    for c in String::from_utf8_lossy(value).chars() {
        let bad = matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control();
        out.push(if bad { '_' } else { c });
    }
}

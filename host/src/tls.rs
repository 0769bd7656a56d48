//! TLS for the network sinks (as clients) and the HTTP listeners (as
//! servers): rustls with the ring provider. A sink verifies the server
//! against the system's root certificates (Debian's `ca-certificates`) or
//! the CAs of `ca_file`, for the host it connects to (or `server_name`);
//! `verify = false` accepts any certificate, logged as a warning at every
//! start. A listener serves `cert_file` + `key_file`, and with
//! `client_ca_file` asks every client for a certificate signed by one of
//! those CAs (mutual TLS), refusing the others at the handshake.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Paths;
use crate::secret::Secret;

/// `tls = { ... }` on a network sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// PEM file of the CAs to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host
    /// the sink connects to).
    #[serde(default)]
    pub server_name: Option<String>,
    /// `false`: any certificate is accepted (for tests; logged as a
    /// warning at every start).
    #[serde(default = "yes")]
    pub verify: bool,
    /// A client certificate and its key (PEM), for servers that ask.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The password of an encrypted `key_file` (a secret: a value,
    /// `{ env = ... }` or `{ file = ... }`).
    #[serde(default)]
    pub key_password: Option<Secret>,
}

/// `tls = { ... }` on a listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The password of an encrypted `key_file` (a secret).
    #[serde(default)]
    pub key_password: Option<Secret>,
    /// Ask every client for a certificate signed by one of these CAs.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for ClientTls {
    /// Verify against the system's roots, no client certificate.
    fn default() -> ClientTls {
        ClientTls {
            ca_file: None,
            server_name: None,
            verify: true,
            cert_file: None,
            key_file: None,
            key_password: None,
        }
    }
}

impl ClientTls {
    /// The rustls configuration (reads the files named, resolved by
    /// `paths`); the error names the file and what is wrong. With
    /// `verify = false`, a warning each time.
    pub fn config(&self, paths: &Paths) -> Result<Arc<ClientConfig>, String> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.verify {
            builder.with_root_certificates(self.roots(paths)?)
        } else {
            tracing::warn!(
                "TLS certificate verification is off (tls.verify = false): anyone on the path can read and change what is sent"
            );
            let any = Arc::new(AnyServer(provider()));
            builder.dangerous().with_custom_certificate_verifier(any)
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => {
                let key = key(&paths.resolve(k), self.key_password.as_ref(), paths)?;
                let certs = certs(&paths.resolve(c))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("cert_file/key_file: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("cert_file and key_file go together".into()),
        };
        Ok(Arc::new(config))
    }

    fn roots(&self, paths: &Paths) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(f) => return roots_from(&paths.resolve(f), "ca_file"),
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err("no system root certificates found (install ca-certificates, or give ca_file)".into());
                }
            }
        }
        Ok(roots)
    }

    /// The name to verify for a connection to `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_string()).map_err(|e| format!("server name {name:?}: {e}"))
    }
}

impl ServerTls {
    /// The rustls configuration (reads the files named).
    pub fn config(&self, paths: &Paths) -> Result<Arc<ServerConfig>, String> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &self.client_ca_file {
            Some(f) => {
                let roots = roots_from(&paths.resolve(f), "client_ca_file")?;
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .map_err(|e| format!("client_ca_file: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let chain = certs(&paths.resolve(&self.cert_file))?;
        let key = key(
            &paths.resolve(&self.key_file),
            self.key_password.as_ref(),
            paths,
        )?;
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("cert_file/key_file: {e}"))?;
        Ok(Arc::new(config))
    }
}

/// A listener's TLS as it serves it now: built from its `tls` at start,
/// built again from the same files by [`reload_all`] (SIGHUP). A
/// handshake takes the configuration current as it begins; connections
/// already open keep theirs, so a reload drops none.
pub struct Served {
    source: String,
    spec: ServerTls,
    paths: Paths,
    current: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("source", &self.source)
            .field("spec", &self.spec)
            .finish()
    }
}

/// Every listener's TLS in this process, for [`reload_all`].
static SERVED: Mutex<Vec<Weak<Served>>> = Mutex::new(Vec::new());

impl Served {
    /// `source`'s TLS from `spec` (the files read now), registered for
    /// reloads.
    pub fn new(source: &str, spec: &ServerTls, paths: &Paths) -> Result<Arc<Served>, String> {
        let served = Arc::new(Served {
            source: source.to_string(),
            spec: spec.clone(),
            paths: paths.clone(),
            current: RwLock::new(spec.config(paths)?),
        });
        if let Ok(mut all) = SERVED.lock() {
            all.retain(|w| w.strong_count() > 0);
            all.push(Arc::downgrade(&served));
        }
        Ok(served)
    }

    /// The configuration to start a handshake with.
    pub fn config(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the files again; on an error the current configuration stays.
    fn reload(&self) -> Result<(), String> {
        let fresh = self.spec.config(&self.paths)?;
        match self.current.write() {
            Ok(mut c) => *c = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        Ok(())
    }
}

/// Every listener's certificate, key and client CAs read again (SIGHUP),
/// each logged: reloaded, or why not (it then keeps serving the old ones).
/// Returns how many failed.
pub fn reload_all() -> usize {
    let all: Vec<Arc<Served>> = match SERVED.lock() {
        Ok(all) => all.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return 0,
    };
    let mut failed = 0;
    for s in all {
        let cert = s.paths.resolve(&s.spec.cert_file);
        match s.reload() {
            Ok(()) => {
                tracing::info!(source = %s.source, cert_file = %cert.display(), "tls: certificate reloaded")
            }
            Err(e) => {
                failed += 1;
                tracing::error!(source = %s.source, error = %e, "tls: reload failed; the previous certificate is still served");
            }
        }
    }
    failed
}

/// A listener's `tls` as a configuration, its error placed at `tls`.
pub fn check_server(tls: Option<&ServerTls>, paths: &Paths) -> Vec<crate::config::Problem> {
    let found = tls.map(|t| t.config(paths));
    let err = found.and_then(Result::err);
    err.map(|e| crate::config::Problem::at("tls", e))
        .into_iter()
        .collect()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The CAs of a PEM file (the key `what` names it), as trust roots.
fn roots_from(path: &Path, what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c).map_err(|e| format!("{what}: {e}"))?;
    }
    Ok(roots)
}

/// A client's TLS: its configuration and the name the server's
/// certificate must carry.
pub type Tls = (Arc<ClientConfig>, ServerName<'static>);

/// A connection a sink reads and writes, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// A TCP connection to `address`, then its TLS handshake when `tls` is
/// given, each within `timeout`; the error says which failed.
pub async fn connect(
    address: &str,
    timeout: Duration,
    tls: Option<&Tls>,
) -> Result<Box<dyn Io>, String> {
    let s = within(tokio::time::timeout(timeout, TcpStream::connect(address)).await)
        .map_err(|e| format!("connect {address}: {e}"))?;
    let _ = s.set_nodelay(true);
    let Some((config, name)) = tls else {
        return Ok(Box::new(s));
    };
    let start = tokio_rustls::TlsConnector::from(config.clone()).connect(name.clone(), s);
    let s = within(tokio::time::timeout(timeout, start).await)
        .map_err(|e| format!("TLS with {address}: {e}"))?;
    Ok(Box::new(s))
}

/// A step's result, a timeout made an I/O error.
fn within<T>(r: Result<std::io::Result<T>, tokio::time::error::Elapsed>) -> std::io::Result<T> {
    r.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// The certificates of a PEM file (at least one).
fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let all: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect();
    let all = all.map_err(|e| format!("{}: {e}", path.display()))?;
    if all.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(all)
}

/// The private key of a PEM file; an encrypted one (PKCS#8, PBES2) is
/// decrypted with `password`. Errors name the file, never the password.
fn key(
    path: &Path,
    password: Option<&Secret>,
    paths: &Paths,
) -> Result<PrivateKeyDer<'static>, String> {
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let text = std::fs::read(path).map_err(|e| at(&e))?;
    let encrypted = memchr::memmem::find(&text, b"-----BEGIN ENCRYPTED PRIVATE KEY-----").is_some();
    if memchr::memmem::find(&text, b"Proc-Type: 4,ENCRYPTED").is_some() {
        let why = "a legacy OpenSSL-encrypted key: convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`";
        return Err(at(&why));
    }
    match (encrypted, password) {
        (false, None) => PrivateKeyDer::from_pem_slice(&text).map_err(|e| at(&e)),
        (false, Some(_)) => Err(at(&"key_password is given but the key is not encrypted")),
        (true, None) => Err(at(&"the key is encrypted: give key_password")),
        (true, Some(p)) => {
            let password = p.reveal(paths).map_err(|e| format!("key_password: {e}"))?;
            decrypt_key(&text, &password).map_err(|e| at(&e))
        }
    }
}

/// An `ENCRYPTED PRIVATE KEY` PEM decrypted to its PKCS#8 key.
fn decrypt_key(pem: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, String> {
    let (label, der) = pkcs8::der::pem::decode_vec(pem).map_err(|e| e.to_string())?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(format!(
            "a {label} where an encrypted private key was expected"
        ));
    }
    let info =
        pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|e| e.to_string())?;
    let plain = info
        .decrypt(password)
        .map_err(|_| "cannot decrypt the key: wrong key_password, or a cipher not supported (PBES2 with AES-CBC and PBKDF2 or scrypt)".to_string())?;
    Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
}

/// `verify = false`: every server certificate is taken (signatures are
/// still checked, so the handshake is still one with that server's key).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

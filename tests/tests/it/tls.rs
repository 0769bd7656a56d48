//! TLS through the real binary, with certificates made here (rcgen): a HEC
//! sink posting to a HEC source over HTTPS (rustls at both ends), curl (a
//! TLS client of its own, OpenSSL) against the HTTPS listener, a server
//! whose CA is not trusted refused, `verify = false`, and client
//! certificates required by the listener (mutual TLS).

use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rulebox_tests::{Scratch, free_port, rulebox, spawn_run, stderr, wait_for, wait_listening};

/// A CA, a server certificate for 127.0.0.1, a client certificate and an
/// expired server certificate it signed, as PEM files in `dir`.
pub(crate) fn pki(dir: &Scratch) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rulebox test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    dir.write("ca.pem", ca.pem());
    for (name, sans) in [
        ("server", vec!["127.0.0.1".to_string()]),
        ("client", vec!["client".into()]),
        ("expired", vec!["127.0.0.1".to_string()]),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut cert = CertificateParams::new(sans).unwrap();
        cert.distinguished_name.push(DnType::CommonName, name);
        if name == "expired" {
            cert.not_before = rcgen::date_time_ymd(2020, 1, 1);
            cert.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = cert.signed_by(&key, &ca, &ca_key).unwrap();
        dir.write(&format!("{name}.pem"), cert.pem());
        dir.write(&format!("{name}.key"), key.serialize_pem());
    }
}

/// A HEC source over HTTPS on `port` into `out.ndjson` (with `extra` keys
/// in its `tls`).
fn https_receiver(dir: &Scratch, port: u16, extra: &str) -> std::path::PathBuf {
    let d = dir.0.display();
    let cfg = format!(
        "data_dir = \"{d}/data-back\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{port}\"\ntokens = [\"t\"]\ntls = {{ cert_file = \"{d}/server.pem\", key_file = \"{d}/server.key\"{extra} }}\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"hec\"]\n"
    );
    dir.write("back.toml", cfg)
}

/// A file of `n` events into a HEC sink to `https://127.0.0.1:port`, with
/// `tls` keys; one pass (no follow), retries given up after 2 s.
fn https_sender(dir: &Scratch, name: &str, port: u16, n: usize, tls: &str) -> std::path::PathBuf {
    let d = dir.0.display();
    let events: String = (0..n)
        .map(|i| format!("{{\"n\":{i},\"from\":\"{name}\"}}\n"))
        .collect();
    dir.write(&format!("{name}.ndjson"), events);
    let cfg = format!(
        "data_dir = \"{d}/data-{name}\"\n[sources.in]\ntype = \"file\"\npath = \"{d}/{name}.ndjson\"\n[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"https://127.0.0.1:{port}\"\ntoken = \"t\"\ninputs = [\"in\"]\nretry = {{ initial_ms = 100, max_ms = 200, limit_secs = 2 }}\n{tls}\n"
    );
    dir.write(&format!("{name}.toml"), cfg)
}

fn lines_from(dir: &Scratch, who: &str) -> usize {
    std::fs::read_to_string(dir.path("out.ndjson"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&format!("\"from\":\"{who}\"")))
        .count()
}

fn curl(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("curl")
        .args(["-s", "-m", "10"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_hec_sink_posts_over_https_and_verifies_the_server() {
    let dir = Scratch::new("tls");
    pki(&dir);
    let port = free_port();
    let back = spawn_run(&https_receiver(&dir, port, ""), &dir.path("back.log"));
    wait_listening(port);
    let url = format!("https://127.0.0.1:{port}/services/collector/event");
    let ca = dir.path("ca.pem");
    let auth = ["-H", "Authorization: Splunk t"];
    let body = ["-d", r#"{"event":{"n":0,"from":"curl"}}"#];
    let (code, said) =
        curl(&[&["--cacert", ca.to_str().unwrap(), &url][..], &auth, &body].concat());
    assert_eq!(
        (code, said.as_str()),
        (Some(0), r#"{"text":"Success","code":0}"#)
    );
    let (code, _) = curl(&[&[url.as_str()][..], &auth, &body].concat());
    assert_eq!(code, Some(60), "curl does not trust the test CA by itself");

    // Trusting the CA: everything delivered.
    let ca_tls = format!("tls = {{ ca_file = \"{}\" }}", ca.display());
    let out = rulebox(
        &[
            "run",
            "--config",
            https_sender(&dir, "trusted", port, 100, &ca_tls)
                .to_str()
                .unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The system's roots do not know the test CA: refused, nothing sent.
    let out = rulebox(
        &[
            "run",
            "--config",
            https_sender(&dir, "system", port, 10, "").to_str().unwrap(),
        ],
        None,
    );
    let log = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("invalid peer certificate"), "{log}");
    // verify = false: delivered, and said loudly.
    let off = "tls = { verify = false }";
    let out = rulebox(
        &[
            "run",
            "--config",
            https_sender(&dir, "unverified", port, 10, off)
                .to_str()
                .unwrap(),
        ],
        None,
    );
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("WARN") && log.contains("verification is off"),
        "{log}"
    );
    wait_for("delivered", Duration::from_secs(20), || {
        lines_from(&dir, "trusted") == 100 && lines_from(&dir, "unverified") == 10
    });
    back.stop();
    assert_eq!(lines_from(&dir, "system"), 0);
    assert_eq!(lines_from(&dir, "curl"), 1);
}

#[test]
fn a_listener_can_require_client_certificates() {
    let dir = Scratch::new("mtls");
    pki(&dir);
    let port = free_port();
    let ca = dir.path("ca.pem");
    let extra = format!(", client_ca_file = \"{}\"", ca.display());
    let back = spawn_run(&https_receiver(&dir, port, &extra), &dir.path("back.log"));
    wait_listening(port);
    let url = format!("https://127.0.0.1:{port}/services/collector/event");
    let common = [
        "-H",
        "Authorization: Splunk t",
        "-d",
        r#"{"event":{"from":"curl"}}"#,
    ];
    let ca_arg = ["--cacert", ca.to_str().unwrap(), url.as_str()];
    let (code, _) = curl(&[&ca_arg[..], &common].concat());
    assert_ne!(
        code,
        Some(0),
        "no client certificate: refused at the handshake"
    );
    let (cert, key) = (dir.path("client.pem"), dir.path("client.key"));
    let with = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let (code, said) = curl(&[&ca_arg[..], &with, &common].concat());
    assert_eq!(
        (code, said.as_str()),
        (Some(0), r#"{"text":"Success","code":0}"#)
    );
    // The sink presents its own client certificate.
    let tls = format!(
        "tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}",
        ca.display(),
        cert.display(),
        key.display()
    );
    let out = rulebox(
        &[
            "run",
            "--config",
            https_sender(&dir, "mtls", port, 5, &tls).to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("delivered", Duration::from_secs(20), || {
        lines_from(&dir, "mtls") == 5
    });
    back.stop();
    // A configuration naming a certificate that does not exist is refused.
    let bad = https_sender(&dir, "bad", port, 1, "tls = { ca_file = \"missing.pem\" }");
    let out = rulebox(&["validate", "--config", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing.pem"), "{}", stderr(&out));
}

/// The `tcp` and `syslog` (RFC 5425) listeners over TLS: a `tcp` sink of
/// another rulebox and `openssl s_client` (syslog frames, octet-counted)
/// get their lines through; a client speaking plain TCP to the TLS port
/// gets nothing in.
#[test]
fn tcp_and_syslog_listeners_speak_tls() {
    use std::io::Write;
    let dir = Scratch::new("tls-tcp");
    pki(&dir);
    let (lines, syslog) = (free_port(), free_port());
    let d = dir.0.display();
    let tls = format!("tls = {{ cert_file = \"{d}/server.pem\", key_file = \"{d}/server.key\" }}");
    let back = format!(
        "data_dir = \"{d}/data-back\"\n[sources.lines]\ntype = \"tcp\"\naddress = \"127.0.0.1:{lines}\"\n{tls}\n[sources.syslog]\ntype = \"syslog\"\naddress = \"127.0.0.1:{syslog}\"\n{tls}\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"lines\", \"syslog\"]\n"
    );
    let back = spawn_run(&dir.write("back.toml", back), &dir.path("back.log"));
    wait_listening(lines);
    wait_listening(syslog);
    // Plain TCP to the TLS port: refused at the handshake.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", lines)).unwrap();
    writeln!(plain, "{{\"n\":1,\"from\":\"plain\"}}").unwrap();
    drop(plain);
    // A rulebox tcp sink trusting the CA.
    let events: String = (0..50)
        .map(|i| format!("{{\"n\":{i},\"from\":\"sink\"}}\n"))
        .collect();
    dir.write("sink.ndjson", events);
    let front = format!(
        "data_dir = \"{d}/data-front\"\n[sources.in]\ntype = \"file\"\npath = \"{d}/sink.ndjson\"\n[sinks.tcp]\ntype = \"tcp\"\naddress = \"127.0.0.1:{lines}\"\ninputs = [\"in\"]\ntls = {{ ca_file = \"{d}/ca.pem\" }}\n"
    );
    let out = rulebox(
        &[
            "run",
            "--config",
            dir.write("front.toml", front).to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // openssl as an RFC 5425 client: octet-counted frames.
    let frames: String = (0..3)
        .map(|i| {
            let msg = format!(
                "<14>1 2025-11-21T09:00:0{i}Z fw01 app - - - {{\"n\":{i},\"from\":\"openssl\"}}"
            );
            format!("{} {msg}", msg.len())
        })
        .collect();
    let mut s_client = Command::new("openssl")
        .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
        .args(["-CAfile", dir.path("ca.pem").to_str().unwrap()])
        .args(["-connect", &format!("127.0.0.1:{syslog}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    s_client
        .stdin
        .take()
        .unwrap()
        .write_all(frames.as_bytes())
        .unwrap();
    wait_for("lines over TLS", Duration::from_secs(20), || {
        lines_from(&dir, "sink") == 50 && lines_from(&dir, "openssl") == 3
    });
    let _ = s_client.wait();
    back.stop();
    assert_eq!(lines_from(&dir, "plain"), 0);
    let log = std::fs::read_to_string(dir.path("back.log")).unwrap();
    assert!(log.contains("TLS handshake refused"), "{log}");
}

/// SIGHUP: a listener reads its certificate again. A connection opened
/// before the reload keeps working; after it, clients verify the new
/// certificate (a new CA) and one trusting only the old CA is refused,
/// which the listener counts.
#[test]
fn a_listener_reloads_its_certificate_on_sighup() {
    use std::io::Write;
    let (dir, next) = (Scratch::new("tls-reload"), Scratch::new("tls-reload-next"));
    pki(&dir);
    pki(&next);
    std::fs::copy(dir.path("ca.pem"), dir.path("old-ca.pem")).unwrap();
    let port = free_port();
    let d = dir.0.display();
    let cfg = format!(
        "data_dir = \"{d}/data\"\n[sources.lines]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ntls = {{ cert_file = \"server.pem\", key_file = \"server.key\" }}\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"lines\"]\n"
    );
    let run = spawn_run(&dir.write("rulebox.toml", cfg), &dir.path("run.log"));
    wait_listening(port);
    let s_client = |ca: &str| {
        Command::new("openssl")
            .args(["s_client", "-quiet", "-no_ign_eof", "-verify_return_error"])
            .args(["-CAfile", dir.path(ca).to_str().unwrap()])
            .args(["-connect", &format!("127.0.0.1:{port}")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut before = s_client("old-ca.pem");
    let mut open = before.stdin.take().unwrap();
    writeln!(open, "{{\"from\":\"before\"}}").unwrap();
    wait_for("the first line", Duration::from_secs(20), || {
        lines_from(&dir, "before") == 1
    });

    // New files in place, then SIGHUP.
    for f in ["ca.pem", "server.pem", "server.key"] {
        std::fs::copy(next.path(f), dir.path(f)).unwrap();
    }
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let log = dir.path("run.log");
    wait_for("the reload", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("certificate reloaded")
    });
    // The connection made before still carries lines.
    writeln!(open, "{{\"from\":\"still-open\"}}").unwrap();
    let mut after = s_client("ca.pem");
    writeln!(after.stdin.take().unwrap(), "{{\"from\":\"after\"}}").unwrap();
    let stale = s_client("old-ca.pem").wait_with_output().unwrap();
    assert!(
        !stale.status.success(),
        "the old CA no longer verifies the server"
    );
    wait_for("lines after the reload", Duration::from_secs(20), || {
        lines_from(&dir, "still-open") == 1 && lines_from(&dir, "after") == 1
    });
    drop(open);
    let _ = (before.wait(), after.wait());
    run.stop();
    let log = std::fs::read_to_string(&log).unwrap();
    let refused = rulebox_tests::counter_on(&log, "source done", "refused_tls");
    assert!(refused.is_some_and(|n| n >= 1), "{log}");
}

/// A server whose certificate expired is refused, and the sink's log says
/// so; curl agrees.
#[test]
fn an_expired_server_certificate_is_refused_with_a_clear_error() {
    let dir = Scratch::new("tls-expired");
    pki(&dir);
    let port = free_port();
    let d = dir.0.display();
    let receiver = https_receiver(&dir, port, "");
    let cfg = std::fs::read_to_string(&receiver).unwrap();
    let cfg = cfg.replace(&format!("{d}/server.pem"), &format!("{d}/expired.pem"));
    let cfg = cfg.replace(&format!("{d}/server.key"), &format!("{d}/expired.key"));
    let back = spawn_run(&dir.write("back.toml", cfg), &dir.path("back.log"));
    wait_listening(port);
    let ca = dir.path("ca.pem");
    let url = format!("https://127.0.0.1:{port}/services/collector/health");
    let (code, _) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    assert_eq!(code, Some(60), "curl refuses an expired certificate");
    let tls = format!("tls = {{ ca_file = \"{}\" }}", ca.display());
    let out = rulebox(
        &[
            "run",
            "--config",
            https_sender(&dir, "late", port, 3, &tls).to_str().unwrap(),
        ],
        None,
    );
    back.stop();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let log = stderr(&out).to_lowercase();
    assert!(log.contains("expired"), "{log}");
    assert_eq!(lines_from(&dir, "late"), 0);
}

/// An encrypted private key (PKCS#8, what `openssl pkcs8 -topk8 -v2
/// aes-256-cbc` writes) served with `key_password` from the environment;
/// a wrong or missing password is refused by `validate` with a message
/// that names the file, never the password.
#[test]
fn an_encrypted_key_is_served_with_its_password_from_the_environment() {
    let dir = Scratch::new("tls-encrypted-key");
    pki(&dir);
    const PASSWORD: &str = "pw-of-the-key-81c2";
    let encrypted = Command::new("openssl")
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in"])
        .arg(dir.path("server.key"))
        .arg("-out")
        .arg(dir.path("server.enc.key"))
        .args(["-passout", &format!("pass:{PASSWORD}")])
        .status()
        .unwrap();
    assert!(encrypted.success());
    let port = free_port();
    let extra = ", key_password = { env = \"RB_TEST_KEY_PASSWORD\" }";
    let cfg = std::fs::read_to_string(https_receiver(&dir, port, extra)).unwrap();
    let cfg = dir.write("back.toml", cfg.replace("server.key", "server.enc.key"));
    let validate = |password: Option<&str>| {
        let mut cmd = Command::new(rulebox_tests::rulebox_bin());
        cmd.args(["validate", "--config", cfg.to_str().unwrap()]);
        match password {
            Some(p) => cmd.env("RB_TEST_KEY_PASSWORD", p),
            None => cmd.env_remove("RB_TEST_KEY_PASSWORD"),
        };
        cmd.output().unwrap()
    };
    assert!(validate(Some(PASSWORD)).status.success());
    for (password, want) in [
        (
            Some("not-the-password-3f1d"),
            "cannot decrypt the key: wrong key_password",
        ),
        (None, "RB_TEST_KEY_PASSWORD is not set"),
    ] {
        let out = validate(password);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{e}");
        assert!(e.contains(want) && !e.contains(PASSWORD), "{e}");
        assert!(!e.contains("not-the-password-3f1d"), "{e}");
    }
    let child = Command::new(rulebox_tests::rulebox_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RB_TEST_KEY_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path("back.log")).unwrap())
        .spawn()
        .unwrap();
    let back = rulebox_tests::Running(child);
    wait_listening(port);
    let ca = dir.path("ca.pem");
    let url = format!("https://127.0.0.1:{port}/services/collector/health");
    let (code, said) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
    back.stop();
    assert_eq!(
        (code, said.as_str()),
        (Some(0), r#"{"text":"HEC is healthy","code":17}"#)
    );
    let log = std::fs::read_to_string(dir.path("back.log")).unwrap();
    assert!(!log.contains(PASSWORD), "{log}");
}

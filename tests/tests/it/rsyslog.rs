//! rsyslog from Debian (installed by `scripts/test.sh`), started in the
//! foreground with its own configuration on loopback ports, sending events
//! through rulebox: as its `mmexternal` program (answers line for line,
//! alerts back to rsyslog over tcp), and by forwarding syslog (RFC 5424
//! over TCP, octet-counted; RFC 3164 over UDP; RFC 5425 over TLS with its
//! gtls driver, presenting a client certificate) to rulebox's syslog
//! source.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rulebox_tests::{
    Running, Scratch, free_port, rule_wasm, rulebox_bin, wait_for, wait_listening,
};
use serde_json::Value;

fn rsyslogd() -> &'static str {
    for p in ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("rsyslogd is missing: `bash scripts/test.sh` installs it (apt-get install rsyslog)");
}

/// Checks the configuration with `rsyslogd -N1`, then starts rsyslog in
/// the foreground.
fn start_rsyslog(dir: &Scratch, conf: &str) -> Running {
    std::fs::create_dir_all(dir.path("work")).unwrap();
    let path = dir.write("rsyslog.conf", conf);
    let check = Command::new(rsyslogd())
        .args(["-N1", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "rsyslogd -N1: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = std::fs::File::create(dir.path("rsyslogd.log")).unwrap();
    Command::new(rsyslogd())
        .args([
            "-n",
            "-f",
            path.to_str().unwrap(),
            "-i",
            dir.path("rsyslogd.pid").to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Running)
        .unwrap()
}

/// 20 internal hosts each opening 6 FTP connections to one external
/// address (one alert each), and 40 connections to port 443 (none).
fn events() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..160 {
        let (src, port) = if i < 120 {
            (format!("10.1.0.{}", i % 20 + 1), 21)
        } else {
            (format!("10.2.0.{}", i % 20 + 1), 443)
        };
        v.push(format!(
            r#"{{"_time":{},"src_ip":"{src}","dest_ip":"203.0.113.50","dest_port":{port},"action":"allowed","bytes_out":1000,"seq":{i}}}"#,
            1_763_700_000 + i
        ));
    }
    v
}

fn rule_section(input: &str) -> String {
    format!(
        r#"[transforms.rule]
type = "wasm"
inputs = ["{input}"]
module = "{wasm}"
flush_interval_secs = 1
persist_state = false

[transforms.rule.config]
schema = "auto"
window_secs = 86400
"#,
        wasm = rule_wasm().display()
    )
}

/// Every line of a file, parsed: for a file its writer is done with.
fn json_lines(path: &Path) -> Vec<Value> {
    parse_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The lines a file holds whole so far, parsed: while a sink is writing,
/// its last line may still be cut short, so a poll reads up to the last
/// newline only.
fn whole_json_lines(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let whole = bytes.iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
    parse_lines(std::str::from_utf8(&bytes[..whole]).expect("UTF-8 lines"))
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l.trim()).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// Every event came back enriched (FTP ones flagged), once; alerts name the
/// 20 FTP sources.
fn check(events_out: &[Value], alerts: &[Value]) {
    let mut seqs: Vec<u64> = events_out
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    seqs.sort();
    assert_eq!(seqs, (0..160).collect::<Vec<u64>>(), "every event, once");
    for e in events_out {
        let t = &e["t1071"];
        assert!(t.is_object(), "enriched: {e}");
        let ftp = e["dest_port"] == 21;
        assert_eq!(t["protocol"] == "FTP/FTPS", ftp, "{e}");
    }
    let mut srcs: Vec<&str> = alerts.iter().filter_map(|a| a["src_ip"].as_str()).collect();
    srcs.sort();
    srcs.dedup();
    assert_eq!(srcs.len(), 20, "alerts: {alerts:?}");
    assert!(srcs.iter().all(|s| s.starts_with("10.1.0.")));
}

/// rulebox as rsyslog's mmexternal program: its configuration (the rule
/// `rule`, answers on stdout, alerts over tcp to rsyslog's `p_alerts`, with
/// `stdin_extra` and `alerts_extra` keys) written into `dir`, and the
/// rsyslog configuration that runs it on what `p_in` receives.
fn mmexternal_setup(
    dir: &Scratch,
    p_in: u16,
    p_alerts: u16,
    rule: &str,
    stdin_extra: &str,
    alerts_extra: &str,
) -> String {
    let filter = format!(
        r#"data_dir = "{data}"

[sources.rsyslog]
type = "stdin"
protocol = "mmexternal"
mmexternal_input = "fulljson"
{stdin_extra}
{rule}
[sinks.answers]
type = "stdout"
protocol = "mmexternal"
inputs = ["rule"]

[sinks.alerts]
type = "tcp"
inputs = ["rule.alerts"]
address = "127.0.0.1:{p_alerts}"
{alerts_extra}"#,
        data = dir.path("data").display(),
    );
    let filter_path = dir.write("filter.toml", filter);
    let t = dir.0.display();
    format!(
        r#"global(workDirectory="{t}/work")
module(load="imtcp")
module(load="mmexternal")
template(name="msgonly" type="string" string="%msg%\n")
template(name="raw" type="string" string="%rawmsg%\n")
input(type="imtcp" address="127.0.0.1" port="{p_in}" ruleset="events")
input(type="imtcp" address="127.0.0.1" port="{p_alerts}" ruleset="alerts")
ruleset(name="events") {{
  action(type="mmexternal" binary="{bin} run --config {filter}" interface.input="fulljson")
  action(type="omfile" file="{t}/enriched.jsonl" template="msgonly")
}}
ruleset(name="alerts") {{
  action(type="omfile" file="{t}/alerts.jsonl" template="raw")
}}
"#,
        bin = rulebox_bin().display(),
        filter = filter_path.display(),
    )
}

#[test]
fn rsyslog_runs_rulebox_as_its_mmexternal_program() {
    let dir = Scratch::new("rsyslog-mm");
    let (p_in, p_alerts) = (free_port(), free_port());
    let conf = mmexternal_setup(&dir, p_in, p_alerts, &rule_section("rsyslog"), "", "");
    let rs = start_rsyslog(&dir, &conf);
    wait_listening(p_in);
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p_in)).unwrap();
        for e in events() {
            writeln!(s, "<13>Nov 22 10:00:00 fw01 t1071: {e}").unwrap();
        }
    }
    let out = dir.path("enriched.jsonl");
    let alerts = dir.path("alerts.jsonl");
    let diag = || {
        format!(
            "rsyslogd: {}\nrulebox: {}",
            std::fs::read_to_string(dir.path("rsyslogd.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.path("data/rulebox.log")).unwrap_or_default()
        )
    };
    wait_for(
        "160 enriched events from rsyslog",
        Duration::from_secs(60),
        || whole_json_lines(&out).len() >= 160,
    );
    wait_for("alerts for 20 sources", Duration::from_secs(30), || {
        let a = whole_json_lines(&alerts);
        a.iter()
            .filter_map(|a| a["src_ip"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 20
    });
    rs.stop();
    check(&json_lines(&out), &json_lines(&alerts));
    let log = diag();
    assert!(!log.contains("invalid reply"), "{log}");
}

#[test]
fn rsyslog_forwards_syslog_to_rulebox_over_tcp_and_udp() {
    let dir = Scratch::new("rsyslog-fwd");
    let (p_in, p_rb_tcp, p_rb_udp) = (free_port(), free_port(), free_port());
    let cfg = format!(
        r#"data_dir = "{data}"

[sources.syslog_tcp]
type = "syslog"
address = "127.0.0.1:{p_rb_tcp}"

[sources.syslog_udp]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{p_rb_udp}"

[transforms.rule]
type = "wasm"
inputs = ["syslog_tcp", "syslog_udp"]
module = "{wasm}"
flush_interval_secs = 1
persist_state = false

[transforms.rule.config]
schema = "auto"
window_secs = 86400

[sinks.events]
type = "file"
path = "{t}/events.jsonl"
inputs = ["rule"]

[sinks.alerts]
type = "file"
path = "{t}/alerts.jsonl"
inputs = ["rule.alerts"]
"#,
        data = dir.path("data").display(),
        wasm = rule_wasm().display(),
        t = dir.0.display(),
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut rb = rulebox_tests::spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(p_rb_tcp);
    let t = dir.0.display();
    // Even events by RFC 5424 over TCP (octet-counted), odd ones by
    // RFC 3164 over UDP.
    let conf = format!(
        r#"global(workDirectory="{t}/work")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{p_in}" ruleset="fwd")
ruleset(name="fwd") {{
  if re_match($msg, "\"seq\":[0-9]*[02468][,}}]") then {{
    action(type="omfwd" target="127.0.0.1" port="{p_rb_tcp}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
  }} else {{
    action(type="omfwd" target="127.0.0.1" port="{p_rb_udp}" protocol="udp" template="RSYSLOG_TraditionalForwardFormat")
  }}
}}
"#
    );
    let rs = start_rsyslog(&dir, &conf);
    wait_listening(p_in);
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p_in)).unwrap();
        for e in events() {
            writeln!(s, "<13>Nov 22 10:00:00 fw01 t1071: {e}").unwrap();
            // UDP on loopback has no flow control: pace it.
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let out = dir.path("events.jsonl");
    let alerts = dir.path("alerts.jsonl");
    wait_for(
        "160 events through rsyslog and rulebox",
        Duration::from_secs(60),
        || whole_json_lines(&out).len() >= 160,
    );
    wait_for("alerts for 20 sources", Duration::from_secs(30), || {
        let a = whole_json_lines(&alerts);
        a.iter()
            .filter_map(|a| a["src_ip"].as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 20
    });
    rs.stop();
    assert!(rulebox_tests::terminate(&mut rb.0).success());
    check(&json_lines(&out), &json_lines(&alerts));
}

#[test]
fn the_bundled_rsyslog_config_passes_rsyslogs_own_check() {
    let conf = rulebox_tests::root().join("configs/rsyslog/rsyslog.conf");
    let out = Command::new(rsyslogd())
        .args(["-N1", "-f", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 19, item 8: when rsyslog stops, rulebox (its mmexternal program)
/// runs its final flush but rsyslog's `imtcp`, where its alerts go, is
/// gone: rulebox spools them and exits within its shutdown grace instead
/// of living on as an orphan, and the next rulebox rsyslog starts
/// delivers them.
#[test]
fn alerts_rsyslog_can_no_longer_take_are_spooled_and_delivered_after_its_restart() {
    let dir = Scratch::new("rsyslog-spool");
    let (p_in, p_alerts) = (free_port(), free_port());
    let rule = rule_section("rsyslog").replace("flush_interval_secs = 1\n", "");
    let retry = "retry = { initial_ms = 50, max_ms = 200, shutdown_grace_secs = 2 }\n";
    let conf = mmexternal_setup(&dir, p_in, p_alerts, &rule, "on_eof = \"end\"\n", retry);
    let send = |lines: &[String]| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p_in)).unwrap();
        for e in lines {
            writeln!(s, "<13>Nov 22 10:00:00 fw01 t1071: {e}").unwrap();
        }
    };
    let six: Vec<String> = events()
        .into_iter()
        .filter(|e| e.contains("10.1.0.1\""))
        .collect();
    assert_eq!(six.len(), 6);
    let out = dir.path("enriched.jsonl");
    let log = dir.path("data/rulebox.log");
    let rs = start_rsyslog(&dir, &conf);
    wait_listening(p_in);
    send(&six);
    wait_for("6 enriched events", Duration::from_secs(60), || {
        whole_json_lines(&out).len() >= 6
    });
    rs.stop();
    // rsyslog is gone, and its imtcp with it: the final alert is spooled.
    let done = || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("sink done"));
    let stopped = std::time::Instant::now();
    while !done() && stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        done(),
        "rulebox: {}\nrsyslogd: {}",
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(dir.path("rsyslogd.log")).unwrap_or_default()
    );
    let first = std::fs::read_to_string(&log).unwrap();
    assert!(first.contains("events spooled"), "{first}");
    assert!(json_lines(&dir.path("alerts.jsonl")).is_empty());

    // rsyslog is back; its first message starts rulebox, which delivers.
    let rs = start_rsyslog(&dir, &conf);
    wait_listening(p_in);
    send(&events()[150..151]);
    let alerts = dir.path("alerts.jsonl");
    wait_for("the spooled alert", Duration::from_secs(30), || {
        !whole_json_lines(&alerts).is_empty()
    });
    rs.stop();
    let a = json_lines(&alerts);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["src_ip"], "10.1.0.1");
    assert_eq!(a[0]["connection_count"], 6);
    assert_eq!(a[0]["status"], "final");
}

/// rsyslog's own TLS driver (`rsyslog-gnutls`, GnuTLS) forwarding RFC
/// 5425 syslog to a syslog source that serves TLS and requires a client
/// certificate: every event arrives, labelled; rsyslog without a client
/// certificate gets nothing in, and the refusal is counted.
#[test]
fn rsyslog_forwards_syslog_over_tls_with_a_client_certificate() {
    let dir = Scratch::new("rsyslog-tls");
    crate::tls::pki(&dir);
    let (p_in, p_rb) = (free_port(), free_port());
    let t = dir.0.display();
    let cfg = format!(
        r#"data_dir = "{t}/data"
[sources.syslog_tls]
type = "syslog"
address = "127.0.0.1:{p_rb}"
tls = {{ cert_file = "server.pem", key_file = "server.key", client_ca_file = "ca.pem" }}
{rule}
[sinks.events]
type = "file"
path = "{t}/events.jsonl"
inputs = ["rule"]

[sinks.alerts]
type = "file"
path = "{t}/alerts.jsonl"
inputs = ["rule.alerts"]
"#,
        rule = rulebox_tests::live_rule(r#""syslog_tls""#),
    );
    let mut rb = rulebox_tests::spawn_run(&dir.write("p.toml", cfg), &dir.path("rulebox.log"));
    wait_listening(p_rb);
    let conf = |cert: &str| {
        format!(
            r#"global(workDirectory="{t}/work"
  DefaultNetstreamDriverCAFile="{t}/ca.pem"{cert})
module(load="imtcp" StreamDriver.Name="ptcp" StreamDriver.Mode="0")
input(type="imtcp" address="127.0.0.1" port="{p_in}" ruleset="fwd")
ruleset(name="fwd") {{
  action(type="omfwd" target="127.0.0.1" port="{p_rb}" protocol="tcp" TCP_Framing="octet-counted"
    StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/certvalid"
    template="RSYSLOG_SyslogProtocol23Format")
}}
"#
        )
    };
    let with_cert = format!(
        "\n  DefaultNetstreamDriverCertFile=\"{t}/client.pem\"\n  DefaultNetstreamDriverKeyFile=\"{t}/client.key\""
    );
    let send = |rs: Running| {
        wait_listening(p_in);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", p_in)).unwrap();
        for e in events() {
            writeln!(s, "<13>Nov 22 10:00:00 fw01 t1071: {e}").unwrap();
        }
        drop(s);
        rs
    };
    // Without a client certificate: refused at the handshake.
    let rs = send(start_rsyslog(&dir, &conf("")));
    let log = dir.path("rulebox.log");
    wait_for("the refused handshake", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("TLS handshake refused")
    });
    rs.stop();
    let out = dir.path("events.jsonl");
    assert_eq!(
        json_lines(&out).len(),
        0,
        "nothing without a client certificate"
    );
    // With one: everything.
    let rs = send(start_rsyslog(&dir, &conf(&with_cert)));
    wait_for("160 events over TLS", Duration::from_secs(60), || {
        whole_json_lines(&out).len() >= 160
    });
    rs.stop();
    assert!(rulebox_tests::terminate(&mut rb.0).success());
    let alerts = dir.path("alerts.jsonl");
    check(&json_lines(&out), &json_lines(&alerts));
    let log = std::fs::read_to_string(&log).unwrap();
    let refused = rulebox_tests::counter_on(&log, "source done", "refused_tls");
    assert!(refused.is_some_and(|n| n >= 1), "{log}");
}

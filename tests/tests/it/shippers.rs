//! rulebox between shippers and the SIEM, over real sockets on loopback:
//! Splunk HEC in and out (with a receiver failing on purpose), the HEC
//! source's refusals, the tcp, http and syslog modes chained through two
//! rulebox processes, and Python's `SysLogHandler` (NUL-framed syslog).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use rulebox_bench::hec::{ClientOpts, Receiver};
use rulebox_tests::{
    Scratch, free_port, http, live_rule, spawn_run, stderr, terminate, unsplice, wait_for,
    wait_listening,
};
use serde_json::Value;

const DAY: i64 = 1_763_683_200_000;

/// An event without the rule's enrichment, as a canonical JSON string.
fn original(event: &Value) -> String {
    let text = serde_json::to_vec(event).unwrap();
    let v: Value = serde_json::from_slice(&unsplice(&text)).unwrap();
    v.to_string()
}

fn canonical(lines: &[Vec<u8>]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| serde_json::from_slice::<Value>(l).unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn hec_round_trip_through_the_rule_loses_nothing_when_the_receiver_fails() {
    let dir = Scratch::new("hec-rt");
    let receiver = Receiver::start("downstream-token", 6);
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"

[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:{port}"
tokens = ["shipper-token"]
{rule}
[sinks.splunk]
type = "splunk_hec"
inputs = ["rule"]
endpoint = "http://{recv}"
token = "downstream-token"
batch_max_events = 200
retry = {{ initial_ms = 50, max_ms = 400 }}

[sinks.splunk_alerts]
type = "splunk_hec"
inputs = ["rule.alerts"]
endpoint = "http://{recv}/services/collector/event"
token = "downstream-token"
index = "alerts"
sourcetype = "rulebox:t1071:alert"
"#,
        data = dir.path("data").display(),
        rule = live_rule(r#""hec""#),
        recv = receiver.address,
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(port);

    // The sample's deliberately broken lines are not events a shipper sends.
    let events: Vec<Vec<u8>> = rulebox_bench::sample(6100, 11, DAY)
        .into_iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .take(6000)
        .map(String::into_bytes)
        .collect();
    assert_eq!(events.len(), 6000);
    let opts = ClientOpts {
        token: "shipper-token".into(),
        batch: 250,
        gzip: true,
        clients: 4,
        sourcetype: "fw:traffic".into(),
    };
    let sent = rulebox_bench::hec::send(&format!("127.0.0.1:{port}"), &events, &opts);
    assert_eq!(sent.events.load(std::sync::atomic::Ordering::Relaxed), 6000);

    // The client's requests were answered only once delivered downstream,
    // so every event is at the receiver already, through six 500s.
    let got = receiver.envelopes();
    let log = || std::fs::read_to_string(dir.path("rulebox.log")).unwrap_or_default();
    let (evs, alerts): (Vec<&Value>, Vec<&Value>) = got
        .iter()
        .partition(|e| e.get("index").is_none_or(|i| i != "alerts"));
    assert_eq!(evs.len(), 6000, "events delivered (log: {})", log());
    assert_eq!(
        receiver
            .got
            .failed
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
    let mut have: Vec<String> = evs.iter().map(|e| original(&e["event"])).collect();
    have.sort();
    assert_eq!(have.len(), 6000);
    assert_eq!(have, canonical(&events), "the same events, each once");
    // Envelope metadata forwarded unchanged; watched ports enriched.
    for e in &evs {
        assert_eq!(e["sourcetype"], "fw:traffic");
        assert!(e["host"].as_str().unwrap().starts_with("shipper-"));
        assert!(e["time"].is_number());
    }
    let enriched = evs
        .iter()
        .filter(|e| e["event"].get("t1071").is_some())
        .count();
    assert!(enriched > 100, "{enriched} events enriched");

    // Alerts: open ones on the 1 s tick, final ones at shutdown.
    wait_for("open alerts", Duration::from_secs(20), || {
        receiver.envelopes().iter().any(|e| e["index"] == "alerts")
    });
    let status = terminate(&mut child.0);
    assert!(status.success(), "exit {status:?}; log: {}", log());
    let got = receiver.envelopes();
    let alerts_after: Vec<&Value> = got.iter().filter(|e| e["index"] == "alerts").collect();
    assert!(alerts.len() <= alerts_after.len());
    assert!(
        alerts_after
            .iter()
            .all(|a| a["sourcetype"] == "rulebox:t1071:alert" && a["event"]["alert_id"].is_string()),
        "{alerts_after:?}"
    );
    assert!(
        alerts_after.iter().any(|a| a["event"]["status"] == "final"),
        "a final alert at shutdown"
    );
    let log = log();
    assert!(log.contains("delivered after retrying"), "{log}");
    assert!(log.contains("write_errors=0"), "{log}");
}

#[test]
fn hec_source_answers_like_splunk_and_half_accepts_nothing() {
    let dir = Scratch::new("hec-refuse");
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"

[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:{port}"
tokens = ["good"]
max_body_bytes = 4096

[sinks.out]
type = "file"
path = "{out}"
inputs = ["hec"]
"#,
        data = dir.path("data").display(),
        out = dir.path("out.ndjson").display(),
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(port);
    let auth = [("Authorization", "Splunk good")];
    let ev = "/services/collector/event";

    assert_eq!(
        http(port, "GET", "/services/collector/health", &[], b""),
        (200, r#"{"text":"HEC is healthy","code":17}"#.into())
    );
    let ok = br#"{"event":{"n":1},"host":"a"}{"event":"two","sourcetype":"s"}"#;
    assert_eq!(
        http(port, "POST", ev, &[], ok),
        (401, r#"{"text":"Token is required","code":2}"#.into())
    );
    assert_eq!(
        http(port, "POST", ev, &[("Authorization", "Splunk bad")], ok),
        (403, r#"{"text":"Invalid token","code":4}"#.into())
    );
    assert_eq!(
        http(
            port,
            "POST",
            ev,
            &[("Authorization", "Basic Zm9vOmJhcg==")],
            ok
        ),
        (401, r#"{"text":"Invalid authorization","code":3}"#.into())
    );
    let (status, body) = http(
        port,
        "POST",
        ev,
        &auth,
        br#"{"event":{"n":9}}{"event":{"n":10}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(
        body,
        r#"{"text":"Invalid data format","code":6,"invalid-event-number":1}"#
    );
    let (status, body) = http(port, "POST", ev, &auth, br#"{"event":{"n":9}}{"host":"x"}"#);
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            r#"{"text":"Event field is required","code":12,"invalid-event-number":1}"#
        )
    );
    assert_eq!(http(port, "POST", ev, &auth, b"").0, 400);
    let big = format!(r#"{{"event":"{}"}}"#, "x".repeat(5000));
    assert_eq!(http(port, "POST", ev, &auth, big.as_bytes()).0, 413);
    // A gzip bomb is caught after decompression too.
    let bomb = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(big.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 4096);
    let gzip = [auth[0], ("Content-Encoding", "gzip")];
    assert_eq!(http(port, "POST", ev, &gzip, &bomb).0, 413);
    // The size a gzip trailer gives is a first guess only: a bomb whose
    // trailer understates it is caught all the same, and a trailer that
    // does not match what inflates makes a bad body.
    let sized = |gz: &[u8], size: u32| {
        let mut gz = gz.to_vec();
        let n = gz.len();
        gz[n - 4..].copy_from_slice(&size.to_le_bytes());
        gz
    };
    assert_eq!(http(port, "POST", ev, &gzip, &sized(&bomb, 10)).0, 413);
    let member = |text: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    };
    let overstated = sized(&member(ok), u32::MAX);
    assert_eq!(http(port, "POST", ev, &gzip, &overstated).0, 400);
    assert_eq!(http(port, "POST", "/nope", &auth, ok).0, 404);

    // What is accepted: envelopes (plain and gzip), raw lines.
    assert_eq!(
        http(port, "POST", ev, &auth, ok),
        (200, r#"{"text":"Success","code":0}"#.into())
    );
    // Two gzip members, one after the other: both are read.
    let gz = [
        member(br#"{"event":{"n":3}}"#),
        member(br#"{"event":{"n":4}}"#),
    ]
    .concat();
    assert_eq!(
        http(
            port,
            "POST",
            "/services/collector",
            &[auth[0], ("Content-Encoding", "gzip")],
            &gz
        )
        .0,
        200
    );
    assert_eq!(
        http(
            port,
            "POST",
            "/services/collector/raw?sourcetype=raw",
            &auth,
            b"line four\nline five\n"
        )
        .0,
        200
    );
    let status = terminate(&mut child.0);
    assert!(status.success());
    let out = std::fs::read_to_string(dir.path("out.ndjson")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            r#"{"n":1}"#,
            r#""two""#,
            r#"{"n":3}"#,
            r#"{"n":4}"#,
            "line four",
            "line five"
        ],
        "only accepted bodies, whole"
    );
}

/// rulebox A reads tcp, syslog/tcp and syslog/udp, runs the rule and POSTs
/// NDJSON to rulebox B's http source; B writes to a tcp sink whose
/// listener is this test.
#[test]
fn tcp_syslog_and_http_modes_chain_two_rulebox_processes() {
    let dir = Scratch::new("modes");
    let (tcp_in, syslog_tcp, syslog_udp, http_in) =
        (free_port(), free_port(), free_port(), free_port());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out_port = listener.local_addr().unwrap().port();
    let a = format!(
        r#"data_dir = "{data}"
[sources.lines]
type = "tcp"
address = "127.0.0.1:{tcp_in}"
[sources.sys]
type = "syslog"
address = "127.0.0.1:{syslog_tcp}"
[sources.sysu]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{syslog_udp}"
{rule}
[sinks.b]
type = "http"
inputs = ["rule"]
uri = "http://127.0.0.1:{http_in}/ingest"
gzip = true
"#,
        data = dir.path("data-a").display(),
        rule = live_rule(r#""lines", "sys", "sysu""#),
    );
    let b = format!(
        r#"data_dir = "{data}"
[sources.web]
type = "http"
address = "127.0.0.1:{http_in}"
path = "/ingest"
[sinks.back]
type = "tcp"
inputs = ["web"]
address = "127.0.0.1:{out_port}"
"#,
        data = dir.path("data-b").display(),
    );
    let mut child_b = spawn_run(&dir.write("b.toml", b), &dir.path("b.log"));
    let mut child_a = spawn_run(&dir.write("a.toml", a), &dir.path("a.log"));
    wait_listening(http_in);
    wait_listening(tcp_in);
    wait_listening(syslog_tcp);

    let ev = |i: usize, port: u16| {
        format!(
            r#"{{"src_ip":"10.0.0.{}","dest_ip":"203.0.113.9","dest_port":{port},"action":"allowed","seq":{i}}}"#,
            i % 200 + 1
        )
    };
    let mut expect = BTreeMap::new();
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp_in)).unwrap();
        for i in 0..300 {
            let e = ev(i, 21);
            writeln!(s, "{e}").unwrap();
            expect.insert(i, e);
        }
    }
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", syslog_tcp)).unwrap();
        for i in 300..600 {
            let e = ev(i, 445);
            let msg = if i % 2 == 0 {
                format!("<134>1 2026-11-22T10:00:00Z fw01 t1071 - - - {e}")
            } else {
                format!("<13>Nov 22 10:00:00 fw01 t1071[7]: {e}")
            };
            // Octet counting and LF framing, alternately.
            if i % 3 == 0 {
                write!(s, "{} {msg}", msg.len()).unwrap();
            } else {
                writeln!(s, "{msg}").unwrap();
            }
            expect.insert(i, e);
        }
    }
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 600..650 {
        let e = ev(i, 69);
        udp.send_to(
            format!("<13>Nov 22 10:00:00 fw01 t1071: {e}").as_bytes(),
            ("127.0.0.1", syslog_udp),
        )
        .unwrap();
        expect.insert(i, e);
        // Loopback UDP has no flow control: pace it.
        std::thread::sleep(Duration::from_millis(2));
    }

    listener.set_nonblocking(false).unwrap();
    let (conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = std::io::BufReader::new(conn);
    let mut got = BTreeMap::new();
    while got.len() < expect.len() {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap_or(0);
        assert!(
            n > 0,
            "stream ended after {} events; a: {}",
            got.len(),
            std::fs::read_to_string(dir.path("a.log")).unwrap_or_default()
        );
        let v: Value = serde_json::from_str(line.trim_end()).unwrap();
        assert!(v["t1071"].is_object(), "enriched: {line}");
        let seq = v["seq"].as_u64().unwrap() as usize;
        got.insert(seq, original(&v));
    }
    assert_eq!(got.len(), 650);
    for (i, e) in &expect {
        assert_eq!(
            &got[i],
            &serde_json::from_str::<Value>(e).unwrap().to_string()
        );
    }
    assert!(terminate(&mut child_a.0).success());
    assert!(terminate(&mut child_b.0).success());
}

/// Sends `n` events with Python's `SysLogHandler` over TCP, then `n` more
/// over UDP (`argv`: tcp port, udp port, n).
const PY_SYSLOG: &str = r#"
import logging, logging.handlers, socket, sys, time
tcp_port, udp_port, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
log = logging.getLogger("t1071")
log.propagate = False
log.setLevel(logging.INFO)
def event(i):
    return '{"src_ip":"10.0.0.%d","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed","seq":%d}' % (i % 20 + 1, i)
for kind, port, seqs, fmt in [
    (socket.SOCK_STREAM, tcp_port, range(n), "%(message)s"),
    (socket.SOCK_DGRAM, udp_port, range(n, 2 * n), "t1071: %(message)s"),
]:
    h = logging.handlers.SysLogHandler(address=("127.0.0.1", port), socktype=kind)
    h.setFormatter(logging.Formatter(fmt))
    log.addHandler(h)
    for i in seqs:
        log.info(event(i))
        if kind == socket.SOCK_DGRAM:
            time.sleep(0.002)  # loopback UDP has no flow control: pace it
    log.removeHandler(h)
    h.close()
"#;

/// Python's standard syslog client ends every message with a NUL: over TCP
/// with no LF (NUL framing), over UDP at the end of each datagram. Each
/// message is one event whose JSON body the rule reads.
#[test]
fn python_sysloghandler_messages_are_one_event_each_over_tcp_and_udp() {
    let dir = Scratch::new("py-syslog");
    let (tcp, udp) = (free_port(), free_port());
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.py_tcp]
type = "syslog"
address = "127.0.0.1:{tcp}"
[sources.py_udp]
type = "syslog"
mode = "udp"
address = "127.0.0.1:{udp}"
{rule}
[sinks.events]
type = "file"
path = "{out}"
inputs = ["rule"]
"#,
        data = dir.path("data").display(),
        rule = live_rule(r#""py_tcp", "py_udp""#),
        out = dir.path("events.ndjson").display(),
    );
    let mut child = spawn_run(&dir.write("p.toml", cfg), &dir.path("rulebox.log"));
    wait_listening(tcp);
    let n = 200;
    let py = std::process::Command::new("python3")
        .args(["-c", PY_SYSLOG, &tcp.to_string(), &udp.to_string()])
        .arg(n.to_string())
        .output()
        .expect("python3 (the tests need it)");
    assert!(py.status.success(), "python: {}", stderr(&py));
    let lines = || {
        std::fs::read_to_string(dir.path("events.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect::<Vec<_>>()
    };
    let log = || std::fs::read_to_string(dir.path("rulebox.log")).unwrap_or_default();
    wait_for("every message as an event", Duration::from_secs(30), || {
        lines().len() >= 2 * n
    });
    assert!(terminate(&mut child.0).success(), "{}", log());
    let events = lines();
    let mut seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (0..2 * n as u64).collect::<Vec<_>>(), "{}", log());
    for e in &events {
        assert_eq!(e["t1071"]["protocol"], "SMB", "{e}");
        assert_eq!(e["t1071"]["external"], true, "{e}");
    }
}

/// Events that reach a HEC sink without an envelope time (from syslog, or
/// alerts) carry their own time, so Splunk does not index them at arrival;
/// a syslog message whose body is the JSON event keeps its header's host
/// and time for the envelope.
#[test]
fn hec_envelopes_carry_the_events_own_time_and_the_syslog_header() {
    let dir = Scratch::new("hec-time");
    let receiver = Receiver::start("t", 0);
    let port = free_port();
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.sys]\ntype = \"syslog\"\naddress = \"127.0.0.1:{port}\"\n{rule}\n[sinks.splunk]\ntype = \"splunk_hec\"\ninputs = [\"rule\", \"rule.alerts\"]\nendpoint = \"http://{recv}\"\ntoken = \"t\"\n",
        data = dir.path("data").display(),
        rule = live_rule(r#""sys""#),
        recv = receiver.address,
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(port);
    {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 0..5 {
            // A JSON body (the event) with its own _time, and one without.
            let body = if i < 4 {
                format!(
                    r#"{{"_time":1764237600,"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed","n":{i}}}"#
                )
            } else {
                r#"{"note":"no time of its own"}"#.to_string()
            };
            let msg = format!("<13>1 2025-11-27T10:05:00.500Z fw01 app - - - {body}");
            write!(s, "{} {msg}", msg.len()).unwrap();
        }
    }
    wait_for("five events and an alert", Duration::from_secs(20), || {
        receiver.count() >= 5
    });
    terminate(&mut child.0);
    let got = receiver.envelopes();
    let events: Vec<&Value> = got.iter().filter(|e| e["event"]["n"].is_number()).collect();
    assert_eq!(events.len(), 4, "{got:?}");
    for e in &events {
        assert_eq!(e["host"], "fw01", "{e}");
        // The syslog header's time is the envelope's; the event's own
        // _time stays in the event.
        assert_eq!(e["time"].as_f64(), Some(1_764_237_900.5), "{e}");
    }
    let plain = got.iter().find(|e| e["event"]["note"].is_string()).unwrap();
    assert_eq!(plain["time"].as_f64(), Some(1_764_237_900.5), "{plain}");
    let alert = got
        .iter()
        .find(|e| e["event"]["alert_id"].is_string())
        .unwrap();
    let last_seen = alert["event"]["last_seen"].as_str().unwrap();
    assert_eq!(last_seen, "2025-11-27T10:00:00.000Z", "{alert}");
    assert_eq!(alert["time"].as_f64(), Some(1_764_237_600.0), "{alert}");
}

/// A HEC sink has up to `request_concurrency` bodies in flight, each on a
/// connection of its own, with a memory buffer and with a disk one; with
/// 1, one at a time. The receiver holds every request until that many
/// were open at once (else 10 s each: a sink that sends fewer would take
/// minutes and fail). Every event arrives once either way.
#[test]
fn a_hec_sink_keeps_request_concurrency_bodies_in_flight() {
    use std::sync::atomic::Ordering;
    for (concurrency, buffer) in [(4u64, "memory"), (3, "disk"), (1, "memory")] {
        let dir = Scratch::new(&format!("hec-concurrency-{concurrency}"));
        let how = rulebox_bench::hec::Answering {
            hold_until_open: concurrency,
            // One at a time is checked with a round trip that would let
            // bodies overlap if the sink sent them side by side.
            delay: Duration::from_millis(if concurrency == 1 { 20 } else { 0 }),
            ..Default::default()
        };
        let receiver = Receiver::start_with("t", how);
        let sink_keys = format!(
            "gzip = false\nbatch_max_events = 100\nrequest_concurrency = {concurrency}\nbuffer = {{ type = \"{buffer}\" }}\n"
        );
        let source_keys = "batch_max_events = 100\n";
        let cfg = rulebox_tests::numbered_into_hec(
            &dir,
            3000,
            &receiver.address,
            source_keys,
            &sink_keys,
        );
        let out = rulebox_tests::rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
        let log = stderr(&out);
        assert!(out.status.success(), "{log}");
        let most = receiver.got.most_open.load(Ordering::SeqCst);
        assert_eq!(most, concurrency, "{buffer} buffer: {log}");
        let mut got: Vec<u64> = receiver
            .envelopes()
            .iter()
            .map(|e| e["event"]["i"].as_u64().unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            (0..3000).collect::<Vec<u64>>(),
            "{buffer} buffer: {log}"
        );
    }
}

#[test]
fn request_concurrency_out_of_range_is_refused_at_its_line() {
    let dir = Scratch::new("hec-concurrency-check");
    for (n, ok) in [(0, false), (1, true), (64, true), (65, false)] {
        let cfg = format!(
            "[sources.in]\ntype = \"stdin\"\n[sinks.web]\ntype = \"http\"\ninputs = [\"in\"]\nuri = \"http://127.0.0.1:9/ingest\"\nrequest_concurrency = {n}\n"
        );
        let p = dir.write("p.toml", &cfg);
        let out = rulebox_tests::rulebox(&["validate", "--config", p.to_str().unwrap()], None);
        let err = stderr(&out);
        if ok {
            assert_eq!(out.status.code(), Some(0), "{n}: {err}");
        } else {
            assert_eq!(out.status.code(), Some(2), "{n}: {err}");
            let line = cfg.lines().position(|l| l.starts_with("request_")).unwrap() + 1;
            let want = format!(
                "{}:{line}: sinks.web.request_concurrency: from 1 to 64 (got {n})",
                p.display()
            );
            assert!(err.contains(&want), "{n}: {err}");
        }
    }
}

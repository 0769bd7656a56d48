//! rulebox and OpenTelemetry logs, over real sockets on loopback: the real
//! OpenTelemetry Collector (`scripts/install-otelcol.sh` unpacks it into
//! target/otelcol) tailing files into the `opentelemetry` source in both
//! encodings, the source's OTLP answers to bodies it refuses, and the
//! `opentelemetry` sink delivering to a second rulebox's source.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rulebox_tests::{
    Running, Scratch, free_port, live_rule, root, spawn_run, terminate, wait_for, wait_listening,
};
use serde_json::Value;

const DAY: i64 = 1_763_683_200_000;

/// The collector binary; the e2e lane installs it.
fn otelcol() -> PathBuf {
    let p = root().join("target/otelcol/otelcol-contrib");
    assert!(
        p.is_file(),
        "{} missing: run `bash scripts/install-otelcol.sh`",
        p.display()
    );
    p
}

/// The collector tailing `file` (each line parsed as JSON, a resource
/// attribute added) and exporting to `port` in `encoding`.
fn start_collector(dir: &Scratch, name: &str, file: &str, port: u16, encoding: &str) -> Running {
    let cfg = format!(
        r#"receivers:
  filelog:
    include: ["{file}"]
    start_at: beginning
    operators:
      - type: json_parser
      - type: add
        field: resource["host.name"]
        value: fw-edge-01
exporters:
  otlphttp:
    logs_endpoint: "http://127.0.0.1:{port}/v1/logs"
    encoding: {encoding}
    compression: gzip
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [filelog]
      exporters: [otlphttp]
"#,
        file = dir.path(file).display(),
    );
    let cfg = dir.write(&format!("{name}.yaml"), cfg);
    let log = std::fs::File::create(dir.path(&format!("{name}.log"))).unwrap();
    let child = Command::new(otelcol())
        .args(["--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the collector");
    Running(child)
}

/// Sample events that are JSON objects, as lines.
fn events(n: usize, seed: u64) -> Vec<String> {
    let evs: Vec<String> = rulebox_bench::sample(n + n / 10 + 50, seed, DAY)
        .into_iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .take(n)
        .collect();
    assert_eq!(evs.len(), n);
    evs
}

/// Lines a file holds whole so far: while a sink is writing, its last
/// line may still be cut short (polled, not parsed).
fn whole_lines(p: &std::path::Path) -> usize {
    std::fs::read(p).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

fn read_lines(p: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The `opentelemetry` source on `port` through the rule into two files,
/// and the events on over OTLP to the receiver at `recv`.
fn rule_to_files(dir: &Scratch, port: u16, recv: u16) -> String {
    format!(
        r#"data_dir = "{data}"

[sources.otel]
type = "opentelemetry"
address = "127.0.0.1:{port}"
{rule}
[sinks.events]
type = "file"
path = "{out}"
inputs = ["rule"]

[sinks.alerts]
type = "file"
path = "{alerts}"
inputs = ["rule.alerts"]

[sinks.on]
type = "opentelemetry"
inputs = ["rule"]
endpoint = "http://127.0.0.1:{recv}"
"#,
        data = dir.path("data").display(),
        rule = live_rule(r#""otel""#),
        out = dir.path("events.out").display(),
        alerts = dir.path("alerts.out").display(),
    )
}

/// Event lines as canonical JSON text.
fn canonical(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap().to_string())
        .collect()
}

#[test]
fn the_collector_delivers_every_line_of_a_file_labelled_in_both_encodings() {
    let dir = Scratch::new("otel-collector");
    let port = free_port();
    let (recv, received) = otlp_receiver();
    let cfg_path = dir.write("p.toml", rule_to_files(&dir, port, recv));
    let mut child = spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(port);

    let evs = events(3000, 23);
    let (a, b) = evs.split_at(1700);
    dir.write("a.json", a.join("\n") + "\n");
    dir.write("b.json", b.join("\n") + "\n");
    let proto = start_collector(&dir, "proto", "a.json", port, "proto");
    let json = start_collector(&dir, "json", "b.json", port, "json");

    let log = |name: &str| std::fs::read_to_string(dir.path(name)).unwrap_or_default();
    wait_for(
        "every line through rulebox",
        Duration::from_secs(90),
        || whole_lines(&dir.path("events.out")) >= evs.len(),
    );
    // The collector's resource, kept by the source, written back by the sink.
    wait_for(
        "every record at the receiver",
        Duration::from_secs(30),
        || records(&received, None).len() >= evs.len(),
    );
    proto.stop();
    json.stop();
    let status = terminate(&mut child.0);
    assert!(
        status.success(),
        "exit {status:?}; log: {}",
        log("rulebox.log")
    );

    let got = read_lines(&dir.path("events.out"));
    assert_eq!(got.len(), evs.len(), "each line once");
    let mut labelled = 0;
    let mut from = std::collections::BTreeMap::new();
    let originals: Vec<String> = got
        .into_iter()
        .map(|mut e| {
            let m = e.as_object_mut().unwrap();
            labelled += usize::from(m.remove("t1071").is_some());
            let file = m
                .remove("log.file.name")
                .expect("the file's name attribute");
            *from.entry(file.as_str().unwrap().to_string()).or_insert(0) += 1;
            e.to_string()
        })
        .collect();
    assert_eq!(
        sorted(originals),
        sorted(canonical(&evs)),
        "the same events, each once"
    );
    assert_eq!(from.get("a.json"), Some(&1700), "{from:?}");
    assert_eq!(from.get("b.json"), Some(&1300), "{from:?}");
    assert_eq!(labelled, evs.len(), "every event labelled by the rule");
    let alerts = read_lines(&dir.path("alerts.out"));
    assert!(
        !alerts.is_empty() && alerts.iter().all(|a| a["alert_id"].is_string()),
        "{alerts:?}"
    );
    let rlog = log("rulebox.log");
    assert!(!rlog.contains("request refused"), "{rlog}");
    let records = records(&received, None);
    assert_eq!(records.len(), evs.len());
    assert!(
        records
            .iter()
            .all(|(rl, _)| resource_attr(rl, "host.name").as_deref() == Some("fw-edge-01"))
    );
}

/// One POST over a fresh connection: (status, content type, body).
fn post(port: u16, ctype: &str, gzip: bool, body: &[u8]) -> (u16, String, Vec<u8>) {
    let body = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(body).unwrap();
        e.finish().unwrap()
    } else {
        body.to_vec()
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let enc = if gzip {
        "Content-Encoding: gzip\r\n"
    } else {
        ""
    };
    let head = format!(
        "POST /v1/logs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: {ctype}\r\n{enc}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(&body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer");
    let head = String::from_utf8_lossy(&resp[..at]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_string();
    (status, ctype, resp[at + 4..].to_vec())
}

fn text(v: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Any::StringValue(v.into())),
    })
}

fn attr(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: text(v),
        ..KeyValue::default()
    }
}

/// One resource (`host.name`) and scope holding a record per body.
fn request(host: &str, bodies: &[String]) -> ExportLogsServiceRequest {
    let log_records = bodies
        .iter()
        .map(|b| LogRecord {
            time_unix_nano: 1_763_683_200_000_000_000,
            body: text(b),
            attributes: vec![attr("log.file.name", "fw.json")],
            ..LogRecord::default()
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![attr("host.name", host)],
                ..Resource::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "filelog".into(),
                    ..InstrumentationScope::default()
                }),
                log_records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

#[test]
fn malformed_otlp_bodies_are_refused_whole_with_the_otlp_status() {
    let dir = Scratch::new("otel-refuse");
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"

[sources.otel]
type = "opentelemetry"
address = "127.0.0.1:{port}"
max_body_bytes = 4096

[sinks.events]
type = "file"
path = "{out}"
inputs = ["otel"]
"#,
        data = dir.path("data").display(),
        out = dir.path("events.out").display(),
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = spawn_run(&cfg_path, &dir.path("rulebox.log"));
    wait_listening(port);
    let pb = "application/x-protobuf";
    let one = |n: u32| request("h", &[format!(r#"{{"n":{n}}}"#)]);

    // Protobuf: a whole request with bytes after it that are no field.
    let mut bad = one(0).encode_to_vec();
    bad.extend_from_slice(&[0xff, 0xff, 0xff]);
    let (status, ctype, body) = post(port, pb, false, &bad);
    assert_eq!((status, ctype.as_str()), (400, pb));
    let st = Status::decode(body.as_slice()).expect("a google.rpc.Status");
    assert_eq!(st.code, 3, "INVALID_ARGUMENT");
    assert!(st.message.contains("protobuf"), "{}", st.message);

    // JSON: a good record, then one whose time is no number: none of it.
    let mut v =
        serde_json::to_value(request("h", &[r#"{"n":2}"#.into(), r#"{"n":-2}"#.into()])).unwrap();
    v["resourceLogs"][0]["scopeLogs"][0]["logRecords"][1]["timeUnixNano"] = "soon".into();
    let (status, ctype, body) = post(port, "application/json", true, v.to_string().as_bytes());
    assert_eq!((status, ctype.as_str()), (400, "application/json"));
    let st: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["code"], 3, "{st}");
    assert!(st["message"].as_str().unwrap().contains("JSON"), "{st}");

    // Another content type; a body over max_body_bytes.
    assert_eq!(post(port, "text/plain", false, b"{}").0, 415);
    let big = request("h", &["x".repeat(5000)]).encode_to_vec();
    assert_eq!(post(port, pb, false, &big).0, 413);

    // Accepted: answered in the request's encoding.
    let (status, ctype, body) = post(port, pb, false, &one(1).encode_to_vec());
    assert_eq!((status, ctype.as_str()), (200, pb));
    ExportLogsServiceResponse::decode(body.as_slice()).expect("an ExportLogsServiceResponse");
    let json = serde_json::to_vec(&one(3)).unwrap();
    let (status, ctype, body) = post(port, "application/json", true, &json);
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    serde_json::from_slice::<ExportLogsServiceResponse>(&body).expect("a JSON response");

    // The 200s came once written: exactly the accepted events are there.
    let status = terminate(&mut child.0);
    assert!(status.success());
    let mut got: Vec<i64> = read_lines(&dir.path("events.out"))
        .iter()
        .map(|e| e["n"].as_i64().unwrap())
        .collect();
    got.sort();
    assert_eq!(got, vec![1, 3]);
    let log = std::fs::read_to_string(dir.path("rulebox.log")).unwrap();
    assert_eq!(
        log.matches("request refused: malformed body").count(),
        2,
        "{log}"
    );
}

/// `google.rpc.Status`, as the test reads an error answer.
#[derive(Clone, PartialEq, Message)]
struct Status {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// What the receiver at the end of the chain was sent.
type Received = Arc<Mutex<Vec<ResourceLogs>>>;

/// An OTLP/HTTP receiver (protobuf and JSON, gzip) at the end of the
/// chain, so the test can see the resources the records arrive under.
fn otlp_receiver() -> (u16, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Received::default();
    let keep = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let got = keep.clone();
            std::thread::spawn(move || while serve_one(&conn, &got).is_some() {});
        }
    });
    (port, got)
}

/// Reads one request from `conn` and answers it 200.
fn serve_one(mut conn: &TcpStream, got: &Received) -> Option<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        (conn.read(&mut byte).ok()? == 1).then_some(())?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .map(str::to_string)
    };
    let len: usize = header("content-length")?.parse().ok()?;
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()?;
    if header("content-encoding").as_deref() == Some("gzip") {
        let mut d = flate2::read::GzDecoder::new(body.as_slice());
        let mut out = Vec::new();
        d.read_to_end(&mut out).ok()?;
        body = out;
    }
    let req: ExportLogsServiceRequest = if header("content-type")?.starts_with("application/json") {
        serde_json::from_slice(&body).ok()?
    } else {
        ExportLogsServiceRequest::decode(body.as_slice()).ok()?
    };
    got.lock().unwrap().extend(req.resource_logs);
    let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
    conn.write_all(ok.as_bytes()).ok()
}

fn resource_attr(rl: &ResourceLogs, key: &str) -> Option<String> {
    let attrs = &rl.resource.as_ref()?.attributes;
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match &v.value {
        Some(Any::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A record's body as JSON (a map, or a string holding JSON).
fn body_json(r: &LogRecord) -> Value {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::StringValue(s)) => serde_json::from_str(s).unwrap(),
        Some(Any::KvlistValue(kv)) => Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(Any::StringValue(s)) => Value::from(s.as_str()),
                        Some(Any::IntValue(i)) => Value::from(*i),
                        Some(Any::KvlistValue(_)) => Value::from("map"),
                        _ => Value::Null,
                    };
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
        other => panic!("body {other:?}"),
    }
}

/// Rulebox A (the rule, its events and alerts to B over OTLP) and B (on to
/// the receiver at `recv`), listening on `pa` and `pb`.
fn chain_configs(dir: &Scratch, pa: u16, pb: u16, recv: u16) -> (String, String) {
    let b_cfg = format!(
        r#"data_dir = "{data}"

[sources.otel]
type = "opentelemetry"
address = "127.0.0.1:{pb}"

[sinks.on]
type = "opentelemetry"
inputs = ["otel"]
endpoint = "http://127.0.0.1:{recv}"
"#,
        data = dir.path("data-b").display(),
    );
    let a_cfg = format!(
        r#"data_dir = "{data}"

[sources.otel]
type = "opentelemetry"
address = "127.0.0.1:{pa}"
{rule}
[sinks.otlp]
type = "opentelemetry"
inputs = ["rule"]
endpoint = "http://127.0.0.1:{pb}"
gzip = true

[sinks.otlp_alerts]
type = "opentelemetry"
inputs = ["rule.alerts"]
endpoint = "http://127.0.0.1:{pb}/v1/logs"
encoding = "json"
service_name = "rulebox-a"
"#,
        data = dir.path("data-a").display(),
        rule = live_rule(r#""otel""#),
    );
    (a_cfg, b_cfg)
}

/// The records received under a resource: with a `host.name` (`None`),
/// or with that `service.name`.
fn records(got: &Received, service: Option<&str>) -> Vec<(ResourceLogs, LogRecord)> {
    let got = got.lock().unwrap();
    let mut out = Vec::new();
    for rl in got.iter() {
        let host = resource_attr(rl, "host.name");
        let svc = resource_attr(rl, "service.name");
        if (service.is_none() && host.is_some()) || (service.is_some() && svc.as_deref() == service)
        {
            for sl in &rl.scope_logs {
                out.extend(sl.log_records.iter().map(|r| (rl.clone(), r.clone())));
            }
        }
    }
    out
}

#[test]
fn the_sink_delivers_records_and_alerts_to_a_second_rulebox_keeping_their_resource() {
    let dir = Scratch::new("otel-sink");
    let (recv, got) = otlp_receiver();
    let (pa, pb) = (free_port(), free_port());
    let (a_cfg, b_cfg) = chain_configs(&dir, pa, pb, recv);
    let mut b = spawn_run(&dir.write("b.toml", b_cfg), &dir.path("b.log"));
    let mut a = spawn_run(&dir.write("a.toml", a_cfg), &dir.path("a.log"));
    wait_listening(pa);
    wait_listening(pb);

    let evs = events(1200, 31);
    for chunk in evs.chunks(300) {
        let req = request("fw-edge-01", chunk);
        let (status, _, _) = post(pa, "application/x-protobuf", true, &req.encode_to_vec());
        assert_eq!(status, 200);
    }
    // The 200s came once B took the records, and B answers once delivered.
    assert_eq!(records(&got, None).len(), evs.len());
    wait_for("open alerts", Duration::from_secs(20), || {
        !records(&got, Some("rulebox-a")).is_empty()
    });
    assert!(terminate(&mut a.0).success());
    assert!(terminate(&mut b.0).success());

    let events = records(&got, None);
    let mut labelled = 0;
    let mut originals = Vec::new();
    for (rl, r) in &events {
        assert_eq!(
            resource_attr(rl, "host.name").as_deref(),
            Some("fw-edge-01")
        );
        assert_eq!(rl.scope_logs[0].scope.as_ref().unwrap().name, "filelog");
        assert_eq!(r.time_unix_nano, 1_763_683_200_000_000_000);
        assert_eq!(r.attributes, vec![attr("log.file.name", "fw.json")]);
        let mut e = body_json(r);
        labelled += usize::from(e.as_object_mut().unwrap().remove("t1071").is_some());
        originals.push(e.to_string());
    }
    assert_eq!(
        sorted(originals),
        sorted(canonical(&evs)),
        "the same events, each once"
    );
    assert_eq!(labelled, evs.len(), "every event labelled by the rule");
    let alerts = records(&got, Some("rulebox-a"));
    for (_, r) in &alerts {
        let a = body_json(r);
        assert!(a["alert_id"].is_string(), "{a}");
    }
    assert!(
        alerts
            .iter()
            .any(|(_, r)| body_json(r)["status"] == "final")
    );
}

/// The bundled Collector configuration is one the real Collector accepts.
#[test]
fn the_bundled_collector_configuration_validates() {
    let yaml = root().join("configs/otel-collector/otel-collector-otlp.yaml");
    let out = Command::new(otelcol())
        .args(["validate", "--config", yaml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

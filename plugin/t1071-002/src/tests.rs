//! The rule through the SDK's native runner: exactly the path the wasm
//! exports take, without wasm.

use rulebox_plugin::Runner;
use rulebox_plugin::abi::frame::index::{IndexRequest, index_batch};
use rulebox_plugin::abi::{
    Action, EventResult, FrameOutputs, InitFrame, Outcome, Reads, Reason, Refused, ResultFrame,
};
use serde_json::{Value, json};

use super::*;

/// A result frame applied to its batch: each event as it leaves (a dropped
/// one as it came), with its reason and action, and the alerts.
#[derive(Default)]
pub(crate) struct Out {
    pub(crate) events: Vec<Vec<u8>>,
    pub(crate) alerts: Vec<Value>,
    pub(crate) reasons: Vec<Reason>,
    pub(crate) actions: Vec<Action>,
}

impl FrameOutputs for Out {
    fn event(&mut self, _: usize, result: &EventResult, outcome: Outcome<'_>) {
        self.reasons.push(result.reason);
        self.actions.push(result.action);
        self.events.push(outcome.parts().concat());
    }
    fn record(&mut self, output: u32, line: &[u8]) {
        assert_eq!(output, ALERTS as u32);
        self.alerts.push(serde_json::from_slice(line).unwrap());
    }
    fn refused(&mut self, what: Refused) {
        panic!("the rule wrote a frame the host refuses: {what:?}")
    }
}

pub(crate) fn runner(config: &Value) -> Runner<T1071> {
    let mut r = Runner::<T1071>::new();
    match InitFrame::parse(r.init(config.to_string().as_bytes())).unwrap() {
        InitFrame::Ok {
            outputs,
            reads,
            parallel,
        } => {
            assert_eq!(outputs, vec!["alerts"]);
            assert!(!parallel, "a stage that aggregates runs as one instance");
            let Reads::Objects(o) = reads else {
                panic!("reads bytes")
            };
            assert!(o.keys.is_some());
            // One path group per preset in use (`auto`: Zeek twice, by
            // separator); stage `aggregate` has none.
            let auto = config.get("schema").is_none_or(|s| *s == "auto");
            let groups = match config["stage"].as_str() {
                Some("aggregate") => None,
                _ => Some(if auto { 7 } else { 1 }),
            };
            assert_eq!(o.groups.map(|g| g.len()), groups, "{config}");
        }
        InitFrame::Error(e) => panic!("init failed: {e}"),
    }
    r
}

fn decode(batch: &[u8], count: usize, frame: &[u8]) -> Out {
    let f = ResultFrame::parse(frame).unwrap();
    assert!(f.error().is_none());
    assert_eq!(f.n_events(), count);
    let mut out = Out::default();
    f.apply(batch, &mut out);
    out
}

pub(crate) fn process(r: &mut Runner<T1071>, events: &[&str]) -> Out {
    let mut batch = Vec::new();
    for e in events {
        batch.extend_from_slice(e.as_bytes());
        batch.push(b'\n');
    }
    let frame = r.process(&batch, events.len(), 1_700_000_000_000).to_vec();
    decode(&batch, events.len(), &frame)
}

pub(crate) fn flush(r: &mut Runner<T1071>) -> Vec<Value> {
    let frame = r.flush(0).to_vec();
    decode(b"", 0, &frame).alerts
}

fn cim(src: &str, dest: &str, port: &str, extra: &str) -> String {
    format!(
        r#"{{"src_ip":"{src}","dest_ip":"{dest}","dest_port":{port},"action":"allowed","_time":1700000000{extra}}}"#
    )
}

#[test]
fn enrichment_is_spliced_into_the_original_bytes() {
    let mut r = runner(&json!({"schema": "cim"}));
    let ev = r#"{ "src_ip" : "10.0.0.5", "dest_ip":"203.0.113.9","dest_port":21,"action":"allowed", "x": [1, 2] }"#;
    let out = process(&mut r, &[ev]);
    let got = String::from_utf8(out.events[0].clone()).unwrap();
    let close = ev.rfind('}').unwrap();
    assert_eq!(
        got,
        format!(
            r#"{},"t1071":{{"protocol":"FTP/FTPS","external":true,"counted":true}}{}"#,
            &ev[..close],
            &ev[close..]
        )
    );
}

#[test]
fn existing_enrichment_key_is_replaced_not_duplicated() {
    let mut r = runner(&json!({"schema": "cim"}));
    let ev = r#"{"t1071":{"old":1},"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":80,"action":"allowed"}"#;
    let out = process(&mut r, &[ev]);
    let got = String::from_utf8(out.events[0].clone()).unwrap();
    assert_eq!(
        got,
        r#"{"t1071":{"external":true,"counted":false},"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":80,"action":"allowed"}"#
    );
}

#[test]
fn events_without_destination_or_unreadable_pass_unchanged() {
    let mut r = runner(&json!({}));
    let evs = [
        r#"{"message":"hello"}"#,
        "not json {",
        r#"[1,2]"#,
        "{\"a\":\"\u{1}\"}",
        "",
    ];
    let out = process(&mut r, &evs);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(
            out.events[i],
            e.as_bytes(),
            "event {i} must be byte-identical"
        );
    }
    use Reason::{Malformed, NotObject};
    assert_eq!(
        out.reasons,
        [Reason::Ok, Malformed, NotObject, Malformed, Malformed]
    );
}

#[test]
fn host_name_destination_is_labelled_but_not_external_or_counted() {
    let mut r = runner(&json!({"schema": "cim"}));
    let out = process(
        &mut r,
        &[r#"{"src_ip":"10.0.0.5","dest":"ftp.example.com","dest_port":21,"action":"allowed"}"#],
    );
    let v: Value = serde_json::from_slice(&out.events[0]).unwrap();
    assert_eq!(
        v["t1071"],
        json!({"protocol": "FTP/FTPS", "counted": false})
    );
}

#[test]
fn counted_needs_every_condition() {
    let mut r = runner(
        &json!({"schema": "cim", "allowlist": [{"destination": "198.51.100.0/24", "port": 21, "reason": "partner ftp"}]}),
    );
    let cases = [
        (
            cim("10.0.0.5", "8.8.8.8", "445", ""),
            json!({"protocol":"SMB","external":true,"counted":true}),
        ),
        (
            cim("10.0.0.5", "8.8.8.8", "\"139\"", ""),
            json!({"protocol":"SMB","external":true,"counted":true}),
        ),
        (
            cim("10.0.0.5", "172.20.1.1", "445", ""),
            json!({"protocol":"SMB","external":false,"counted":false}),
        ),
        (
            cim("10.0.0.5", "100.64.3.3", "445", ""),
            json!({"protocol":"SMB","external":false,"counted":false}),
        ),
        (
            cim("8.8.4.4", "8.8.8.8", "445", ""),
            json!({"protocol":"SMB","external":true,"counted":false}),
        ),
        (
            cim("10.0.0.5", "8.8.8.8", "443", ""),
            json!({"external":true,"counted":false}),
        ),
        (
            cim("10.0.0.5", "::ffff:10.1.1.1", "445", ""),
            json!({"protocol":"SMB","external":false,"counted":false}),
        ),
        (
            cim("10.0.0.5", "2001:4860::8888", "69", ""),
            json!({"protocol":"TFTP","external":true,"counted":true}),
        ),
        (
            cim("10.0.0.5", "198.51.100.7", "21", ""),
            json!({"protocol":"FTP/FTPS","external":true,"counted":false,"allowlisted":"partner ftp"}),
        ),
        (
            r#"{"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":445,"action":"blocked"}"#
                .to_string(),
            json!({"protocol":"SMB","external":true,"counted":false}),
        ),
    ];
    let evs: Vec<&str> = cases.iter().map(|(e, _)| e.as_str()).collect();
    let out = process(&mut r, &evs);
    for (i, (_, want)) in cases.iter().enumerate() {
        let v: Value = serde_json::from_slice(&out.events[i]).unwrap();
        assert_eq!(&v["t1071"], want, "case {i}: {}", evs[i]);
    }
}

/// Issue 18: the `allowlisted` label appears on every port an entry
/// matches, not only on watched ones; such events are still not counted.
#[test]
fn allowlisted_is_labelled_on_every_port() {
    let mut r = runner(&json!({"schema": "cim", "allowlist": [
        {"destination": "198.51.100.0/24", "reason": "partner"},
        {"destination": "203.0.113.0/24", "port": 22, "reason": "sftp drop"},
        {"destination": "192.0.2.0/24", "source": "10.9.0.0/16", "reason": "backup"},
    ]}));
    let cases = [
        (
            cim("10.0.0.5", "198.51.100.7", "443", ""),
            json!({"external":true,"counted":false,"allowlisted":"partner"}),
        ),
        (
            r#"{"src_ip":"10.0.0.5","dest_ip":"198.51.100.7","action":"allowed"}"#.to_string(),
            json!({"external":true,"counted":false,"allowlisted":"partner"}),
        ),
        (
            cim("10.0.0.5", "203.0.113.9", "22", ""),
            json!({"external":true,"counted":false,"allowlisted":"sftp drop"}),
        ),
        (
            cim("10.0.0.5", "203.0.113.9", "23", ""),
            json!({"external":true,"counted":false}),
        ),
        (
            cim("10.9.1.1", "192.0.2.8", "8443", ""),
            json!({"external":true,"counted":false,"allowlisted":"backup"}),
        ),
        (
            cim("10.8.1.1", "192.0.2.8", "8443", ""),
            json!({"external":true,"counted":false}),
        ),
        (
            cim("10.0.0.5", "198.51.100.7", "445", ""),
            json!({"protocol":"SMB","external":true,"counted":false,"allowlisted":"partner"}),
        ),
    ];
    let evs: Vec<&str> = cases.iter().map(|(e, _)| e.as_str()).collect();
    let out = process(&mut r, &evs);
    for (i, (_, want)) in cases.iter().enumerate() {
        let v: Value = serde_json::from_slice(&out.events[i]).unwrap();
        assert_eq!(&v["t1071"], want, "case {i}: {}", evs[i]);
    }
    assert!(out.alerts.is_empty());
}

#[test]
fn auto_picks_the_preset_per_event_and_groups_qradar_by_user() {
    let mut r = runner(&json!({"schema": "auto", "allowed_lateness_secs": 0}));
    let mut evs = Vec::new();
    for i in 0..4 {
        evs.push(format!(r#"{{"id.orig_h":"10.0.0.1","id.resp_h":"8.8.8.8","id.resp_p":445,"conn_state":"SF","ts":{}.5,"orig_bytes":100}}"#, 1_700_000_000 + i));
        evs.push(format!(
            r#"{{"sourceip":"10.0.0.2","destinationip":"8.8.4.4","destinationport":"21","eventdirection":"L2R","BytesSent":"10","categoryname":"Session Opened","username":"bob","starttime":{}}}"#,
            1_700_000_000_000i64 + i
        ));
        evs.push(format!(r#"{{"source":{{"ip":"10.0.0.3"}},"destination":{{"ip":"9.9.9.9","port":69}},"event":{{"outcome":"success"}},"@timestamp":"2023-11-14T22:13:2{i}Z"}}"#));
    }
    let refs: Vec<&str> = evs.iter().map(String::as_str).collect();
    let out = process(&mut r, &refs);
    for e in &out.events {
        let v: Value = serde_json::from_slice(e).unwrap();
        assert_eq!(v["t1071"]["counted"], true, "{v}");
    }
    let alerts = flush(&mut r);
    assert_eq!(alerts.len(), 3);
    let by_dest = |d: &str| alerts.iter().find(|a| a["dest_ip"] == d).unwrap().clone();
    let q = by_dest("8.8.4.4");
    assert_eq!(q["username"], "bob");
    assert_eq!(q["users"], json!(["bob"]));
    assert!(q.get("process_name").is_none());
    assert_eq!(q["bytes_sent"], 40);
    let z = by_dest("8.8.8.8");
    assert_eq!(z["process_name"], "");
    assert_eq!(z["bytes_sent"], 400);
    assert_eq!(z["first_seen"], "2023-11-14T22:13:20.500Z");
    assert_eq!(z["last_seen"], "2023-11-14T22:13:23.500Z");
    assert_eq!(by_dest("9.9.9.9")["protocol"], "TFTP");
}

/// One permitted event of `preset`, with its own source, destination and
/// port, plus `extra` members.
fn preset_event(preset: &str, src: &str, dst: &str, port: &str, extra: &str) -> String {
    match preset {
        "cim" => format!(
            r#"{{"src_ip":"{src}","dest_ip":"{dst}","dest_port":{port},"action":"allowed","_time":1700000000{extra}}}"#
        ),
        "qradar" => format!(
            r#"{{"sourceip":"{src}","destinationip":"{dst}","destinationport":{port},"eventdirection":"L2R","BytesSent":10,"categoryname":"Session Opened","username":"bob","starttime":1700000000000{extra}}}"#
        ),
        "ecs" => format!(
            r#"{{"source":{{"ip":"{src}"}},"destination":{{"ip":"{dst}","port":{port}}},"event":{{"outcome":"success"}},"@timestamp":"2023-11-14T22:13:20Z"{extra}}}"#
        ),
        "ocsf" => format!(
            r#"{{"src_endpoint":{{"ip":"{src}"}},"dst_endpoint":{{"ip":"{dst}","port":{port}}},"status_id":1,"time":1700000000000{extra}}}"#
        ),
        "zeek" => format!(
            r#"{{"id.orig_h":"{src}","id.resp_h":"{dst}","id.resp_p":{port},"conn_state":"SF","ts":1700000000{extra}}}"#
        ),
        "sysmon" => format!(
            r#"{{"SourceIp":"{src}","DestinationIp":"{dst}","DestinationPort":{port},"Initiated":"true","UtcTime":"2023-11-14 22:13:20.000"{extra}}}"#
        ),
        other => panic!("no preset {other}"),
    }
}

const PRESETS: [&str; 6] = ["cim", "qradar", "ecs", "ocsf", "zeek", "sysmon"];

/// Issue 18: under `auto`, an override in `fields` no longer changes which
/// preset an event is read as (every event carrying the overridden
/// destination path was read as `zeek`, the first tried). Each preset is
/// recognised by its own destination field, then read with the override:
/// the event's own field holds a value that would not count, the
/// overridden path one that does.
#[test]
fn overrides_do_not_change_the_preset_auto_detects() {
    let alt = r#","alt":{"dst":"203.0.113.9","port":445,"src":"10.0.0.5"}"#;
    for (field, path, (src, dst, port)) in [
        ("destination", "alt.dst", ("10.0.0.5", "10.1.1.1", "445")),
        ("port", "alt.port", ("10.0.0.5", "203.0.113.9", "80")),
        ("source", "alt.src", ("8.8.4.4", "203.0.113.9", "445")),
    ] {
        let mut rule = T1071::new(json!({"fields": {field: path}}).to_string().as_bytes()).unwrap();
        for preset in PRESETS {
            let ev = preset_event(preset, src, dst, port, alt);
            let v = rule.classify(ev.as_bytes(), 0, &mut Vec::new());
            let want = Verdict {
                preset,
                protocol: Some("SMB".into()),
                external: Some(true),
                counted: true,
                allowlisted: None,
            };
            assert_eq!(v, Some(want), "{field} = {path:?}: {ev}");
        }
    }
    // The case from the issue: ECS documents, their own path named.
    let mut r = runner(&json!({"fields": {"destination": "destination.ip"}}));
    let ev = preset_event("ecs", "10.0.0.5", "203.0.113.9", "445", "");
    let out = process(&mut r, &[ev.as_str(); 4]);
    let v: Value = serde_json::from_slice(&out.events[0]).unwrap();
    assert_eq!(v["t1071"]["counted"], true, "{v}");
    assert_eq!(flush(&mut r).len(), 1, "and the alert");
}

/// Issue 18, on real Zeek logs (`tests/data/realdata`, OTRF's LSASS
/// campaign): conn records are read with `.` or `_` as the separator, and
/// only conn records count; an smb_mapping row, with the same `id.*`
/// fields, is labelled and not counted (with or without `_path`).
#[test]
fn zeek_reads_both_separators_and_counts_conn_records_only() {
    const DATA: [(&str, &str); 4] = [
        (
            "conn",
            include_str!("../../../tests/data/realdata/otrf-lsass-zeek/conn.ndjson"),
        ),
        (
            "conn",
            include_str!(
                "../../../tests/data/realdata/otrf-lsass-zeek/conn-underscore-path.ndjson"
            ),
        ),
        (
            "smb_mapping",
            include_str!("../../../tests/data/realdata/otrf-lsass-zeek/smb_mapping-path.ndjson"),
        ),
        (
            "smb_mapping",
            include_str!(
                "../../../tests/data/realdata/otrf-lsass-zeek/smb_mapping-underscore.ndjson"
            ),
        ),
    ];
    let config = json!({"internal_networks": ["192.168.1.41/32"], "min_connections": 1});
    let mut rule = T1071::new(config.to_string().as_bytes()).unwrap();
    let mut counted = 0;
    for (log, text) in DATA {
        for line in text.lines() {
            let v = rule.classify(line.as_bytes(), 0, &mut Vec::new());
            let v = v.unwrap_or_else(|| panic!("no destination read: {line}"));
            assert_eq!(v.preset, "zeek", "{line}");
            if line.contains(r#"_p":445"#) {
                assert_eq!(v.protocol.as_deref(), Some("SMB"), "{line}");
                assert_eq!(v.external, Some(true), "{line}");
                assert_eq!(v.counted, log == "conn", "{line}");
            } else {
                assert!(!v.counted, "{line}");
            }
            counted += v.counted as usize;
        }
    }
    assert_eq!(counted, 2, "the 445 flow, once per separator");
    let mut r = runner(&config);
    let lines: Vec<&str> = DATA.iter().flat_map(|(_, t)| t.lines()).collect();
    process(&mut r, &lines);
    let alerts = flush(&mut r);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["connection_count"], 2);
    assert_eq!(alerts[0]["dest_ip"], "192.168.1.4");
    assert_eq!(alerts[0]["bytes_received"], 2 * 3697);
    assert_eq!(alerts[0]["first_seen"], "2023-08-16T04:54:47.316Z");
}

/// Issue 18: a shipper's wrapper around the event. splunk-logging (npm)
/// and winston's HEC transport send `{"message": {...event...},
/// "severity": ...}`: with `event_path = "message"` every preset field,
/// permit fields included, is read inside it, and the label object goes
/// into that inner object. Python's splunk-handler sends the event as a
/// JSON string: it is read as the object, and the label object goes on
/// the line's top level, the string left as it was.
#[test]
fn wrapped_events_are_read_at_event_path() {
    let config = json!({"event_path": "message", "min_connections": 0});
    let mut r = runner(&config);
    let label = r#""t1071":{"protocol":"SMB","external":true,"counted":true}"#;
    for preset in PRESETS {
        let ev = preset_event(preset, "10.0.0.5", "203.0.113.9", "445", "");
        let line = format!(r#"{{"message":{ev},"severity":"info"}}"#);
        let out = process(&mut r, &[&line]);
        let want = format!(
            r#"{{"message":{},{label}}},"severity":"info"}}"#,
            &ev[..ev.len() - 1]
        );
        assert_eq!(String::from_utf8_lossy(&out.events[0]), want, "{preset}");
        assert_eq!(out.alerts.len(), 0, "alerts leave at ticks and flushes");
        assert_eq!(flush(&mut r).len(), 1, "{preset}: counted");

        let held = serde_json::to_string(&ev).unwrap();
        let line = format!(r#"{{"host":"h","message":{held}}}"#);
        let out = process(&mut r, &[&line]);
        let want = format!(r#"{{"host":"h","message":{held},{label}}}"#);
        assert_eq!(String::from_utf8_lossy(&out.events[0]), want, "{preset}");
        assert_eq!(flush(&mut r).len(), 1, "{preset}: counted");
    }
    // The permit fields are read inside the event, not beside it; an
    // existing label inside is replaced; a line without the member, or
    // whose string is not an object, passes unchanged.
    let blocked = r#"{"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":445,"action":"blocked"}"#;
    let lines = [
        format!(r#"{{"message":{blocked},"action":"allowed"}}"#),
        r#"{"message":{"t1071":1,"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":80}}"#
            .to_string(),
        r#"{"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":445,"action":"allowed"}"#
            .to_string(),
        r#"{"message":"not json"}"#.to_string(),
        r#"{"message":"[1,2]"}"#.to_string(),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = process(&mut r, &refs);
    let v: Value = serde_json::from_slice(&out.events[0]).unwrap();
    assert_eq!(v["message"]["t1071"]["counted"], false, "{v}");
    assert_eq!(
        String::from_utf8_lossy(&out.events[1]),
        r#"{"message":{"t1071":{"external":true,"counted":false},"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":80}}"#
    );
    for (got, line) in out.events.iter().zip(&lines).skip(2) {
        assert_eq!(got, line.as_bytes(), "{line}");
    }
    assert!(flush(&mut r).is_empty());
}

#[test]
fn event_path_is_checked() {
    for (cfg, needle) in [
        (json!({"event_path": ""}), "event_path"),
        (json!({"event_path": "a."}), "event_path"),
        (json!({"event_path": "a.b.c.d"}), "more than 4 dots"),
    ] {
        let mut r = Runner::<T1071>::new();
        match InitFrame::parse(r.init(cfg.to_string().as_bytes())).unwrap() {
            InitFrame::Error(e) => assert!(e.contains(needle), "{e} should mention {needle}"),
            InitFrame::Ok { .. } => panic!("{cfg} should be refused"),
        }
    }
    // The host resolves the destination and port paths (at most one dot
    // of their own): three levels in front still fit.
    assert!(T1071::new(br#"{"event_path":"a.b.c"}"#).is_ok());
}

/// `classify` then `aggregate` gives what `all` gives: the same events, and
/// the same alerts (an observation record carries all an alert is made of).
#[test]
fn classify_then_aggregate_equals_all() {
    let base = json!({"schema": "auto", "allowed_lateness_secs": 0});
    let staged = |stage: &str| {
        let mut c = base.clone();
        c["stage"] = json!(stage);
        c
    };
    let mut evs = Vec::new();
    for i in 0..5 {
        evs.push(format!(r#"{{"id.orig_h":"10.0.0.1","id.resp_h":"2001:db8::7","id.resp_p":445,"conn_state":"SF","ts":{}.5,"orig_bytes":100}}"#, 1_700_000_000 + i));
        evs.push(format!(
            r#"{{"sourceip":"10.0.0.2","destinationip":"::ffff:8.8.4.4","destinationport":"21","eventdirection":"L2R","BytesSent":"10","categoryname":"Session Opened","username":"CORP\\eve","starttime":{}}}"#,
            1_700_000_000_000i64 + i
        ));
        evs.push(format!(r#"{{"source":{{"ip":"10.0.0.3"}},"destination":{{"ip":"9.9.9.9","port":69,"bytes":7}},"process":{{"name":"t\"ftp"}},"event":{{"outcome":"success"}},"@timestamp":"2023-11-14T22:13:2{i}Z"}}"#));
        evs.push(cim("10.0.0.4", "10.0.0.9", "445", ""));
    }
    // A day later: closes the first window while events are processed.
    evs.push(cim("10.0.0.3", "9.9.9.9", "69", "99"));
    let refs: Vec<&str> = evs.iter().map(String::as_str).collect();

    let mut all = runner(&base);
    let whole = process(&mut all, &refs);
    let mut want = whole.alerts.clone();
    want.extend(flush(&mut all));
    assert!(want.iter().any(|a| a["status"] == "final"), "{want:?}");
    assert_eq!(want.len(), 3, "{want:?}");

    let mut classify = Runner::<T1071>::new();
    match InitFrame::parse(classify.init(staged("classify").to_string().as_bytes())).unwrap() {
        InitFrame::Ok {
            outputs, parallel, ..
        } => {
            assert_eq!(outputs, ["observations"]);
            assert!(parallel, "classify may run on several workers");
        }
        InitFrame::Error(e) => panic!("{e}"),
    }
    let classified = process(&mut classify, &refs);
    assert_eq!(classified.events, whole.events);
    assert!(flush(&mut classify).is_empty());
    assert!(snapshot(&mut classify).is_empty());
    let mut lines: Vec<String> = classified.alerts.iter().map(Value::to_string).collect();
    assert_eq!(lines.len(), 16, "one observation per counted event");
    let foreign = cim("10.0.0.5", "8.8.8.8", "21", "");
    lines.push(foreign.clone());

    let mut aggregate = runner(&staged("aggregate"));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let agg = process(&mut aggregate, &refs);
    let last = lines.len() - 1;
    assert!(agg.actions[..last].iter().all(|&a| a == Action::Drop));
    assert_eq!(
        agg.actions[last],
        Action::Pass,
        "not an observation: passed on"
    );
    let mut got = agg.alerts;
    got.extend(flush(&mut aggregate));
    assert_eq!(got, want);
}

/// Events of every preset, counted and not, for the key-declaration check.
fn every_preset_events() -> Vec<String> {
    let mut evs: Vec<String> = include_str!("../../../configs/sample/events.ndjson")
        .lines()
        .map(str::to_string)
        .collect();
    for i in 0..6 {
        let t = 1_700_000_000 + i;
        evs.push(format!(r#"{{"id.orig_h":"10.0.0.1","id.resp_h":"8.8.8.8","id.resp_p":445,"conn_state":"SF","ts":{t}.5,"orig_bytes":100,"resp_bytes":"5"}}"#));
        evs.push(format!(r#"{{"id":{{"orig_h":"10.0.0.1","resp_h":"8.8.8.8","resp_p":21}},"conn_state":"REJ","ts":{t}}}"#));
        evs.push(format!(r#"{{"sourceip":"10.0.0.2","destinationip":"8.8.4.4","destinationport":"21","eventdirection":"L2R","BytesSent":"10","BytesReceived":3,"categoryname":"Session Opened","username":"CORP\\eve","starttime":{t}000}}"#));
        evs.push(format!(r#"{{"source":{{"ip":"10.0.0.3","bytes":9}},"destination":{{"ip":"9.9.9.9","port":69,"bytes":7}},"process":{{"name":"tftp"}},"user":{{"name":"bob"}},"event":{{"outcome":"success"}},"network":{{"direction":"egress"}},"@timestamp":{t}000}}"#));
        evs.push(format!(r#"{{"source":{{"ip":"10.0.0.3"}},"destination":{{"ip":"9.9.9.9","port":69}},"event":{{"action":"accept"}},"network":{{"direction":"inbound"}},"@timestamp":{t}000}}"#));
        evs.push(format!(r#"{{"source.ip":"10.0.0.3","destination.ip":"9.9.9.9","destination.port":69,"event.type":["connection","allowed"],"@timestamp":{t}000}}"#));
        evs.push(format!(r#"{{"src_endpoint":{{"ip":"10.0.0.6"}},"dst_endpoint":{{"ip":"1.1.1.1","port":990}},"traffic":{{"bytes_out":1,"bytes_in":2}},"actor":{{"user":{{"name":"u"}},"process":{{"name":"p"}}}},"status_id":1,"time":{t}000}}"#));
        evs.push(format!(r#"{{"SourceIp":"10.0.0.7","DestinationIp":"2.2.2.2","DestinationPort":"139","Initiated":"true","User":"x","Image":"y","UtcTime":"2023-11-14 22:13:2{i}.000"}}"#));
        evs.push(cim("10.0.0.4", "8.8.8.8", "445", &format!("{}", i * 10)));
        evs.push(format!(r#"{{"src":"10.0.0.4","dest":"8.8.8.8","dest_port":20,"action":"allowed","t1071":{{"old":1}},"_time":{t}}}"#));
        evs.push(format!(r#"{{"s\u0072c_ip":"10.0.0.4","dest_ip":"8.8.8.8","dest_port":20,"action":"allowed","_time":{t}}}"#));
        evs.push(format!(r#"{{"dst":{{"addr":"8.8.8.8","p":"139"}},"src_ip":"10.0.0.9","when":{t}000,"action":"allowed"}}"#));
    }
    // Wrapped, as an object and as a JSON string (read with `event_path`).
    let inner: Vec<String> = evs.iter().skip(evs.len() - 72).cloned().collect();
    for ev in inner {
        let held = serde_json::to_string(&ev).unwrap();
        evs.push(format!(r#"{{"message":{ev},"severity":"info"}}"#));
        evs.push(format!(r#"{{"severity":"info","message":{held}}}"#));
    }
    evs.extend(["{}", "[1]", "not json", r#"{"unrelated":true}"#].map(str::to_string));
    evs.push(r#"{"message":"not json"}"#.to_string());
    evs
}

/// What the rule declares (the enrichment key as a member, the presets'
/// fields as a path plan) is all it reads: for each configuration, the
/// answers from the index the host builds for that declaration equal the
/// answers from scanning (and resolving the plan) in the guest.
#[test]
fn the_hosts_index_answers_like_a_scan_for_every_configuration() {
    let events = every_preset_events();
    let mut configs: Vec<Value> = ["auto", "cim", "qradar", "ecs", "ocsf", "zeek", "sysmon"]
        .iter()
        .map(|s| json!({"schema": s, "min_connections": 1}))
        .collect();
    configs.push(
        json!({"schema": "cim", "min_connections": 1, "enrich_key": "rulebox_t1071",
        "fields": {"destination": "dst.addr", "port": "dst.p", "time": "when", "time_unit": "ms"}}),
    );
    configs.push(json!({"schema": "auto", "stage": "classify"}));
    configs.push(json!({"schema": "auto", "event_path": "message", "min_connections": 1}));
    configs.push(json!({"schema": "ecs", "event_path": "message", "min_connections": 1}));
    let run = |config: &Value, lines: &[String]| -> Vec<u8> {
        let (mut scanned, mut indexed) = (Runner::<T1071>::new(), Runner::<T1071>::new());
        scanned.init(config.to_string().as_bytes());
        let request = match InitFrame::parse(indexed.init(config.to_string().as_bytes())).unwrap() {
            InitFrame::Ok {
                reads: Reads::Objects(o),
                ..
            } => IndexRequest::from_reads(&o),
            other => panic!("{other:?}"),
        };
        let mut records = Vec::new();
        for chunk in lines.chunks(500) {
            let mut batch = Vec::new();
            for e in chunk {
                batch.extend_from_slice(e.as_bytes());
                batch.push(b'\n');
            }
            let mut index = Vec::new();
            let work = index_batch(
                &mut Scanner::new(),
                &request,
                &batch,
                chunk.len(),
                &mut index,
            )
            .unwrap();
            // The host's work resolving this rule's plan: far under its
            // budget (PLAN_WORK_PER_BYTE a byte).
            let per_byte = work as f64 / batch.len() as f64;
            assert!(per_byte < 4.0, "{config}: {per_byte:.2} units a byte");
            let want = scanned.process(&batch, chunk.len(), 0).to_vec();
            let got = indexed.process_objects(&batch, &index, chunk.len(), 0);
            assert_eq!(got, &want[..], "{config}");
            records.extend_from_slice(&want);
        }
        assert_eq!(scanned.flush(0), indexed.flush(0), "{config}");
        records
    };
    for c in &configs {
        run(c, &events);
    }
    // Stage `aggregate` reads observation records.
    let mut classify = Runner::<T1071>::new();
    classify.init(br#"{"schema":"auto","stage":"classify","min_connections":1}"#);
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let mut lines: Vec<String> = process(&mut classify, &refs)
        .alerts
        .iter()
        .map(Value::to_string)
        .collect();
    assert!(lines.len() > 50, "{}", lines.len());
    lines.extend(events.iter().take(20).cloned());
    run(
        &json!({"schema": "auto", "stage": "aggregate", "min_connections": 1}),
        &lines,
    );
}

/// Issue 18: in a replay of old logs, an event whose time cannot be read
/// used to take the processing time, moving the clock to now and making
/// every later event late. It now counts in the window of the latest event
/// time seen, and never moves the clock; before any event time is known it
/// takes the processing time. The same through `classify` + `aggregate`.
#[test]
fn an_unreadable_time_never_moves_the_clock() {
    let at = |src: &str, t: &str| {
        format!(r#"{{"src_ip":"{src}","dest_ip":"8.8.8.8","dest_port":445,"action":"allowed"{t}}}"#)
    };
    let untimed = at("10.0.0.9", "");
    // Before any event time: the processing time (the batch's now).
    let mut r = runner(&json!({"schema": "cim"}));
    process(&mut r, &[untimed.as_str(); 4]);
    let alerts = flush(&mut r);
    assert_eq!(alerts[0]["first_seen"], "2023-11-14T22:13:20.000Z");

    // A replay of 2020 processed in 2023 (the batch's now).
    let old = |src: &str, secs: i64| at(src, &format!(r#","_time":{secs}"#));
    let t = 1_600_000_000; // 2020-09-13T12:26:40Z
    let mut evs: Vec<String> = (0..4).map(|i| old("10.0.0.1", t + i)).collect();
    evs.extend((0..4).map(|_| untimed.clone()));
    evs.extend((0..4).map(|i| old("10.0.0.2", t + 3600 + i)));
    let refs: Vec<&str> = evs.iter().map(String::as_str).collect();
    let base = json!({"schema": "cim", "allowed_lateness_secs": 0});
    let mut all = runner(&base);
    let during = process(&mut all, &refs).alerts;
    assert!(during.is_empty(), "no window closed early: {during:?}");
    let mut alerts = flush(&mut all);
    assert_eq!(alerts.len(), 3, "no event was late: {alerts:?}");
    alerts.sort_by_key(|a| a["src_ip"].as_str().unwrap().to_string());
    let seen = |a: &Value| (a["first_seen"].clone(), a["last_seen"].clone());
    assert_eq!(
        seen(&alerts[2]),
        (
            json!("2020-09-13T12:26:43.000Z"),
            json!("2020-09-13T12:26:43.000Z")
        ),
        "the untimed events count at the latest event time seen"
    );
    assert_eq!(alerts[1]["first_seen"], "2020-09-13T13:26:40.000Z");
    assert!(
        alerts
            .iter()
            .all(|a| a["window_start"] == "2020-09-13T00:00:00.000Z")
    );

    // Split in two stages: the observation carries no time, and the
    // aggregate stage places it by its own clock.
    let mut classify = Runner::<T1071>::new();
    let mut staged = base.clone();
    staged["stage"] = json!("classify");
    classify.init(staged.to_string().as_bytes());
    let records: Vec<String> = process(&mut classify, &refs)
        .alerts
        .iter()
        .map(Value::to_string)
        .collect();
    assert!(records[4].contains(r#""time_ms":null"#), "{}", records[4]);
    staged["stage"] = json!("aggregate");
    let mut aggregate = runner(&staged);
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let consumed = process(&mut aggregate, &refs);
    assert!(consumed.actions.iter().all(|&a| a == Action::Drop));
    let mut split = flush(&mut aggregate);
    split.sort_by_key(|a| a["src_ip"].as_str().unwrap().to_string());
    assert_eq!(split, alerts);
}

#[test]
fn tick_emits_open_alerts_and_window_close_emits_final() {
    let mut r = runner(&json!({"schema": "cim", "allowed_lateness_secs": 0}));
    let ev = cim("10.0.0.5", "8.8.8.8", "445", "");
    process(&mut r, &[&ev, &ev, &ev, &ev]);
    let ticked = decode(b"", 0, r.tick(0)).alerts;
    assert_eq!(ticked.len(), 1);
    assert_eq!(ticked[0]["status"], "open");
    // An event a day later closes the window during process().
    let next = r#"{"src_ip":"10.0.0.5","dest_ip":"8.8.8.8","dest_port":445,"action":"allowed","_time":1700100000}"#;
    let out = process(&mut r, &[next]);
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0]["status"], "final");
    assert_eq!(out.alerts[0]["alert_id"], ticked[0]["alert_id"]);
}

#[test]
fn bad_config_is_explained() {
    for (cfg, needle) in [
        (json!({"internal_networks": ["10.0.0.0/33"]}), "10.0.0.0/33"),
        (json!({"schema": "splunk"}), "unknown variant"),
        (json!({"min_conections": 3}), "unknown field"),
        (
            json!({"allowlist": [{"destination": "nope", "reason": "x"}]}),
            "allowlist[0]",
        ),
        (json!({"window_secs": 0}), "window_secs"),
    ] {
        let mut r = Runner::<T1071>::new();
        match InitFrame::parse(r.init(cfg.to_string().as_bytes())).unwrap() {
            InitFrame::Error(e) => assert!(e.contains(needle), "{e} should mention {needle}"),
            InitFrame::Ok { .. } => panic!("{cfg} should be refused"),
        }
    }
}

#[test]
fn classify_gives_the_verdict() {
    let mut rule = T1071::new(b"{}").unwrap();
    let mut alerts = Vec::new();
    let v = rule
        .classify(
            cim("10.0.0.5", "8.8.8.8", "990", "").as_bytes(),
            0,
            &mut alerts,
        )
        .unwrap();
    assert_eq!(
        v,
        Verdict {
            preset: "cim",
            protocol: Some("FTP/FTPS".into()),
            external: Some(true),
            counted: true,
            allowlisted: None
        }
    );
}

fn snapshot(r: &mut Runner<T1071>) -> Vec<u8> {
    let frame = r.snapshot(0).to_vec();
    let f = ResultFrame::parse(&frame).unwrap();
    assert!(f.error().is_none());
    f.payload_area().to_vec()
}

fn restore_error(r: &mut Runner<T1071>, data: &[u8]) -> Option<String> {
    let frame = r.restore(data, 0).to_vec();
    let f = ResultFrame::parse(&frame).unwrap();
    f.error().map(|e| String::from_utf8_lossy(e).into_owned())
}

#[test]
fn a_window_survives_a_snapshot_and_restore() {
    let cfg = json!({"schema": "cim", "window_secs": 86_400});
    let ev = |user: &str| {
        cim(
            "10.0.0.5",
            "203.0.113.9",
            "21",
            &format!(r#","user":"{user}","bytes_out":100"#),
        )
    };
    let mut before = runner(&cfg);
    let evs = [ev("ann"), ev("bob")];
    process(
        &mut before,
        &evs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let state = snapshot(&mut before);
    assert!(!state.is_empty());

    let mut after = runner(&cfg);
    assert_eq!(restore_error(&mut after, &state), None);
    let evs = [ev("cat"), ev("ann")];
    process(
        &mut after,
        &evs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let alerts = flush(&mut after);
    assert_eq!(
        alerts.len(),
        1,
        "2 before + 2 after the restart > 3: {alerts:?}"
    );
    assert_eq!(alerts[0]["connection_count"], 4);
    assert_eq!(alerts[0]["bytes_sent"], 400);
    assert_eq!(alerts[0]["users"], json!(["ann", "bob", "cat"]));
    // The same state, written again, is byte-identical in content size.
    let mut again = runner(&cfg);
    assert_eq!(restore_error(&mut again, &state), None);
    assert_eq!(snapshot(&mut again).len(), state.len());
}

#[test]
fn damaged_or_foreign_snapshots_are_refused_and_leave_the_state_alone() {
    let cfg = json!({"schema": "cim"});
    let mut r = runner(&cfg);
    let e = cim("10.0.0.5", "203.0.113.9", "21", "");
    process(&mut r, &[e.as_str(); 2]);
    let state = snapshot(&mut r);

    let mut fresh = runner(&cfg);
    process(&mut fresh, &[e.as_str(); 2]);
    // Every truncation and every single-byte flip is refused.
    for cut in 1..state.len() {
        assert!(
            restore_error(&mut fresh, &state[..cut]).is_some(),
            "cut at {cut}"
        );
    }
    for i in 0..state.len() {
        let mut bad = state.clone();
        bad[i] ^= 0x41;
        assert!(restore_error(&mut fresh, &bad).is_some(), "flip at {i}");
    }
    assert!(
        restore_error(&mut fresh, b"hello")
            .unwrap()
            .contains("not a T1071.002 snapshot")
    );
    // Another window size: refused as incompatible.
    let mut other = runner(&json!({"schema": "cim", "window_secs": 60}));
    assert!(
        restore_error(&mut other, &state)
            .unwrap()
            .contains("window_secs")
    );
    // The refused restores left `fresh` with its own two events.
    process(&mut fresh, &[e.as_str(); 2]);
    let alerts = flush(&mut fresh);
    assert_eq!(alerts[0]["connection_count"], 4);
}

/// The keys serde accepts in one table of the configuration, from its
/// message about an unknown one.
fn accepted_keys(config: Value) -> std::collections::BTreeSet<String> {
    let e = Config::from_json(config.to_string().as_bytes()).unwrap_err();
    let expected = e.split("expected ").nth(1).expect(&e);
    let expected = expected.split(" at line").next().unwrap();
    let expected = expected.trim_start_matches("one of ").replace(" or ", ", ");
    expected
        .split(", ")
        .map(|k| k.trim_matches('`').to_string())
        .collect()
}

fn schema_keys(schema: &Value) -> std::collections::BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_manifest_is_json_and_its_schema_names_every_key() {
    const LEN: usize = MANIFEST.json_len();
    let m: Value = serde_json::from_slice(&MANIFEST.to_json::<LEN>()).unwrap();
    assert_eq!(m["name"], "t1071-002");
    assert_eq!(m["techniques"], json!(["T1071.002"]));
    let schema = &m["config_schema"];
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(accepted_keys(json!({"zz": 1})), schema_keys(schema));
    let props = &schema["properties"];
    assert_eq!(
        accepted_keys(json!({"fields": {"zz": 1}})),
        schema_keys(&props["fields"])
    );
    let protocol = json!({"protocols": [{"zz": 1}]});
    assert_eq!(
        accepted_keys(protocol),
        schema_keys(&props["protocols"]["items"])
    );
    let allow = json!({"allowlist": [{"zz": 1}]});
    assert_eq!(
        accepted_keys(allow),
        schema_keys(&props["allowlist"]["items"])
    );
}

/// The labels written at once are those written member by member.
#[test]
fn the_common_labels_are_written_as_the_others() {
    let rule = T1071::new(b"{}").unwrap();
    for external in [Some(true), Some(false), None] {
        let j = Judgement {
            preset: 0,
            format: None,
            proto: 0,
            external,
            counted: false,
            allowlisted: None,
        };
        let (mut fast, mut parts) = (Vec::new(), Vec::new());
        rule.write_label(&mut fast, &j);
        rule.write_label_parts(&mut parts, &j);
        assert_eq!(fast, parts, "{external:?}");
    }
}

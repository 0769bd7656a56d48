//! The rule through the SDK's native runner: the path the wasm exports
//! take, without wasm.

use rulebox_plugin::Runner;
use rulebox_plugin::abi::{
    EventResult, FrameOutputs, InitFrame, Outcome, Reads, Refused, ResultFrame,
};
use serde_json::{Value, json};

use super::*;

/// A result frame applied to its batch: each event as it leaves, and the
/// alerts.
#[derive(Default)]
struct Out {
    events: Vec<Value>,
    alerts: Vec<Value>,
}

impl FrameOutputs for Out {
    fn event(&mut self, _: usize, _: &EventResult, outcome: Outcome<'_>) {
        let line = outcome.parts().concat();
        self.events
            .push(serde_json::from_slice(&line).unwrap_or(Value::Null));
    }
    fn record(&mut self, output: u32, line: &[u8]) {
        assert_eq!(output, ALERTS as u32);
        self.alerts.push(serde_json::from_slice(line).unwrap());
    }
    fn refused(&mut self, what: Refused) {
        panic!("the rule wrote a frame the host refuses: {what:?}")
    }
}

fn runner(config: Value) -> Runner<LargeOutbound> {
    let mut r = Runner::<LargeOutbound>::new();
    match InitFrame::parse(r.init(config.to_string().as_bytes())).unwrap() {
        InitFrame::Ok {
            outputs,
            reads,
            parallel,
        } => {
            assert_eq!(outputs, vec!["alerts"]);
            assert!(!parallel, "it sums across batches");
            assert!(matches!(reads, Reads::Objects(o) if o.keys.is_some()));
        }
        InitFrame::Error(e) => panic!("init failed: {e}"),
    }
    r
}

fn decode(batch: &[u8], frame: &[u8]) -> Out {
    let f = ResultFrame::parse(frame).unwrap();
    assert!(
        f.error().is_none(),
        "{:?}",
        f.error().map(String::from_utf8_lossy)
    );
    let mut out = Out::default();
    f.apply(batch, &mut out);
    out
}

const NOW: i64 = 1_800_000_000_000;

fn process(r: &mut Runner<LargeOutbound>, events: &[String]) -> Out {
    let batch: Vec<u8> = events
        .iter()
        .flat_map(|e| format!("{e}\n").into_bytes())
        .collect();
    let frame = r.process(&batch, events.len(), NOW).to_vec();
    decode(&batch, &frame)
}

fn flush(r: &mut Runner<LargeOutbound>) -> Vec<Value> {
    let frame = r.flush(NOW).to_vec();
    decode(b"", &frame).alerts
}

/// 2025-11-21T09:00:00Z, a window start.
const T0: i64 = 1_763_715_600;

fn cim(t: i64, src: &str, dest: &str, port: u16, bytes: u64) -> String {
    json!({"_time": t, "src_ip": src, "dest_ip": dest, "dest_port": port,
           "bytes_out": bytes, "action": "allowed"})
    .to_string()
}

fn small() -> Value {
    json!({"schema": "cim", "threshold_bytes": 1000})
}

#[test]
fn bytes_over_the_threshold_in_one_window_alert_once() {
    let mut r = runner(small());
    let out = process(
        &mut r,
        &[
            cim(T0, "10.0.0.5", "203.0.113.9", 443, 600),
            cim(T0 + 119, "10.0.0.5", "203.0.113.9", 443, 401),
            // Another port, and the next window: other keys.
            cim(T0 + 10, "10.0.0.5", "203.0.113.9", 8443, 1500),
            cim(T0 + 120, "10.0.0.5", "203.0.113.9", 443, 1000),
        ],
    );
    assert_eq!(
        out.events[0]["t1048"],
        json!({"external": true, "counted": true})
    );
    assert!(out.alerts.is_empty(), "no window closed yet");
    let alerts = flush(&mut r);
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    // Within a window, by bytes sent, descending.
    assert_eq!(alerts[0]["dest_port"], 8443);
    let a = &alerts[1];
    assert_eq!(a["status"], "final");
    assert_eq!(a["bytes_sent"], 1001);
    assert_eq!(a["connection_count"], 2);
    assert_eq!(a["window_start"], "2025-11-21T09:00:00.000Z");
    assert_eq!(a["window_end"], "2025-11-21T09:02:00.000Z");
    assert_eq!(a["last_seen"], "2025-11-21T09:01:59.000Z");
    assert!(
        a["alert_id"]
            .as_str()
            .unwrap()
            .starts_with("T1048:1763715600:")
    );
}

#[test]
fn only_permitted_outbound_connections_with_a_port_count() {
    let mut r = runner(json!({"schema": "cim", "threshold_bytes": 0,
                              "excluded_destinations": ["198.51.100.0/24"]}));
    let blocked = cim(T0, "10.0.0.5", "203.0.113.9", 443, 5).replace("allowed", "blocked");
    let out = process(
        &mut r,
        &[
            blocked,
            cim(T0, "203.0.113.1", "203.0.113.9", 443, 5),
            cim(T0, "10.0.0.5", "10.0.0.6", 443, 5),
            cim(T0, "10.0.0.5", "files.example", 443, 5),
            cim(T0, "10.0.0.5", "198.51.100.7", 443, 5),
            json!({"_time": T0, "src_ip": "10.0.0.5", "dest_ip": "203.0.113.9",
                   "action": "allowed", "bytes_out": 5})
            .to_string(),
            json!({"src_ip": "10.0.0.5"}).to_string(),
        ],
    );
    let labels: Vec<&Value> = out.events.iter().map(|e| &e["t1048"]).collect();
    assert_eq!(*labels[0], json!({"external": true, "counted": false}));
    assert_eq!(*labels[1], json!({"external": true, "counted": false}));
    assert_eq!(*labels[2], json!({"external": false, "counted": false}));
    assert_eq!(*labels[3], json!({"counted": false}));
    assert_eq!(
        *labels[4],
        json!({"external": true, "excluded": true, "counted": false})
    );
    assert_eq!(*labels[5], json!({"external": true, "counted": false}));
    assert_eq!(*labels[6], Value::Null, "no destination: unchanged");
    assert!(flush(&mut r).is_empty());
}

#[test]
fn a_closing_window_alerts_while_events_flow_and_late_ones_are_not_summed() {
    let mut r = runner(json!({"schema": "cim", "threshold_bytes": 10,
                              "allowed_lateness_secs": 30}));
    let out = process(
        &mut r,
        &[
            cim(T0, "10.0.0.5", "203.0.113.9", 22, 11),
            cim(T0 + 149, "10.0.0.5", "203.0.113.9", 22, 1),
        ],
    );
    assert!(out.alerts.is_empty());
    let out = process(&mut r, &[cim(T0 + 150, "10.0.0.5", "203.0.113.9", 22, 1)]);
    assert_eq!(
        out.alerts.len(),
        1,
        "the first window closed at its end + 30 s"
    );
    assert_eq!(out.alerts[0]["bytes_sent"], 11);
    let out = process(&mut r, &[cim(T0 + 5, "10.0.0.5", "203.0.113.9", 22, 100)]);
    assert!(out.alerts.is_empty());
    assert!(
        flush(&mut r).is_empty(),
        "the late 100 bytes were not summed"
    );
}

#[test]
fn a_tick_sends_open_alerts_for_changed_figures_only() {
    let mut r = runner(small());
    process(&mut r, &[cim(T0, "10.0.0.5", "203.0.113.9", 443, 2000)]);
    let tick = |r: &mut Runner<LargeOutbound>| decode(b"", r.tick(NOW)).alerts;
    let first = tick(&mut r);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "open");
    assert!(tick(&mut r).is_empty());
    process(&mut r, &[cim(T0 + 1, "10.0.0.5", "203.0.113.9", 443, 0)]);
    assert_eq!(tick(&mut r)[0]["connection_count"], 2);
    let last = flush(&mut r);
    assert_eq!(last[0]["status"], "final");
    assert_eq!(last[0]["alert_id"], first[0]["alert_id"]);
}

#[test]
fn state_survives_a_restart_and_another_window_length_is_refused() {
    let mut r = runner(small());
    process(&mut r, &[cim(T0, "10.0.0.5", "203.0.113.9", 443, 600)]);
    let frame = r.snapshot(NOW).to_vec();
    let f = ResultFrame::parse(&frame).unwrap();
    let state = f.payload_area().to_vec();
    assert!(!state.is_empty());

    let mut again = runner(small());
    let ok = again.restore(&state, NOW).to_vec();
    assert!(ResultFrame::parse(&ok).unwrap().error().is_none());
    process(
        &mut again,
        &[cim(T0 + 1, "10.0.0.5", "203.0.113.9", 443, 401)],
    );
    let alerts = flush(&mut again);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["bytes_sent"], 1001);

    let mut other = runner(json!({"schema": "cim", "window_secs": 60}));
    let refused = other.restore(&state, NOW).to_vec();
    let err = ResultFrame::parse(&refused)
        .unwrap()
        .error()
        .map(|e| String::from_utf8_lossy(e).into_owned());
    assert!(err.is_some_and(|e| e.contains("120000 ms")));
    let garbage = other.restore(b"{\"version\":1", NOW).to_vec();
    assert!(ResultFrame::parse(&garbage).unwrap().error().is_some());
}

#[test]
fn bad_configurations_are_refused_with_the_key() {
    for (config, says) in [
        (json!({"window_secs": 0}), "window_secs"),
        (json!({"internal_networks": ["lan"]}), "internal_networks"),
        (
            json!({"excluded_destinations": ["10.0.0.0/33"]}),
            "excluded_destinations",
        ),
        (json!({"threshold": 5}), "unknown field"),
        (json!({"schema": "zeek"}), "unknown variant"),
    ] {
        let mut r = Runner::<LargeOutbound>::new();
        match InitFrame::parse(r.init(config.to_string().as_bytes())).unwrap() {
            InitFrame::Error(e) => assert!(e.contains(says), "{config}: {e}"),
            InitFrame::Ok { .. } => panic!("{config} accepted"),
        }
    }
}

#[test]
fn the_schema_in_the_manifest_is_json_naming_every_key() {
    let schema: Value = serde_json::from_str(MANIFEST.config_schema.unwrap()).unwrap();
    let props = schema["properties"].as_object().unwrap();
    let defaults = [
        "schema",
        "window_secs",
        "allowed_lateness_secs",
        "threshold_bytes",
        "internal_networks",
        "extra_internal_networks",
        "excluded_destinations",
        "max_keys",
        "enrich_key",
    ];
    assert_eq!(props.len(), defaults.len());
    for k in defaults {
        assert!(props.contains_key(k), "{k}");
    }
}

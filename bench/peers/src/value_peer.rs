//! The peer most Rust code starts as: each line parsed into a
//! `serde_json::Value`, the label inserted as a member, the whole value
//! written again, and the aggregation natively.

use serde_json::{Map, Value, json};

use crate::cim::{self, Fields, Networks};
use crate::tally::{Key, Observation, Tally};

/// Labels and aggregates `input` (NDJSON): labelled lines to `out`,
/// alerts to `alerts`.
pub fn run(input: &[u8], out: &mut Vec<u8>, alerts: &mut Vec<u8>) {
    let nets = Networks::default();
    let mut tally = Tally::default();
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(mut m)) => {
                label(&nets, &mut tally, &mut m, alerts);
                serde_json::to_writer(&mut *out, &m).expect("write to memory");
            }
            _ => out.extend_from_slice(body),
        }
        out.push(b'\n');
    }
    tally.flush(alerts);
}

/// An address, user or process: a string or a number, trimmed, not empty.
fn text(v: Option<&Value>) -> Option<String> {
    let t = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!t.is_empty()).then_some(t)
}

/// A byte count: whole and not negative, else missing (0).
fn bytes(v: Option<&Value>) -> u64 {
    let n = match v {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.fract() == 0.0 && *n >= 0.0)
        .map_or(0, |n| n as u64)
}

fn label(nets: &Networks, tally: &mut Tally, m: &mut Map<String, Value>, alerts: &mut Vec<u8>) {
    let Some(dest) = text(m.get("dest_ip")).or_else(|| text(m.get("dest"))) else {
        return;
    };
    let src = text(m.get("src_ip")).or_else(|| text(m.get("src")));
    let port = match m.get("dest_port") {
        Some(Value::Number(n)) => n.as_f64().and_then(cim::port_from_f64),
        Some(Value::String(s)) => cim::port_from_str(s),
        _ => None,
    };
    let allowed =
        matches!(m.get("action"), Some(Value::String(a)) if a.eq_ignore_ascii_case("allowed"));
    let (l, pair) = cim::classify(
        nets,
        Fields {
            src: src.as_deref(),
            dest: &dest,
            port,
            allowed,
        },
    );
    let mut obj = Map::new();
    if let Some(p) = l.protocol {
        obj.insert("protocol".into(), json!(p));
    }
    if let Some(e) = l.external {
        obj.insert("external".into(), json!(e));
    }
    obj.insert("counted".into(), json!(l.counted));
    if let (Some((s, d)), Some(p)) = (pair, l.protocol) {
        let time_ms = match m.get("_time") {
            Some(Value::String(s)) => cim::seconds_str_to_ms(s),
            Some(Value::Number(n)) => n.as_f64().map(|f| (f * 1000.0).round() as i64),
            _ => None,
        };
        let user = text(m.get("user"));
        let o = Observation {
            key: Key {
                src: s,
                dest: d,
                port: port.unwrap_or(0),
                protocol: p,
                process: text(m.get("process_name")).unwrap_or_default(),
            },
            time_ms,
            sent: bytes(m.get("bytes_out")),
            received: bytes(m.get("bytes_in")),
            user: user.as_deref(),
        };
        tally.record(o, 0, alerts);
    }
    m.insert("t1071".into(), Value::Object(obj));
}

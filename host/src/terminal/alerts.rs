//! `rulebox alerts FILE`: a file of alerts (NDJSON, as a rule's `alerts`
//! output writes them) as a table for a person: the latest line of each
//! `alert_id` (an `open` alert is superseded by its `final` one), the
//! riskiest first, then the most connections, then the most bytes.

use std::collections::HashMap;

use serde_json::Value;

use super::table::{self, Table};

/// What reading the file found besides alerts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    /// Lines that are not JSON objects.
    pub malformed: usize,
    /// Objects without an `alert_id` (events, not alerts).
    pub not_alerts: usize,
}

/// The table of the alerts in `text`, and what was skipped.
pub fn table(text: &[u8]) -> (Table, Skipped) {
    let (alerts, skipped) = latest(text);
    let mut sorted: Vec<&Value> = alerts.iter().collect();
    sorted.sort_by_key(|a| {
        std::cmp::Reverse((risk_rank(a), num(a, "connection_count"), out_bytes(a)))
    });
    let mut t = Table::new(&[
        "RISK",
        "RULE",
        "STATUS",
        "COUNT#",
        "BYTES OUT#",
        "SOURCE",
        "DESTINATION",
        "PROTOCOL",
        "FIRST SEEN",
        "LAST SEEN",
    ]);
    for a in sorted {
        t.row(vec![
            risk(a),
            text_of(a, "rule"),
            text_of(a, "status"),
            table::count(num(a, "connection_count")),
            table::bytes(out_bytes(a)),
            text_of(a, "src_ip"),
            destination(a),
            text_of(a, "protocol"),
            when(a, "first_seen"),
            when(a, "last_seen"),
        ]);
    }
    (t, skipped)
}

/// The last line of each `alert_id`, in the order ids first appeared.
fn latest(text: &[u8]) -> (Vec<Value>, Skipped) {
    let mut skipped = Skipped::default();
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut alerts = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(line) else {
            skipped.malformed += 1;
            continue;
        };
        let Some(id) = v
            .get("alert_id")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            skipped.not_alerts += 1;
            continue;
        };
        match at.get(&id) {
            Some(&i) => alerts[i] = v,
            None => {
                at.insert(id, alerts.len());
                alerts.push(v);
            }
        }
    }
    (alerts, skipped)
}

/// `exfil_risk` (HIGH, MEDIUM, LOW), else `severity`, upper case.
fn risk(a: &Value) -> String {
    let r = a.get("exfil_risk").or_else(|| a.get("severity"));
    r.and_then(Value::as_str)
        .map_or("-".into(), str::to_uppercase)
}

fn risk_rank(a: &Value) -> u8 {
    match risk(a).as_str() {
        "CRITICAL" => 4,
        "HIGH" => 3,
        "MEDIUM" => 2,
        "LOW" => 1,
        _ => 0,
    }
}

/// `bytes_sent`, else `bytes_total` (a count that cannot tell the upload).
fn out_bytes(a: &Value) -> u64 {
    match a.get("bytes_sent").and_then(Value::as_u64) {
        Some(n) => n,
        None => num(a, "bytes_total"),
    }
}

fn num(a: &Value, key: &str) -> u64 {
    a.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn text_of(a: &Value, key: &str) -> String {
    match a.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(v) => v.to_string(),
    }
}

fn destination(a: &Value) -> String {
    match a.get("dest_port").and_then(Value::as_u64) {
        Some(p) => format!("{}:{p}", text_of(a, "dest_ip")),
        None => text_of(a, "dest_ip"),
    }
}

/// An RFC 3339 time, shorter: `2025-11-21 09:00:00` (UTC).
fn when(a: &Value, key: &str) -> String {
    let t = text_of(a, key);
    let t = t.trim_end_matches('Z');
    let t = t.split('.').next().unwrap_or(t);
    t.replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, status: &str, risk: &str, count: u64, sent: u64) -> String {
        format!(
            r#"{{"alert_id":"{id}","status":"{status}","rule":"T1071.002","exfil_risk":"{risk}","connection_count":{count},"bytes_sent":{sent},"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"protocol":"FTP/FTPS","first_seen":"2025-11-21T09:00:00.000Z","last_seen":"2025-11-21T09:03:10.000Z"}}"#
        )
    }

    #[test]
    fn latest_per_id_riskiest_first_then_by_count() {
        let text = [
            alert("a", "open", "LOW", 2, 10),
            alert("b", "final", "MEDIUM", 3, 10),
            alert("a", "final", "HIGH", 9, 10),
            alert("c", "final", "MEDIUM", 7, 10),
            r#"{"src_ip":"10.0.0.1"}"#.to_string(),
            "not json".to_string(),
        ]
        .join("\n");
        let (t, skipped) = table(text.as_bytes());
        let out = t.render();
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert_eq!(rows.len(), 3, "{out}");
        assert!(
            rows[0].starts_with("HIGH") && rows[0].contains("final"),
            "{out}"
        );
        assert!(
            rows[1].starts_with("MEDIUM") && rows[1].contains(" 7 "),
            "{out}"
        );
        assert!(
            rows[2].starts_with("MEDIUM") && rows[2].contains(" 3 "),
            "{out}"
        );
        assert!(rows[0].contains("203.0.113.9:21") && rows[0].contains("2025-11-21 09:03:10"));
        assert_eq!(
            skipped,
            Skipped {
                malformed: 1,
                not_alerts: 1
            }
        );
    }
}

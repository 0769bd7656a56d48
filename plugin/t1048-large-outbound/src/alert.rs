//! One alert as a JSON line (spec §4). Written by hand, member by member,
//! so the order of the members is the spec's and nothing is allocated
//! per alert beyond its line.

use rulebox_plugin::abi::time::write_rfc3339;
use rulebox_plugin::json::write_str;

use crate::window::{Key, Row};

/// Where the alert stands: `open` (the window is still open) or `final`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Open,
    Final,
}

pub const RULE: &str = "T1048";
pub const RULE_NAME: &str = "Large outbound transfer to one destination";

/// Writes `row` as one alert (no newline).
pub fn write(b: &mut Vec<u8>, row: &Row, status: Status, window_ms: i64, threshold: u64) {
    let Row {
        window_start_ms: start,
        key,
        sum,
    } = *row;
    let status = match status {
        Status::Open => "open",
        Status::Final => "final",
    };
    b.extend_from_slice(
        format!(
            "{{\"alert_id\":\"{RULE}:{}:{:016x}\",\"status\":\"{status}\",\"rule\":\"{RULE}\",\"rule_name\":\"{RULE_NAME}\",",
            start.div_euclid(1000),
            key_hash(&key)
        )
        .as_bytes(),
    );
    b.extend_from_slice(concat!(
        "\"source_detection\":{\"publisher\":\"Splunk\",\"name\":\"High Volume of Bytes Out to Url\",",
        "\"id\":\"c8a6b56d-16dd-4e9c-b4bd-527742ead98d\"},",
        "\"mitre\":{\"tactic\":\"TA0010\",\"tactic_name\":\"Exfiltration\",",
        "\"technique\":\"T1048\",\"technique_name\":\"Exfiltration Over Alternative Protocol\"},",
        "\"severity\":\"medium\","
    ).as_bytes());
    for (name, ms) in [
        ("window_start", start),
        ("window_end", start + window_ms),
        ("first_seen", sum.first_ms),
        ("last_seen", sum.last_ms),
    ] {
        b.extend_from_slice(format!("\"{name}\":").as_bytes());
        write_rfc3339(b, ms);
        b.push(b',');
    }
    b.extend_from_slice(b"\"src_ip\":");
    write_str(b, &key.src.to_string());
    b.extend_from_slice(b",\"dest_ip\":");
    write_str(b, &key.dest.to_string());
    b.extend_from_slice(
        format!(
            ",\"dest_port\":{},\"connection_count\":{},\"bytes_sent\":{},\"threshold_bytes\":{threshold}}}",
            key.port, sum.count, sum.bytes
        )
        .as_bytes(),
    );
}

/// FNV-1a, 64 bits, of the key's text: the same id in every run and on
/// every host.
fn key_hash(key: &Key) -> u64 {
    let text = format!("{}|{}|{}", key.src, key.dest, key.port);
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

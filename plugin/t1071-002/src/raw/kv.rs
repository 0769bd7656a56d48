//! `key=value` lines: FortiGate's log format, and generic key=value
//! (syslog messages in Splunk's "key=value" style), after any syslog
//! header. A value runs to the next space, or is in double quotes
//! (FortiGate quotes strings: `srcip=10.0.0.5 action="accept"`). Words
//! without `=` (the syslog header) are skipped.
//!
//! FortiGate (a line with `dstip`; FortiOS log reference, traffic logs):
//!
//! | reading | field |
//! |---|---|
//! | source, destination, port | `srcip`, `dstip`, `dstport` |
//! | bytes sent / received | `sentbyte` / `rcvdbyte` |
//! | user | `user`, else `unauthuser` |
//! | time | `eventtime` (s, ms, µs or ns by size), else `date` + `time` in the zone `tz` gives (`+0100`; UTC without it) |
//! | permitted | `action` is `accept`, `close`, `timeout`, `server-rst` or `client-rst` |
//! | counted record | `type` is `traffic` and `action` is not `start` (the session's start log, written with `logtraffic-start`; its end log counts) |
//!
//! Generic key=value (a line with one of the destination names): the
//! first name present of each row; grouped like `cim`.
//!
//! | reading | names |
//! |---|---|
//! | destination | `dest_ip`, `dest`, `dst_ip`, `dst`, `destination_ip`, `dstip` |
//! | port | `dest_port`, `dst_port`, `dstport`, `dpt`, `dport` |
//! | source | `src_ip`, `src`, `source_ip`, `srcip` |
//! | bytes sent / received | `bytes_out`, `bytes_sent`, `sentbyte` / `bytes_in`, `bytes_received`, `rcvdbyte` |
//! | user, process | `user`, `src_user`, `username`, `suser` / `process_name`, `process`, `sproc` |
//! | time | `_time`, `timestamp`, `eventtime`, `time` |
//! | permitted | `action` (or `act`) allows: allow, accept, permit, pass or their past tense (`allowed`: CIM's word) |

use std::borrow::Cow;

use super::stamp::When;
use super::{Format, Record, Splice, allows, number, port, present};
use crate::schema::Details;

/// The pairs of a line, in order.
#[derive(Debug)]
pub struct Pairs<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Pairs<'a> {
    /// The line's pairs; `None` when it has none.
    pub fn parse(text: &'a str) -> Option<Pairs<'a>> {
        let b = text.as_bytes();
        let mut pairs = Vec::with_capacity(32);
        // After a syslog priority (`<189>`), which may touch the first key.
        let mut i = match (b.first(), text.find('>')) {
            (Some(b'<'), Some(n)) if n < 6 => n + 1,
            _ => 0,
        };
        while i < b.len() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < b.len() && is_key_byte(b[i]) {
                i += 1;
            }
            if i > start && b.get(i) == Some(&b'=') {
                let key = &text[start..i];
                i += 1;
                let (value, next) = value_at(text, i);
                pairs.push((key, value));
                i = next;
            } else {
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
        }
        (!pairs.is_empty()).then_some(Pairs { pairs })
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    /// The first value of the first of `keys` present.
    fn first(&self, keys: &[&str]) -> Option<&'a str> {
        keys.iter().find_map(|k| self.get(k))
    }
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// The value starting at `i` (quoted or to the next space) and where the
/// scan goes on.
fn value_at(text: &str, i: usize) -> (&str, usize) {
    let b = text.as_bytes();
    if b.get(i) == Some(&b'"') {
        let end = b[i + 1..]
            .iter()
            .position(|&c| c == b'"')
            .map_or(b.len(), |n| i + 1 + n);
        (&text[i + 1..end], (end + 1).min(b.len()))
    } else {
        let end = b[i..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(b.len(), |n| i + n);
        (&text[i..end], end)
    }
}

/// FortiGate's actions of a permitted session (spec §6).
pub const FORTIGATE_PERMITS: &[&str] = &["accept", "close", "timeout", "server-rst", "client-rst"];

/// A FortiGate traffic log line (see the table above).
pub fn fortigate<'a>(p: &Pairs<'a>) -> Record<'a> {
    let action = p.get("action").unwrap_or("");
    let when = match (p.get("eventtime"), p.get("date"), p.get("time")) {
        (Some(e), _, _) => When::Text(Cow::Borrowed(e)),
        (None, Some(d), Some(t)) => When::DateTime(d, t, p.get("tz")),
        _ => When::Unknown,
    };
    Record {
        format: Format::Fortigate,
        destination: p.get("dstip").and_then(present),
        port: p.get("dstport").and_then(port),
        details: Details {
            source: p.get("srcip").and_then(present),
            bytes_out: p.get("sentbyte").and_then(number),
            bytes_in: p.get("rcvdbyte").and_then(number),
            user: p.first(&["user", "unauthuser"]).and_then(present),
            process: None,
            time_ms: None,
            permitted: FORTIGATE_PERMITS.contains(&action),
        },
        when,
        bytes_total: None,
        closing: p.get("type") == Some("traffic") && action != "start",
        by_user: false,
        splice: Splice::Pairs,
    }
}

const DESTINATION: &[&str] = &[
    "dest_ip",
    "dest",
    "dst_ip",
    "dst",
    "destination_ip",
    "dstip",
];

/// A generic key=value line; `None` when it names no destination.
pub fn generic<'a>(p: &Pairs<'a>) -> Option<Record<'a>> {
    let destination = p.first(DESTINATION)?;
    let text = |keys: &[&str]| p.first(keys).and_then(present);
    let count = |keys: &[&str]| p.first(keys).and_then(number);
    Some(Record {
        format: Format::Kv,
        destination: present(destination),
        port: p
            .first(&["dest_port", "dst_port", "dstport", "dpt", "dport"])
            .and_then(port),
        details: Details {
            source: text(&["src_ip", "src", "source_ip", "srcip"]),
            bytes_out: count(&["bytes_out", "bytes_sent", "sentbyte"]),
            bytes_in: count(&["bytes_in", "bytes_received", "rcvdbyte"]),
            user: text(&["user", "src_user", "username", "suser"]),
            process: text(&["process_name", "process", "sproc"]),
            time_ms: None,
            permitted: p.first(&["action", "act"]).is_some_and(allows),
        },
        when: p
            .first(&["_time", "timestamp", "eventtime", "time"])
            .map_or(When::Unknown, |t| When::Text(Cow::Borrowed(t))),
        bytes_total: None,
        closing: true,
        by_user: false,
        splice: Splice::Pairs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_763_715_600_000;

    fn fg(line: &str) -> Record<'_> {
        fortigate(&Pairs::parse(line).unwrap())
    }

    // Built from the FortiOS log reference's traffic log (forward) fields.
    const FG_SMB: &str = r#"<189>date=2025-11-21 time=09:00:00 devname="FGT60F" devid="FGT60FTK0000" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" eventtime=1763715600000000000 srcip=10.0.0.5 srcport=51234 srcintf="internal" dstip=203.0.113.9 dstport=445 dstintf="wan1" sessionid=1234 proto=6 action="close" policyid=1 service="SMB" duration=12 sentbyte=2097152 rcvdbyte=4096 sentpkt=900 rcvdpkt=300 user="alice""#;

    #[test]
    fn fortigate_traffic() {
        let r = fg(FG_SMB);
        super::super::assert_target(&r, "203.0.113.9", 445, "10.0.0.5");
        assert_eq!(
            (r.details.bytes_out, r.details.bytes_in),
            (Some(2_097_152), Some(4096))
        );
        assert_eq!(r.details.user.as_deref(), Some("alice"));
        assert_eq!(r.when.resolve(), Some(T));
        assert!(r.details.permitted && r.closing);
        let without_eventtime = FG_SMB.replace("eventtime=1763715600000000000 ", "");
        assert_eq!(fg(&without_eventtime).when.resolve(), Some(T));
        let zoned = without_eventtime.replace("time=09:00:00", r#"time=10:00:00 tz="+0100""#);
        assert_eq!(fg(&zoned).when.resolve(), Some(T), "the device's zone");
    }

    #[test]
    fn fortigate_deny_start_and_utm_are_not_counted_records() {
        let deny = FG_SMB.replace(r#"action="close""#, r#"action="deny""#);
        assert!(!fg(&deny).details.permitted);
        let start = FG_SMB.replace(r#"action="close""#, r#"action="start""#);
        assert!(!fg(&start).closing, "the session's start log");
        let utm = FG_SMB.replace(r#"type="traffic""#, r#"type="utm""#);
        assert!(!fg(&utm).closing, "not a traffic log");
        // A byte count of 445 is not a port.
        let bytes = FG_SMB
            .replace("dstport=445", "dstport=8080")
            .replace("sentbyte=2097152", "sentbyte=445");
        assert_eq!(fg(&bytes).port, Some(8080));
    }

    #[test]
    fn generic_pairs() {
        let line = r#"<134>Nov 21 09:00:00 host app: src_ip=10.0.0.5 dest_ip=203.0.113.9 dest_port=21 action=allowed bytes_out=10 bytes_in=20 user="Alice Smith" _time=1763715600"#;
        let r = generic(&Pairs::parse(line).unwrap()).unwrap();
        assert_eq!(r.port, Some(21));
        assert_eq!(r.details.user.as_deref(), Some("Alice Smith"));
        assert_eq!(r.when.resolve(), Some(T));
        assert!(r.details.permitted);
        let blocked = line.replace("action=allowed", "action=blocked");
        assert!(
            !generic(&Pairs::parse(&blocked).unwrap())
                .unwrap()
                .details
                .permitted
        );
        assert!(generic(&Pairs::parse("a=1 b=2").unwrap()).is_none());
        assert!(Pairs::parse("no pairs here").is_none());
    }
}

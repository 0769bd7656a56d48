//! LEEF (IBM QRadar's Log Event Extended Format), after any syslog header.
//! LEEF 1.0: `LEEF:1.0|Vendor|Product|Version|EventID|` then attributes
//! `key=value` separated by tabs. LEEF 2.0: `LEEF:2.0|Vendor|Product|Version|EventID|DelimiterCharacter|`
//! then attributes separated by that character, which is written as itself
//! (`^`) or in hex (`x09`, `0x09`); without it, tab. A LEEF 1.0 line
//! without a tab whose attributes are separated by `|` (PAN-OS's LEEF
//! format does so) is read with `|`.
//!
//! | reading | attribute |
//! |---|---|
//! | source, destination, port | `src`, `dst`, `dstPort` |
//! | bytes sent / received | `srcBytes` / `dstBytes` |
//! | user | `usrName` |
//! | time | `devTime`, read with `devTimeFormat` when given (`raw::stamp::with_pattern`), else in the forms `raw::stamp` reads (LEEF's default `MMM dd yyyy HH:mm:ss`, epoch milliseconds) |
//! | counted record | not a start record (`Subtype=start`: PAN-OS's LEEF writes its traffic log subtype, `start` or `end`) |
//! | permitted | `action` allows (allow, accept, permit, pass or their past tense), else, without `action`, the header's EventID does (`TRAFFIC_ALLOW`) |
//!
//! Grouped by user, as the `qradar` preset (spec §6). Labels go on as
//! attributes with the line's delimiter (`raw::label`).

use std::borrow::Cow;

use super::stamp::When;
use super::{Format, Record, Splice, allows, number, port, present};
use crate::schema::Details;

/// Reads the LEEF message starting at `at` in `text`.
pub fn read(text: &str, at: usize) -> Option<Record<'_>> {
    let leef = &text[at..];
    let mut header = leef.splitn(6, '|');
    let version = header.next()?.strip_prefix("LEEF:")?;
    let event_id = header.nth(3)?;
    let rest = header.next()?;
    let (delim, attrs) = if version.starts_with('2') {
        delimiter(rest)
    } else if !rest.contains('\t') && rest.contains('|') {
        (b'|', rest) // PAN-OS's LEEF 1.0 separates attributes with `|`
    } else {
        (b'\t', rest)
    };
    let sep = char::from(delim);
    let pairs: Vec<(&str, &str)> = attrs
        .split(sep)
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|&(_, v)| v);
    let when = match (get("devTime"), get("devTimeFormat")) {
        (Some(t), Some(f)) => When::Pattern(t, f),
        (Some(t), None) => When::Text(Cow::Borrowed(t)),
        _ => When::Unknown,
    };
    Some(Record {
        format: Format::Leef,
        destination: get("dst").and_then(present),
        port: get("dstPort").and_then(port),
        details: Details {
            source: get("src").and_then(present),
            bytes_out: get("srcBytes").and_then(number),
            bytes_in: get("dstBytes").and_then(number),
            user: get("usrName").and_then(present),
            process: None,
            time_ms: None,
            permitted: allows(get("action").unwrap_or(event_id)),
        },
        when,
        bytes_total: None,
        // PAN-OS's traffic logs carry their subtype: `start` or `end`.
        closing: !get("Subtype").is_some_and(|s| s.eq_ignore_ascii_case("start")),
        by_user: true,
        splice: Splice::Leef(delim),
    })
}

/// LEEF 2.0's delimiter field and the attributes after it. A field that
/// holds a `=` is already the attributes (no delimiter given: tab).
fn delimiter(rest: &str) -> (u8, &str) {
    let Some((field, attrs)) = rest.split_once('|') else {
        return (b'\t', rest);
    };
    if field.contains('=') {
        return (b'\t', rest);
    }
    let hex = field
        .strip_prefix("0x")
        .or_else(|| field.strip_prefix("x"))
        .or_else(|| field.strip_prefix("\\x"));
    let d = match (hex, field.as_bytes()) {
        (Some(h), _) if !h.is_empty() => u8::from_str_radix(h, 16).ok(),
        (_, [c]) => Some(*c),
        _ => None,
    };
    match d {
        // Not `=`, not a line end or other control character but tab.
        Some(d) if d.is_ascii() && d != b'=' && (d == b'\t' || !d.is_ascii_control()) => (d, attrs),
        _ => (b'\t', attrs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leef(line: &str) -> Record<'_> {
        read(line, line.find("LEEF:").unwrap()).unwrap()
    }

    const T: i64 = 1_763_715_600_000;

    // Built from IBM's LEEF 1.0 / 2.0 format guide and its predefined keys.
    const V1: &str = "<13>Nov 21 09:00:00 fw01 LEEF:1.0|Acme|Firewall|2.1|TRAFFIC_ALLOW|src=10.0.0.5\tdst=203.0.113.9\tsrcPort=51234\tdstPort=21\tsrcBytes=10485761\tdstBytes=300\tusrName=alice\tdevTime=Nov 21 2025 09:00:00\tproto=TCP";

    #[test]
    fn leef_1_tab_attributes_and_event_id_permission() {
        let r = leef(V1);
        assert_eq!(r.destination.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.port, Some(21));
        assert_eq!(
            (r.details.bytes_out, r.details.bytes_in),
            (Some(10_485_761), Some(300))
        );
        assert_eq!(r.details.user.as_deref(), Some("alice"));
        assert_eq!(r.when.resolve(), Some(T));
        assert!(r.details.permitted && r.by_user);
        assert_eq!(r.splice, Splice::Leef(b'\t'));
        let denied = V1.replace("TRAFFIC_ALLOW", "TRAFFIC_DENY");
        assert!(!leef(&denied).details.permitted);
        let action = format!("{V1}\taction=block");
        assert!(
            !leef(&action).details.permitted,
            "action decides over EventID"
        );
    }

    #[test]
    fn pan_os_leef_with_pipes_and_a_subtype() {
        let line = "LEEF:1.0|Palo Alto Networks|PAN-OS Syslog Integration|10.1|allow|cat=TRAFFIC|Type=TRAFFIC|Subtype=end|src=10.0.0.5|dst=203.0.113.9|srcPort=51234|dstPort=445|usrName=alice|action=allow|srcBytes=10|dstBytes=20";
        let r = leef(line);
        assert_eq!((r.port, r.details.bytes_out), (Some(445), Some(10)));
        assert!(r.closing && r.details.permitted);
        assert_eq!(r.splice, Splice::Leef(b'|'));
        assert!(!leef(&line.replace("Subtype=end", "Subtype=start")).closing);
    }

    #[test]
    fn leef_2_delimiters() {
        let caret = "LEEF:2.0|Acme|Firewall|2.1|12|^|src=10.0.0.5^dst=203.0.113.9^dstPort=445^action=accept^srcBytes=445^devTime=1763715600000";
        let r = leef(caret);
        assert_eq!((r.port, r.details.bytes_out), (Some(445), Some(445)));
        assert!(r.details.permitted);
        assert_eq!(r.when.resolve(), Some(T));
        assert_eq!(r.splice, Splice::Leef(b'^'));
        for hex in ["x09", "0x09"] {
            let line = format!(
                "LEEF:2.0|Acme|Firewall|2.1|12|{hex}|src=10.0.0.5\tdst=203.0.113.9\tdstPort=139\taction=allow"
            );
            let r = leef(&line);
            assert_eq!(
                (r.port, r.splice),
                (Some(139), Splice::Leef(b'\t')),
                "{hex}"
            );
        }
        let newline = "LEEF:2.0|Acme|Firewall|2.1|12|x0a|dst=203.0.113.9";
        assert_eq!(leef(newline).splice, Splice::Leef(b'\t'));
        let none = "LEEF:2.0|Acme|Firewall|2.1|12|src=10.0.0.5\tdst=203.0.113.9\tdstPort=69";
        assert_eq!(leef(none).port, Some(69));
        let fmt = "LEEF:2.0|Acme|Firewall|2.1|12|^|dst=203.0.113.9^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2025-11-21T10:00:00.000+0100";
        assert_eq!(leef(fmt).when.resolve(), Some(T));
    }
}

//! PAN-OS traffic logs: CSV (after any syslog header) in the column order
//! of Palo Alto Networks' "Traffic Log Fields" (PAN-OS 8 to 11, whose
//! first 47 columns are the same). Columns are counted from 0, the
//! `FUTURE_USE` before the receive time; a line is recognised by its type
//! column, 3, being `TRAFFIC`, and read from there (a quoted field may
//! hold commas).
//!
//! | reading | column |
//! |---|---|
//! | subtype (counted record) | 4 `Threat/Content Type`: `end` counts; `start` is labelled only (spec §6); `drop`, `deny` are not permitted |
//! | time | 6 `Generated Time` (`2025/11/21 09:00:00`, the firewall's clock, taken as UTC) |
//! | source, destination | 7 `Source Address`, 8 `Destination Address` (9, 10 are the NAT addresses) |
//! | user | 12 `Source User` |
//! | port | 25 `Destination Port` (24 is the source port, 27 the NAT destination port) |
//! | permitted | 30 `Action` is `allow` (not `deny`, `drop`, `reset-*`) |
//! | bytes sent / received | 32 `Bytes Sent` / 33 `Bytes Received` (31 is both) |
//!
//! Grouped like `cim` (no process). Labels go on as more CSV fields
//! (`,t1071_protocol=SMB,...`), so the vendor's columns stay where they
//! were.

use std::borrow::Cow;

use super::stamp::When;
use super::{Format, Record, Splice, number, port, present};
use crate::schema::Details;

const TYPE: usize = 3;

/// Reads the traffic log whose type column (`TRAFFIC`) starts at `at`.
pub fn read(text: &str, at: usize) -> Option<Record<'_>> {
    let cols = split(&text[at..], 34);
    let col = |n: usize| cols.get(n - TYPE).copied();
    if col(TYPE)? != "TRAFFIC" {
        return None;
    }
    let subtype = col(4).unwrap_or("");
    Some(Record {
        format: Format::PanOs,
        destination: col(8).and_then(present),
        port: col(25).and_then(port),
        details: Details {
            source: col(7).and_then(present),
            bytes_out: col(32).and_then(number),
            bytes_in: col(33).and_then(number),
            user: col(12).and_then(present),
            process: None,
            time_ms: None,
            permitted: col(30) == Some("allow"),
        },
        when: col(6).map_or(When::Unknown, |t| When::Text(Cow::Borrowed(t))),
        bytes_total: None,
        closing: subtype != "start",
        by_user: false,
        splice: Splice::Csv,
    })
}

/// The first `max` CSV fields of `text`, quotes taken off a quoted field.
fn split(text: &str, max: usize) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(max);
    let mut i = 0;
    while out.len() < max && i <= b.len() {
        if b.get(i) == Some(&b'"') {
            let mut j = i + 1;
            while j < b.len() {
                if b[j] == b'"' && b.get(j + 1) == Some(&b'"') {
                    j += 2;
                } else if b[j] == b'"' {
                    break;
                } else {
                    j += 1;
                }
            }
            out.push(&text[i + 1..j.min(b.len())]);
            // On past the field's comma (a closing quote need not be
            // followed by one: `j` is at the quote or the end, both
            // character boundaries).
            i = text[j.min(b.len())..]
                .find(',')
                .map_or(b.len() + 1, |k| j + k + 1);
        } else {
            let n = text[i..].find(',').unwrap_or(text.len() - i);
            out.push(&text[i..i + n]);
            i += n + 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzzer: a closing quote not followed by a comma, then
    /// a character of two bytes, used to slice inside that character.
    #[test]
    fn a_quote_without_its_comma_is_not_a_panic() {
        assert_eq!(split("\"\":\"\u{1cb}ra3,x", 4), ["", "x"]);
        assert_eq!(split("\"open", 4), ["open"]);
    }

    /// A traffic `end` log laid out by PAN-OS's Traffic Log Fields.
    fn line(subtype: &str, action: &str, dport: &str, sent: &str) -> String {
        let mut c = vec![""; 47];
        c[0] = "1";
        c[1] = "2025/11/21 09:00:05";
        c[2] = "012801000001";
        c[3] = "TRAFFIC";
        c[4] = subtype;
        c[5] = "2560";
        c[6] = "2025/11/21 09:00:00";
        c[7] = "10.0.0.5";
        c[8] = "203.0.113.9";
        c[9] = "198.51.100.1";
        c[10] = "203.0.113.9";
        c[11] = "\"allow, outbound\"";
        c[12] = "corp\\alice";
        c[14] = "ms-ds-smb";
        c[15] = "vsys1";
        c[16] = "trust";
        c[17] = "untrust";
        c[22] = "33760";
        c[23] = "1";
        c[24] = "51234";
        c[25] = dport;
        c[26] = "40000";
        c[27] = "445";
        c[29] = "tcp";
        c[30] = action;
        c[31] = "2101248";
        c[32] = sent;
        c[33] = "4096";
        format!("<14>Nov 21 09:00:05 fw01 {}", c.join(","))
    }

    fn read_line(l: &str) -> Record<'_> {
        read(l, l.find(",TRAFFIC,").unwrap() + 1).unwrap()
    }

    #[test]
    fn the_columns() {
        let l = line("end", "allow", "445", "2097152");
        let r = read_line(&l);
        assert_eq!(r.destination.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.port, Some(445));
        assert_eq!(r.details.source.as_deref(), Some("10.0.0.5"));
        assert_eq!(r.details.user.as_deref(), Some("corp\\alice"));
        assert_eq!(
            (r.details.bytes_out, r.details.bytes_in),
            (Some(2_097_152), Some(4096))
        );
        assert_eq!(r.when.resolve(), Some(1_763_715_600_000));
        assert!(r.details.permitted && r.closing);
    }

    #[test]
    fn start_deny_and_columns_that_hold_445() {
        assert!(!read_line(&line("start", "allow", "445", "0")).closing);
        assert!(
            !read_line(&line("end", "deny", "445", "0"))
                .details
                .permitted
        );
        assert!(
            !read_line(&line("drop", "reset-both", "445", "0"))
                .details
                .permitted
        );
        // NAT destination port 445 and bytes sent 445 on a web connection.
        let web = line("end", "allow", "443", "445");
        let r = read_line(&web);
        assert_eq!((r.port, r.details.bytes_out), (Some(443), Some(445)));
    }
}

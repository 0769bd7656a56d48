//! CEF (ArcSight Common Event Format), after any syslog header:
//! `CEF:Version|Device Vendor|Device Product|Device Version|Signature ID|Name|Severity|Extension`.
//! In the header `\|` and `\\` are escapes; the extension is `key=value`
//! pairs separated by spaces, where a value may hold spaces and runs until
//! the space before the next `key=`, and `\=`, `\\`, `\n`, `\r` are
//! escapes.
//!
//! | reading | extension key |
//! |---|---|
//! | source, destination, port | `src`, `dst`, `dpt` |
//! | bytes sent / received | `out` / `in` (as vendors fill them: `out` is what the source sent; spec §6) |
//! | user, process | `suser` / `sproc` |
//! | time | `end` (the connection's end), else `rt`: epoch milliseconds or `MMM dd yyyy HH:mm:ss` |
//! | permitted | `act` allows: allow, accept, permit, pass or their past tense; a missing `act` is not permitted. From a Fortinet device (vendor `Fortinet`), `act` is FortiGate's action, read as FortiGate's (`accept`, `close`, `timeout`, `server-rst`, `client-rst`) |
//! | counted record | not a start record: the signature id is not `start` (PAN-OS writes its log subtype, `start` or `end`, there); from Fortinet, `act` is not `start` |
//!
//! Grouped like `cim`. Labels go on as extension keys (`raw::label`).

use std::borrow::Cow;

use super::kv::FORTIGATE_PERMITS;
use super::stamp::When;
use super::{Format, Record, Splice, allows, number, port, present};
use crate::schema::Details;

/// Reads the CEF message starting at `at` in `text`.
pub fn read(text: &str, at: usize) -> Option<Record<'_>> {
    let cef = &text[at..];
    let (fields, ext) = header(cef)?;
    let pairs = pairs(&cef[ext..]);
    let get = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v);
    let text_of = |k: &str| get(k).and_then(keep);
    let (vendor, signature) = (fields[1], fields[4]);
    let act = get("act").map_or("", |v| v.as_ref());
    let fortinet = vendor.eq_ignore_ascii_case("fortinet");
    Some(Record {
        format: Format::Cef,
        destination: text_of("dst"),
        port: get("dpt").and_then(|v| port(v)),
        details: Details {
            source: text_of("src"),
            bytes_out: get("out").and_then(|v| number(v)),
            bytes_in: get("in").and_then(|v| number(v)),
            user: text_of("suser"),
            process: text_of("sproc"),
            time_ms: None,
            permitted: if fortinet {
                FORTIGATE_PERMITS.contains(&act)
            } else {
                allows(act)
            },
        },
        when: get("end")
            .or_else(|| get("rt"))
            .map_or(When::Unknown, |v| When::Text(v.clone())),
        bytes_total: None,
        // PAN-OS writes its log subtype as the signature id (`start`,
        // `end`); FortiGate its `action`, `start` for a session's start.
        closing: !(signature.eq_ignore_ascii_case("start") || (fortinet && act == "start")),
        by_user: false,
        splice: Splice::Cef,
    })
}

/// A value that is not empty, borrowed from the line when it had no
/// escapes.
fn keep<'a>(v: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    match v {
        Cow::Borrowed(s) => present(s),
        Cow::Owned(s) => present(s).map(|t| Cow::Owned(t.into_owned())),
    }
}

/// The seven header fields (escapes left in) and where the extension
/// starts: after the seventh `|` not escaped.
fn header(cef: &str) -> Option<([&str; 7], usize)> {
    let b = cef.as_bytes();
    let mut fields = [""; 7];
    let (mut n, mut start, mut i) = (0, 0, 0);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'|' => {
                fields[n] = &cef[start..i];
                n += 1;
                start = i + 1;
                if n == 7 {
                    return Some((fields, i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The extension's pairs, values unescaped.
fn pairs(ext: &str) -> Vec<(&str, Cow<'_, str>)> {
    let b = ext.as_bytes();
    // (key start, `=` position) of each key.
    let mut keys: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'=' => {
                let mut k = i;
                while k > 0 && is_key_byte(b[k - 1]) {
                    k -= 1;
                }
                if k < i && (k == 0 || b[k - 1] == b' ') {
                    keys.push((k, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    let mut out = Vec::with_capacity(keys.len());
    for (n, &(k, eq)) in keys.iter().enumerate() {
        let end = keys.get(n + 1).map_or(b.len(), |&(next, _)| next);
        let value = ext[eq + 1..end].trim_end_matches(' ');
        out.push((&ext[k..eq], unescape(value)));
    }
    out
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'[' | b']')
}

fn unescape(v: &str) -> Cow<'_, str> {
    if !v.contains('\\') {
        return Cow::Borrowed(v);
    }
    let mut s = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            s.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => s.push('\n'),
            Some('r') => s.push('\r'),
            Some(o) => s.push(o),
            None => s.push('\\'),
        }
    }
    Cow::Owned(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cef(line: &str) -> Record<'_> {
        read(line, line.find("CEF:").unwrap()).unwrap()
    }

    // Built from the CEF specification's header and extension dictionary.
    const LINE: &str = r"<134>Nov 21 09:00:00 fw01 CEF:0|Sec\|ure|Fire wall|1.0|100|Connection closed|3|src=10.0.0.5 spt=51234 dst=203.0.113.9 dpt=445 proto=TCP act=Allowed out=2097152 in=4096 suser=alice sproc=C:\\Windows\\explorer.exe end=1763715600000 msg=copy a\=b done cs1Label=Rule Name cs1=allow smb";

    #[test]
    fn header_escapes_values_with_spaces_and_the_mapping() {
        let r = cef(LINE);
        super::super::assert_target(&r, "203.0.113.9", 445, "10.0.0.5");
        assert_eq!(
            (r.details.bytes_out, r.details.bytes_in),
            (Some(2_097_152), Some(4096))
        );
        assert_eq!(
            r.details.process.as_deref(),
            Some(r"C:\Windows\explorer.exe")
        );
        assert_eq!(r.when.resolve(), Some(1_763_715_600_000));
        assert!(r.details.permitted);
        let ext = &LINE[LINE.find("CEF:").unwrap()..];
        let (fields, start) = header(ext).unwrap();
        assert_eq!((fields[1], fields[4]), (r"Sec\|ure", "100"));
        let p = pairs(&ext[start..]);
        let msg = p.iter().find(|(k, _)| *k == "msg").unwrap();
        assert_eq!(msg.1, "copy a=b done");
        let name = p.iter().find(|(k, _)| *k == "cs1Label").unwrap();
        assert_eq!(name.1, "Rule Name", "a value runs to the next key");
    }

    #[test]
    fn deny_missing_act_and_a_bytes_field_of_445() {
        assert!(
            !cef(&LINE.replace("act=Allowed", "act=blocked"))
                .details
                .permitted
        );
        assert!(!cef(&LINE.replace("act=Allowed ", "")).details.permitted);
        let trap = LINE
            .replace("dpt=445", "dpt=443")
            .replace("out=2097152", "out=445");
        assert_eq!(cef(&trap).port, Some(443));
        // PAN-OS's CEF traffic logs: the subtype as the signature id.
        let pan = "CEF:0|Palo Alto Networks|PAN-OS|10.1|start|TRAFFIC|1|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=allow";
        assert!(!cef(pan).closing && cef(&pan.replace("|start|", "|end|")).closing);
        // FortiGate's CEF: its own action words.
        let forti = "CEF:0|Fortinet|Fortigate|v7.0|00013|traffic:forward close|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=close";
        assert!(cef(forti).details.permitted && cef(forti).closing);
        assert!(!cef(&forti.replace("act=close", "act=start")).closing);
        let rt = LINE.replace("end=1763715600000", "rt=Nov 21 2025 09:00:00");
        assert_eq!(cef(&rt).when.resolve(), Some(1_763_715_600_000));
        assert!(read("CEF:0|only|four|pipes", 0).is_none());
    }
}

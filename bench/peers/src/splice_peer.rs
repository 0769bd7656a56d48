//! The peer a careful Rust programmer would write: serde derive reading
//! only the fields the rule needs, borrowed from the line where it can,
//! the label spliced in before the closing brace (the other bytes go out
//! as they came), and the aggregation natively.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::cim::{self, Fields, Networks};
use crate::tally::{Key, Observation, Tally};

/// The `cim` fields the rule reads; serde skips (and checks) the rest.
#[derive(Deserialize)]
struct Cim<'a> {
    #[serde(borrow, default)]
    src_ip: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    src: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    dest_ip: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    dest: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    dest_port: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    action: Option<Scalar<'a>>,
    #[serde(borrow, default, rename = "_time")]
    time: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    bytes_out: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    bytes_in: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    user: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    process_name: Option<Scalar<'a>>,
}

/// A member's value as far as the rule cares: a string, a number, or
/// something else (skipped).
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_string())))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Scalar<'a>, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar<'a>, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }
}

impl Scalar<'_> {
    /// An address, user or process: a string or a number, trimmed, not
    /// empty.
    fn text(&self) -> Option<Cow<'_, str>> {
        let t: Cow<str> = match self {
            Scalar::Str(s) => Cow::Borrowed(s.trim()),
            Scalar::Num(n) => Cow::Owned(n.to_string()),
            Scalar::Other => return None,
        };
        (!t.is_empty()).then_some(t)
    }
    fn port(&self) -> Option<u16> {
        match self {
            Scalar::Str(s) => cim::port_from_str(s),
            Scalar::Num(n) => cim::port_from_f64(*n),
            Scalar::Other => None,
        }
    }
    /// A byte count: whole and not negative, else missing (0).
    fn bytes(&self) -> u64 {
        let n = match self {
            Scalar::Str(s) => s.trim().parse::<f64>().ok(),
            Scalar::Num(n) => Some(*n),
            Scalar::Other => None,
        };
        n.filter(|n| n.fract() == 0.0 && *n >= 0.0)
            .map_or(0, |n| n as u64)
    }
    fn time_ms(&self) -> Option<i64> {
        match self {
            Scalar::Str(s) => cim::seconds_str_to_ms(s),
            Scalar::Num(n) => Some((n * 1000.0).round() as i64),
            Scalar::Other => None,
        }
    }
}

/// A member read as an address, user or process.
fn text<'b>(v: &'b Option<Scalar<'_>>) -> Option<Cow<'b, str>> {
    v.as_ref().and_then(Scalar::text)
}

/// Labels and aggregates `input` (NDJSON): labelled lines to `out`,
/// alerts to `alerts`.
pub fn run(input: &[u8], out: &mut Vec<u8>, alerts: &mut Vec<u8>) {
    let nets = Networks::default();
    let mut tally = Tally::default();
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match serde_json::from_slice::<Cim>(body) {
            Ok(ev) => label(&nets, &mut tally, &ev, body, out, alerts),
            Err(_) => out.extend_from_slice(body),
        }
        out.push(b'\n');
    }
    tally.flush(alerts);
}

fn label(
    nets: &Networks,
    tally: &mut Tally,
    ev: &Cim,
    body: &[u8],
    out: &mut Vec<u8>,
    alerts: &mut Vec<u8>,
) {
    let Some(dest) = text(&ev.dest_ip).or_else(|| text(&ev.dest)) else {
        out.extend_from_slice(body);
        return;
    };
    let src = text(&ev.src_ip).or_else(|| text(&ev.src));
    let port = ev.dest_port.as_ref().and_then(Scalar::port);
    let allowed = matches!(&ev.action, Some(Scalar::Str(a)) if a.eq_ignore_ascii_case("allowed"));
    let (l, pair) = cim::classify(
        nets,
        Fields {
            src: src.as_deref(),
            dest: &dest,
            port,
            allowed,
        },
    );
    // The label goes in just before the closing brace.
    let end = body.iter().rposition(|&b| b == b'}').unwrap_or(body.len());
    let empty = body[..end].iter().rev().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    out.extend_from_slice(&body[..end]);
    let member: &[u8] = if empty { b"\"t1071\":" } else { b",\"t1071\":" };
    out.extend_from_slice(member);
    l.write(out);
    out.extend_from_slice(&body[end..]);
    if let (Some((s, d)), Some(p)) = (pair, l.protocol) {
        let user = ev.user.as_ref().and_then(Scalar::text);
        let o = Observation {
            key: Key {
                src: s,
                dest: d,
                port: port.unwrap_or(0),
                protocol: p,
                process: ev
                    .process_name
                    .as_ref()
                    .and_then(Scalar::text)
                    .map_or_else(String::new, Cow::into_owned),
            },
            time_ms: ev.time.as_ref().and_then(Scalar::time_ms),
            sent: ev.bytes_out.as_ref().map_or(0, Scalar::bytes),
            received: ev.bytes_in.as_ref().map_or(0, Scalar::bytes),
            user: user.as_deref(),
        };
        tally.record(o, 0, alerts);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn splices_the_label_as_the_spec_example_and_passes_the_rest() {
        let input = br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed","_time":1763715600}
{"dest_ip":"host.example","dest_port":"445"}
{"host":"x"}
not json
"#;
        let (mut out, mut alerts) = (Vec::new(), Vec::new());
        super::run(input, &mut out, &mut alerts);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed","_time":1763715600,"t1071":{"protocol":"FTP/FTPS","external":true,"counted":true}}
{"dest_ip":"host.example","dest_port":"445","t1071":{"protocol":"SMB","counted":false}}
{"host":"x"}
not json
"#
        );
        assert!(alerts.is_empty(), "one connection does not alert");
    }
}

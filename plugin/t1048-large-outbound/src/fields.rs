//! Reading a connection out of an event: the three schema presets (Splunk
//! CIM, Elastic ECS, QRadar), which field holds what, when a connection
//! was permitted, and tolerant readers for each value (spec §1).

use std::net::IpAddr;

use rulebox_plugin::abi::time::parse_rfc3339;
use std::borrow::Cow;

use rulebox_plugin::json::{Object, PathPlan, Value};

use crate::config::SchemaName;
use crate::net::canonical;

/// A schema preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Cim,
    Ecs,
    Qradar,
}

/// The presets `auto` tries, in order (the T1071.002 rule's relative order).
const AUTO: [Preset; 3] = [Preset::Qradar, Preset::Ecs, Preset::Cim];

/// QRadar's category names of a permitted connection.
const QRADAR_PERMITTED: [&str; 4] = [
    "Access Permitted",
    "Connection Accepted",
    "Session Opened",
    "Network Connection",
];

impl Preset {
    /// Paths of the source and destination (first present wins), port,
    /// bytes sent and time, and the time's unit in milliseconds.
    fn paths(self) -> Paths {
        match self {
            Preset::Cim => Paths {
                source: &["src_ip", "src"],
                destination: &["dest_ip", "dest"],
                port: "dest_port",
                bytes_out: "bytes_out",
                time: "_time",
                time_unit_ms: 1000,
            },
            Preset::Ecs => Paths {
                source: &["source.ip"],
                destination: &["destination.ip"],
                port: "destination.port",
                bytes_out: "source.bytes",
                time: "@timestamp",
                time_unit_ms: 1,
            },
            Preset::Qradar => Paths {
                source: &["sourceip"],
                destination: &["destinationip"],
                port: "destinationport",
                bytes_out: "BytesSent",
                time: "starttime",
                time_unit_ms: 1,
            },
        }
    }

    /// Every dotted path the preset reads, in slot order (see [`Reader`]).
    fn all_paths(self) -> Vec<&'static str> {
        let p = self.paths();
        let mut all = [p.source, p.destination].concat();
        all.extend([p.port, p.bytes_out, p.time]);
        all.extend(match self {
            Preset::Cim => &["action"][..],
            Preset::Qradar => &["eventdirection", "categoryname"][..],
            Preset::Ecs => &[
                "event.outcome",
                "event.action",
                "event.type",
                "network.direction",
            ][..],
        });
        all
    }

    /// Reads the connection, each path's value from `get`; `None` when the
    /// event has no destination.
    fn read<'a>(self, get: impl Fn(&str) -> Option<Value<'a>>) -> Option<Connection> {
        let p = self.paths();
        let first = |paths: &[&str]| paths.iter().find_map(|path| get(path).and_then(text));
        let dest = first(p.destination)?;
        let bytes_out = get(p.bytes_out).and_then(bytes);
        Some(Connection {
            src: first(p.source).and_then(|s| ip(&s)),
            dest: ip(&dest),
            port: get(p.port).and_then(port),
            bytes_out,
            time_ms: get(p.time).and_then(|v| time_ms(v, p.time_unit_ms)),
            permitted: self.permitted(&get, bytes_out.is_some()),
        })
    }

    fn permitted<'a>(self, get: &impl Fn(&str) -> Option<Value<'a>>, has_bytes: bool) -> bool {
        let is = |path: &str, words: &[&str]| {
            get(path)
                .and_then(text)
                .is_some_and(|s| words.iter().any(|w| s.eq_ignore_ascii_case(w)))
        };
        match self {
            Preset::Cim => is("action", &["allowed"]),
            Preset::Qradar => {
                get("eventdirection").and_then(text).as_deref() == Some("L2R")
                    && has_bytes
                    && get("categoryname")
                        .and_then(text)
                        .is_some_and(|c| QRADAR_PERMITTED.contains(&&*c))
            }
            Preset::Ecs => {
                let typed_allowed = get("event.type").is_some_and(|t| {
                    std::iter::once(t)
                        .chain(t.array_items())
                        .filter_map(text)
                        .any(|s| s.eq_ignore_ascii_case("allowed"))
                });
                let allowed = is("event.outcome", &["success"])
                    || is("event.action", &["allow", "allowed", "accept", "accepted"])
                    || typed_allowed;
                let outward = get("network.direction").is_none()
                    || is("network.direction", &["outbound", "egress"]);
                allowed && outward
            }
        }
    }
}

/// How the rule reads events under one `schema`: a [`PathPlan`] with a
/// group per preset in use (`auto`: each recognised by its destination
/// fields, in [`AUTO`]'s order; a named preset: always), whose slots hold
/// [`Preset::all_paths`]. The host resolves the plan natively, with its
/// scan; the rule reads the group and the slots.
#[derive(Debug, Clone)]
pub struct Reader {
    presets: Vec<Preset>,
    slots: Vec<Vec<&'static str>>,
    plan: PathPlan,
}

impl Reader {
    pub fn new(schema: SchemaName) -> Reader {
        let presets = match schema {
            SchemaName::Cim => vec![Preset::Cim],
            SchemaName::Ecs => vec![Preset::Ecs],
            SchemaName::Qradar => vec![Preset::Qradar],
            SchemaName::Auto => AUTO.to_vec(),
        };
        let mut plan = PathPlan::new();
        let mut slots = Vec::new();
        for p in &presets {
            let when = if schema == SchemaName::Auto {
                p.paths().destination
            } else {
                &[]
            };
            let all = p.all_paths();
            plan.add_group(when, &all);
            slots.push(all);
        }
        Reader {
            presets,
            slots,
            plan,
        }
    }

    pub fn plan(&self) -> PathPlan {
        self.plan.clone()
    }

    /// The top-level keys the plan may look up (for `Rule::object_keys`).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.plan.keys().map(str::to_string).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The connection in `obj` (scanned with [`Reader::plan`]); `None` when
    /// no preset applies or the event has no destination.
    pub fn read(&self, obj: &Object<'_, '_>) -> Option<Connection> {
        let group = obj.group()?;
        let (preset, slots) = (self.presets.get(group)?, self.slots.get(group)?);
        preset.read(|path: &str| {
            let i = slots.iter().position(|p| *p == path)?;
            obj.slot(i)
        })
    }
}

struct Paths {
    source: &'static [&'static str],
    destination: &'static [&'static str],
    port: &'static str,
    bytes_out: &'static str,
    time: &'static str,
    time_unit_ms: i64,
}

/// What the rule reads of one event with a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The source, when it is an IP address.
    pub src: Option<IpAddr>,
    /// The destination, when it is an IP address (a host name is not).
    pub dest: Option<IpAddr>,
    pub port: Option<u16>,
    pub bytes_out: Option<u64>,
    pub time_ms: Option<i64>,
    pub permitted: bool,
}

/// A string or number as trimmed text; empty is missing.
fn text(v: Value<'_>) -> Option<Cow<'_, str>> {
    let s = match v.as_str() {
        Some(Cow::Borrowed(s)) => Cow::Borrowed(s.trim()),
        Some(Cow::Owned(s)) => Cow::Owned(s.trim().to_string()),
        None => Cow::Borrowed(v.as_number_text()?),
    };
    (!s.is_empty()).then_some(s)
}

fn ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(canonical)
}

/// A whole number, as a JSON number or a numeric string (`21`, `"21"`,
/// `21.0`); `None` for anything else.
fn whole(v: Value<'_>) -> Option<u64> {
    let t = text(v)?;
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let f = t.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15).then_some(f as u64)
}

fn port(v: Value<'_>) -> Option<u16> {
    whole(v).and_then(|n| u16::try_from(n).ok())
}

fn bytes(v: Value<'_>) -> Option<u64> {
    whole(v)
}

/// Times the rule takes, in Unix ms: years 1 to 9999. Outside them a time
/// is unreadable, which keeps every window sum far from `i64`'s ends.
pub const TIME_RANGE_MS: std::ops::RangeInclusive<i64> = -62_135_596_800_000..=253_402_300_799_999;

/// A time: a number (or numeric string) of `unit_ms` milliseconds, kept to
/// the millisecond, or an RFC 3339 string; within [`TIME_RANGE_MS`].
fn time_ms(v: Value<'_>, unit_ms: i64) -> Option<i64> {
    let t = text(v)?;
    decimal_ms(&t, unit_ms)
        .or_else(|| parse_rfc3339(&t))
        .filter(|ms| TIME_RANGE_MS.contains(ms))
}

/// `text` as a decimal number of `unit_ms` milliseconds, truncated to the
/// millisecond (no exponent; at most 18 digits before the point).
fn decimal_ms(text: &str, unit_ms: i64) -> Option<i64> {
    let (neg, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || int.len() > 18 || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let mut ms = int.parse::<i64>().ok()?.checked_mul(unit_ms)?;
    // The fraction's milliseconds: unit_ms is 1000 or 1.
    let mut scale = unit_ms / 10;
    for b in frac.bytes() {
        if scale == 0 {
            break;
        }
        ms += i64::from(b - b'0') * scale;
        scale /= 10;
    }
    Some(if neg { -ms } else { ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rulebox_plugin::json::Scanner;

    fn read(schema: SchemaName, event: &str) -> Option<Connection> {
        let reader = Reader::new(schema);
        let mut s = Scanner::new();
        let obj = s.scan_planned(event.as_bytes(), &reader.plan()).unwrap();
        reader.read(&obj)
    }

    #[test]
    fn values_are_read_tolerantly() {
        let c = read(
            SchemaName::Cim,
            r#"{"src":" 10.0.0.5 ","dest_ip":"::ffff:203.0.113.9","dest_port":"443.0","bytes_out":"12","_time":"1763715600.250","action":"Allowed"}"#,
        )
        .unwrap();
        assert_eq!(c.src, Some("10.0.0.5".parse().unwrap()));
        assert_eq!(c.dest, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(c.port, Some(443));
        assert_eq!(c.bytes_out, Some(12));
        assert_eq!(c.time_ms, Some(1_763_715_600_250));
        assert!(c.permitted);
        let c = read(
            SchemaName::Cim,
            r#"{"src_ip":"10.0.0.5","dest":"files.example","dest_port":70000,"bytes_out":-1,"_time":"2025-11-21T09:00:00.500Z","action":"blocked"}"#,
        )
        .unwrap();
        assert_eq!(c.dest, None);
        assert_eq!(c.port, None);
        assert_eq!(c.bytes_out, None);
        assert_eq!(c.time_ms, Some(1_763_715_600_500));
        assert!(!c.permitted);
        let far = r#"{"dest_ip":"203.0.113.9","_time":"9223372036854775.807"}"#;
        assert_eq!(read(SchemaName::Cim, far).unwrap().time_ms, None);
        assert_eq!(read(SchemaName::Cim, r#"{"src_ip":"10.0.0.5"}"#), None);
    }

    #[test]
    fn auto_picks_the_preset_by_its_destination_field() {
        let q = r#"{"sourceip":"10.0.0.5","destinationip":"203.0.113.9","destinationport":443,"BytesSent":5,"starttime":1763715600000,"eventdirection":"L2R","categoryname":"Session Opened"}"#;
        let c = read(SchemaName::Auto, q).unwrap();
        assert!(c.permitted && c.bytes_out == Some(5) && c.time_ms == Some(1_763_715_600_000));
        let no_bytes = q.replace("\"BytesSent\":5,", "");
        assert!(!read(SchemaName::Auto, &no_bytes).unwrap().permitted);
        let e = r#"{"@timestamp":"2025-11-21T09:00:00Z","source":{"ip":"10.0.0.5","bytes":9},"destination":{"ip":"203.0.113.9","port":443},"event":{"type":["connection","allowed"]},"network":{"direction":"egress"}}"#;
        let c = read(SchemaName::Auto, e).unwrap();
        assert!(c.permitted && c.bytes_out == Some(9));
        let inbound = e.replace("egress", "inbound");
        assert!(!read(SchemaName::Auto, &inbound).unwrap().permitted);
        assert_eq!(read(SchemaName::Auto, r#"{"host":"x"}"#), None);
    }
}

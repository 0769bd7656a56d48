//! Schema presets: where each preset keeps the fields the rule reads, and
//! when it says a connection was permitted (spec §1). Values are read
//! tolerantly: a value that cannot be read is missing, never an error.

use std::borrow::Cow;

use rulebox_plugin::json::{Object, PathPlan, Value};

use crate::config::{FieldOverrides, PresetName};
use crate::time::{self, Unit};

/// How a preset groups aggregates (spec §3): the SPL seed groups by process
/// and collects users; the AQL seed groups by user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    ByProcess,
    ByUser,
}

/// Where a preset keeps each field (dotted paths), with the user's
/// overrides applied.
#[derive(Debug, Clone)]
struct Spec {
    source: Vec<String>,
    destination: Vec<String>,
    port: Vec<String>,
    bytes_out: Option<String>,
    bytes_in: Option<String>,
    user: Option<String>,
    process: Option<String>,
    time: String,
    time_unit: Unit,
    grouping: Grouping,
}

impl Spec {
    /// `o` applied: one path each (for a field with two paths, both are
    /// replaced).
    fn overridden(mut self, o: &FieldOverrides) -> Spec {
        let one = |v: &Option<String>| v.as_ref().map(|s| vec![s.clone()]);
        if let Some(v) = one(&o.source) {
            self.source = v;
        }
        if let Some(v) = one(&o.destination) {
            self.destination = v;
        }
        if let Some(v) = one(&o.port) {
            self.port = v;
        }
        self.bytes_out = o.bytes_out.clone().or(self.bytes_out);
        self.bytes_in = o.bytes_in.clone().or(self.bytes_in);
        self.user = o.user.clone().or(self.user);
        self.process = o.process.clone().or(self.process);
        if let Some(t) = &o.time {
            self.time = t.clone();
        }
        if let Some(u) = o.time_unit {
            self.time_unit = u;
        }
        self
    }
}

/// A preset with the user's overrides applied. Its fields are slots, read
/// with [`Object::slot`]. The destination and port, which every event
/// needs, are positions in [`Preset::paths`], the path group the rule
/// declares for this preset ([`plan`]): in the sandbox the host resolves
/// them with its scan. The rest, needed only for events on a watched port,
/// are positions in [`Preset::details_plan`], resolved by scanning such an
/// event again.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub kind: PresetName,
    paths: Vec<String>,
    /// The preset's own destination paths, before any override: what
    /// `auto` recognises the preset by.
    detect: Vec<String>,
    destination: Vec<usize>,
    port: Vec<usize>,
    details: PathPlan,
    source: Vec<usize>,
    bytes_out: Option<usize>,
    bytes_in: Option<usize>,
    user: Option<usize>,
    process: Option<usize>,
    time: usize,
    time_unit: Unit,
    /// The slots of [`permit_paths`], in its order.
    permit: Vec<usize>,
    pub grouping: Grouping,
}

/// The path plan for `presets`: with `detect`, one group per preset, chosen
/// by its own destination paths (the first preset, in order, whose own
/// destination field the event carries: `schema = "auto"`; the overrides
/// in `fields` play no part in that choice, spec §1); otherwise the one
/// preset's group, which always applies.
pub fn plan(presets: &[Preset], detect: bool) -> PathPlan {
    let mut plan = PathPlan::new();
    for p in presets {
        let when = if detect { p.detect_paths() } else { &[] };
        plan.add_group(when, p.paths());
    }
    plan
}

/// Where an event goes: all the rule reads from an event on a port it does
/// not watch (most events), for the label and the external flag.
#[derive(Debug, Default)]
pub struct Target<'a> {
    pub destination: Option<Destination<'a>>,
    pub port: Option<u16>,
}

/// The destination as the event gives it: most often a plain IPv4 address
/// string, read straight from its bytes; otherwise its text.
#[derive(Debug, PartialEq, Eq)]
pub enum Destination<'a> {
    Ip(std::net::IpAddr),
    Text(Cow<'a, str>),
}

impl Destination<'_> {
    /// The destination as text (an address read from its bytes is written
    /// back in its canonical form, which for `a.b.c.d` is the same text).
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            Destination::Ip(ip) => Cow::Owned(ip.to_string()),
            Destination::Text(t) => Cow::Borrowed(t),
        }
    }

    /// The address, when the destination is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match self {
            Destination::Ip(ip) => Some(*ip),
            Destination::Text(t) => crate::net::parse_ip(t),
        }
    }
}

/// The rest of what the rule needs, read only for events on a watched port.
#[derive(Debug, Default)]
pub struct Details<'a> {
    pub source: Option<Cow<'a, str>>,
    pub bytes_out: Option<u64>,
    pub bytes_in: Option<u64>,
    pub user: Option<Cow<'a, str>>,
    pub process: Option<Cow<'a, str>>,
    pub time_ms: Option<i64>,
    pub permitted: bool,
}

const QRADAR_CATEGORIES: &[&str] = &[
    "Access Permitted",
    "Connection Accepted",
    "Session Opened",
    "Network Connection",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Preset {
    fn builtin(kind: PresetName) -> (&'static str, Spec) {
        let s = |v: &str| Some(v.to_string());
        let p = |name,
                 src: &[&str],
                 dst: &[&str],
                 port: &[&str],
                 out,
                 inn,
                 user,
                 process,
                 time: &str,
                 unit,
                 grouping| {
            (
                name,
                Spec {
                    source: strings(src),
                    destination: strings(dst),
                    port: strings(port),
                    bytes_out: out,
                    bytes_in: inn,
                    user,
                    process,
                    time: time.to_string(),
                    time_unit: unit,
                    grouping,
                },
            )
        };
        use Grouping::*;
        use Unit::*;
        match kind {
            PresetName::Cim => p(
                "cim",
                &["src_ip", "src"],
                &["dest_ip", "dest"],
                &["dest_port"],
                s("bytes_out"),
                s("bytes_in"),
                s("user"),
                s("process_name"),
                "_time",
                Seconds,
                ByProcess,
            ),
            PresetName::Qradar => p(
                "qradar",
                &["sourceip"],
                &["destinationip"],
                &["destinationport"],
                s("BytesSent"),
                s("BytesReceived"),
                s("username"),
                None,
                "starttime",
                Millis,
                ByUser,
            ),
            PresetName::Ecs => p(
                "ecs",
                &["source.ip"],
                &["destination.ip"],
                &["destination.port"],
                s("source.bytes"),
                s("destination.bytes"),
                s("user.name"),
                s("process.name"),
                "@timestamp",
                Millis,
                ByProcess,
            ),
            PresetName::Ocsf => p(
                "ocsf",
                &["src_endpoint.ip"],
                &["dst_endpoint.ip"],
                &["dst_endpoint.port"],
                s("traffic.bytes_out"),
                s("traffic.bytes_in"),
                s("actor.user.name"),
                s("actor.process.name"),
                "time",
                Millis,
                ByProcess,
            ),
            // Zeek's JSON writer names them `id.orig_h`; some exports use
            // `_` as the separator instead.
            PresetName::Zeek => p(
                "zeek",
                &["id.orig_h", "id_orig_h"],
                &["id.resp_h", "id_resp_h"],
                &["id.resp_p", "id_resp_p"],
                s("orig_bytes"),
                s("resp_bytes"),
                None,
                None,
                "ts",
                Seconds,
                ByProcess,
            ),
            PresetName::Sysmon => p(
                "sysmon",
                &["SourceIp"],
                &["DestinationIp"],
                &["DestinationPort"],
                None,
                None,
                s("User"),
                s("Image"),
                "UtcTime",
                Millis,
                ByProcess,
            ),
            PresetName::Auto => unreachable!("auto is not a preset"),
        }
    }

    /// The preset with `o` applied, its paths taken inside `event_path`
    /// when the event sits there in the line (spec §1, Wrapped events):
    /// every path, the permit fields' and the detection paths included.
    pub fn new(kind: PresetName, o: &FieldOverrides, event_path: Option<&str>) -> Preset {
        let (name, f) = Preset::builtin(kind);
        Preset::build(kind, name, f, o, event_path)
    }

    /// `zeek` with one separator only, `.` or `_` (`auto` tries them apart:
    /// [`Preset::auto_order`]).
    fn zeek(sep: char, o: &FieldOverrides, event_path: Option<&str>) -> Preset {
        let (name, mut f) = Preset::builtin(PresetName::Zeek);
        f.source = vec![format!("id{sep}orig_h")];
        f.destination = vec![format!("id{sep}resp_h")];
        f.port = vec![format!("id{sep}resp_p")];
        Preset::build(PresetName::Zeek, name, f, o, event_path)
    }

    fn build(
        kind: PresetName,
        name: &'static str,
        f: Spec,
        o: &FieldOverrides,
        event_path: Option<&str>,
    ) -> Preset {
        let at = |p: &str| match event_path {
            Some(e) => format!("{e}.{p}"),
            None => p.to_string(),
        };
        let detect = f.destination.iter().map(|p| at(p)).collect();
        let f = f.overridden(o);
        // Slots: the destination paths first, then the port's; the others
        // in a group of their own.
        let (mut paths, mut detail_paths) = (Vec::new(), Vec::new());
        let slot = |paths: &mut Vec<String>, p: &str| {
            let p = at(p);
            match paths.iter().position(|x| *x == p) {
                Some(i) => i,
                None => {
                    paths.push(p);
                    paths.len() - 1
                }
            }
        };
        let destination: Vec<usize> = f.destination.iter().map(|p| slot(&mut paths, p)).collect();
        let port = f.port.iter().map(|p| slot(&mut paths, p)).collect();
        let mut slot = |p: &str| slot(&mut detail_paths, p);
        let source = f.source.iter().map(|p| slot(p)).collect();
        let bytes_out = f.bytes_out.as_deref().map(&mut slot);
        let bytes_in = f.bytes_in.as_deref().map(&mut slot);
        let user = f.user.as_deref().map(&mut slot);
        let process = f.process.as_deref().map(&mut slot);
        let time = slot(&f.time);
        let permit = permit_paths(kind).iter().map(|p| slot(p)).collect();
        let mut details = PathPlan::new();
        details.add_group(&[], &detail_paths);
        Preset {
            name,
            kind,
            paths,
            detect,
            destination,
            port,
            details,
            source,
            bytes_out,
            bytes_in,
            user,
            process,
            time,
            time_unit: f.time_unit,
            permit,
            grouping: f.grouping,
        }
    }

    /// The presets `auto` chooses from, in the order it tries them. Zeek
    /// with `_` as the separator comes last, apart from Zeek's own `.`:
    /// events of the other shapes, far more common, are recognised before
    /// it is looked for.
    pub fn auto_order(o: &FieldOverrides, event_path: Option<&str>) -> Vec<Preset> {
        let mut presets = vec![Preset::zeek('.', o, event_path)];
        presets.extend(
            [
                PresetName::Ocsf,
                PresetName::Qradar,
                PresetName::Sysmon,
                PresetName::Ecs,
                PresetName::Cim,
            ]
            .into_iter()
            .map(|k| Preset::new(k, o, event_path)),
        );
        presets.push(Preset::zeek('_', o, event_path));
        presets
    }

    /// The paths every event needs (destination, port), in slot order.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The plan for the rest, read by [`Preset::details`]: one group that
    /// always applies.
    pub fn details_plan(&self) -> &PathPlan {
        &self.details
    }

    /// The paths that say an event is of this preset under `auto`: its own
    /// destination paths, whatever the overrides.
    pub fn detect_paths(&self) -> &[String] {
        &self.detect
    }

    pub fn target<'a>(&self, obj: &Object<'_, 'a>) -> Target<'a> {
        Target {
            destination: self.destination.iter().find_map(|&i| {
                let v = obj.slot(i)?;
                // `"a.b.c.d"` is its own text: no unescaping, nothing to trim.
                if let [b'"', inner @ .., b'"'] = v.raw
                    && let Some(ip) = crate::net::parse_dotted_quad(inner)
                {
                    return Some(Destination::Ip(std::net::IpAddr::V4(ip.into())));
                }
                as_text(&v).map(Destination::Text)
            }),
            port: self
                .port
                .iter()
                .find_map(|&i| obj.slot(i).and_then(|v| as_u64(&v)))
                .and_then(|p| u16::try_from(p).ok()),
        }
    }

    /// The fields of an event scanned with [`Preset::details_plan`].
    pub fn details<'a>(&self, obj: &Object<'_, 'a>) -> Details<'a> {
        let get = |i: Option<usize>| i.and_then(|i| obj.slot(i));
        let bytes_out = get(self.bytes_out).and_then(|v| as_u64(&v));
        Details {
            source: first_text(obj, &self.source),
            bytes_out,
            bytes_in: get(self.bytes_in).and_then(|v| as_u64(&v)),
            user: get(self.user).and_then(|v| as_text(&v)),
            process: get(self.process).and_then(|v| as_text(&v)),
            time_ms: obj
                .slot(self.time)
                .and_then(|v| as_time(&v, self.time_unit)),
            permitted: self.permitted(obj, bytes_out),
        }
    }

    fn permitted(&self, obj: &Object<'_, '_>, bytes_out: Option<u64>) -> bool {
        // One of `permit_paths`, by name, through its slot.
        let get = |p: &str| {
            let at = permit_paths(self.kind).iter().position(|x| *x == p)?;
            obj.slot(*self.permit.get(at)?)
        };
        let text = |p: &str| get(p).and_then(|v| as_text(&v));
        let is = |p: &str, want: &str| text(p).is_some_and(|s| s.eq_ignore_ascii_case(want));
        match self.kind {
            PresetName::Cim => is("action", "allowed"),
            PresetName::Qradar => {
                text("eventdirection").is_some_and(|d| d == "L2R")
                    && bytes_out.is_some()
                    && text("categoryname").is_some_and(|c| QRADAR_CATEGORIES.contains(&c.as_ref()))
            }
            PresetName::Ecs => {
                let allowed_word = |s: &str| {
                    ["allow", "allowed", "accept", "accepted"]
                        .iter()
                        .any(|w| s.eq_ignore_ascii_case(w))
                };
                let ok = is("event.outcome", "success")
                    || text("event.action").is_some_and(|s| allowed_word(&s))
                    || get("event.type").is_some_and(|v| {
                        as_text(&v).is_some_and(|s| s.eq_ignore_ascii_case("allowed"))
                            || v.array_items().any(|i| {
                                as_text(&i).is_some_and(|s| s.eq_ignore_ascii_case("allowed"))
                            })
                    });
                let outbound = match text("network.direction") {
                    None => true,
                    Some(d) => {
                        d.eq_ignore_ascii_case("outbound") || d.eq_ignore_ascii_case("egress")
                    }
                };
                ok && outbound
            }
            PresetName::Ocsf => {
                let one = |p: &str| get(p).and_then(|v| as_u64(&v)) == Some(1);
                one("disposition_id") || one("status_id")
            }
            PresetName::Zeek => {
                // Only conn.log records are connections: ftp, smb_files,
                // smb_mapping, dce_rpc ... rows carry the same `id.*` fields,
                // one per command or file.
                let state = text("conn_state");
                let conn = match text("_path") {
                    Some(path) => path == "conn",
                    None => state.is_some(),
                };
                conn && !state.is_some_and(|s| s == "S0" || s == "REJ")
            }
            PresetName::Sysmon => get("Initiated").is_some_and(|v| {
                v.as_bool() == Some(true)
                    || as_text(&v).is_some_and(|s| s.eq_ignore_ascii_case("true"))
            }),
            PresetName::Auto => false,
        }
    }
}

/// The fields [`Preset::permitted`] reads, per preset (it reads them by
/// these names through their slots: a name missing here reads as absent).
fn permit_paths(kind: PresetName) -> &'static [&'static str] {
    match kind {
        PresetName::Cim => &["action"],
        PresetName::Qradar => &["eventdirection", "categoryname"],
        PresetName::Ecs => &[
            "event.outcome",
            "event.action",
            "event.type",
            "network.direction",
        ],
        PresetName::Ocsf => &["disposition_id", "status_id"],
        PresetName::Zeek => &["conn_state", "_path"],
        PresetName::Sysmon => &["Initiated"],
        PresetName::Auto => &[],
    }
}

/// The first of `slots` present as text.
fn first_text<'a>(obj: &Object<'_, 'a>, slots: &[usize]) -> Option<Cow<'a, str>> {
    slots
        .iter()
        .find_map(|&i| obj.slot(i).and_then(|v| as_text(&v)))
}

/// A string value, or a number's text (trimmed; empty is missing).
fn as_text<'a>(v: &Value<'a>) -> Option<Cow<'a, str>> {
    let s = match v.as_str() {
        Some(s) => s,
        None => Cow::Borrowed(v.as_number_text()?),
    };
    // Most values have nothing to trim: printable ASCII at both ends (every
    // character `trim` removes is a control, a space or non-ASCII).
    let b = s.as_bytes();
    let solid = |c: Option<&u8>| c.is_some_and(|c| (0x21..0x80).contains(c));
    if solid(b.first()) && solid(b.last()) {
        return Some(s);
    }
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.len() == s.len() {
        Some(s)
    } else {
        Some(Cow::Owned(t.to_string()))
    }
}

/// A non-negative integer from a number or numeric string (`"21"`, `21.0`).
#[inline]
pub fn as_u64(v: &Value<'_>) -> Option<u64> {
    // The common case, a plain number of a few digits, without `str::parse`
    // (and, inline, without a call).
    plain_digits(v.raw).or_else(|| as_u64_parsed(v))
}

/// [`as_u64`] of anything but plain digits: a number in other forms, or
/// text holding one.
#[inline(never)]
fn as_u64_parsed(v: &Value<'_>) -> Option<u64> {
    let s = v.as_str();
    let t = match &s {
        Some(s) => s.trim(),
        None => v.as_number_text()?,
    };
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 {
        Some(f as u64)
    } else {
        None
    }
}

/// `raw` as an integer when it is 1 to 19 ASCII digits, or such digits in
/// quotes (what `parse::<u64>` reads the same, without a leading `+`).
fn plain_digits(raw: &[u8]) -> Option<u64> {
    let d = match raw {
        [b'"', inner @ .., b'"'] => inner,
        _ => raw,
    };
    if d.is_empty() || d.len() > 19 {
        return None;
    }
    d.iter().try_fold(0u64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + (c - b'0') as u64)
    })
}

fn as_time(v: &Value<'_>, unit: Unit) -> Option<i64> {
    if let Some(n) = v.as_number_text() {
        return time::parse_epoch(n, unit);
    }
    let s = v.as_str()?;
    time::parse_epoch(&s, unit).or_else(|| time::parse_rfc3339(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rulebox_plugin::json::Scanner;

    fn read(kind: PresetName, ev: &str) -> (bool, String) {
        let mut sc = Scanner::new();
        let p = Preset::new(kind, &FieldOverrides::default(), None);
        let obj = sc
            .scan_planned(ev.as_bytes(), &plan(std::slice::from_ref(&p), false))
            .unwrap();
        let mut sc2 = Scanner::new();
        let full = sc2.scan_planned(ev.as_bytes(), p.details_plan()).unwrap();
        let (t, r) = (p.target(&obj), p.details(&full));
        (
            r.permitted,
            format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                r.source,
                t.destination.as_ref().map(|d| d.text()),
                t.port,
                r.bytes_out,
                r.bytes_in,
                r.user,
                r.process,
                r.time_ms
            ),
        )
    }

    #[test]
    fn cim_reads_and_permits() {
        let (ok, r) = read(
            PresetName::Cim,
            r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":"21","bytes_out":"100","bytes_in":7,"user":"alice","action":"Allowed","_time":"1700000000.5"}"#,
        );
        assert!(ok);
        assert_eq!(
            r,
            r#"Some("10.0.0.5")|Some("203.0.113.9")|Some(21)|Some(100)|Some(7)|Some("alice")|None|Some(1700000000500)"#
        );
        let (ok, _) = read(
            PresetName::Cim,
            r#"{"src":"10.0.0.5","dest":"8.8.8.8","dest_port":21,"action":"blocked"}"#,
        );
        assert!(!ok);
        let (_, r) = read(
            PresetName::Cim,
            r#"{"src":"10.0.0.5","dest":"8.8.8.8","dest_port":"x21","bytes_out":-5,"_time":"2026-01-01T00:00:00Z"}"#,
        );
        assert!(r.contains("Some(\"8.8.8.8\")|None|None"), "{r}");
        assert!(r.ends_with("Some(1767225600000)"), "{r}");
    }

    #[test]
    fn qradar_needs_direction_bytes_and_category() {
        let base = r#""sourceip":"10.0.0.5","destinationip":"8.8.8.8","destinationport":445,"starttime":1700000000000"#;
        let (ok, _) = read(
            PresetName::Qradar,
            &format!(
                r#"{{{base},"eventdirection":"L2R","BytesSent":1,"categoryname":"Session Opened"}}"#
            ),
        );
        assert!(ok);
        assert!(!read(PresetName::Qradar, &format!(r#"{{{base},"eventdirection":"R2L","BytesSent":1,"categoryname":"Session Opened"}}"#)).0);
        assert!(
            !read(
                PresetName::Qradar,
                &format!(r#"{{{base},"eventdirection":"L2R","categoryname":"Session Opened"}}"#)
            )
            .0
        );
        assert!(!read(PresetName::Qradar, &format!(r#"{{{base},"eventdirection":"L2R","BytesSent":null,"categoryname":"Session Opened"}}"#)).0);
        assert!(!read(PresetName::Qradar, &format!(r#"{{{base},"eventdirection":"L2R","BytesSent":1,"categoryname":"Firewall Deny"}}"#)).0);
    }

    #[test]
    fn ecs_outcome_action_type_and_direction() {
        let base = r#""source":{"ip":"10.0.0.5","bytes":9},"destination":{"ip":"8.8.8.8","port":21},"@timestamp":"2026-01-01T00:00:00.250Z""#;
        assert!(
            read(
                PresetName::Ecs,
                &format!(r#"{{{base},"event":{{"outcome":"success"}}}}"#)
            )
            .0
        );
        assert!(
            read(
                PresetName::Ecs,
                &format!(r#"{{{base},"event":{{"type":["connection","allowed"]}}}}"#)
            )
            .0
        );
        assert!(
            read(
                PresetName::Ecs,
                &format!(
                    r#"{{{base},"event":{{"action":"allow"}},"network":{{"direction":"egress"}}}}"#
                )
            )
            .0
        );
        assert!(!read(PresetName::Ecs, &format!(r#"{{{base},"event":{{"outcome":"success"}},"network":{{"direction":"inbound"}}}}"#)).0);
        assert!(
            !read(
                PresetName::Ecs,
                &format!(r#"{{{base},"event":{{"outcome":"failure"}}}}"#)
            )
            .0
        );
        let (_, r) = read(PresetName::Ecs, &format!(r#"{{{base}}}"#));
        assert!(r.ends_with("Some(1767225600250)"), "{r}");
    }

    #[test]
    fn ocsf_zeek_sysmon() {
        assert!(
            read(
                PresetName::Ocsf,
                r#"{"dst_endpoint":{"ip":"8.8.8.8","port":69},"disposition_id":1}"#
            )
            .0
        );
        assert!(
            read(
                PresetName::Ocsf,
                r#"{"dst_endpoint":{"ip":"8.8.8.8","port":69},"disposition_id":2,"status_id":"1"}"#
            )
            .0
        );
        assert!(
            !read(
                PresetName::Ocsf,
                r#"{"dst_endpoint":{"ip":"8.8.8.8","port":69},"disposition_id":2}"#
            )
            .0
        );
        let (ok, r) = read(
            PresetName::Zeek,
            r#"{"ts":1664465501.645564,"id.orig_h":"172.16.1.11","id.resp_h":"8.8.8.8","id.resp_p":445,"conn_state":"SF","orig_bytes":10}"#,
        );
        assert!(ok);
        assert!(
            r.starts_with(r#"Some("172.16.1.11")|Some("8.8.8.8")|Some(445)|Some(10)"#),
            "{r}"
        );
        assert!(
            !read(
                PresetName::Zeek,
                r#"{"id.resp_h":"8.8.8.8","conn_state":"S0"}"#
            )
            .0
        );
        // `_` as the separator.
        let (ok, r) = read(
            PresetName::Zeek,
            r#"{"ts":"2022-09-29T15:31:41.645564Z","id_orig_h":"172.16.1.11","id_resp_h":"8.8.8.8","id_resp_p":"445","conn_state":"SF","_path":"conn"}"#,
        );
        assert!(ok);
        assert_eq!(
            r,
            r#"Some("172.16.1.11")|Some("8.8.8.8")|Some(445)|None|None|None|None|Some(1664465501645)"#
        );
        // Only conn records count: by `_path`, or without it by `conn_state`.
        let zeek = |extra: &str| {
            read(
                PresetName::Zeek,
                &format!(
                    r#"{{"id.orig_h":"10.0.0.1","id.resp_h":"8.8.8.8","id.resp_p":445{extra}}}"#
                ),
            )
            .0
        };
        assert!(zeek(r#","_path":"conn""#));
        assert!(zeek(r#","_path":"conn","conn_state":"OTH""#));
        assert!(zeek(r#","conn_state":"SF""#));
        assert!(!zeek(""), "no _path, no conn_state: not a conn record");
        assert!(!zeek(r#","_path":"smb_mapping""#));
        assert!(!zeek(r#","_path":"ftp","conn_state":"SF""#));
        assert!(!zeek(r#","_path":"conn","conn_state":"S0""#));
        assert!(
            !read(
                PresetName::Zeek,
                r#"{"id.resp_h":"8.8.8.8","conn_state":"REJ"}"#
            )
            .0
        );
        let (ok, r) = read(
            PresetName::Sysmon,
            r#"{"Image":"C:\\x\\ftp.exe","User":"NT AUTHORITY\\SYSTEM","Initiated":"true","SourceIp":"172.18.39.5","DestinationIp":"8.8.8.8","DestinationPort":"445","UtcTime":"2020-08-06 06:27:09.362"}"#,
        );
        assert!(ok);
        assert!(r.contains(r#"Some("C:\\x\\ftp.exe")"#), "{r}");
        assert!(
            !read(
                PresetName::Sysmon,
                r#"{"DestinationIp":"8.8.8.8","Initiated":false}"#
            )
            .0
        );
    }

    #[test]
    fn overrides_replace_preset_fields() {
        let o = FieldOverrides {
            destination: Some("dst.addr".into()),
            port: Some("dst.p".into()),
            time: Some("when".into()),
            time_unit: Some(Unit::Millis),
            ..Default::default()
        };
        let p = Preset::new(PresetName::Cim, &o, None);
        let mut sc = Scanner::new();
        let obj = sc
            .scan_planned(
                br#"{"dst":{"addr":"8.8.8.8","p":"139"},"when":5}"#,
                &plan(std::slice::from_ref(&p), false),
            )
            .unwrap();
        let t = p.target(&obj);
        assert_eq!(t.destination, Some(Destination::Ip([8, 8, 8, 8].into())));
        assert_eq!(t.port, Some(139));
        let mut sc = Scanner::new();
        let full = sc.scan_planned(br#"{"when":5}"#, p.details_plan()).unwrap();
        assert_eq!(p.details(&full).time_ms, Some(5));
    }

    #[test]
    fn detect_picks_the_first_preset_whose_destination_is_present() {
        let presets = Preset::auto_order(&FieldOverrides::default(), None);
        let auto = plan(&presets, true);
        let mut sc = Scanner::new();
        let name = |ev: &str, sc: &mut Scanner| {
            let obj = sc.scan_planned(ev.as_bytes(), &auto).unwrap();
            obj.group().map(|g| presets[g].name)
        };
        assert_eq!(name(r#"{"id.resp_h":"1.1.1.1"}"#, &mut sc), Some("zeek"));
        assert_eq!(
            name(r#"{"id":{"resp_h":"1.1.1.1"}}"#, &mut sc),
            Some("zeek")
        );
        assert_eq!(
            name(r#"{"id":5,"dest_ip":"1.1.1.1"}"#, &mut sc),
            Some("cim")
        );
        assert_eq!(
            name(r#"{"destination":{"ip":"1.1.1.1"}}"#, &mut sc),
            Some("ecs")
        );
        assert_eq!(
            name(r#"{"destination.ip":"1.1.1.1"}"#, &mut sc),
            Some("ecs")
        );
        assert_eq!(
            name(r#"{"destination":{"port":1},"dest":"h"}"#, &mut sc),
            Some("cim")
        );
        assert_eq!(
            name(r#"{"dst_endpoint":{"ip":"1.1.1.1"}}"#, &mut sc),
            Some("ocsf")
        );
        assert_eq!(
            name(r#"{"DestinationIp":"1.1.1.1"}"#, &mut sc),
            Some("sysmon")
        );
        assert_eq!(
            name(r#"{"destinationip":"1.1.1.1"}"#, &mut sc),
            Some("qradar")
        );
        assert_eq!(name(r#"{"de\u0073t_ip":"1.1.1.1"}"#, &mut sc), Some("cim"));
        assert_eq!(name(r#"{"message":"x"}"#, &mut sc), None);
        assert_eq!(name(r#"{"id_resp_h":"1.1.1.1"}"#, &mut sc), Some("zeek"));
        assert_eq!(
            name(r#"{"id_resp_h":"1.1.1.1","dest_ip":"1.1.1.1"}"#, &mut sc),
            Some("cim"),
            "`_` comes last"
        );
    }

    #[test]
    fn text_is_trimmed_like_str_trim() {
        let t = |raw: &'static str| {
            as_text(&Value {
                raw: raw.as_bytes(),
            })
            .map(|c| c.into_owned())
        };
        assert_eq!(t(r#""ftp.exe""#).as_deref(), Some("ftp.exe"));
        assert_eq!(t(r#"" 10.0.0.1\t""#).as_deref(), Some("10.0.0.1"));
        assert_eq!(
            t(r#""\u000b8.8.8.8\u000b""#).as_deref(),
            Some("8.8.8.8"),
            "vertical tab"
        );
        assert_eq!(
            t(r#""\u00a0h\u3000""#).as_deref(),
            Some("h"),
            "non-ASCII spaces"
        );
        assert_eq!(t(r#""é""#).as_deref(), Some("é"));
        assert_eq!(t(r#""  ""#), None);
        assert_eq!(t(r#""""#), None);
        assert_eq!(t("445").as_deref(), Some("445"));
    }

    #[test]
    fn tolerant_integers() {
        let v = |s: &'static str| as_u64(&Value { raw: s.as_bytes() });
        assert_eq!(v("21"), Some(21));
        assert_eq!(v("\" 21 \""), Some(21));
        assert_eq!(v("21.0"), Some(21));
        assert_eq!(v("21.5"), None);
        assert_eq!(v("-1"), None);
        assert_eq!(v("\"abc\""), None);
        assert_eq!(v("null"), None);
        assert_eq!(v("true"), None);
        assert_eq!(v("\"+21\""), Some(21), "what str::parse reads");
        assert_eq!(v("\"021\""), Some(21));
        assert_eq!(v("0"), Some(0));
        assert_eq!(v("\"\""), None);
        assert_eq!(v("18446744073709551615"), Some(u64::MAX));
        assert_eq!(v("18446744073709551616"), None, "too big");
        assert_eq!(v("9999999999999999999"), Some(9_999_999_999_999_999_999));
        // The quick path agrees with the general one on every short digit run.
        for n in (0..100_000u64)
            .step_by(7)
            .chain([u64::MAX / 10, 65_535, 65_536])
        {
            let t = n.to_string();
            assert_eq!(plain_digits(t.as_bytes()), t.parse().ok(), "{t}");
            assert_eq!(plain_digits(format!("\"{t}\"").as_bytes()), Some(n));
        }
    }
}

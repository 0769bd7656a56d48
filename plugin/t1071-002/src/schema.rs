//! Schema presets: where each preset keeps the fields the rule reads, and
//! when it says a connection was permitted (spec §1). Values are read
//! tolerantly: a value that cannot be read is missing, never an error.

use std::borrow::Cow;

use rulebox_plugin::json::{Object, Path, Value};
use serde::Deserialize;

use crate::config::FieldOverrides;
use crate::time::{self, Unit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresetName {
    Cim,
    Qradar,
    Ecs,
    Ocsf,
    Zeek,
    Sysmon,
    Auto,
}

/// How a preset groups aggregates (spec §3): the SPL seed groups by process
/// and collects users; the AQL seed groups by user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    ByProcess,
    ByUser,
}

/// A preset with the user's overrides applied.
#[derive(Debug, Clone)]
pub struct Preset {
    pub name: &'static str,
    pub kind: PresetName,
    source: Vec<Path>,
    destination: Vec<Path>,
    port: Vec<Path>,
    bytes_out: Option<Path>,
    bytes_in: Option<Path>,
    user: Option<Path>,
    process: Option<Path>,
    time: Path,
    time_unit: Unit,
    pub grouping: Grouping,
}

/// Chooses a preset per event for `schema = "auto"`.
#[derive(Debug, Clone)]
pub struct AutoDetect {
    presets: Vec<Preset>,
}

impl AutoDetect {
    pub fn new(o: &FieldOverrides) -> AutoDetect {
        AutoDetect {
            presets: Preset::auto_order(o),
        }
    }

    pub fn presets(&self) -> &[Preset] {
        &self.presets
    }

    /// The first preset (in [`Preset::auto_order`]) whose destination field
    /// the event carries.
    pub fn detect(&self, obj: &Object<'_, '_>) -> Option<&Preset> {
        self.presets.iter().find(|p| p.matches(obj))
    }
}

/// Where an event goes: all the rule reads from an event on a port it does
/// not watch (most events), for the label and the external flag.
#[derive(Debug, Default)]
pub struct Target<'a> {
    pub destination: Option<Cow<'a, str>>,
    pub port: Option<u16>,
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

fn paths(v: &[&str]) -> Vec<Path> {
    v.iter().map(|s| Path::new(s)).collect()
}

impl Preset {
    fn builtin(kind: PresetName) -> Preset {
        let s = |v: &str| Some(Path::new(v));
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
                 grouping| Preset {
            name,
            kind,
            source: paths(src),
            destination: paths(dst),
            port: paths(port),
            bytes_out: out,
            bytes_in: inn,
            user,
            process,
            time: Path::new(time),
            time_unit: unit,
            grouping,
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
            PresetName::Zeek => p(
                "zeek",
                &["id.orig_h"],
                &["id.resp_h"],
                &["id.resp_p"],
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

    /// The preset with `o` applied.
    pub fn new(kind: PresetName, o: &FieldOverrides) -> Preset {
        let mut p = Preset::builtin(kind);
        let one = |v: &Option<String>| v.as_deref().map(|s| vec![Path::new(s)]);
        let path = |v: &Option<String>| v.as_deref().map(Path::new);
        if let Some(v) = one(&o.source) {
            p.source = v;
        }
        if let Some(v) = one(&o.destination) {
            p.destination = v;
        }
        if let Some(v) = one(&o.port) {
            p.port = v;
        }
        p.bytes_out = path(&o.bytes_out).or(p.bytes_out);
        p.bytes_in = path(&o.bytes_in).or(p.bytes_in);
        p.user = path(&o.user).or(p.user);
        p.process = path(&o.process).or(p.process);
        if let Some(t) = path(&o.time) {
            p.time = t;
        }
        if let Some(u) = o.time_unit {
            p.time_unit = u;
        }
        p
    }

    /// The presets `auto` chooses from, in the order it tries them.
    pub fn auto_order(o: &FieldOverrides) -> Vec<Preset> {
        [
            PresetName::Zeek,
            PresetName::Ocsf,
            PresetName::Qradar,
            PresetName::Sysmon,
            PresetName::Ecs,
            PresetName::Cim,
        ]
        .into_iter()
        .map(|k| Preset::new(k, o))
        .collect()
    }

    /// Every field path this preset reads (for [`rulebox_plugin::Rule::object_keys`]).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let fields = [&self.source, &self.destination, &self.port]
            .into_iter()
            .flatten()
            .map(Path::as_str);
        let optional = [&self.bytes_out, &self.bytes_in, &self.user, &self.process]
            .into_iter()
            .filter_map(|p| p.as_ref().map(Path::as_str));
        fields
            .chain(optional)
            .chain([self.time.as_str()])
            .chain(permit_paths(self.kind).iter().copied())
    }

    /// Whether this event carries this preset's destination field.
    pub fn matches(&self, obj: &Object<'_, '_>) -> bool {
        self.destination.iter().any(|p| obj.get_path(p).is_some())
    }

    pub fn target<'a>(&self, obj: &Object<'_, 'a>) -> Target<'a> {
        Target {
            destination: first_text(obj, &self.destination),
            port: self
                .port
                .iter()
                .find_map(|p| obj.get_path(p).and_then(|v| as_u64(&v)))
                .and_then(|p| u16::try_from(p).ok()),
        }
    }

    pub fn details<'a>(&self, obj: &Object<'_, 'a>) -> Details<'a> {
        let get = |p: &Option<Path>| p.as_ref().and_then(|p| obj.get_path(p));
        let bytes_out = get(&self.bytes_out).and_then(|v| as_u64(&v));
        Details {
            source: first_text(obj, &self.source),
            bytes_out,
            bytes_in: get(&self.bytes_in).and_then(|v| as_u64(&v)),
            user: get(&self.user).and_then(|v| as_text(&v)),
            process: get(&self.process).and_then(|v| as_text(&v)),
            time_ms: obj
                .get_path(&self.time)
                .and_then(|v| as_time(&v, self.time_unit)),
            permitted: self.permitted(obj, bytes_out),
        }
    }

    fn permitted(&self, obj: &Object<'_, '_>, bytes_out: Option<u64>) -> bool {
        let text = |p: &str| obj.get(p).and_then(|v| as_text(&v));
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
                    || obj.get("event.type").is_some_and(|v| {
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
                let one = |p: &str| obj.get(p).and_then(|v| as_u64(&v)) == Some(1);
                one("disposition_id") || one("status_id")
            }
            PresetName::Zeek => !text("conn_state").is_some_and(|s| s == "S0" || s == "REJ"),
            PresetName::Sysmon => obj.get("Initiated").is_some_and(|v| {
                v.as_bool() == Some(true)
                    || as_text(&v).is_some_and(|s| s.eq_ignore_ascii_case("true"))
            }),
            PresetName::Auto => false,
        }
    }
}

/// The fields [`Preset::permitted`] reads, per preset (keep in step with it;
/// `the_declared_keys_are_all_the_rule_reads` checks that it is).
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
        PresetName::Zeek => &["conn_state"],
        PresetName::Sysmon => &["Initiated"],
        PresetName::Auto => &[],
    }
}

/// The first of `paths` present as text.
fn first_text<'a>(obj: &Object<'_, 'a>, paths: &[Path]) -> Option<Cow<'a, str>> {
    paths
        .iter()
        .find_map(|p| obj.get_path(p).and_then(|v| as_text(&v)))
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
pub fn as_u64(v: &Value<'_>) -> Option<u64> {
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
        let obj = sc.scan(ev.as_bytes()).unwrap();
        let p = Preset::new(kind, &FieldOverrides::default());
        let (t, r) = (p.target(&obj), p.details(&obj));
        (
            r.permitted,
            format!(
                "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
                r.source,
                t.destination,
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
        let p = Preset::new(PresetName::Cim, &o);
        let mut sc = Scanner::new();
        let obj = sc
            .scan(br#"{"dst":{"addr":"8.8.8.8","p":"139"},"when":5}"#)
            .unwrap();
        let t = p.target(&obj);
        assert_eq!(t.destination.as_deref(), Some("8.8.8.8"));
        assert_eq!(t.port, Some(139));
        assert_eq!(p.details(&obj).time_ms, Some(5));
    }

    #[test]
    fn detect_picks_the_first_preset_whose_destination_is_present() {
        let auto = AutoDetect::new(&FieldOverrides::default());
        let mut sc = Scanner::new();
        let name = |ev: &str, sc: &mut Scanner| {
            let obj = sc.scan(ev.as_bytes()).unwrap();
            auto.detect(&obj).map(|p| p.name)
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
    }
}

//! Event generation for rulebox's sample data, tests and benchmarks.
//!
//! A [`Conn`] is one network connection as a SIEM would see it; [`render`]
//! writes it in one of the six schemas the T1071.002 rule reads (field names
//! from `docs/log-formats.md`), padded with the vendor fields
//! real events carry so sizes are realistic (300–700 bytes). Everything is
//! deterministic for a seed.

pub mod hec;
pub mod raw;
pub mod wat;

use rulebox_plugin::abi::{EventResult, FrameOutputs, Outcome, Refused, ResultFrame};
use serde_json::{Map, Value, json};

/// The schemas events can be rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Cim,
    Qradar,
    Ecs,
    Ocsf,
    Zeek,
    Sysmon,
}

impl Schema {
    pub const ALL: [Schema; 6] = [
        Schema::Cim,
        Schema::Qradar,
        Schema::Ecs,
        Schema::Ocsf,
        Schema::Zeek,
        Schema::Sysmon,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Schema::Cim => "cim",
            Schema::Qradar => "qradar",
            Schema::Ecs => "ecs",
            Schema::Ocsf => "ocsf",
            Schema::Zeek => "zeek",
            Schema::Sysmon => "sysmon",
        }
    }

    pub fn parse(s: &str) -> Option<Schema> {
        Schema::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// One connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Conn {
    pub time_ms: i64,
    pub src: String,
    pub dest: String,
    pub src_port: u16,
    pub port: u16,
    /// Render the destination port as a string (`"21"`).
    pub port_as_string: bool,
    /// The firewall allowed it (CIM `action`, ECS `event.outcome`, …).
    pub allowed: bool,
    pub bytes_out: Option<u64>,
    pub bytes_in: Option<u64>,
    pub user: Option<String>,
    pub process: Option<String>,
}

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 % 1.0 < p
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// A rough "is this address on the inside" used only to render QRadar's
/// `eventdirection` and ECS/OCSF directions the way those products would.
fn looks_internal(ip: &str) -> bool {
    let ip = ip.strip_prefix("::ffff:").unwrap_or(ip);
    let octets: Vec<u32> = ip.split('.').filter_map(|p| p.parse().ok()).collect();
    if octets.len() == 4 {
        let (a, b) = (octets[0], octets[1]);
        return a == 10
            || a == 127
            || (a == 172 && (16..32).contains(&b))
            || (a == 192 && b == 168)
            || (a == 169 && b == 254)
            || (a == 100 && (64..128).contains(&b));
    }
    let l = ip.to_ascii_lowercase();
    l == "::1"
        || l.starts_with("fc")
        || l.starts_with("fd")
        || l.starts_with("fe8")
        || l.starts_with("fe9")
        || l.starts_with("fea")
        || l.starts_with("feb")
}

fn rfc3339(ms: i64) -> String {
    let mut out = Vec::new();
    rule_t1071_002::time::write_rfc3339(&mut out, ms);
    String::from_utf8_lossy(&out).trim_matches('"').to_string()
}

fn port_value(c: &Conn) -> Value {
    if c.port_as_string {
        json!(c.port.to_string())
    } else {
        json!(c.port)
    }
}

fn opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

/// Renders `c` in `schema` as one JSON line (no newline).
pub fn render(c: &Conn, schema: Schema, seq: u64) -> String {
    let outbound = looks_internal(&c.src) && !looks_internal(&c.dest);
    let v = match schema {
        Schema::Cim => {
            let mut m = Map::new();
            m.insert(
                "_time".into(),
                json!(format!(
                    "{}.{:03}",
                    c.time_ms.div_euclid(1000),
                    c.time_ms.rem_euclid(1000)
                )),
            );
            m.insert("sourcetype".into(), json!("pan:traffic"));
            m.insert("host".into(), json!("pa-220.corp.example"));
            m.insert(
                "vendor_product".into(),
                json!("Palo Alto Networks Firewall"),
            );
            m.insert("src_ip".into(), json!(c.src));
            m.insert("src_port".into(), json!(c.src_port));
            m.insert("dest_ip".into(), json!(c.dest));
            m.insert("dest_port".into(), port_value(c));
            m.insert("transport".into(), json!("tcp"));
            m.insert(
                "action".into(),
                json!(if c.allowed { "allowed" } else { "blocked" }),
            );
            m.insert(
                "rule".into(),
                json!(if c.allowed {
                    "outbound-default"
                } else {
                    "deny-file-transfer"
                }),
            );
            m.insert("src_zone".into(), json!("trust"));
            m.insert("dest_zone".into(), json!("untrust"));
            m.insert("session_id".into(), json!(seq));
            opt(&mut m, "bytes_out", c.bytes_out);
            opt(&mut m, "bytes_in", c.bytes_in);
            opt(&mut m, "user", c.user.clone());
            opt(&mut m, "process_name", c.process.clone());
            m.insert("dvc".into(), json!("fw-edge-01"));
            Value::Object(m)
        }
        Schema::Qradar => {
            let dir = match (looks_internal(&c.src), looks_internal(&c.dest)) {
                (true, false) => "L2R",
                (true, true) => "L2L",
                (false, true) => "R2L",
                (false, false) => "R2R",
            };
            let mut m = Map::new();
            m.insert("starttime".into(), json!(c.time_ms));
            m.insert("logsourceid".into(), json!(112));
            m.insert(
                "logsourcename".into(),
                json!("Palo Alto PA Series @ fw-edge-01"),
            );
            m.insert(
                "qid".into(),
                json!(if c.allowed { 23_500_144 } else { 23_500_145 }),
            );
            m.insert("sourceip".into(), json!(c.src));
            m.insert("sourceport".into(), json!(c.src_port));
            m.insert("destinationip".into(), json!(c.dest));
            m.insert("destinationport".into(), port_value(c));
            m.insert("eventdirection".into(), json!(dir));
            m.insert(
                "categoryname".into(),
                json!(if c.allowed {
                    "Session Opened"
                } else {
                    "Firewall Deny"
                }),
            );
            m.insert("magnitude".into(), json!(5));
            m.insert("credibility".into(), json!(10));
            opt(&mut m, "BytesSent", c.bytes_out);
            opt(&mut m, "BytesReceived", c.bytes_in);
            opt(&mut m, "username", c.user.clone());
            Value::Object(m)
        }
        Schema::Ecs => {
            let mut src = json!({"ip": c.src, "port": c.src_port});
            if let Some(b) = c.bytes_out {
                src["bytes"] = json!(b);
            }
            let mut dst = json!({"ip": c.dest, "port": port_value(c)});
            if let Some(b) = c.bytes_in {
                dst["bytes"] = json!(b);
            }
            let mut v = json!({
                "@timestamp": rfc3339(c.time_ms),
                "ecs": {"version": "8.11.0"},
                "event": {"kind": "event", "category": ["network"], "type": ["connection", "start"],
                          "outcome": if c.allowed { "success" } else { "failure" }, "module": "panw", "dataset": "panw.panos"},
                "observer": {"vendor": "Palo Alto Networks", "product": "PAN-OS", "type": "firewall", "hostname": "fw-edge-01"},
                "source": src,
                "destination": dst,
                "network": {"transport": "tcp", "direction": if outbound { "outbound" } else if looks_internal(&c.dest) { "internal" } else { "inbound" }},
            });
            if let Some(u) = &c.user {
                v["user"] = json!({"name": u});
            }
            if let Some(p) = &c.process {
                v["process"] = json!({"name": p});
            }
            v
        }
        Schema::Ocsf => {
            let mut traffic = json!({"packets": 12});
            if let Some(b) = c.bytes_out {
                traffic["bytes_out"] = json!(b);
            }
            if let Some(b) = c.bytes_in {
                traffic["bytes_in"] = json!(b);
            }
            let mut v = json!({
                "metadata": {"product": {"name": "Amazon VPC", "vendor_name": "AWS", "feature": {"name": "Flowlogs"}}, "version": "1.1.0"},
                "class_uid": 4001, "category_uid": 4, "activity_id": 6, "type_uid": 400106,
                "time": c.time_ms,
                "src_endpoint": {"ip": c.src, "port": c.src_port},
                "dst_endpoint": {"ip": c.dest, "port": port_value(c)},
                "connection_info": {"protocol_num": 6, "direction_id": if outbound { 2 } else { 1 }},
                "traffic": traffic,
                "disposition_id": if c.allowed { 1 } else { 2 },
                "disposition": if c.allowed { "Allowed" } else { "Blocked" },
                "severity_id": 1,
            });
            let mut actor = Map::new();
            if let Some(u) = &c.user {
                actor.insert("user".into(), json!({"name": u}));
            }
            if let Some(p) = &c.process {
                actor.insert("process".into(), json!({"name": p}));
            }
            if !actor.is_empty() {
                v["actor"] = Value::Object(actor);
            }
            v
        }
        Schema::Zeek => {
            let mut m = Map::new();
            m.insert("ts".into(), json!(c.time_ms as f64 / 1000.0));
            m.insert(
                "uid".into(),
                json!(format!("C{:016x}", seq.wrapping_mul(0x9E37_79B9))),
            );
            m.insert("id.orig_h".into(), json!(c.src));
            m.insert("id.orig_p".into(), json!(c.src_port));
            m.insert("id.resp_h".into(), json!(c.dest));
            m.insert("id.resp_p".into(), port_value(c));
            m.insert("proto".into(), json!("tcp"));
            m.insert(
                "conn_state".into(),
                json!(if c.allowed { "SF" } else { "REJ" }),
            );
            m.insert("local_orig".into(), json!(looks_internal(&c.src)));
            m.insert("local_resp".into(), json!(looks_internal(&c.dest)));
            m.insert("missed_bytes".into(), json!(0));
            m.insert(
                "history".into(),
                json!(if c.allowed { "ShADadFf" } else { "Sr" }),
            );
            opt(&mut m, "orig_bytes", c.bytes_out);
            opt(&mut m, "resp_bytes", c.bytes_in);
            m.insert("orig_pkts".into(), json!(9));
            m.insert("resp_pkts".into(), json!(7));
            Value::Object(m)
        }
        Schema::Sysmon => {
            let t = rfc3339(c.time_ms);
            let mut m = Map::new();
            m.insert("@timestamp".into(), json!(t));
            m.insert("EventID".into(), json!(3));
            m.insert("Hostname".into(), json!("WORKSTATION5.corp.example"));
            m.insert(
                "UtcTime".into(),
                json!(t.replace('T', " ").trim_end_matches('Z')),
            );
            m.insert(
                "ProcessGuid".into(),
                json!(format!("{{{:08x}-4f1a-5f2b-0000-001000000a00}}", seq)),
            );
            m.insert("ProcessId".into(), json!("4"));
            opt(&mut m, "Image", c.process.clone());
            opt(&mut m, "User", c.user.clone());
            m.insert("Protocol".into(), json!("tcp"));
            m.insert(
                "Initiated".into(),
                json!(if c.allowed && looks_internal(&c.src) {
                    "true"
                } else {
                    "false"
                }),
            );
            m.insert("SourceIp".into(), json!(c.src));
            m.insert("SourcePort".into(), json!(c.src_port.to_string()));
            m.insert("DestinationIp".into(), json!(c.dest));
            m.insert("DestinationPort".into(), json!(c.port.to_string()));
            m.insert("DestinationHostname".into(), json!("-"));
            Value::Object(m)
        }
    };
    v.to_string()
}

const EXTERNAL: &[&str] = &[
    "203.0.113.9",
    "198.51.100.23",
    "8.8.8.8",
    "45.33.32.156",
    "93.184.216.34",
    "151.101.1.69",
    "2001:4860:4860::8888",
    "::ffff:104.16.1.1",
    "185.199.108.153",
    "52.95.110.1",
];
const USERS: &[&str] = &["alice", "bob", "carol", "dave", "svc_backup", "CORP\\eve"];
const PROCESSES: &[&str] = &[
    "ftp.exe",
    "curl",
    "explorer.exe",
    "svchost.exe",
    "backup-agent",
    "tftp.exe",
];
const WATCHED: &[u16] = &[20, 21, 69, 139, 445, 990];
const COMMON: &[u16] = &[443, 80, 53, 22, 3389, 8443, 123, 25];

fn internal_ip(r: &mut Rng) -> String {
    match r.below(4) {
        0 => format!("10.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254)),
        1 => format!(
            "172.{}.{}.{}",
            16 + r.below(16),
            r.below(256),
            1 + r.below(254)
        ),
        2 => format!("192.168.{}.{}", r.below(256), 1 + r.below(254)),
        _ => format!(
            "100.{}.{}.{}",
            64 + r.below(64),
            r.below(256),
            1 + r.below(254)
        ),
    }
}

fn external_ip(r: &mut Rng) -> String {
    if r.chance(0.5) {
        r.pick(EXTERNAL).to_string()
    } else {
        // Public-looking IPv4 outside every internal range.
        let a = *r.pick(&[23u64, 31, 45, 52, 64, 77, 91, 104, 142, 185, 199, 212]);
        format!("{a}.{}.{}.{}", r.below(256), r.below(256), 1 + r.below(254))
    }
}

/// The bundled sample: `n` events over one day starting at `day_start_ms`,
/// in every schema, with a few repeated outbound transfers that alert, some
/// blocked and inbound traffic, and a handful of malformed lines.
pub fn sample(n: usize, seed: u64, day_start_ms: i64) -> Vec<String> {
    let mut r = Rng::new(seed);
    // Campaigns: (schema, src, dest, port, process, user) repeated to alert.
    let mut campaigns = Vec::new();
    for i in 0..12 {
        let schema = Schema::ALL[i % 6];
        campaigns.push((
            schema,
            internal_ip(&mut r),
            external_ip(&mut r),
            *r.pick(WATCHED),
            r.pick(PROCESSES).to_string(),
            r.pick(USERS).to_string(),
            4 + r.below(40),
        ));
    }
    let mut out = Vec::with_capacity(n);
    let mut seq = 0u64;
    while out.len() < n {
        seq += 1;
        let t =
            day_start_ms + (out.len() as i64 * 86_000_000 / n.max(1) as i64) + r.below(1000) as i64;
        if seq.is_multiple_of(499) {
            out.push(match (seq / 499) % 3 {
                0 => "<134>Nov 22 11:50:05 fw-edge-01 not json at all".to_string(),
                1 => r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed""#.to_string(),
                _ => r#"["an","array","is","not","an","event"]"#.to_string(),
            });
            continue;
        }
        let (schema, conn) = if r.chance(0.03) {
            let c = &mut campaigns[r.below(12) as usize];
            if c.6 == 0 {
                continue;
            }
            c.6 -= 1;
            let big = r.chance(0.3);
            (
                c.0,
                Conn {
                    time_ms: t,
                    src: c.1.clone(),
                    dest: c.2.clone(),
                    src_port: 49_152 + r.below(16_000) as u16,
                    port: c.3,
                    port_as_string: r.chance(0.2),
                    allowed: true,
                    bytes_out: Some(if big {
                        500_000 + r.below(5_000_000)
                    } else {
                        200 + r.below(20_000)
                    }),
                    bytes_in: Some(100 + r.below(5000)),
                    user: r.chance(0.7).then(|| c.5.clone()),
                    process: r.chance(0.6).then(|| c.4.clone()),
                },
            )
        } else {
            let schema = *r.pick(&[
                Schema::Cim,
                Schema::Cim,
                Schema::Ecs,
                Schema::Zeek,
                Schema::Ocsf,
                Schema::Qradar,
                Schema::Sysmon,
            ]);
            let watched = r.chance(0.05);
            let inbound = r.chance(0.1);
            let (src, dest) = if inbound {
                (external_ip(&mut r), internal_ip(&mut r))
            } else if r.chance(0.3) {
                (internal_ip(&mut r), internal_ip(&mut r))
            } else {
                (internal_ip(&mut r), external_ip(&mut r))
            };
            (
                schema,
                Conn {
                    time_ms: t,
                    src,
                    dest,
                    src_port: 49_152 + r.below(16_000) as u16,
                    port: if watched {
                        *r.pick(WATCHED)
                    } else {
                        *r.pick(COMMON)
                    },
                    port_as_string: r.chance(0.1),
                    allowed: r.chance(0.85),
                    bytes_out: r.chance(0.95).then(|| r.below(50_000)),
                    bytes_in: r.chance(0.95).then(|| r.below(500_000)),
                    user: r.chance(0.4).then(|| r.pick(USERS).to_string()),
                    process: r.chance(0.3).then(|| r.pick(PROCESSES).to_string()),
                },
            )
        };
        out.push(render(&conn, schema, seq));
    }
    out
}

/// Distinct (source, destination, port) keys in [`bench_events`].
pub const BENCH_KEYS: usize = 100_000;

/// Vendor fields a firewall or EDR adds and the rule never reads, used to
/// bring [`bench_events`] to their target sizes.
const PADDING: &[(&str, &str)] = &[
    ("device_serial", "007901004321"),
    ("log_forwarding_profile", "siem-default"),
    ("rule_uuid", "9a1f3c2e-7b4d-4e8a-b6f0-2c5d8e1a7f39"),
    ("app_category", "general-internet"),
    ("app_subcategory", "file-sharing"),
    ("url_category", "any"),
    ("tunnel_type", "N/A"),
    ("session_end_reason", "tcp-fin"),
    ("parent_session_id", "0"),
    ("virtual_system", "vsys1"),
    ("inbound_interface", "ethernet1/2"),
    ("outbound_interface", "ethernet1/1"),
    ("nat_source_ip", "198.51.100.7"),
    ("log_action", "forward-to-siem"),
    ("container_id", "none"),
];

/// The benchmark's pool of [`BENCH_KEYS`] (source, destination, port)
/// keys: a tenth inbound, three tenths internal, the rest outbound; about
/// 5 % on watched ports.
pub fn bench_keys(r: &mut Rng) -> Vec<(String, String, u16)> {
    (0..BENCH_KEYS)
        .map(|_| {
            let (src, dest) = match r.below(10) {
                0 => (external_ip(r), internal_ip(r)),
                1..=3 => (internal_ip(r), internal_ip(r)),
                _ => (internal_ip(r), external_ip(r)),
            };
            let port = if r.chance(0.05) {
                *r.pick(WATCHED)
            } else {
                *r.pick(COMMON)
            };
            (src, dest, port)
        })
        .collect()
}

/// One connection of the benchmark's mix, on a key of `keys`, at `time_ms`.
pub fn pick_conn(r: &mut Rng, keys: &[(String, String, u16)], time_ms: i64) -> Conn {
    let (src, dest, port) = &keys[r.below(keys.len() as u64) as usize];
    Conn {
        time_ms,
        src: src.clone(),
        dest: dest.clone(),
        src_port: 49_152 + r.below(16_000) as u16,
        port: *port,
        port_as_string: r.chance(0.1),
        allowed: r.chance(0.85),
        bytes_out: r.chance(0.95).then(|| r.below(50_000)),
        bytes_in: r.chance(0.95).then(|| r.below(500_000)),
        user: r.chance(0.4).then(|| r.pick(USERS).to_string()),
        process: r.chance(0.3).then(|| r.pick(PROCESSES).to_string()),
    }
}

/// The benchmark input: `n` events in the preset mix (as [`sample`]) whose
/// connections are drawn from a pool of [`BENCH_KEYS`] distinct (source,
/// destination, port) keys, about 5 % of them on watched ports, padded with
/// vendor fields to 300–700 bytes (mean about 550). No malformed lines.
pub fn bench_events(n: usize, seed: u64, day_start_ms: i64) -> Vec<String> {
    let mix = [
        Schema::Cim,
        Schema::Cim,
        Schema::Ecs,
        Schema::Zeek,
        Schema::Ocsf,
        Schema::Qradar,
        Schema::Sysmon,
    ];
    bench_events_in(n, seed, day_start_ms, &mix)
}

/// [`bench_events`] with each event's schema drawn from `schemas` (one
/// schema for a single-preset input, as the peers' benchmark uses).
pub fn bench_events_in(n: usize, seed: u64, day_start_ms: i64, schemas: &[Schema]) -> Vec<String> {
    let mut r = Rng::new(seed);
    let keys = bench_keys(&mut r);
    (0..n)
        .map(|i| {
            let time_ms = day_start_ms + (i as i64 * 86_000_000 / n.max(1) as i64);
            let conn = pick_conn(&mut r, &keys, time_ms);
            let schema = *r.pick(schemas);
            let mut line = render(&conn, schema, i as u64);
            // A quarter anywhere in 300..=700, the rest in 460..=700; fields
            // are added while they fit.
            let target = if r.chance(0.25) {
                300 + r.below(401)
            } else {
                460 + r.below(241)
            } as usize;
            let start = r.below(PADDING.len() as u64) as usize;
            for j in 0..PADDING.len() {
                let (key, value) = PADDING[(start + j) % PADDING.len()];
                let grow = key.len() + value.len() + 6;
                if line.len() + grow <= target {
                    line.truncate(line.len() - 1);
                    line.push_str(&format!(",\"{key}\":\"{value}\"}}"));
                }
            }
            line
        })
        .collect()
}

/// Connections covering every boundary of spec §5, all inside the one day
/// starting at `day_start_ms`: counts 3 and 4; bytes 1,048,576 / 1,048,577 /
/// 10,485,760 / 10,485,761; missing bytes; ports as strings; IPv6 and
/// IPv4-mapped destinations; 172.20.x.x and 100.64.x.x; blocked and inbound
/// events; external sources; host-name destinations; users and processes.
pub fn boundary_conns(day_start_ms: i64) -> Vec<Conn> {
    let mut v = Vec::new();
    let mut t = day_start_ms + 3_600_000;
    let mut add = |src: &str, dest: &str, port: u16, n: usize, f: &dyn Fn(usize, &mut Conn)| {
        for i in 0..n {
            t += 1_000 + (i as i64 * 7) % 13;
            let mut c = Conn {
                time_ms: t,
                src: src.into(),
                dest: dest.into(),
                src_port: 50_000 + i as u16,
                port,
                port_as_string: false,
                allowed: true,
                bytes_out: Some(100),
                bytes_in: Some(1000),
                user: None,
                process: None,
            };
            f(i, &mut c);
            v.push(c);
        }
    };
    let none = &|_: usize, _: &mut Conn| {};
    // Counts 3 (no alert) and 4 (alert).
    add("10.1.0.1", "203.0.113.10", 21, 3, none);
    add("10.1.0.2", "203.0.113.11", 21, 4, none);
    // Exfil risk boundaries: bytes sent totals over 4 connections.
    for (i, total) in [1_048_576u64, 1_048_577, 10_485_760, 10_485_761]
        .into_iter()
        .enumerate()
    {
        let dest = format!("198.51.100.{}", 10 + i);
        add("10.1.0.3", &dest, 445, 4, &move |k, c| {
            c.bytes_out = Some(if k == 0 { total - 3 } else { 1 })
        });
    }
    // Missing bytes on some events (count as 0; QRadar refuses events without BytesSent).
    add("10.1.0.4", "45.33.32.156", 990, 6, &|k, c| {
        if k % 2 == 0 {
            c.bytes_out = None;
        }
        if k % 3 == 0 {
            c.bytes_in = None;
        }
    });
    // Ports as strings.
    add("10.1.0.5", "93.184.216.34", 139, 5, &|_, c| {
        c.port_as_string = true
    });
    // IPv6 and IPv4-mapped destinations.
    add("10.1.0.6", "2001:4860:4860::8888", 69, 4, none);
    add("fd00::6", "2001:4860:4860::8844", 445, 4, none);
    add("10.1.0.7", "::ffff:104.16.1.1", 21, 4, none);
    add("10.1.0.7", "::ffff:10.9.9.9", 21, 5, none);
    // 172.20.x.x and 100.64.x.x are internal (the SPL glob misses 172.20).
    add("10.1.0.8", "172.20.1.1", 445, 5, none);
    add("10.1.0.8", "100.64.0.9", 445, 5, none);
    add("10.1.0.8", "172.32.0.1", 445, 4, none);
    // Blocked events mixed in: 4 allowed + 3 blocked = count 4; 3 allowed + 3 blocked = no alert.
    add("10.1.0.9", "185.199.108.153", 445, 7, &|k, c| {
        c.allowed = k < 4
    });
    add("10.1.0.9", "185.199.108.154", 445, 6, &|k, c| {
        c.allowed = k < 3
    });
    // Inbound: an external source to an external destination (a host with a
    // public address being probed on 445) and external to internal.
    add("45.33.32.200", "52.95.110.1", 445, 6, none);
    add("45.33.32.201", "10.1.0.10", 445, 6, none);
    // A host name destination and an unwatched port.
    add("10.1.0.11", "ftp.example.com", 21, 5, none);
    add("10.1.0.12", "8.8.8.8", 443, 8, none);
    // Users and processes: distinct users collected; a group with a process
    // and one without are different keys (SPL grouping); QRadar groups by user.
    add("10.1.0.13", "151.101.1.69", 20, 8, &|k, c| {
        c.user = Some(["alice", "bob", "alice", "carol"][k % 4].to_string());
        c.process = if k < 4 { Some("ftp.exe".into()) } else { None };
    });
    add("10.1.0.14", "151.101.1.70", 21, 5, &|k, c| {
        c.user = if k == 0 {
            None
        } else {
            Some("svc_backup".into())
        };
        c.process = Some("backup-agent".into());
    });
    v
}

/// Applies a result frame to its batch: edited or untouched events (dropped
/// ones left out) into `events`, emitted records into `records`, one line each.
pub fn splice(batch: &[u8], frame: &[u8], events: &mut Vec<u8>, records: &mut Vec<u8>) {
    let f = ResultFrame::parse(frame).expect("result frame");
    f.apply(batch, &mut Spliced { events, records });
}

/// [`splice`]'s outputs: every output's lines together.
struct Spliced<'a> {
    events: &'a mut Vec<u8>,
    records: &'a mut Vec<u8>,
}

impl FrameOutputs for Spliced<'_> {
    fn event(&mut self, _: usize, _: &EventResult, outcome: Outcome<'_>) {
        if let Outcome::Drop(_) = outcome {
            return;
        }
        for part in outcome.parts() {
            self.events.extend_from_slice(part);
        }
        self.events.push(b'\n');
    }

    fn record(&mut self, _: u32, line: &[u8]) {
        self.records.extend_from_slice(line);
        self.records.push(b'\n');
    }

    fn refused(&mut self, what: Refused) {
        panic!("the rule wrote a frame the host refuses: {what:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = sample(2000, 7, 1_763_683_200_000);
        assert_eq!(a, sample(2000, 7, 1_763_683_200_000));
        let valid: Vec<&String> = a
            .iter()
            .filter(|l| serde_json::from_str::<Map<String, Value>>(l).is_ok())
            .collect();
        let mean = valid.iter().map(|l| l.len()).sum::<usize>() / valid.len();
        assert!((250..=700).contains(&mean), "mean size {mean}");
        assert!(valid.len() < a.len(), "the sample includes malformed lines");
    }

    #[test]
    fn every_schema_renders_valid_json() {
        for c in boundary_conns(0) {
            for s in Schema::ALL {
                let line = render(&c, s, 1);
                assert!(serde_json::from_str::<Value>(&line).is_ok(), "{line}");
                assert!(!line.contains('\n'));
            }
        }
    }

    #[test]
    fn rfc3339_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_763_683_200_123), "2025-11-21T00:00:00.123Z");
    }
}

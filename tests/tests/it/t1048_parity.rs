//! Parity of the T1048 large outbound rule with its source detection
//! (docs/t1048-large-outbound.md §5). Boundary events are rendered as CIM,
//! QRadar and ECS, run through the real `rulebox run` with the shipped
//! `.wasm`, and the `final` alerts compared row by row with a SQL
//! translation of Splunk's "High Volume of Bytes Out to Url" (grouped by
//! source, destination and port instead of URL, with the spec's other
//! departures written into the SQL), run by SQLite over the same events.
//! The reference shares no code with the rule: SQLite does the grouping,
//! bucketing, sums and threshold; the internal-network test is parity.rs's.

use std::net::IpAddr;

use rulebox_bench::{Conn, Rng, Schema, render};
use rulebox_tests::{Scratch, rulebox, stderr, t1048_wasm};
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use serde_json::Value;

use crate::parity::{load, sqlite};

/// 2025-11-21T09:00:00Z: a window start (of 120 s windows).
const T0: i64 = 1_763_715_600_000;
/// The source's threshold, the rule's default.
const THRESHOLD: u64 = 1_070_000_000;
const WINDOW_MS: i64 = 120_000;
/// `excluded_destinations` in the rule's configuration below.
const EXCLUDED: &str = "192.0.2.";

/// One alert row: key, window, figures.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    src: String,
    dest: String,
    port: i64,
    window_start_ms: i64,
    count: i64,
    bytes: i64,
    first_ms: i64,
    last_ms: i64,
}

fn conn(at_ms: i64, src: &str, dest: &str, port: u16, bytes: Option<u64>) -> Conn {
    Conn {
        time_ms: T0 + at_ms,
        src: src.into(),
        dest: dest.into(),
        src_port: 50_000,
        port,
        port_as_string: false,
        allowed: true,
        bytes_out: bytes,
        bytes_in: Some(1_000),
        user: None,
        process: None,
    }
}

/// The boundary cases of the spec, then random traffic around the threshold.
fn boundary_conns() -> Vec<Conn> {
    let t = THRESHOLD;
    let mut v = vec![
        // One byte over, in two connections: alerts.
        conn(0, "10.0.0.5", "203.0.113.9", 443, Some(600_000_000)),
        conn(
            119_999,
            "10.0.0.5",
            "203.0.113.9",
            443,
            Some(t - 600_000_000 + 1),
        ),
        // Exactly the threshold, and a connection without bytes: no alert.
        conn(1_000, "10.0.0.6", "203.0.113.9", 443, Some(t)),
        conn(2_000, "10.0.0.6", "203.0.113.9", 443, None),
        // Split across a window boundary: no alert; the next window passes.
        conn(119_000, "10.0.0.7", "198.51.100.20", 8443, Some(t / 2 + 1)),
        conn(120_000, "10.0.0.7", "198.51.100.20", 8443, Some(t / 2)),
        conn(130_000, "10.0.0.7", "198.51.100.20", 8443, Some(t / 2 + 1)),
        // Inbound, internal, external source, host name, excluded: never.
        conn(3_000, "203.0.113.77", "10.0.0.9", 443, Some(2 * t)),
        conn(3_000, "10.0.0.10", "172.20.1.1", 445, Some(2 * t)),
        conn(3_000, "10.0.0.10", "100.64.1.1", 445, Some(2 * t)),
        conn(3_000, "172.32.0.5", "203.0.113.9", 443, Some(2 * t)),
        conn(3_000, "10.0.0.11", "files.example.com", 443, Some(2 * t)),
        conn(3_000, "10.0.0.13", "192.0.2.10", 443, Some(2 * t)),
        // IPv4-mapped and plain: one key. IPv6 from a ULA source: alerts.
        conn(4_000, "10.0.0.12", "::ffff:203.0.113.60", 443, Some(t)),
        conn(5_000, "10.0.0.12", "203.0.113.60", 443, Some(1)),
        conn(6_000, "fd00::5", "2001:db8::9", 443, Some(t + 7)),
    ];
    let mut blocked = conn(3_000, "10.0.0.8", "203.0.113.50", 22, Some(2 * t));
    blocked.allowed = false;
    v.push(blocked);
    let mut as_string = conn(7_000, "10.0.0.14", "203.0.113.70", 21, Some(t + 1));
    as_string.port_as_string = true;
    v.push(as_string);
    let mut r = Rng::new(48);
    let srcs = ["10.1.0.1", "192.168.5.5"];
    let dests = ["203.0.113.100", "45.33.32.156"];
    for _ in 0..150 {
        let at = r.below(3 * WINDOW_MS as u64) as i64;
        let bytes = (!r.chance(0.05)).then(|| r.below(400_000_000));
        let (src, dest) = (*r.pick(&srcs), *r.pick(&dests));
        let mut c = conn(at, src, dest, *r.pick(&[443, 22]), bytes);
        c.allowed = !r.chance(0.1);
        v.push(c);
    }
    // The rule windows by event time: in time order nothing is late.
    v.sort_by_key(|c| c.time_ms);
    v
}

/// The reference, per preset: `permitted` and `time_ms` are SQL over the
/// loaded columns.
fn reference(db: &Connection, permitted: &str, time_ms: &str) -> Vec<Row> {
    let sql = format!(
        "SELECT norm_ip(src), norm_ip(dest), CAST(port AS INTEGER) AS p,
                ({time_ms}) / {WINDOW_MS} * {WINDOW_MS} AS ws,
                COUNT(*), COALESCE(SUM(bytes), 0), MIN({time_ms}), MAX({time_ms})
         FROM ev
         WHERE {permitted}
           AND port IS NOT NULL
           AND is_ip(src) AND is_internal(src)
           AND is_ip(dest) AND NOT is_internal(dest)
           AND norm_ip(dest) NOT LIKE '{EXCLUDED}%'
         GROUP BY 1, 2, 3, 4
         HAVING COALESCE(SUM(bytes), 0) > {THRESHOLD}"
    );
    let mut stmt = db.prepare(&sql).unwrap();
    let mut rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok(Row {
                src: r.get(0)?,
                dest: r.get(1)?,
                port: r.get(2)?,
                window_start_ms: r.get(3)?,
                count: r.get(4)?,
                bytes: r.get(5)?,
                first_ms: r.get(6)?,
                last_ms: r.get(7)?,
            })
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

/// parity.rs's SQLite, with the address written as the rule writes it.
fn db() -> Connection {
    let db = sqlite();
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    db.create_scalar_function("norm_ip", 1, flags, |ctx| {
        Ok(ctx
            .get::<Option<String>>(0)?
            .map(|s| match s.trim().parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => v6
                    .to_ipv4_mapped()
                    .map_or(v6.to_string(), |v4| v4.to_string()),
                Ok(v4) => v4.to_string(),
                Err(_) => s,
            }))
    })
    .unwrap();
    db
}

fn ms(v: &Value) -> i64 {
    rulebox_abi::time::parse_rfc3339(v.as_str().unwrap()).unwrap()
}

/// Runs the rule over `lines` through `rulebox run`; its `final` rows.
fn run_rule(lines: &[String], schema: &str) -> Vec<Row> {
    let dir = Scratch::new(&format!("t1048-parity-{schema}"));
    let input = dir.write("in.ndjson", lines.join("\n") + "\n");
    let config = format!(
        r#"data_dir = "{data}"
[sources.in]
type = "file"
path = "{input}"
[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
[transforms.rule.config]
schema = "{schema}"
excluded_destinations = ["{EXCLUDED}0/24"]
[sinks.events]
type = "file"
path = "{dir}/events.out"
inputs = ["rule"]
[sinks.alerts]
type = "file"
path = "{dir}/alerts.out"
inputs = ["rule.alerts"]
"#,
        data = dir.path("data").display(),
        input = input.display(),
        wasm = t1048_wasm().display(),
        dir = dir.0.display(),
    );
    let cfg = dir.write("p.toml", config);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = std::fs::read_to_string(dir.path("events.out")).unwrap();
    assert_eq!(events.lines().count(), lines.len(), "every event leaves");
    let alerts = std::fs::read_to_string(dir.path("alerts.out")).unwrap_or_default();
    let mut rows: Vec<Row> = (alerts.lines())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["status"] == "final")
        .map(|a| Row {
            src: a["src_ip"].as_str().unwrap().into(),
            dest: a["dest_ip"].as_str().unwrap().into(),
            port: a["dest_port"].as_i64().unwrap(),
            window_start_ms: ms(&a["window_start"]),
            count: a["connection_count"].as_i64().unwrap(),
            bytes: a["bytes_sent"].as_i64().unwrap(),
            first_ms: ms(&a["first_seen"]),
            last_ms: ms(&a["last_seen"]),
        })
        .collect();
    rows.sort();
    rows
}

/// Renders the boundary set in `schema`, loads `columns` into SQLite.
fn rendered(schema: Schema, columns: &[(&str, &str)]) -> (Vec<String>, Connection) {
    let lines: Vec<String> = (boundary_conns().iter().enumerate())
        .map(|(i, c)| render(c, schema, i as u64))
        .collect();
    let db = db();
    load(&db, &lines, columns);
    (lines, db)
}

fn check(schema: Schema, rule: Vec<Row>, want: Vec<Row>) {
    assert!(
        want.len() >= 10,
        "{schema:?}: the data set alerts: {want:#?}"
    );
    assert_eq!(rule, want, "{schema:?}");
}

#[test]
fn cim_alerts_equal_the_sql_reference() {
    let (lines, db) = rendered(
        Schema::Cim,
        &[
            ("src", "src_ip"),
            ("dest", "dest_ip"),
            ("port", "dest_port"),
            ("bytes", "bytes_out"),
            ("t", "_time"),
            ("action", "action"),
        ],
    );
    let want = reference(
        &db,
        "lower(action) = 'allowed'",
        "CAST(round(CAST(t AS REAL) * 1000) AS INTEGER)",
    );
    check(Schema::Cim, run_rule(&lines, "cim"), want);
}

#[test]
fn qradar_alerts_equal_the_sql_reference() {
    let (lines, db) = rendered(
        Schema::Qradar,
        &[
            ("src", "sourceip"),
            ("dest", "destinationip"),
            ("port", "destinationport"),
            ("bytes", "BytesSent"),
            ("t", "starttime"),
            ("direction", "eventdirection"),
            ("category", "categoryname"),
        ],
    );
    let permitted = "direction = 'L2R' AND bytes IS NOT NULL AND category IN \
        ('Access Permitted', 'Connection Accepted', 'Session Opened', 'Network Connection')";
    let want = reference(&db, permitted, "t");
    check(Schema::Qradar, run_rule(&lines, "qradar"), want);
}

#[test]
fn ecs_alerts_under_auto_equal_the_sql_reference() {
    let (lines, db) = rendered(
        Schema::Ecs,
        &[
            ("src", "source.ip"),
            ("dest", "destination.ip"),
            ("port", "destination.port"),
            ("bytes", "source.bytes"),
            ("t", "@timestamp"),
            ("outcome", "event.outcome"),
            ("direction", "network.direction"),
        ],
    );
    let permitted = "lower(outcome) = 'success' \
        AND (direction IS NULL OR lower(direction) IN ('outbound', 'egress'))";
    // @timestamp as the generator writes it: YYYY-MM-DDThh:mm:ss.fffZ.
    let time = "(CAST(strftime('%s', substr(t, 1, 19)) AS INTEGER) * 1000 \
        + CAST(substr(t, 21, 3) AS INTEGER))";
    let want = reference(&db, permitted, time);
    check(Schema::Ecs, run_rule(&lines, "auto"), want);
}

/// The data really exercises the departures: without the outbound
/// condition, the source's grouping alerts on more keys than the rule.
#[test]
fn the_uncorrected_source_would_alert_on_more() {
    let (_, db) = rendered(
        Schema::Cim,
        &[
            ("src", "src_ip"),
            ("dest", "dest_ip"),
            ("port", "dest_port"),
            ("bytes", "bytes_out"),
            ("t", "_time"),
        ],
    );
    let time = "CAST(round(CAST(t AS REAL) * 1000) AS INTEGER)";
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT src FROM ev GROUP BY src, dest, port, ({time}) / {WINDOW_MS}
         HAVING COALESCE(SUM(bytes), 0) > {THRESHOLD})"
    );
    let uncorrected: i64 = db.query_row(&sql, [], |r| r.get(0)).unwrap();
    let corrected = reference(&db, "1", time).len() as i64;
    assert!(uncorrected >= corrected + 5, "{uncorrected} vs {corrected}");
}

//! Raw formats through the real binary and `.wasm` (spec §6): each line
//! leaves once, in order, with its label appended in its own syntax and
//! its bytes otherwise kept; the alerts equal a count made here by hand
//! from the lines; real Zeek TSV captures label exactly as the same rows
//! in Zeek's JSON do.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use rulebox_tests::{
    Scratch, free_port, rule_pipeline, rulebox, spawn_run, stderr, terminate, wait_for,
    wait_listening,
};
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/realdata");

/// Runs the rule over `input` with `config`; the events and alerts out.
fn run(dir: &Scratch, name: &str, input: &str, config: &str) -> (Vec<String>, Vec<Value>, String) {
    let input = dir.write(&format!("{name}.in"), input);
    let sub = dir.path(name);
    std::fs::create_dir_all(&sub).unwrap();
    let cfg = dir.write(
        &format!("{name}.toml"),
        rule_pipeline(&sub, &input, config, ""),
    );
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let events = std::fs::read_to_string(sub.join("events.out")).unwrap();
    let alerts = std::fs::read_to_string(sub.join("alerts.out")).unwrap_or_default();
    let alerts = alerts
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events.lines().map(str::to_string).collect(), alerts, err)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(DATA).join(path)).unwrap()
}

/// The label columns a Zeek TSV row gained, as the JSON label says them.
fn zeek_columns(json: &Value) -> String {
    let l = &json["t1071"];
    let flag = |v: &Value| match v.as_bool() {
        Some(true) => "T",
        Some(false) => "F",
        None => "-",
    };
    format!(
        "\t{}\t{}\t{}\t-",
        l["protocol"].as_str().unwrap_or("-"),
        flag(&l["external"]),
        flag(&l["counted"])
    )
}

/// OTRF's LSASS capture as Zeek wrote it (TSV) and as Zeek's JSON writer
/// writes the same rows: every row's label columns say what the JSON row's
/// label object says, the headers gain the columns' names and types, and
/// the alerts are the same.
#[test]
fn real_zeek_tsv_labels_and_alerts_as_its_json_does() {
    let dir = Scratch::new("raw-zeek");
    let config = "internal_networks = [\"192.168.1.41/32\"]\nmin_connections = 0";
    let tsv = read("otrf-lsass-zeek/conn.log") + &read("otrf-lsass-zeek/smb_mapping.log");
    let json =
        read("otrf-lsass-zeek/conn.ndjson") + &read("otrf-lsass-zeek/smb_mapping-path.ndjson");
    let (tsv_out, tsv_alerts, err) = run(&dir, "tsv", &tsv, config);
    let (json_out, json_alerts, _) = run(&dir, "json", &json, config);
    assert!(err.contains("raw_zeek_tsv=113"), "{err}");
    let tsv_in: Vec<&str> = tsv.lines().collect();
    assert_eq!(tsv_out.len(), tsv_in.len(), "one line out per line in");
    let mut rows = json_out.iter();
    for (got, line) in tsv_out.iter().zip(&tsv_in) {
        if line.starts_with("#fields") {
            assert_eq!(
                *got,
                format!("{line}\tt1071_protocol\tt1071_external\tt1071_counted\tt1071_allowlisted")
            );
        } else if line.starts_with("#types") {
            assert_eq!(*got, format!("{line}\tstring\tbool\tbool\tstring"));
        } else if line.starts_with('#') {
            assert_eq!(got, line);
        } else {
            let j: Value = serde_json::from_str(rows.next().unwrap()).unwrap();
            assert_eq!(*got, format!("{line}{}", zeek_columns(&j)), "{line}");
        }
    }
    assert!(rows.next().is_none());
    assert_eq!(tsv_alerts.len(), 1, "the 445 flow: {tsv_alerts:?}");
    assert_eq!(tsv_alerts, json_alerts);
    assert_eq!(tsv_alerts[0]["bytes_received"], 3697);
}

/// Zeek's own test baseline: a `#fields` line with `ip_proto` after
/// `tunnel_parents`, masked times (`XXXXXXXXXX.XXXXXX`: unreadable, so
/// counted at the processing time) and a `### BTest` comment line.
#[test]
fn zeek_btest_baseline_with_a_masked_time() {
    let dir = Scratch::new("raw-zeek-btest");
    let tsv = read("zeek-btest-ftp/conn.log");
    let (out, alerts, err) = run(
        &dir,
        "ftp",
        &tsv,
        "internal_networks = [\"192.168.10.132/32\"]\nmin_connections = 0",
    );
    let row = tsv.lines().find(|l| l.starts_with("XXXX")).unwrap();
    assert!(
        out.contains(&format!("{row}\tFTP/FTPS\tT\tT\t-")),
        "{out:?}"
    );
    assert_eq!(out[0], tsv.lines().next().unwrap(), "the comment passes");
    assert!(err.contains("unreadable_time=1"), "{err}");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (
            alerts[0]["dest_port"].as_u64(),
            alerts[0]["bytes_sent"].as_u64()
        ),
        (Some(21), Some(25))
    );
}

/// One connection key per format, four counted connections each, and the
/// records that must not count beside them (deny, start, inbound, a column
/// holding 445). Built from the vendors' published formats.
fn mixed() -> Vec<(String, &'static str)> {
    let mut v: Vec<(String, &'static str)> = Vec::new();
    for c in 0..4 {
        let t = format!("Nov 21 2025 09:00:0{c}");
        v.push((format!("<166>{t} fw01 : %ASA-6-302013: Built outbound TCP connection {c} for outside:203.0.113.1/445 (203.0.113.1/445) to inside:10.0.0.1/5000{c} (198.51.100.1/5000{c})"), " t1071_protocol=SMB t1071_external=true t1071_counted=false"));
        v.push((format!("<166>{t} fw01 : %ASA-6-302013: Built inbound TCP connection 9{c} for outside:198.51.100.7/445 (198.51.100.7/445) to inside:10.0.0.9/4000{c} (203.0.113.20/4000{c})"), " t1071_external=false t1071_counted=false"));
        v.push((format!("<166>{t} fw01 : %ASA-6-302014: Teardown TCP connection {c} for outside:203.0.113.1/445 to inside:10.0.0.1/5000{c} duration 0:00:01 bytes 300000 TCP FINs"), " t1071_protocol=SMB t1071_external=true t1071_counted=true"));
        v.push((format!("<166>{t} fw01 : %ASA-6-302014: Teardown TCP connection 9{c} for outside:198.51.100.7/445 to inside:10.0.0.9/4000{c} duration 0:00:01 bytes 445 TCP FINs"), " t1071_external=false t1071_counted=false"));
        v.push((format!("<134>{t} fw01 CEF:0|Acme|FW|1.0|100|conn \\| closed|3|src=10.0.0.2 spt=5000{c} dst=203.0.113.2 dpt=21 act=allow out=3000000 in=5 sproc=ftp client.exe rt=176371560{c}000"), " t1071Protocol=FTP/FTPS t1071External=true t1071Counted=true"));
        v.push((format!("LEEF:1.0|Acme|FW|1.0|TRAFFIC_ALLOW|src=10.0.0.3\tdst=203.0.113.3\tdstPort=139\tsrcBytes=10\tdstBytes=20\tusrName=alice\tdevTime={t}"), "\tt1071Protocol=SMB\tt1071External=true\tt1071Counted=true"));
        v.push((format!("<189>date=2025-11-21 time=09:00:0{c} type=\"traffic\" subtype=\"forward\" srcip=10.0.0.4 srcport=5000{c} dstip=203.0.113.4 dstport=69 action=\"close\" sentbyte=600000 rcvdbyte=1 user=\"bob\""), " t1071_protocol=TFTP t1071_external=true t1071_counted=true"));
        v.push((format!("<14>{t} fw01 1,2025/11/21 09:00:0{c},0128,TRAFFIC,end,2560,2025/11/21 09:00:0{c},10.0.0.5,203.0.113.5,198.51.100.1,203.0.113.5,\"egress, default\",,,ms-ds-smb,vsys1,trust,untrust,e1/2,e1/1,default,,{c},1,5000{c},990,5000{c},445,0x0,tcp,allow,3000,1000,2000,2"), ",t1071_protocol=FTP/FTPS,t1071_external=true,t1071_counted=true"));
        v.push((format!("src_ip=10.0.0.6 dest_ip=203.0.113.6 dest_port=20 action=allowed bytes_out=1 _time=176371560{c}"), " t1071_protocol=FTP/FTPS t1071_external=true t1071_counted=true"));
    }
    // Not counted: a deny of each kind, a PAN-OS start, a web connection
    // whose byte and NAT port columns hold 445.
    v.push(("<164>Nov 21 2025 09:00:09 fw01 : %ASA-4-106023: Deny tcp src inside:10.0.0.1/51000 dst outside:203.0.113.1/445 by access-group \"in\" [0x0, 0x0]".into(), " t1071_protocol=SMB t1071_external=true t1071_counted=false"));
    v.push((
        "CEF:0|Acme|FW|1.0|100|conn|3|src=10.0.0.2 dst=203.0.113.2 dpt=21 act=blocked".into(),
        " t1071Protocol=FTP/FTPS t1071External=true t1071Counted=false",
    ));
    v.push(("<14>Nov 21 09:00:09 fw01 1,2025/11/21 09:00:09,0128,TRAFFIC,start,2560,2025/11/21 09:00:09,10.0.0.5,203.0.113.5,,,r,,,app,vsys1,trust,untrust,e1/2,e1/1,default,,7,1,50009,990,0,0,0x0,tcp,allow,0,0,0,1".into(), ",t1071_protocol=FTP/FTPS,t1071_external=true,t1071_counted=false"));
    v.push(("<14>Nov 21 09:00:09 fw01 1,2025/11/21 09:00:09,0128,TRAFFIC,end,2560,2025/11/21 09:00:09,10.0.0.5,203.0.113.5,,,r,,,web,vsys1,trust,untrust,e1/2,e1/1,default,,8,1,50010,443,0,445,0x0,tcp,allow,890,445,445,1".into(), ",t1071_external=true,t1071_counted=false"));
    v
}

/// Each format's lines labelled in their own syntax, and the alerts a
/// count by hand gives: per key four connections, its bytes, its risk.
#[test]
fn each_raw_format_labelled_in_its_own_syntax_with_the_expected_alerts() {
    let dir = Scratch::new("raw-mixed");
    let lines = mixed();
    let input: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
    let (out, alerts, err) = run(&dir, "mixed", &input, "");
    assert_eq!(out.len(), lines.len());
    for (got, (line, label)) in out.iter().zip(&lines) {
        assert_eq!(*got, format!("{line}{label}"));
    }
    for (f, n) in [
        ("asa", 17),
        ("cef", 5),
        ("leef", 4),
        ("fortigate", 4),
        ("panos", 6),
        ("kv", 4),
    ] {
        assert!(err.contains(&format!(" raw_{f}={n}")), "{f}: {err}");
    }
    // (destination, count, bytes sent, received, total, risk, basis, who)
    let want = [
        (
            "203.0.113.1",
            None,
            None,
            Some(1_200_000),
            "MEDIUM",
            "total",
            "",
        ),
        (
            "203.0.113.2",
            Some(12_000_000),
            Some(20),
            None,
            "HIGH",
            "sent",
            "ftp client.exe",
        ),
        (
            "203.0.113.3",
            Some(40),
            Some(80),
            None,
            "LOW",
            "sent",
            "alice",
        ),
        (
            "203.0.113.4",
            Some(2_400_000),
            Some(4),
            None,
            "MEDIUM",
            "sent",
            "",
        ),
        (
            "203.0.113.5",
            Some(4000),
            Some(8000),
            None,
            "LOW",
            "sent",
            "",
        ),
        ("203.0.113.6", Some(4), Some(0), None, "LOW", "sent", ""),
    ];
    let mut alerts = alerts;
    alerts.sort_by(|a, b| a["dest_ip"].as_str().cmp(&b["dest_ip"].as_str()));
    assert_eq!(alerts.len(), want.len(), "{alerts:?}");
    for (a, (dest, sent, received, total, risk, basis, who)) in alerts.iter().zip(want) {
        assert_eq!(a["dest_ip"], dest);
        assert_eq!(a["connection_count"], 4, "{a}");
        assert_eq!(a["bytes_sent"].as_u64(), sent, "{a}");
        assert_eq!(a["bytes_received"].as_u64(), received, "{a}");
        assert_eq!(a["bytes_total"].as_u64(), total, "{a}");
        assert_eq!(
            (a["exfil_risk"].as_str(), a["exfil_risk_basis"].as_str()),
            (Some(risk), Some(basis)),
            "{a}"
        );
        let grouped = a.get("username").or(a.get("process_name")).unwrap();
        assert_eq!(grouped, who, "{a}");
    }
    let leef = &alerts[2];
    assert!(
        leef.get("username").is_some(),
        "LEEF groups by user: {leef}"
    );
}

/// Raw syslog from devices into rulebox's own `syslog` source, which wraps
/// a body that is not JSON as `{"message":...,"syslog":{...}}`: with
/// `event_path = "message"` the rule reads the device's line there (the
/// source no longer takes `CEF:` or `%ASA-6-302014:` for a program name)
/// and counts it.
#[test]
fn raw_syslog_through_the_syslog_source_at_event_path() {
    let dir = Scratch::new("raw-syslog");
    let port = free_port();
    // The rule's usual pipeline, its file source replaced by a syslog one.
    let cfg = rule_pipeline(
        &dir.0,
        Path::new("unused"),
        "event_path = \"message\"",
        "persist_state = false",
    )
    .replacen(
        "type = \"file\"\npath = \"unused\"",
        &format!("type = \"syslog\"\naddress = \"127.0.0.1:{port}\""),
        1,
    );
    assert!(cfg.contains("type = \"syslog\""), "{cfg}");
    let mut child = spawn_run(&dir.write("p.toml", cfg), &dir.path("rulebox.log"));
    wait_listening(port);
    let mut lines = Vec::new();
    for c in 0..4 {
        lines.push(format!("<134>Nov 21 09:00:0{c} fw01 CEF:0|Acme|FW|1.0|100|conn|3|src=10.0.0.2 dst=203.0.113.2 dpt=21 act=allow out=10 rt=176371560{c}000"));
        lines.push(format!("<166>Nov 21 2025 09:00:0{c} fw01 : %ASA-6-302014: Teardown TCP connection {c} for outside:203.0.113.1/445 to inside:10.0.0.1/5000{c} duration 0:00:01 bytes 100 TCP FINs"));
    }
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    for l in &lines {
        s.write_all(format!("{l}\n").as_bytes()).unwrap();
    }
    drop(s);
    let events = || std::fs::read_to_string(dir.path("events.out")).unwrap_or_default();
    wait_for("every message", Duration::from_secs(30), || {
        events().lines().count() >= lines.len()
    });
    let log = std::fs::read_to_string(dir.path("rulebox.log")).unwrap_or_default();
    assert!(terminate(&mut child.0).success(), "{log}");
    for e in events().lines() {
        let v: Value = serde_json::from_str(e).unwrap();
        assert_eq!(v["t1071"]["counted"], true, "{e}");
    }
    let alerts: Vec<Value> = std::fs::read_to_string(dir.path("alerts.out"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &Value| a["status"] == "final")
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    let asa = alerts.iter().find(|a| a["dest_port"] == 445).unwrap();
    assert_eq!(
        (
            asa["bytes_total"].as_u64(),
            asa["exfil_risk_basis"].as_str()
        ),
        (Some(400), Some("total"))
    );
}

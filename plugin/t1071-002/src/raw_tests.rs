//! Raw formats through the SDK's native runner (spec §6): each format's
//! lines leave labelled in their own syntax, and its counted connections
//! make the alerts an independent count says they should.

use rulebox_plugin::abi::Reason;
use serde_json::{Value, json};

use crate::tests::{flush, process, runner};

/// Runs `lines` through a default rule; the lines as they leave, and the
/// alerts of the flush.
fn run(lines: &[String]) -> (Vec<String>, Vec<Value>) {
    let mut r = runner(&json!({}));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let out = process(&mut r, &refs);
    assert!(
        out.reasons.iter().all(|&x| x == Reason::Ok),
        "read, not unreadable"
    );
    let mut alerts = out.alerts;
    alerts.extend(flush(&mut r));
    let events = out
        .events
        .into_iter()
        .map(|e| String::from_utf8(e).unwrap())
        .collect();
    (events, alerts)
}

fn one_alert(alerts: &[Value]) -> &Value {
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    &alerts[0]
}

#[test]
fn cef_extensions_and_alert() {
    let line = |i: u32, act: &str| {
        format!(
            "<134>Nov 21 09:00:0{i} fw01 CEF:0|Acme|FW|1.0|100|conn|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act={act} out=600000 in=10 sproc=smb client.exe end=176371560{i}000"
        )
    };
    let mut lines: Vec<String> = (0..4).map(|i| line(i, "allow")).collect();
    lines.push(line(5, "deny"));
    let (events, alerts) = run(&lines);
    assert_eq!(
        events[0],
        format!(
            "{} t1071Protocol=SMB t1071External=true t1071Counted=true",
            lines[0]
        )
    );
    assert!(events[4].ends_with(" t1071Counted=false"));
    let a = one_alert(&alerts);
    assert_eq!(a["connection_count"], 4);
    assert_eq!(a["bytes_sent"], 2_400_000);
    assert_eq!(a["exfil_risk"], "MEDIUM");
    assert_eq!(a["exfil_risk_basis"], "sent");
    assert_eq!(a["process_name"], "smb client.exe");
}

#[test]
fn leef_attributes_with_its_delimiter_and_grouping_by_user() {
    let line = |user: &str| {
        format!(
            "LEEF:2.0|Acme|FW|1.0|TRAFFIC|^|src=10.0.0.5^dst=203.0.113.9^dstPort=21^action=accept^srcBytes=3000000^usrName={user}^devTime=1763715600000"
        )
    };
    let mut lines: Vec<String> = (0..4).map(|_| line("alice")).collect();
    lines.push(line("bob"));
    let (events, alerts) = run(&lines);
    assert_eq!(
        events[0],
        format!(
            "{}^t1071Protocol=FTP/FTPS^t1071External=true^t1071Counted=true",
            lines[0]
        )
    );
    let a = one_alert(&alerts);
    assert_eq!(
        (a["username"].as_str(), a["connection_count"].as_u64()),
        (Some("alice"), Some(4))
    );
    assert_eq!(a["exfil_risk"], "HIGH");
}

#[test]
fn asa_teardowns_count_in_their_builts_direction_with_total_bytes() {
    let mut lines = Vec::new();
    for c in 0..4 {
        lines.push(format!("<166>Nov 21 2025 09:00:0{c} fw01 : %ASA-6-302013: Built outbound TCP connection {c} for outside:203.0.113.9/445 (203.0.113.9/445) to inside:10.0.0.5/5000{c} (198.51.100.1/5000{c})"));
        // Inbound from an outside port 445: never SMB out.
        lines.push(format!("<166>Nov 21 2025 09:00:0{c} fw01 : %ASA-6-302013: Built inbound TCP connection 9{c} for outside:198.51.100.7/445 (198.51.100.7/445) to inside:10.0.0.8/4000{c} (203.0.113.20/4000{c})"));
    }
    for c in 0..4 {
        lines.push(format!("<166>Nov 21 2025 09:01:0{c} fw01 : %ASA-6-302014: Teardown TCP connection {c} for outside:203.0.113.9/445 to inside:10.0.0.5/5000{c} duration 0:01:00 bytes 3000000 TCP FINs"));
        lines.push(format!("<166>Nov 21 2025 09:01:0{c} fw01 : %ASA-6-302014: Teardown TCP connection 9{c} for outside:198.51.100.7/445 to inside:10.0.0.8/4000{c} duration 0:01:00 bytes 445 TCP FINs"));
    }
    let (events, alerts) = run(&lines);
    assert_eq!(
        events[0],
        format!(
            "{} t1071_protocol=SMB t1071_external=true t1071_counted=false",
            lines[0]
        )
    );
    assert!(
        events[1].ends_with(" t1071_external=false t1071_counted=false"),
        "{}",
        events[1]
    );
    assert!(events[8].ends_with(" t1071_counted=true"));
    let a = one_alert(&alerts);
    assert_eq!(
        (a["src_ip"].as_str(), a["dest_port"].as_u64()),
        (Some("10.0.0.5"), Some(445))
    );
    assert_eq!(a["connection_count"], 4);
    assert_eq!(a["bytes_total"], 12_000_000);
    assert!(a["bytes_sent"].is_null() && a["bytes_received"].is_null());
    assert_eq!(a["exfil_risk"], "HIGH");
    assert_eq!(a["exfil_risk_basis"], "total");
    assert_eq!(
        a["first_seen"], "2025-11-21T09:01:00.000Z",
        "the teardowns' times"
    );
}

/// A PAN-OS traffic log (see `raw::panos` for the columns).
fn panos(subtype: &str, action: &str, sport: u32) -> String {
    let mut c = vec![String::new(); 47];
    for (i, v) in [
        (0, "1"),
        (1, "2025/11/21 09:00:05"),
        (2, "0128"),
        (3, "TRAFFIC"),
        (6, "2025/11/21 09:00:00"),
        (7, "10.0.0.5"),
        (8, "203.0.113.9"),
        (25, "139"),
        (27, "445"),
        (32, "100"),
        (33, "445"),
    ] {
        c[i] = v.to_string();
    }
    c[4] = subtype.into();
    c[24] = sport.to_string();
    c[30] = action.into();
    format!("<14>Nov 21 09:00:05 fw01 {}", c.join(","))
}

#[test]
fn panos_counts_end_logs_only_and_appends_csv_fields() {
    let mut lines = Vec::new();
    for p in 0..4 {
        lines.push(panos("start", "allow", 50_000 + p));
        lines.push(panos("end", "allow", 50_000 + p));
    }
    lines.push(panos("deny", "deny", 60_000));
    let (events, alerts) = run(&lines);
    assert_eq!(
        events[1],
        format!(
            "{},t1071_protocol=SMB,t1071_external=true,t1071_counted=true",
            lines[1]
        )
    );
    assert!(events[0].ends_with(",t1071_counted=false"));
    let a = one_alert(&alerts);
    assert_eq!(
        (a["connection_count"].as_u64(), a["dest_port"].as_u64()),
        (Some(4), Some(139))
    );
    assert_eq!(
        (a["bytes_sent"].as_u64(), a["bytes_received"].as_u64()),
        (Some(400), Some(1780))
    );
}

#[test]
fn fortigate_and_generic_key_value() {
    let fg = |action: &str| {
        format!(
            r#"date=2025-11-21 time=09:00:00 type="traffic" subtype="forward" srcip=10.0.0.5 dstip=203.0.113.9 dstport=69 action="{action}" sentbyte=2000000 rcvdbyte=10 user="alice""#
        )
    };
    let mut lines: Vec<String> = ["close", "timeout", "accept", "server-rst", "deny", "start"]
        .iter()
        .map(|a| fg(a))
        .collect();
    let kv = "src_ip=10.0.0.6 dest_ip=198.51.100.3 dest_port=990 action=allowed _time=1763715600";
    lines.extend((0..4).map(|_| kv.to_string()));
    let (events, mut alerts) = run(&lines);
    assert_eq!(
        events[0],
        format!(
            "{} t1071_protocol=TFTP t1071_external=true t1071_counted=true",
            lines[0]
        )
    );
    assert!(events[5].ends_with(" t1071_counted=false"), "a start log");
    alerts.sort_by_key(|a| a["dest_port"].as_u64());
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(
        (
            alerts[0]["dest_port"].as_u64(),
            alerts[0]["connection_count"].as_u64()
        ),
        (Some(69), Some(4))
    );
    assert_eq!(alerts[0]["users"], json!(["alice"]));
    assert_eq!(alerts[0]["exfil_risk"], "MEDIUM");
    assert_eq!(
        (
            alerts[1]["dest_port"].as_u64(),
            alerts[1]["connection_count"].as_u64()
        ),
        (Some(990), Some(4))
    );
}

#[test]
fn zeek_tsv_gains_columns_and_counts_conn_rows_only() {
    let header = |path: &str, fields: &str| {
        vec![
            "#separator \\x09".to_string(),
            "#unset_field\t-".to_string(),
            format!("#path\t{path}"),
            format!("#fields\t{fields}"),
            "#types\ttime\tstring".to_string(),
        ]
    };
    let mut lines = header(
        "conn",
        "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state",
    );
    for i in 0..4 {
        lines.push(format!("176371560{i}.5\tC{i}\t10.0.0.5\t5000{i}\t203.0.113.9\t445\ttcp\tsmb\t1.0\t2000000\t-\tSF"));
    }
    lines.push("1763715609.5\tCx\t10.0.0.5\t50009\t-\t445\ttcp\t-\t-\t-\t-\tS0".to_string());
    lines.extend(header(
        "smb_mapping",
        "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tpath",
    ));
    lines.push(
        "1763715610.5\tC9\t10.0.0.5\t50000\t203.0.113.9\t445\t\\\\\\\\srv\\\\share".to_string(),
    );
    let (events, alerts) = run(&lines);
    assert_eq!(events[0], lines[0]);
    assert_eq!(
        events[3],
        format!(
            "{}\tt1071_protocol\tt1071_external\tt1071_counted\tt1071_allowlisted",
            lines[3]
        )
    );
    assert_eq!(
        events[4],
        format!("{}\tstring\tbool\tbool\tstring", lines[4])
    );
    assert_eq!(events[5], format!("{}\tSMB\tT\tT\t-", lines[5]));
    assert_eq!(
        events[9],
        format!("{}\t-\t-\t-\t-", lines[9]),
        "no destination"
    );
    assert_eq!(
        events[15],
        format!("{}\tSMB\tT\tF\t-", lines[15]),
        "smb_mapping"
    );
    let a = one_alert(&alerts);
    assert_eq!(a["connection_count"], 4);
    assert_eq!(a["first_seen"], "2025-11-21T09:00:00.500Z", "ts, the start");
}

#[test]
fn raw_formats_off_passes_lines_on_unread() {
    let mut r = runner(&json!({"raw_formats": []}));
    let cef = "CEF:0|Acme|FW|1.0|100|conn|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=allow";
    let out = process(&mut r, &[cef]);
    assert_eq!(out.events[0], cef.as_bytes());
    assert_eq!(out.reasons[0], Reason::Malformed);
    let only = runner(&json!({"raw_formats": ["leef", "zeek_tsv"]}));
    drop(only);
    let bad = crate::config::Config::from_json(br#"{"raw_formats":["syslog"]}"#);
    assert!(bad.unwrap_err().contains("unknown variant"));
}

/// Two stages give what one gives, totals included: an observation record
/// carries `bytes_total` to the `aggregate` stage.
#[test]
fn classify_then_aggregate_keeps_total_only_bytes() {
    let mut lines = Vec::new();
    for c in 0..5 {
        lines.push(format!("<166>Nov 21 2025 09:01:0{c} fw01 : %ASA-6-302014: Teardown TCP connection {c} for outside:203.0.113.9/21 to inside:10.0.0.5/5000{c} duration 0:01:00 bytes 1000 TCP FINs"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut all = runner(&json!({}));
    let mut want = process(&mut all, &refs).alerts;
    want.extend(flush(&mut all));
    assert_eq!(want[0]["bytes_total"], 5000);

    let mut classify = rulebox_plugin::Runner::<crate::T1071>::new();
    classify.init(br#"{"stage":"classify"}"#);
    let observations: Vec<String> = process(&mut classify, &refs)
        .alerts
        .iter()
        .map(Value::to_string)
        .collect();
    assert!(
        observations[0].contains(r#""bytes_total":1000"#),
        "{observations:?}"
    );
    let mut aggregate = runner(&json!({"stage": "aggregate"}));
    let refs: Vec<&str> = observations.iter().map(String::as_str).collect();
    let mut got = process(&mut aggregate, &refs).alerts;
    got.extend(flush(&mut aggregate));
    assert_eq!(got, want);
}

/// A syslog source wraps a body that is not JSON as
/// `{"message": "...", "syslog": {...}}`: with `event_path = "message"`
/// the raw line in the string is read, and the label object goes on the
/// line's top level.
#[test]
fn a_raw_line_held_as_a_string_at_event_path() {
    let mut r = runner(&json!({"event_path": "message"}));
    let cef = r#"CEF:0|Acme|FW|1.0|100|conn|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=allow out=7 rt=1763715600000"#;
    let line = json!({"message": cef, "syslog": {"hostname": "fw01"}}).to_string();
    let lines = vec![line.as_str(); 4];
    let out = process(&mut r, &lines);
    let v: Value = serde_json::from_slice(&out.events[0]).unwrap();
    assert_eq!(v["message"], cef, "the string stays as it was");
    assert_eq!(
        v["t1071"],
        json!({"protocol": "SMB", "external": true, "counted": true})
    );
    let alerts = flush(&mut r);
    assert_eq!(
        (alerts.len(), alerts[0]["connection_count"].as_u64()),
        (1, Some(4))
    );
}

/// Lines of every format, mutated at random (a fixed seed): bytes flipped,
/// cut, and the formats' own special characters put in. The readers never
/// panic (a panic would trap the plugin); whatever they write is one line.
#[test]
fn mutated_raw_lines_never_panic() {
    let seeds = [
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tconn_state",
        "1763715600.5\tC1\t10.0.0.5\t50000\t203.0.113.9\t445\tSF",
        "#separator \\x09",
        "<166>Nov 21 2025 09:00:00 fw01 : %ASA-6-302013: Built outbound TCP connection 1 for outside:203.0.113.9/445 (203.0.113.9/445) to inside:10.0.0.5/50000 (198.51.100.1/50000) (CORP\\alice)",
        "<166>Nov 21 2025 09:00:05 fw01 : %ASA-6-302014: Teardown TCP connection 1 for outside:203.0.113.9/445 to inside:10.0.0.5/50000 duration 0:00:05 bytes 2097152 TCP FINs",
        "%ASA-4-106023: Deny tcp src inside:10.0.0.5/1 dst outside:203.0.113.9/445 by access-group \"in\"",
        r"CEF:0|Ve\|ndor|P|1|start|n|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=allow out=1 in=2 msg=a\=b rt=Nov 21 2025 09:00:00",
        "LEEF:2.0|A|B|1|ALLOW|x5E|src=10.0.0.5^dst=203.0.113.9^dstPort=21^devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ^devTime=2025-11-21T10:00:00.000+0100",
        "LEEF:1.0|A|B|1|allow|src=10.0.0.5|dst=203.0.113.9|dstPort=139|Subtype=end",
        "<14>Nov 21 09:00:05 fw01 1,2025/11/21 09:00:05,01,TRAFFIC,end,1,2025/11/21 09:00:05,10.0.0.5,203.0.113.9,,,\"r, x\",,,a,v,t,u,e,e,d,,1,1,5,990,0,0,0,tcp,allow,3,1,2,1",
        r#"<189>date=2025-11-21 time=09:00:00 type="traffic" srcip=10.0.0.5 dstip=203.0.113.9 dstport=69 action="close" sentbyte=1 eventtime=1763715600000000000"#,
        "src_ip=10.0.0.6 dest_ip=203.0.113.6 dest_port=20 action=allowed _time=1763715600",
    ];
    const SPECIAL: &[u8] = b"|=\\\"\t%,:<>^# -x0129";
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n.max(1) as u64) as usize
    };
    let mut r = runner(&json!({"min_connections": 0}));
    for round in 0..20_000 {
        let mut lines = Vec::new();
        for s in seeds {
            let mut b = s.as_bytes().to_vec();
            for _ in 0..1 + next(8) {
                let at = next(b.len() + 1);
                match next(4) {
                    0 => b.truncate(at),
                    1 => b.insert(at, SPECIAL[next(SPECIAL.len())]),
                    2 if at < b.len() => b[at] = SPECIAL[next(SPECIAL.len())],
                    _ if at < b.len() => {
                        b.remove(at);
                    }
                    _ => {}
                }
            }
            lines.push(String::from_utf8_lossy(&b).into_owned());
        }
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let out = process(&mut r, &refs);
        for e in &out.events {
            assert!(
                !e.contains(&b'\n'),
                "round {round}: {}",
                String::from_utf8_lossy(e)
            );
        }
    }
    flush(&mut r);
}

//! The real `rulebox` binary over files, stdin and signals: every input line
//! leaves as exactly one output line, in order; lines the rule has nothing
//! to say about are byte-identical; bad input is counted, never fatal.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use rulebox_tests::{
    Scratch, counter_on, rule_pipeline, rule_wasm, rulebox, rulebox_bin, stderr, summary_counter,
    terminate, unsplice, wait_for,
};
use serde_json::Value;

#[test]
fn every_line_leaves_once_in_order_and_untouched_lines_are_byte_identical() {
    let dir = Scratch::new("lines");
    let long = format!(
        r#"{{"src_ip":"10.0.0.1","dest_ip":"8.8.8.8","dest_port":21,"action":"allowed","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    let mut lines: Vec<Vec<u8>> = vec![
        br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed","_time":1700000000}"#.to_vec(),
        b"not json at all".to_vec(),
        b"".to_vec(),
        br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":"445","action":"allowed"}"#.to_vec(),
        b"{\"msg\":\"\xff\xfe invalid utf-8\",\"dest_ip\":\"8.8.8.8\"}".to_vec(),
        br#"{"message":"no destination here"}"#.to_vec(),
        b"[1,2,3]".to_vec(),
        b"{\"dest_ip\":\"8.8.8.8\",\"dest_port\":21}\r".to_vec(),
        br#"{"a":{"b":{"c":[[[[[[[[[[]]]]]]]]]]}}}"#.to_vec(),
        long.into_bytes(),
        br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed","t1071":"old"}"#.to_vec(),
    ];
    // Enough lines to span several batches.
    for i in 0..3000 {
        lines.push(format!(r#"{{"src_ip":"10.0.{}.{}","dest_ip":"198.51.100.7","dest_port":443,"action":"allowed"}}"#, i / 250, i % 250).into_bytes());
    }
    let mut input = lines.join(&b"\n"[..]);
    input.extend_from_slice(b"\n{\"dest_ip\":\"8.8.8.8\",\"dest_port\":69}"); // last line, no newline
    lines.push(b"{\"dest_ip\":\"8.8.8.8\",\"dest_port\":69}".to_vec());
    let input_path = dir.write("in.ndjson", &input);
    let cfg = rule_pipeline(
        &dir.0,
        &input_path,
        "schema = \"cim\"",
        "max_line_bytes = 4096",
    );
    let cfg_path = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", cfg_path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));

    let got = std::fs::read(dir.path("events.out")).unwrap();
    assert!(got.ends_with(b"\n"));
    let got: Vec<&[u8]> = got[..got.len() - 1].split(|&c| c == b'\n').collect();
    assert_eq!(got.len(), lines.len(), "one output line per input line");
    for (i, (g, want)) in got.iter().zip(&lines).enumerate() {
        if i == 9 {
            // Oversize: never shown to the plugin; passed on, tagged.
            let tag = br#","rulebox_error":{"transform":"rule","reason":"oversize"}}"#;
            assert_eq!(g.strip_suffix(&tag[..]), want.strip_suffix(b"}"), "line 9");
            continue;
        }
        if i == 10 {
            // An existing t1071 key is replaced in place.
            let v: Value = serde_json::from_slice(g).unwrap();
            assert_eq!(v["t1071"]["counted"], true);
            assert_eq!(String::from_utf8_lossy(g).matches("t1071").count(), 1);
            continue;
        }
        assert_eq!(
            unsplice(g),
            *want,
            "line {i} changed beyond the appended label"
        );
    }
    // Lines the rule has nothing to say about are byte-identical.
    for i in [1, 2, 4, 5, 6, 8] {
        assert_eq!(got[i], &lines[i][..], "line {i} must be byte-identical");
    }
    assert_ne!(got[0], &lines[0][..], "a watched event is labelled");
    let v: Value = serde_json::from_slice(got[7].strip_suffix(b"\r").unwrap()).unwrap();
    assert_eq!(v["t1071"]["protocol"], "FTP/FTPS", "CRLF lines are read");
    let err = stderr(&out);
    assert_eq!(summary_counter(&err, "malformed"), Some(2), "{err}"); // garbage, empty line
    assert_eq!(summary_counter(&err, "invalid_utf8"), Some(1), "{err}");
    assert_eq!(summary_counter(&err, "unprocessed"), Some(2), "{err}");
    assert_eq!(summary_counter(&err, "not_object"), Some(1), "{err}");
    assert_eq!(summary_counter(&err, "oversize"), Some(1), "{err}");
    assert_eq!(
        summary_counter(&err, "events_out"),
        Some(lines.len() as u64),
        "{err}"
    );
}

#[test]
fn stdin_to_stdout_with_alerts_on_the_same_stream() {
    let dir = Scratch::new("stdin");
    let cfg = format!(
        r#"data_dir = "{}"
[sources.in]
type = "stdin"
[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "{}"
[transforms.rule.config]
schema = "cim"
[sinks.out]
type = "stdout"
inputs = ["rule", "rule.alerts"]
"#,
        dir.path("data").display(),
        rule_wasm().display()
    );
    let cfg_path = dir.write("p.toml", cfg);
    let ev = r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed","_time":"1700000000","bytes_out":2000000}"#;
    let input = format!("{ev}\n{ev}\n{ev}\n{ev}\n");
    let out = rulebox(
        &["run", "--config", cfg_path.to_str().unwrap()],
        Some(input.as_bytes()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    let alert = &lines[4];
    assert_eq!(alert["connection_count"], 4);
    assert_eq!(alert["exfil_risk"], "MEDIUM");
    assert_eq!(alert["status"], "final");
}

#[test]
fn followed_file_ticks_open_alerts_and_sigterm_without_persistence_flushes_final_ones() {
    let dir = Scratch::new("follow");
    let input = dir.write("in.ndjson", "");
    let cfg = rule_pipeline(
        &dir.0,
        &input,
        "schema = \"cim\"",
        "flush_interval_secs = 1\npersist_state = false",
    )
    .replacen(
        "type = \"file\"\npath = \"",
        "type = \"file\"\nfollow = true\npoll_interval_ms = 50\npath = \"",
        1,
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = Command::new(rulebox_bin())
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for _ in 0..5 {
        writeln!(f, r#"{{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"action":"allowed","_time":1700000000}}"#).unwrap();
    }
    f.flush().unwrap();
    let read = |p: &str| std::fs::read_to_string(dir.path(p)).unwrap_or_default();
    wait_for("5 enriched events", Duration::from_secs(20), || {
        read("events.out").lines().count() == 5
    });
    wait_for(
        "an open alert from the tick",
        Duration::from_secs(20),
        || read("alerts.out").contains("\"status\":\"open\""),
    );

    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
    let alerts: Vec<Value> = read("alerts.out")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finals: Vec<&Value> = alerts.iter().filter(|a| a["status"] == "final").collect();
    assert_eq!(finals.len(), 1, "exactly one final alert: {alerts:?}");
    assert_eq!(finals[0]["connection_count"], 5);
    assert_eq!(
        finals[0]["alert_id"], alerts[0]["alert_id"],
        "the same key keeps its id"
    );
}

/// One `validate` run names every error it can find, each at its line: a
/// plugin's configuration error does not hide the others.
#[test]
fn validate_reports_every_error_at_once() {
    let dir = Scratch::new("validate-all");
    let input = dir.write("in.ndjson", "");
    let good = rule_pipeline(&dir.0, &input, "schema = \"cim\"", "");
    let second = format!(
        "[transforms.second]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\nflush_interval_secs = 0\n\n[sinks.more]\ntype = \"tcp\"\naddress = \"nowhere\"\ninputs = [\"second.alarms\"]\n",
        rule_wasm().display()
    );
    let bad = good.replace("schema = \"cim\"", "internal_networks = [\"10.0.0.0/33\"]") + &second;
    let p = dir.write("bad.toml", &bad);
    let out = rulebox(&["validate", "--config", p.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    let line_of = |needle: &str| bad.lines().position(|l| l == needle).unwrap() + 1;
    let path = p.display().to_string();
    let want = [
        (
            line_of("flush_interval_secs = 0"),
            "transforms.second.flush_interval_secs: must be at least 1",
        ),
        (
            line_of("[sinks.more]"),
            "sinks.more: address \"nowhere\": expected host:port",
        ),
        (
            line_of("[transforms.rule.config]"),
            "transforms.rule.config: ",
        ),
        (
            line_of("[sinks.more]"),
            "transform \"second\" has no output \"alarms\"",
        ),
    ];
    for (line, message) in want {
        let at = format!("error: {path}:{line}: ");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&at) && l.contains(message)),
            "{message:?} at line {line} missing in:\n{err}"
        );
    }
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error: ")).count(),
        4,
        "{err}"
    );
}

#[test]
fn validate_explains_errors_with_their_location() {
    let dir = Scratch::new("validate");
    let input = dir.write("in.ndjson", "");
    let good = rule_pipeline(&dir.0, &input, "schema = \"cim\"", "");
    let p = dir.write("good.toml", &good);
    let out = rulebox(&["validate", "--config", p.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("outputs rule, rule.alerts"));

    let cases = [
        (
            good.replace("schema = \"cim\"", "internal_networks = [\"10.0.0.0/33\"]"),
            "transforms.rule.config",
            "10.0.0.0/33",
        ),
        (
            good.replace("inputs = [\"in\"]", "inputs = [\"nowhere\"]"),
            "unknown input \"nowhere\"",
            ":7:",
        ),
        (
            good.replace("type = \"wasm\"", "type = \"wasm\"\ndeadline = 5"),
            "unknown field `deadline`",
            ":9:",
        ),
        (
            good.replace(".wasm\"", ".wasm.missing\""),
            "cannot read plugin module",
            "transforms.rule.module",
        ),
        (
            good.replace("rule.alerts", "rule.alarms"),
            "has no output \"alarms\"",
            "declares: alerts",
        ),
        (
            // Refused by the schema in the rule's manifest, at its key.
            good.replace("schema = \"cim\"", "schema = \"splunk\""),
            "string \"splunk\" is not one of \"cim\"",
            "transforms.rule.config.schema",
        ),
        (
            good.replace("type = \"wasm\"", "type = \"wasm\"\nworkers = 0"),
            "transforms.rule.workers: between 1 and 64",
            ":9:",
        ),
        (
            good.replace("type = \"wasm\"", "type = \"wasm\"\nmax_memory_mib = \"64\""),
            "transforms.rule.max_memory_mib: invalid type: string \"64\", expected usize",
            ":9:",
        ),
        (
            good.replace(
                "[transforms.rule]",
                "[sources.sys]\ntype = \"syslog\"\naddress = \"127.0.0.1:105140\"\n\n[transforms.rule]",
            )
            .replace("inputs = [\"in\"]", "inputs = [\"in\", \"sys\"]"),
            "sources.sys.address: \"127.0.0.1:105140\": the port must be a number from 0 to 65535",
            ":9:",
        ),
        (
            good.replace("schema = \"cim\"", "stage = \"classify\""),
            "has no output \"alerts\"",
            "declares: observations",
        ),
    ];
    for (i, (cfg, a, b)) in cases.iter().enumerate() {
        let p = dir.write(&format!("bad{i}.toml"), cfg);
        let out = rulebox(&["validate", "--config", p.to_str().unwrap()], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(a) && err.contains(b),
            "case {i}: {err:?} should mention {a:?} and {b:?}"
        );
        // `run` refuses the same configuration before reading anything.
        let out = rulebox(&["run", "--config", p.to_str().unwrap()], None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "case {i} (run): {}",
            stderr(&out)
        );
    }
}

/// Every listening kind checks its address in `validate` (before: only
/// `run` found it, when binding), each error at the `address` line.
#[test]
fn validate_refuses_listening_addresses_without_a_usable_port() {
    let dir = Scratch::new("validate-listen");
    let cfg = r#"[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:105140"
tokens = ["t"]

[sources.web]
type = "http"
address = "127.0.0.1"

[sources.lines]
type = "tcp"
address = "127.0.0.1:99999"

[sources.sys]
type = "syslog"
mode = "udp"
address = "::1"

[sinks.out]
type = "file"
path = "out.ndjson"
inputs = ["hec", "web", "lines", "sys"]
"#;
    let p = dir.write("p.toml", cfg);
    for cmd in ["validate", "run"] {
        let out = rulebox(&[cmd, "--config", p.to_str().unwrap()], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        for want in [
            ":3: sources.hec.address: \"127.0.0.1:105140\": the port must be",
            ":8: sources.web.address: \"127.0.0.1\": expected host:port",
            ":12: sources.lines.address: \"127.0.0.1:99999\": the port must be",
            ":17: sources.sys.address: \"::1\": expected host:port",
        ] {
            assert!(err.contains(want), "{cmd}: {err:?} should say {want:?}");
        }
        assert!(!dir.path("out.ndjson").exists(), "{cmd} started nothing");
    }
}

#[test]
fn a_missing_input_file_is_an_error_exit_not_a_hang() {
    let dir = Scratch::new("missing-input");
    let cfg = rule_pipeline(&dir.0, &dir.path("nope.ndjson"), "", "");
    let p = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", p.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot open input"));
}

#[test]
fn sigterm_with_an_open_stdin_still_flushes_and_exits() {
    let dir = Scratch::new("stdin-term");
    let cfg = rule_pipeline(
        &dir.0,
        &dir.path("unused"),
        "schema = \"cim\"",
        "persist_state = false",
    )
    .replacen(
        &format!(
            "type = \"file\"\npath = \"{}\"",
            dir.path("unused").display()
        ),
        "type = \"stdin\"",
        1,
    );
    let cfg_path = dir.write("p.toml", cfg);
    let mut child = Command::new(rulebox_bin())
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..4 {
        writeln!(stdin, r#"{{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":139,"action":"allowed","_time":1700000000}}"#).unwrap();
    }
    stdin.flush().unwrap();
    let read = |p: &str| std::fs::read_to_string(dir.path(p)).unwrap_or_default();
    wait_for("4 enriched events", Duration::from_secs(20), || {
        read("events.out").lines().count() == 4
    });
    let status = terminate(&mut child);
    drop(stdin);
    assert!(status.success(), "{status:?}");
    let alerts: Vec<Value> = read("alerts.out")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["status"], "final");
    assert_eq!(alerts[0]["protocol"], "SMB");
}

#[test]
fn deeply_nested_json_and_bad_bytes_are_counted_not_fatal() {
    let dir = Scratch::new("nested");
    let deep = format!(
        r#"{{"dest_ip":"8.8.8.8","a":{}{}}}"#,
        "[".repeat(200_000),
        "]".repeat(200_000)
    );
    let input = format!(
        "{deep}\n{SMB}\n\u{0}\u{1}\u{2}\n{SMB}\n",
        SMB = r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed"}"#
    )
    .into_bytes();
    let mut input = input;
    input.extend_from_slice(b"{\"x\":\"\xc3\x28\"}\n");
    let input_path = dir.write("in.ndjson", &input);
    let cfg = rule_pipeline(
        &dir.0,
        &input_path,
        "schema = \"cim\"",
        "on_error = \"dead_letter\"",
    ) + &format!(
        "\n[sinks.dead]\ntype = \"file\"\npath = \"{}\"\ninputs = [\"rule.dead_letter\"]\n",
        dir.path("dead.out").display()
    );
    let cfg_path = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", cfg_path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let events = std::fs::read(dir.path("events.out")).unwrap();
    let events: Vec<&[u8]> = events
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        events.len(),
        4,
        "the nested, the two SMB and the control-byte line"
    );
    assert_eq!(
        events[0],
        deep.as_bytes(),
        "too deep to read: passed on as it was"
    );
    assert!(
        events[1].ends_with(br#""counted":true}}"#),
        "the next line is processed"
    );
    assert_eq!(summary_counter(&err, "malformed"), Some(2), "{err}");
    assert_eq!(summary_counter(&err, "invalid_utf8"), Some(1), "{err}");
    let dead: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("dead.out")).unwrap()).unwrap();
    assert_eq!(dead["reason"], "invalid_utf8");
    assert_eq!(
        dead["event_base64"], "eyJ4IjoiwygifQ==",
        "the exact bytes, recoverable"
    );
}

/// `workers = 2` on the rule's `classify` stage, feeding one `aggregate`
/// stage, gives exactly what one instance of the whole rule gives: the same
/// enriched events in the same order, and the same alerts. Lines that are
/// not UTF-8 among them are counted alike (two workers index each batch
/// before screening it; one worker indexes it ahead, on a thread).
#[test]
fn parallel_classify_then_aggregate_gives_what_one_instance_gives() {
    let dir = Scratch::new("parallel");
    let lines = rulebox_bench::sample(12_000, 3, 1_763_683_200_000);
    let mut input = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i % 3000 == 1000 {
            input.extend_from_slice(b"{\"x\":\"\xc3\x28\"}\n");
        }
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    let input = dir.write("in.ndjson", input);
    let one = dir.write(
        "one.toml",
        rule_pipeline(&dir.0, &input, "", "").replacen(
            "type = \"file\"\npath = \"",
            "type = \"file\"\nbatch_max_events = 256\npath = \"",
            1,
        ),
    );
    let out = rulebox(&["run", "--config", one.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(summary_counter(&stderr(&out), "invalid_utf8"), Some(4));
    let want_events = std::fs::read(dir.path("events.out")).unwrap();
    let want_alerts = std::fs::read(dir.path("alerts.out")).unwrap();
    assert!(want_alerts.len() > 1000, "the sample makes alerts");

    let split = format!(
        r#"data_dir = "{data}"

[sources.in]
type = "file"
batch_max_events = 256
path = "{input}"

[transforms.classify]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
workers = 2
config = {{ stage = "classify" }}

[transforms.aggregate]
type = "wasm"
inputs = ["classify.observations"]
module = "{wasm}"
config = {{ stage = "aggregate" }}

[sinks.events]
type = "file"
path = "{dir}/split-events.out"
inputs = ["classify", "aggregate"]

[sinks.alerts]
type = "file"
path = "{dir}/split-alerts.out"
inputs = ["aggregate.alerts"]
"#,
        data = dir.path("data2").display(),
        input = input.display(),
        wasm = rule_wasm().display(),
        dir = dir.0.display(),
    );
    let split = dir.write("split.toml", split);
    let out = rulebox(&["run", "--config", split.to_str().unwrap()], None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let classify = err
        .lines()
        .find(|l| l.contains("transform done") && l.contains("classify"))
        .unwrap_or_default();
    assert_eq!(counter_on(classify, "", "invalid_utf8"), Some(4), "{err}");
    let got_events = std::fs::read(dir.path("split-events.out")).unwrap();
    assert!(
        got_events == want_events,
        "the enriched events differ (or their order)"
    );
    let got_alerts = std::fs::read(dir.path("split-alerts.out")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got_alerts),
        String::from_utf8_lossy(&want_alerts)
    );
}

/// A `null` sink counts what it is given and keeps nothing; the events
/// still count as delivered (exit 0, nothing written anywhere else).
#[test]
fn a_null_sink_counts_and_discards() {
    let dir = Scratch::new("null-sink");
    let cfg = format!(
        "data_dir = \"{}\"\n[sources.in]\ntype = \"stdin\"\n[sinks.nothing]\ntype = \"null\"\ninputs = [\"in\"]\n",
        dir.0.join("data").display()
    );
    let p = dir.write("p.toml", &cfg);
    let out = rulebox(
        &["run", "--config", p.to_str().unwrap()],
        Some(b"{\"a\":1}\n{\"a\":2}\nnot json\n"),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let done = rulebox_tests::strip_ansi(err.lines().find(|l| l.contains("sink done")).unwrap());
    assert!(
        done.contains("sink=nothing events=3 bytes=25 write_errors=0"),
        "{done}"
    );
}

/// A line far over the file source's `max_line_bytes` (a corrupt log, a
/// runaway writer) is written whole, as it arrives, to a file of its own,
/// and an event naming it takes its place: nothing is lost, the lines
/// around it keep their order, and memory stays bounded.
#[test]
fn an_oversize_line_goes_to_a_file_of_its_own_in_bounded_memory() {
    let dir = Scratch::new("oversize-line");
    let big = 64usize << 20;
    let path = dir.path("in.ndjson");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        f.write_all(b"{\"n\":1}\n{\"big\":\"").unwrap();
        let piece = vec![b'x'; 1 << 20];
        for _ in 0..big >> 20 {
            f.write_all(&piece).unwrap();
        }
        f.write_all(b"\"}\n{\"n\":2}\n").unwrap();
    }
    let line_len = big as u64 + 10; // {"big":"…"}
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.in]\ntype = \"file\"\npath = \"{input}\"\nmax_line_bytes = 1048576\n[sinks.out]\ntype = \"file\"\npath = \"{out}\"\ninputs = [\"in\"]\n",
        data = dir.path("data").display(),
        input = path.display(),
        out = dir.path("out.ndjson").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let text = std::fs::read_to_string(dir.path("out.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text:.300}");
    assert_eq!((lines[0], lines[2]), ("{\"n\":1}", "{\"n\":2}"));
    let v: Value = serde_json::from_str(lines[1]).unwrap();
    let o = &v["rulebox_oversize"];
    assert_eq!(o["bytes"], line_len, "{v}");
    assert!(
        o["head"].as_str().unwrap().starts_with("{\"big\":\"xxx"),
        "{v}"
    );
    let kept = std::fs::metadata(o["file"].as_str().unwrap())
        .unwrap()
        .len();
    assert_eq!(kept, line_len, "the line is kept whole");
    let done = rulebox_tests::strip_ansi(err.lines().find(|l| l.contains("source done")).unwrap());
    assert!(done.contains("oversize=1"), "{done}");
    let rss = err.lines().find(|l| l.contains("peak_rss_kib")).unwrap();
    let kib: u64 = rulebox_tests::strip_ansi(rss)
        .split("peak_rss_kib=")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(kib < 48 * 1024, "peak RSS {kib} KiB for a 64 MiB line");
}

/// Several workers for a plugin that keeps state would split its windows
/// between instances (issue 18): `validate` and `run` refuse them unless
/// the plugin declares that several instances may share its input
/// (`INIT_PARALLEL`, which the T1071.002 rule sets for `stage =
/// "classify"` only); a plugin without snapshot/restore exports keeps no
/// state by the contract and may still have several.
#[test]
fn several_workers_need_a_plugin_that_may_share_its_input() {
    let dir = Scratch::new("workers");
    let input = dir.write("in.ndjson", "");
    let validate = |name: &str, cfg: String| {
        let p = dir.write(name, cfg);
        rulebox(&["validate", "--config", p.to_str().unwrap()], None)
    };
    let two = "workers = 2";
    for rule_config in ["", "stage = \"all\"", "stage = \"aggregate\""] {
        let cfg = rule_pipeline(&dir.0, &input, rule_config, two);
        let out = validate("stateful.toml", cfg.clone());
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{rule_config}: {err}");
        assert!(
            err.contains("transforms.rule.workers")
                && err.contains("does not declare that several instances may share its input")
                && err.contains("use workers = 1"),
            "{rule_config}: {err}"
        );
        let p = dir.write("stateful-run.toml", cfg);
        let run = rulebox(&["run", "--config", p.to_str().unwrap()], None);
        assert_eq!(run.status.code(), Some(2), "run refuses it too");
    }
    let classify = rule_pipeline(&dir.0, &input, "stage = \"classify\"", two)
        .replace("rule.alerts", "rule.observations");
    let out = validate("classify.toml", classify);
    assert!(out.status.success(), "{}", stderr(&out));

    // WAT plugins: the contract's rule for those that do not declare.
    let state_exports = r#"
  (func (export "rulebox_snapshot") (param i64) (result i64) (i64.const 0x0000080000000010))
  (func (export "rulebox_restore") (param i32 i32 i64) (result i64) (i64.const 0x0000080000000010))"#;
    let parallel_flag = r#"\00\00\00\00\00\00\00\00\08\00\00\00"#;
    for (name, funcs, init, ok) in [
        ("stateless", "", rulebox_bench::wat::NO_OUTPUTS, true),
        (
            "stateful",
            state_exports,
            rulebox_bench::wat::NO_OUTPUTS,
            false,
        ),
        ("declared", state_exports, parallel_flag, true),
    ] {
        let wat = rulebox_bench::wat::Wat {
            funcs,
            init,
            ..Default::default()
        };
        let module = dir.write(&format!("{name}.wat"), wat.text());
        let cfg = format!(
            "data_dir = \"{}\"\n[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\nworkers = 2\n[sinks.out]\ntype = \"null\"\ninputs = [\"p\"]\n",
            dir.path("data").display(),
            module.display()
        );
        let out = validate(&format!("{name}.toml"), cfg);
        assert_eq!(out.status.success(), ok, "{name}: {}", stderr(&out));
    }
}

/// `key=value` from the rule's own `run summary:` log line, if logged.
fn rule_summary(stderr: &str, key: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains("run summary:"))?;
    let plain = rulebox_tests::strip_ansi(line);
    let at = plain.find(&format!(" {key}="))? + key.len() + 2;
    plain[at..].split_whitespace().next()?.parse().ok()
}

/// Issue 18: a run where the rule could read nothing used to exit 0 with
/// only `malformed=…` to show for it. At its end the rule logs what it
/// made of its input (events read, labelled, counted, without a
/// destination, late, with an unreadable time), and warns when it could
/// read none of them.
#[test]
fn the_rule_reports_what_it_could_read() {
    let dir = Scratch::new("rule-summary");
    let raw = "Nov 22 10:00:00 fw01 sshd[1]: Accepted password for root\nanother raw line\n{\"message\":\"no destination\"}\n";
    let input = dir.write("raw.ndjson", raw);
    let cfg = dir.write("raw.toml", rule_pipeline(&dir.0, &input, "", ""));
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(rule_summary(&err, "events_read"), Some(3), "{err}");
    assert_eq!(rule_summary(&err, "labelled"), Some(0), "{err}");
    assert_eq!(rule_summary(&err, "without_destination"), Some(3), "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("none of the 3 events read had a destination"))
        .unwrap_or_else(|| panic!("no warning in {err}"));
    assert!(
        warning.contains("WARN") && warning.contains("plugin=\"rule\""),
        "{warning}"
    );

    let at = |t: &str, port: u16| {
        format!(
            r#"{{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":{port},"action":"allowed"{t}}}"#
        )
    };
    let t0 = r#","_time":1700000000"#;
    let mut lines = vec![at(t0, 21); 4];
    lines.extend([
        at("", 21), // counted, its time unreadable
        at(t0, 443),
        r#"{"message":"x"}"#.to_string(),
        "not json".to_string(),
        at(r#","_time":1700172800"#, 21), // two days on: the first window closes
        at(t0, 21),                       // late
    ]);
    let input = dir.write("mixed.ndjson", lines.join("\n") + "\n");
    let cfg = rule_pipeline(&dir.0, &input, "allowed_lateness_secs = 0", "");
    let cfg = dir.write("mixed.toml", cfg);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    for (key, want) in [
        ("events_read", 10),
        ("labelled", 8),
        ("counted", 7),
        ("without_destination", 2),
        ("late", 1),
        ("unreadable_time", 1),
    ] {
        assert_eq!(rule_summary(&err, key), Some(want), "{key}: {err}");
    }
    assert!(!err.contains("none of the"), "{err}");
}

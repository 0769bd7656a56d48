//! The `[api]` endpoint of a running pipeline: `/metrics` scraped and
//! checked by Debian's `promtool check metrics` (unpacked into
//! target/promtool by scripts/install-promtool.sh), its counters matched
//! against what was written; `/health` ready while running, 503 once a
//! shutdown begins or a plugin is quarantined.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use rulebox_bench::wat::Wat;
use rulebox_tests::{
    Running, Scratch, free_port, http, root, rule_pipeline, rulebox, spawn_run, stderr, wait_for,
    wait_listening,
};

const EVENTS: usize = 1000;

fn event(i: usize) -> String {
    format!(
        r#"{{"n":{i},"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed","_time":1700000000}}"#
    )
}

/// `cfg` with an `[api]` table on `port`, before its first component.
fn with_api(cfg: &str, port: u16) -> String {
    cfg.replacen(
        "\n[sources.in]",
        &format!("\n[api]\naddress = \"127.0.0.1:{port}\"\n\n[sources.in]"),
        1,
    )
}

/// The rule over a followed, checkpointed file, with the endpoint on.
fn rule_config(dir: &Scratch, input: &std::path::Path, port: u16) -> String {
    let cfg = rule_pipeline(&dir.0, input, "schema = \"cim\"", "");
    let cfg = cfg.replacen(
        "type = \"file\"\npath = \"",
        "type = \"file\"\nfollow = true\npoll_interval_ms = 50\ncheckpoint_interval_ms = 100\npath = \"",
        1,
    );
    with_api(&cfg, port)
}

fn append(path: &std::path::Path, events: impl Iterator<Item = String>) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let text: String = events.map(|e| e + "\n").collect();
    f.write_all(text.as_bytes()).unwrap();
}

fn scrape(port: u16) -> String {
    let (status, body) = http(port, "GET", "/metrics", &[], b"");
    assert_eq!(status, 200, "{body}");
    body
}

/// The value of the sample whose line starts with `series` (name and
/// labels, as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn series(name: &str, id: &str, kind: &str, extra: &str) -> String {
    format!("{name}{{component_id=\"{id}\",component_kind=\"{kind}\"{extra}}}")
}

fn promtool() -> PathBuf {
    let p = root().join("target/promtool/usr/bin/promtool");
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/install-promtool.sh`",
        p.display()
    );
    p
}

/// `promtool check metrics` on `text`: its findings, none when accepted.
fn promtool_check(text: &str) {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "promtool refused the scrape: {said}\n{text}"
    );
    assert!(said.trim().is_empty(), "promtool findings: {said}\n{text}");
}

fn wait_health(port: u16, want: u16) -> String {
    let mut last = (0, String::new());
    wait_for(&format!("/health {want}"), Duration::from_secs(20), || {
        last = http(port, "GET", "/health", &[], b"");
        last.0 == want
    });
    last.1
}

#[test]
fn metrics_count_every_event_and_promtool_accepts_them() {
    let dir = Scratch::new("api-metrics");
    let input = dir.write("in.ndjson", "");
    let port = free_port();
    let cfg = dir.write("p.toml", rule_config(&dir, &input, port));
    let run = spawn_run(&cfg, &dir.path("log"));
    wait_listening(port);
    assert_eq!(wait_health(port, 200), "ok\n");
    append(&input, (0..EVENTS).map(event));
    let bytes = std::fs::metadata(&input).unwrap().len() as f64;
    let sent = series("rulebox_component_sent_events_total", "events", "sink", "");
    wait_for("every event written", Duration::from_secs(20), || {
        sample(&scrape(port), &sent) == Some(EVENTS as f64)
    });
    let lag = series("rulebox_source_checkpoint_lag_bytes", "in", "source", "");
    wait_for(
        "the checkpoint to catch up",
        Duration::from_secs(20),
        || sample(&scrape(port), &lag) == Some(0.0),
    );
    let text = scrape(port);
    let get = |name: &str, id: &str, kind: &str, extra: &str| {
        let s = series(name, id, kind, extra);
        sample(&text, &s).unwrap_or_else(|| panic!("no {s} in:\n{text}"))
    };
    let n = EVENTS as f64;
    assert_eq!(
        get(
            "rulebox_component_received_events_total",
            "in",
            "source",
            ""
        ),
        n
    );
    assert_eq!(
        get("rulebox_component_received_bytes_total", "in", "source", ""),
        bytes
    );
    assert_eq!(
        get(
            "rulebox_component_received_events_total",
            "rule",
            "transform",
            ""
        ),
        n
    );
    assert_eq!(
        get(
            "rulebox_component_received_bytes_total",
            "rule",
            "transform",
            ""
        ),
        bytes
    );
    assert_eq!(
        get(
            "rulebox_component_sent_events_total",
            "rule",
            "transform",
            ""
        ),
        n
    );
    assert_eq!(
        get(
            "rulebox_component_received_events_total",
            "events",
            "sink",
            ""
        ),
        n
    );
    let received = get(
        "rulebox_component_received_bytes_total",
        "events",
        "sink",
        "",
    );
    assert!(received > bytes, "the rule's enrichment adds bytes");
    assert_eq!(
        get("rulebox_component_sent_bytes_total", "events", "sink", ""),
        received
    );
    assert_eq!(
        get(
            "rulebox_component_errors_total",
            "rule",
            "transform",
            ",reason=\"trap\""
        ),
        0.0
    );
    assert_eq!(
        get(
            "rulebox_component_errors_total",
            "events",
            "sink",
            ",reason=\"write\""
        ),
        0.0
    );
    assert_eq!(
        get("rulebox_plugin_quarantined", "rule", "transform", ""),
        0.0
    );
    assert_eq!(
        get("rulebox_component_queue_batches", "events", "sink", ""),
        0.0
    );
    let calls = get(
        "rulebox_plugin_call_duration_seconds_count",
        "rule",
        "transform",
        "",
    );
    assert!(calls >= 1.0, "{text}");
    let inf = ",le=\"+Inf\"";
    assert_eq!(
        get(
            "rulebox_plugin_call_duration_seconds_bucket",
            "rule",
            "transform",
            inf
        ),
        calls
    );
    promtool_check(&text);
    assert_eq!(http(port, "GET", "/nope", &[], b"").0, 404);
    assert_eq!(http(port, "POST", "/metrics", &[], b"").0, 405);
    run.stop();
}

#[test]
fn health_turns_503_once_a_shutdown_begins() {
    let dir = Scratch::new("api-shutdown");
    let input = dir.write("in.ndjson", "");
    let (port, dead) = (free_port(), free_port());
    // A sink that cannot deliver keeps the shutdown going for its grace.
    let cfg = rule_config(&dir, &input, port).replace(
        "[sinks.alerts]\ntype = \"file\"",
        &format!(
            "[sinks.nowhere]\ntype = \"http\"\nuri = \"http://127.0.0.1:{dead}/\"\ninputs = [\"rule\"]\n[sinks.nowhere.retry]\ninitial_ms = 50\nmax_ms = 100\nshutdown_grace_secs = 5\n\n[sinks.alerts]\ntype = \"file\""
        ),
    );
    let cfg = dir.write("p.toml", cfg);
    let mut run = spawn_run(&cfg, &dir.path("log"));
    wait_listening(port);
    wait_health(port, 200);
    append(&input, (0..10).map(event));
    let retries = series("rulebox_component_retries_total", "nowhere", "sink", "");
    wait_for("retries", Duration::from_secs(20), || {
        sample(&scrape(port), &retries).is_some_and(|r| r > 0.0)
    });
    let pid = run.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(wait_health(port, 503), "shutting down\n");
    promtool_check(&scrape(port));
    let _ = run.0.wait();
    drop::<Running>(run);
}

#[test]
fn health_turns_503_when_a_plugin_is_quarantined() {
    let dir = Scratch::new("api-quarantine");
    let plugin = Wat {
        process: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let wasm = dir.write("plugin.wat", plugin.text());
    let input = dir.write("in.ndjson", "");
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"

[sources.in]
type = "file"
path = "{input}"
follow = true
poll_interval_ms = 50
batch_max_events = 10

[transforms.p]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
deadline_ms = 50
restart_backoff_ms = 0
quarantine_after = 3

[sinks.events]
type = "file"
path = "{events}"
inputs = ["p"]
"#,
        data = dir.path("data").display(),
        input = input.display(),
        wasm = wasm.display(),
        events = dir.path("events.out").display(),
    );
    let cfg = dir.write("p.toml", with_api(&cfg, port));
    let run = spawn_run(&cfg, &dir.path("log"));
    wait_listening(port);
    wait_health(port, 200);
    append(&input, (0..EVENTS).map(event));
    assert_eq!(wait_health(port, 503), "quarantined: p\n");
    let text = scrape(port);
    let get = |name: &str, extra: &str| sample(&text, &series(name, "p", "transform", extra));
    assert_eq!(get("rulebox_plugin_quarantined", ""), Some(1.0), "{text}");
    assert_eq!(
        get("rulebox_component_errors_total", ",reason=\"deadline\""),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        get("rulebox_plugin_restarts_total", ""),
        Some(2.0),
        "{text}"
    );
    promtool_check(&text);
    run.stop();
}

#[test]
fn validate_checks_the_api_address_at_its_line() {
    let dir = Scratch::new("api-validate");
    let input = dir.write("in.ndjson", "");
    let cfg = rule_config(&dir, &input, 8686).replace("127.0.0.1:8686", "127.0.0.1:86860");
    let p = dir.write("p.toml", &cfg);
    let out = rulebox(&["validate", "--config", p.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let line = cfg.lines().position(|l| l.contains("86860")).unwrap() + 1;
    let want = format!(
        "{}:{line}: api.address: \"127.0.0.1:86860\": the port",
        p.display()
    );
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    let ok = rule_config(&dir, &input, 8686);
    let p = dir.write("ok.toml", &ok);
    let out = rulebox(&["validate", "--config", p.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn an_api_address_in_use_fails_the_run_but_not_the_pipeline() {
    let dir = Scratch::new("api-taken");
    let input: String = (0..10).map(|i| event(i) + "\n").collect();
    let input = dir.write("in.ndjson", input);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = with_api(&rule_pipeline(&dir.0, &input, "schema = \"cim\"", ""), port);
    let cfg = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("api: cannot listen"),
        "{}",
        stderr(&out)
    );
    let written = std::fs::read_to_string(dir.path("events.out")).unwrap();
    assert_eq!(written.lines().count(), 10);
}

//! The face for a person at a terminal: the progress line and the summary
//! tables on a real pseudo-terminal (util-linux's `script`), never when
//! stderr is a pipe; `rulebox alerts` on a run's alerts; `rulebox top`
//! against a running pipeline's `/metrics`.

use std::process::Command;

use rulebox_tests::{
    Scratch, free_port, http, rule_wasm, rulebox, rulebox_bin, spawn_run, stderr, wait_listening,
};

/// A pipeline over `n` generated events: the rule, events and alerts to
/// files; the file source read once.
fn pipeline(dir: &Scratch, n: usize) -> std::path::PathBuf {
    let generator = rulebox_tests::root().join("target/release/gen-events");
    let out = Command::new(generator)
        .args(["--count", &n.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    dir.write("in.ndjson", out.stdout);
    let d = dir.0.display();
    let cfg = format!(
        "data_dir = \"{d}/data\"\n[sources.in]\ntype = \"file\"\npath = \"{d}/in.ndjson\"\n[transforms.t1071]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"t1071\"]\n[sinks.alerts]\ntype = \"file\"\npath = \"{d}/alerts.ndjson\"\ninputs = [\"t1071.alerts\"]\n",
        rule_wasm().display()
    );
    dir.write("rulebox.toml", cfg)
}

#[test]
fn progress_and_tables_on_a_terminal_and_never_in_a_pipe() {
    let dir = Scratch::new("terminal");
    let cfg = pipeline(&dir, 300_000);
    // stderr a pipe: key=value logs only, no progress line, no tables.
    let piped = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert!(piped.status.success(), "{}", stderr(&piped));
    let log = stderr(&piped);
    assert!(!log.contains('\r') && !log.contains("\x1b[2K"), "{log}");
    assert!(
        log.contains("source done") && !log.contains("TRANSFORM"),
        "{log}"
    );

    // A pseudo-terminal: the progress line, then the tables.
    std::fs::remove_dir_all(dir.path("data")).unwrap();
    let cmd = format!("{} run --config {}", rulebox_bin().display(), cfg.display());
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        tty.status.success(),
        "{}",
        String::from_utf8_lossy(&tty.stdout)
    );
    let screen = String::from_utf8_lossy(&tty.stdout).into_owned();
    assert!(screen.contains("\r\x1b[2K"), "{screen:?}");
    let last_progress = screen.split("\r\x1b[2K").nth(1).unwrap_or_default();
    assert!(
        last_progress.contains(" events ") && last_progress.contains('%'),
        "{screen:?}"
    );
    assert!(screen.contains("SOURCE") && screen.contains("TRANSFORM") && screen.contains("SINK"));
    assert!(screen.contains("300,000 events in"), "{screen}");
    assert!(
        !screen.contains("source done"),
        "the summary is a table, not key=value lines"
    );
}

#[test]
fn alerts_are_shown_latest_first_by_risk_then_count() {
    let dir = Scratch::new("terminal-alerts");
    let cfg = pipeline(&dir, 50_000);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = std::fs::read_to_string(dir.path("alerts.ndjson")).unwrap();
    let ids: std::collections::BTreeSet<String> = alerts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert_id"].to_string())
        .collect();
    let shown = rulebox(
        &["alerts", dir.path("alerts.ndjson").to_str().unwrap()],
        None,
    );
    assert!(shown.status.success(), "{}", stderr(&shown));
    let table = String::from_utf8_lossy(&shown.stdout).into_owned();
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(table.starts_with("RISK"), "{table}");
    assert_eq!(rows.len(), ids.len(), "one row per alert_id:\n{table}");
    let rank = |r: &str| match r.split_whitespace().next() {
        Some("HIGH") => 3,
        Some("MEDIUM") => 2,
        Some("LOW") => 1,
        _ => 0,
    };
    let count = |r: &str| -> u64 {
        r.split_whitespace()
            .nth(3)
            .unwrap()
            .replace(',', "")
            .parse()
            .unwrap()
    };
    for pair in rows.windows(2) {
        let (a, b) = (
            (rank(pair[0]), count(pair[0])),
            (rank(pair[1]), count(pair[1])),
        );
        assert!(a >= b, "not sorted by risk then count:\n{table}");
    }
    // Events are not alerts: said on stderr, nothing in the table.
    let events = rulebox(&["alerts", dir.path("out.ndjson").to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&events.stdout).starts_with("no alerts"));
    assert!(
        stderr(&events).contains(" lines not alerts"),
        "{}",
        stderr(&events)
    );
    let missing = rulebox(&["alerts", dir.path("nope.ndjson").to_str().unwrap()], None);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn top_shows_a_running_pipeline_per_component() {
    let dir = Scratch::new("terminal-top");
    let (port, api) = (free_port(), free_port());
    let d = dir.0.display();
    let cfg = format!(
        "data_dir = \"{d}/data\"\n[api]\naddress = \"127.0.0.1:{api}\"\n[sources.web]\ntype = \"http\"\naddress = \"127.0.0.1:{port}\"\n[sinks.out]\ntype = \"file\"\npath = \"{d}/out.ndjson\"\ninputs = [\"web\"]\n"
    );
    let run = spawn_run(&dir.write("rulebox.toml", cfg), &dir.path("run.log"));
    wait_listening(port);
    wait_listening(api);
    let body: String = (0..7).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    assert_eq!(http(port, "POST", "/", &[], body.as_bytes()).0, 200);
    let address = format!("127.0.0.1:{api}");
    let args = [
        "top",
        "--address",
        &address,
        "--interval",
        "0.2",
        "--iterations",
        "2",
    ];
    let top = rulebox(&args, None);
    run.stop();
    assert!(top.status.success(), "{}", stderr(&top));
    let view = String::from_utf8_lossy(&top.stdout).into_owned();
    assert_eq!(
        view.matches("rulebox top").count(),
        2,
        "two readings:\n{view}"
    );
    let source = view.lines().rfind(|l| l.starts_with("source")).unwrap();
    let cells: Vec<&str> = source.split_whitespace().collect();
    assert_eq!(
        cells[1..],
        ["web", "0/s", "0/s", "7", "7", "0", "0"],
        "{view}"
    );
    let sink = view.lines().rfind(|l| l.starts_with("sink")).unwrap();
    assert!(
        sink.contains(" out ") && sink.split_whitespace().nth(5) == Some("7"),
        "{view}"
    );
    // Nothing listening: a clear error.
    let gone = rulebox(&["top", "--address", &address, "--iterations", "1"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(stderr(&gone).contains("[api] address"), "{}", stderr(&gone));
}

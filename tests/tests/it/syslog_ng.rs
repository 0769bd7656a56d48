//! syslog-ng 3.38 from Debian, unpacked beside rsyslog by
//! `scripts/install-syslog-ng.sh` (the two packages conflict), run in the
//! foreground with the bundled `configs/syslog-ng/` files adapted to
//! temporary paths and loopback ports: its `syslog()` destination into
//! rulebox's `syslog` source (`rulebox.toml`), and its `program()`
//! destination running rulebox on a `stdin` source
//! (`rulebox-program.toml`). syslog-ng tails a file of events; every event
//! must come out of rulebox labelled exactly as the same events are when
//! rulebox reads the file itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rulebox_tests::{
    Running, Scratch, free_port, root, rule_wasm, rulebox, rulebox_bin, spawn_run, stderr,
    terminate, wait_for, wait_listening,
};
use serde_json::Value;

/// An internal host's SMB connection to an external address: the rule
/// labels it whatever way it arrives.
const KNOWN_SMB: &str = r#"{"_time":1763700000,"src_ip":"10.20.30.40","dest_ip":"93.184.216.34","dest_port":445,"action":"allowed","transport":"tcp","marker":"known-smb"}"#;

/// The runner `scripts/install-syslog-ng.sh` leaves.
fn syslog_ng() -> PathBuf {
    let p = root().join("target/syslog-ng/syslog-ng");
    assert!(
        p.is_file(),
        "{} is missing: run `bash scripts/install-syslog-ng.sh` (scripts/test.sh does)",
        p.display()
    );
    p
}

fn bundled(name: &str) -> String {
    std::fs::read_to_string(root().join("configs/syslog-ng").join(name)).unwrap()
}

/// `text` with `from` replaced, which must be there: a bundled file that
/// no longer looks as the test expects fails here, not later.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in:\n{text}");
    text.replace(from, to)
}

/// The bundled sample's JSON objects and the known SMB event, one a line.
fn write_events(dir: &Scratch) -> (PathBuf, usize) {
    let sample = std::fs::read_to_string(root().join("configs/sample/events.ndjson")).unwrap();
    let mut lines: Vec<&str> = (sample.lines())
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .collect();
    lines.insert(lines.len() / 2, KNOWN_SMB);
    (
        dir.write("events.jsonl", lines.join("\n") + "\n"),
        lines.len(),
    )
}

/// A bundled rulebox configuration with the scratch folder's paths, its
/// sinks replaced by files (`events.out`, `alerts.out`).
fn adapt_rulebox(text: &str, dir: &Scratch) -> String {
    let text = swap(text, "data_dir = \"../../data/", "data_dir = \"data/");
    let wasm = rule_wasm().display().to_string();
    let text = swap(
        &text,
        "\"../../target/wasm32-wasip1/wasm/rule_t1071_002.wasm\"",
        &format!("\"{wasm}\""),
    );
    let head = text.split("[sinks.").next().unwrap();
    format!(
        "{head}[sinks.events]\ntype = \"file\"\npath = \"{d}/events.out\"\ninputs = [\"t1071\"]\n\n[sinks.alerts]\ntype = \"file\"\npath = \"{d}/alerts.out\"\ninputs = [\"t1071.alerts\"]\n",
        d = dir.0.display()
    )
}

/// The bundled syslog-ng.conf reading `events` instead of an app's log.
fn adapt_syslog_ng(events: &Path) -> String {
    let conf = bundled("syslog-ng.conf");
    swap(
        &conf,
        "file(\"/var/log/app/events.jsonl\"",
        &format!("file(\"{}\"", events.display()),
    )
}

/// Checks `conf` with `syslog-ng -s`, then runs syslog-ng in the
/// foreground with its persist, pid and control files in `dir`.
fn start_syslog_ng(dir: &Scratch, conf: &str) -> Running {
    let path = dir.write("syslog-ng.conf", conf);
    let check = Command::new(syslog_ng())
        .args(["-s", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(check.status.success(), "syslog-ng -s: {}", stderr(&check));
    let log = std::fs::File::create(dir.path("syslog-ng.log")).unwrap();
    let file = |name: &str| dir.path(name).to_str().unwrap().to_string();
    Command::new(syslog_ng())
        .args(["-F", "--no-caps", "-f", &file("syslog-ng.conf")])
        .args([
            "-R",
            &file("syslog-ng.persist"),
            "-p",
            &file("syslog-ng.pid"),
        ])
        .args(["-c", &file("syslog-ng.ctl")])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .map(Running)
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// What rulebox makes of `events` read from the file itself, with the
/// same (adapted) configuration but a `file` source: the events, sorted.
/// `name` names its scratch folder: each test its own, as the tests run
/// at once in one process (a shared folder let one test's reference run
/// write into the other's).
fn through_a_file_source(name: &str, config: &str, source: &str, events: &Path) -> Vec<String> {
    let dir = Scratch::new(&format!("{name}-ref"));
    let text = adapt_rulebox(config, &dir);
    let at = text.find(&format!("[sources.{source}]")).unwrap();
    let end = at + text[at..].find("\n\n").unwrap();
    let file_source = format!(
        "[sources.{source}]\ntype = \"file\"\npath = \"{}\"",
        events.display()
    );
    let text = format!("{}{file_source}{}", &text[..at], &text[end..]);
    let p = dir.write("p.toml", text);
    let out = rulebox(&["run", "--config", p.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut events = lines(&dir.path("events.out"));
    events.sort();
    events
}

/// Every event came out once, labelled as through a file source; the known
/// SMB connection as external SMB, counted.
fn check(mut got: Vec<String>, want: &[String], n: usize, diag: &dyn Fn() -> String) {
    assert_eq!(got.len(), n, "{}", diag());
    got.sort();
    assert!(got == want, "not what a file source gives; {}", diag());
    let known: Vec<Value> = (got.iter())
        .filter(|l| l.contains("\"marker\":\"known-smb\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(known.len(), 1, "{known:?}");
    assert_eq!(
        known[0]["t1071"],
        serde_json::json!({"protocol": "SMB", "external": true, "counted": true})
    );
}

fn read_logs(dir: &Path, names: &[&str]) -> String {
    (names.iter())
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(n)).unwrap_or_default();
            format!("--- {n}:\n{text}")
        })
        .collect()
}

/// The bundled `syslog()` destination (RFC 5424 over TCP, octet-counted)
/// into the bundled `rulebox.toml`'s `syslog` source.
#[test]
fn syslog_ng_sends_syslog_to_rulebox_and_every_event_is_labelled() {
    let dir = Scratch::new("syslog-ng-syslog");
    let (events, n) = write_events(&dir);
    let port = free_port();
    let bundled_rulebox = bundled("rulebox.toml");
    let rb = swap(
        &adapt_rulebox(&bundled_rulebox, &dir),
        "address = \"127.0.0.1:10514\"",
        &format!("address = \"127.0.0.1:{port}\""),
    );
    let mut rulebox = spawn_run(&dir.write("rulebox.toml", rb), &dir.path("rulebox.log"));
    wait_listening(port);
    let conf = swap(
        &adapt_syslog_ng(&events),
        "syslog(\"127.0.0.1\" port(10514)",
        &format!("syslog(\"127.0.0.1\" port({port})"),
    );
    let sng = start_syslog_ng(&dir, &conf);
    let diag = || read_logs(&dir.0, &["syslog-ng.log", "rulebox.log"]);
    let out = dir.path("events.out");
    wait_for(
        "every event through syslog-ng",
        Duration::from_secs(60),
        || lines(&out).len() >= n,
    );
    sng.stop();
    assert!(terminate(&mut rulebox.0).success(), "{}", diag());
    let want = through_a_file_source("syslog-ng-syslog", &bundled_rulebox, "syslog_ng", &events);
    check(lines(&out), &want, n, &diag);
}

/// Processes whose command line holds `needle`, not yet exited (zombies
/// left to an init that does not reap them are done).
fn running_with(needle: &str) -> Vec<u32> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    (procs.flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(')')
                .is_some_and(|(_, s)| s.trim_start().starts_with('Z'));
            !zombie && String::from_utf8_lossy(&cmd).contains(needle)
        })
        .collect()
}

/// The bundled `program()` alternative: syslog-ng runs rulebox with the
/// bundled `rulebox-program.toml` (a `stdin` source) and writes each message
/// on its stdin.
#[test]
fn syslog_ng_runs_rulebox_as_its_program_and_every_event_is_labelled() {
    let dir = Scratch::new("syslog-ng-program");
    let (events, n) = write_events(&dir);
    let bundled_rulebox = bundled("rulebox-program.toml");
    let rb = dir.write(
        "rulebox-program.toml",
        adapt_rulebox(&bundled_rulebox, &dir),
    );
    let command = format!(
        "{} run --config {} --log-file {}",
        rulebox_bin().display(),
        rb.display(),
        dir.path("rulebox.log").display()
    );
    let conf = adapt_syslog_ng(&events);
    let conf = swap(
        &conf,
        "log { source(s_json); destination(d_rulebox); };\n",
        "",
    );
    let conf = swap(
        &conf,
        "# destination d_rulebox_prog",
        "destination d_rulebox_prog",
    );
    let conf = swap(&conf, "# log { source(s_json)", "log { source(s_json)");
    let conf = swap(
        &conf,
        "/usr/local/bin/rulebox run --config /etc/rulebox/rulebox-program.toml",
        &command,
    );
    let sng = start_syslog_ng(&dir, &conf);
    let diag = || read_logs(&dir.0, &["syslog-ng.log", "rulebox.log"]);
    let out = dir.path("events.out");
    wait_for(
        "every event through syslog-ng",
        Duration::from_secs(60),
        || lines(&out).len() >= n,
    );
    sng.stop();
    // syslog-ng stops its program with SIGTERM: rulebox saves its state
    // and exits on its own (within 10 s of the signal).
    let config = rb.display().to_string();
    let start = Instant::now();
    while !running_with(&config).is_empty() && start.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = running_with(&config);
    for pid in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "rulebox outlived syslog-ng: {}", diag());
    let want = through_a_file_source("syslog-ng-program", &bundled_rulebox, "syslog_ng", &events);
    check(lines(&out), &want, n, &diag);
}

//! What survives a restart: plugin state saved at SIGTERM and restored,
//! damaged state set aside, and file checkpoints that make `kill -9` at any
//! moment lose nothing.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rulebox_tests::{
    Scratch, rule_pipeline, rulebox, rulebox_bin, stderr, terminate, unsplice, wait_for,
};
use serde_json::Value;

fn spawn(cfg: &std::path::Path) -> Child {
    Command::new(rulebox_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .unwrap()
}

fn alerts(dir: &Scratch) -> Vec<Value> {
    std::fs::read_to_string(dir.path("alerts.out"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

const SMB: &str = r#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":445,"action":"allowed","_time":1700000000}"#;

/// A followed file (checkpointed by default) and the rule with a day window.
fn follow_config(dir: &Scratch, input: &std::path::Path, follow: bool) -> std::path::PathBuf {
    let cfg = rule_pipeline(
        &dir.0,
        input,
        "schema = \"cim\"\nwindow_secs = 86400",
        "flush_interval_secs = 3600",
    )
    .replacen(
        "type = \"file\"\npath = \"",
        &format!("type = \"file\"\nfollow = {follow}\ncheckpoint = true\npoll_interval_ms = 50\npath = \""),
        1,
    );
    dir.write(&format!("p-{follow}.toml"), cfg)
}

#[test]
fn sigterm_saves_the_window_and_the_restart_continues_it() {
    let dir = Scratch::new("persist");
    let input = dir.write("in.ndjson", "");
    let mut child = spawn(&follow_config(&dir, &input, true));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    for _ in 0..2 {
        writeln!(f, "{SMB}").unwrap();
    }
    f.flush().unwrap();
    let lines = |p: &str| {
        std::fs::read_to_string(dir.path(p))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait_for("2 events out", Duration::from_secs(20), || {
        lines("events.out") == 2
    });
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(
        alerts(&dir).is_empty(),
        "2 connections: no alert, and no final flush at SIGTERM"
    );
    let state = dir.path("data/state/rule.snapshot");
    assert!(state.exists(), "the window is saved");

    // Two more connections arrive while rulebox is down.
    for _ in 0..2 {
        writeln!(f, "{SMB}").unwrap();
    }
    f.flush().unwrap();
    // The restart reads to the end of the file this time, so it flushes.
    let out = rulebox(
        &[
            "run",
            "--config",
            follow_config(&dir, &input, false).to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restored plugin state"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("resuming from checkpoint"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        lines("events.out"),
        4,
        "each event once: the checkpoint resumed after the first two"
    );
    let a = alerts(&dir);
    assert_eq!(a.len(), 1, "2 before + 2 after the restart > 3: {a:?}");
    assert_eq!(a[0]["status"], "final");
    assert_eq!(a[0]["connection_count"], 4);
    assert!(
        !state.exists(),
        "the saved state is used up by the final flush"
    );
}

#[test]
fn a_damaged_snapshot_is_set_aside_and_the_run_goes_on() {
    let dir = Scratch::new("bad-state");
    let input = dir.write("in.ndjson", format!("{SMB}\n{SMB}\n{SMB}\n{SMB}\n"));
    let cfg = dir.write(
        "p.toml",
        rule_pipeline(&dir.0, &input, "schema = \"cim\"", ""),
    );
    std::fs::create_dir_all(dir.path("data/state")).unwrap();
    // Damaged at the host's level (bad checksum) and at the plugin's (a
    // valid envelope around bytes the rule does not accept).
    for (i, state) in [
        b"RBSTATE1 garbage".to_vec(),
        envelope(b"not the rule's format"),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(dir.path("data/state/rule.snapshot"), &state).unwrap();
        let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "case {i}: reported as an error exit: {err}"
        );
        assert!(
            err.contains("saved state cannot be used: set aside"),
            "case {i}: {err}"
        );
        let aside: Vec<_> = std::fs::read_dir(dir.path("data/state"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("rule.snapshot.rejected-"))
            .collect();
        assert!(!aside.is_empty(), "case {i}: kept for inspection");
        let events = std::fs::read_to_string(dir.path("events.out")).unwrap();
        assert_eq!(
            events.lines().count(),
            4 * (i + 1),
            "case {i}: every event out"
        );
        let a = alerts(&dir);
        assert_eq!(
            a.len(),
            i + 1,
            "case {i}: the run went on and alerted: {a:?}"
        );
        assert_eq!(a[i]["connection_count"], 4);
    }
}

/// The host's snapshot envelope around `state` (see `rulebox::durable`).
fn envelope(state: &[u8]) -> Vec<u8> {
    rulebox::durable::snapshot::encode(state)
}

#[test]
fn kill_9_at_random_moments_loses_no_event() {
    const N: usize = 1_000_000;
    let dir = Scratch::new("kill9");
    // Generated events, each numbered so its copies can be found again.
    let lines: Vec<String> = rulebox_bench::sample(N, 7, 1_763_683_200_000)
        .into_iter()
        .enumerate()
        .map(|(i, l)| match l.strip_prefix('{') {
            Some(rest) => format!("{{\"seq\":{i},{rest}"),
            None => format!("{{\"seq\":{i},\"msg\":{}}}", Value::String(l)),
        })
        .collect();
    let mut input = Vec::with_capacity(N * 500);
    for l in &lines {
        input.extend_from_slice(l.as_bytes());
        input.push(b'\n');
    }
    let input_path = dir.write("in.ndjson", &input);
    drop(input);
    let cfg = rule_pipeline(&dir.0, &input_path, "", "").replacen(
        "type = \"file\"\npath = \"",
        "type = \"file\"\ncheckpoint = true\ncheckpoint_interval_ms = 100\npath = \"",
        1,
    );
    let cfg = dir.write("p.toml", cfg);

    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut kills = 0;
    for _ in 0..10 {
        let mut child = spawn(&cfg);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 450));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        kills >= 5,
        "only {kills} runs were killed mid-way: the test did not test"
    );

    let got = std::fs::read(dir.path("events.out")).unwrap();
    let mut seen = vec![0u32; N];
    let mut torn = 0;
    for line in got.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        let seq = line
            .strip_prefix(b"{\"seq\":")
            .and_then(|r| r.split(|&c| c == b',').next())
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<usize>().ok())
            .filter(|&s| s < N);
        // A copy counts only if it is the whole event (the last line a
        // killed run was writing can be cut short).
        match seq {
            Some(s) if unsplice(line) == lines[s].as_bytes() => seen[s] += 1,
            _ => torn += 1,
        }
    }
    let missing: Vec<usize> = (0..N).filter(|&i| seen[i] == 0).take(5).collect();
    let dups: u64 = seen.iter().map(|&c| c.saturating_sub(1) as u64).sum();
    eprintln!("kill -9: {kills} kills, {dups} duplicate events, {torn} cut lines");
    assert!(missing.is_empty(), "events lost, e.g. {missing:?}");
    assert!(torn <= kills, "at most one cut line per kill, got {torn}");
    // Duplicates are bounded: per kill, what was in flight plus one interval.
    assert!(dups <= kills as u64 * 200_000, "{dups} duplicates");
}

/// rsyslog running rulebox as mmexternal closes the pipe when it stops or
/// restarts: that end of input saves the window (as SIGTERM does), so 3 + 3
/// connections across a restart make one alert of 6.
#[test]
fn an_mmexternal_parent_closing_the_pipe_keeps_the_window() {
    let dir = Scratch::new("mm-eof");
    let cfg = |on_eof: &str| {
        format!(
            "data_dir = \"{data}\"\n[sources.in]\ntype = \"stdin\"\nprotocol = \"mmexternal\"\n{on_eof}\n[transforms.rule]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{wasm}\"\n[transforms.rule.config]\nschema = \"cim\"\n[sinks.answers]\ntype = \"stdout\"\nprotocol = \"mmexternal\"\ninputs = [\"rule\"]\n[sinks.alerts]\ntype = \"file\"\npath = \"{alerts}\"\ninputs = [\"rule.alerts\"]\n",
            data = dir.path("data").display(),
            wasm = rulebox_tests::rule_wasm().display(),
            alerts = dir.path("alerts.out").display(),
        )
    };
    let three = format!("{SMB}\n{SMB}\n{SMB}\n");
    let restart = dir.write("restart.toml", cfg(""));
    let out = rulebox(
        &["run", "--config", restart.to_str().unwrap()],
        Some(three.as_bytes()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert!(
        dir.path("data/state/rule.snapshot").exists(),
        "state saved at the end of input"
    );
    assert!(alerts(&dir).is_empty(), "no final alert yet");
    // The last run ends its input for good: the final flush.
    let last = dir.write("last.toml", cfg("on_eof = \"end\""));
    let out = rulebox(
        &["run", "--config", last.to_str().unwrap()],
        Some(three.as_bytes()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let a = alerts(&dir);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["connection_count"], 6);
    assert_eq!(a[0]["status"], "final");
}

/// Two instances on one data_dir would share checkpoints and saved state:
/// the second is refused, naming the first.
#[test]
fn a_second_instance_on_the_same_data_dir_is_refused() {
    let dir = Scratch::new("lock");
    let input = dir.write("in.ndjson", "");
    let cfg = follow_config(&dir, &input, true);
    let mut first = spawn(&cfg);
    let lock = dir.path("data/rulebox.lock");
    wait_for("the lock", Duration::from_secs(20), || {
        std::fs::read_to_string(&lock).is_ok_and(|t| !t.is_empty())
    });
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let pid = first.id().to_string();
    assert!(
        stderr(&out).contains(&format!("is in use by another rulebox (pid {pid})")),
        "{}",
        stderr(&out)
    );
    let status = terminate(&mut first);
    assert!(status.success());
    // Released with the process: a new instance runs.
    let mut again = spawn(&cfg);
    std::thread::sleep(Duration::from_millis(500));
    assert!(again.try_wait().unwrap().is_none(), "the lock was released");
    terminate(&mut again);
}

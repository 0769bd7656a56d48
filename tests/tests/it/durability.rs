//! What survives a restart: plugin state saved at SIGTERM and restored,
//! damaged state set aside, and file checkpoints that make `kill -9` at any
//! moment lose nothing.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    rulebox::durable::snapshot::encode(state, &[])
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

/// A HEC source into a `tcp` sink with a disk buffer whose receiver is
/// down (`buffer` holds the sink's extra keys).
fn disk_buffered(dir: &Scratch, hec: u16, down: u16, buffer: &str) -> std::path::PathBuf {
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{hec}\"\ntokens = [\"t\"]\n[sinks.out]\ntype = \"tcp\"\naddress = \"127.0.0.1:{down}\"\ninputs = [\"hec\"]\nretry = {{ initial_ms = 50, max_ms = 200, shutdown_grace_secs = 1 }}\nbuffer = {{ type = \"disk\"{buffer} }}\n",
        data = dir.path("data").display(),
    );
    dir.write("p.toml", cfg)
}

/// `count` HEC events `{"n":k}` from `from`, in one request: its status.
fn post_events(port: u16, from: usize, count: usize, pad: usize) -> u16 {
    let pad = "p".repeat(pad);
    let body: String = (from..from + count)
        .map(|k| format!(r#"{{"event":{{"n":{k},"pad":"{pad}"}}}}"#))
        .collect();
    let auth = [("Authorization", "Splunk t")];
    rulebox_tests::http(
        port,
        "POST",
        "/services/collector/event",
        &auth,
        body.as_bytes(),
    )
    .0
}

/// Issue 19, item 11: with a disk buffer a shipper is answered once its
/// events are queued on disk, though the receiver is down (with the
/// memory buffer it waits for the delivery); what is queued at SIGTERM
/// stays there, and the next start delivers every event once, in order.
#[test]
fn a_disk_buffer_answers_once_queued_and_delivers_across_a_restart() {
    use std::io::{BufRead, BufReader};
    let dir = Scratch::new("disk-buffer");
    let (hec, down) = (rulebox_tests::free_port(), rulebox_tests::free_port());
    let cfg = disk_buffered(&dir, hec, down, "");
    let mut child = rulebox_tests::spawn_run(&cfg, &dir.path("log"));
    rulebox_tests::wait_listening(hec);
    for r in 0..20 {
        let asked = Instant::now();
        assert_eq!(post_events(hec, r * 50, 50, 0), 200);
        let took = asked.elapsed();
        assert!(took < Duration::from_secs(3), "answered after {took:?}");
    }
    let status = terminate(&mut child.0);
    let log = std::fs::read_to_string(dir.path("log")).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let kept = rulebox_tests::counter_on(&log, "sink done", "spooled");
    assert_eq!(kept, Some(1000), "{log}");

    let listener = std::net::TcpListener::bind(("127.0.0.1", down)).unwrap();
    let got = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut lines = Vec::new();
        for l in BufReader::new(conn).lines() {
            lines.push(l.unwrap());
            if lines.len() == 1000 {
                break;
            }
        }
        lines
    });
    let child = rulebox_tests::spawn_run(&cfg, &dir.path("log2"));
    rulebox_tests::wait_for("delivered", Duration::from_secs(30), || got.is_finished());
    child.stop();
    let got = got.join().unwrap();
    let log2 = std::fs::read_to_string(dir.path("log2")).unwrap();
    let want: Vec<String> = (0..1000)
        .map(|k| format!(r#"{{"n":{k},"pad":""}}"#))
        .collect();
    assert_eq!(got, want, "{log2}");
    let unspooled = rulebox_tests::counter_on(&log2, "sink done", "unspooled");
    assert_eq!(unspooled, Some(1000), "{log2}");
}

/// A full disk buffer with `when_full = "drop_newest"` drops new events
/// (counted) and keeps answering; every event is either queued or
/// counted as dropped.
#[test]
fn a_full_disk_buffer_drops_the_newest_when_told_to() {
    let dir = Scratch::new("disk-buffer-full");
    let (hec, down) = (rulebox_tests::free_port(), rulebox_tests::free_port());
    let extra = ", max_bytes = 1048576, when_full = \"drop_newest\"";
    let cfg = disk_buffered(&dir, hec, down, extra);
    let mut child = rulebox_tests::spawn_run(&cfg, &dir.path("log"));
    rulebox_tests::wait_listening(hec);
    // 30 requests of 100 events of ~1 KB: about three times the bound.
    for r in 0..30 {
        assert_eq!(post_events(hec, r * 100, 100, 1000), 200);
    }
    let status = terminate(&mut child.0);
    let log = std::fs::read_to_string(dir.path("log")).unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    let c = |name| rulebox_tests::counter_on(&log, "sink done", name).unwrap();
    assert!(c("buffer_dropped") >= 1000, "{log}");
    assert_eq!(c("spooled") + c("buffer_dropped"), 3000, "{log}");
    assert!(log.contains("disk buffer full"), "{log}");
    let queued: u64 = std::fs::read_dir(dir.path("data/spool/out"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(queued <= 1100 * 1024, "{queued} bytes queued");
}

/// Issue 19, item 11: when the indexer refuses rulebox's own token, the
/// shipper used to see a plain `503 Server is busy`; it now reads what is
/// wrong (still 503 with HEC's busy code, so it keeps its events), and the
/// log says it at the default level. The indexer here is a second rulebox
/// whose HEC source answers as Splunk does (403, code 4).
#[test]
fn a_refused_delivery_is_answered_with_its_reason() {
    let dir = Scratch::new("refused-token");
    let (front, indexer) = (rulebox_tests::free_port(), rulebox_tests::free_port());
    let back = format!(
        "data_dir = \"{data}\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{indexer}\"\ntokens = [\"right\"]\n[sinks.out]\ntype = \"null\"\ninputs = [\"hec\"]\n",
        data = dir.path("data-back").display(),
    );
    let front_cfg = format!(
        "data_dir = \"{data}\"\n[sources.hec]\ntype = \"splunk_hec\"\naddress = \"127.0.0.1:{front}\"\ntokens = [\"t\"]\n[sinks.splunk]\ntype = \"splunk_hec\"\nendpoint = \"http://127.0.0.1:{indexer}\"\ntoken = \"wrong\"\ninputs = [\"hec\"]\n",
        data = dir.path("data-front").display(),
    );
    let back = rulebox_tests::spawn_run(&dir.write("back.toml", back), &dir.path("back.log"));
    let front_cfg = dir.write("front.toml", front_cfg);
    let front_run = rulebox_tests::spawn_run(&front_cfg, &dir.path("front.log"));
    rulebox_tests::wait_listening(indexer);
    rulebox_tests::wait_listening(front);
    let auth = [("Authorization", "Splunk t")];
    let body = br#"{"event":{"n":1}}"#;
    let (status, text) =
        rulebox_tests::http(front, "POST", "/services/collector/event", &auth, body);
    front_run.stop();
    back.stop();
    let log = std::fs::read_to_string(dir.path("front.log")).unwrap();
    assert_eq!(status, 503, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["code"], 9, "{text}");
    let said = answer["text"].as_str().unwrap();
    assert!(
        said.contains("403") && said.contains("Invalid token"),
        "{said}"
    );
    assert!(!said.contains(&indexer.to_string()), "no address: {said}");
    assert!(
        log.contains("ERROR") && log.contains("events not delivered"),
        "{log}"
    );
}

/// Issue 19, item 10: `kill -9` in the middle of a day window. The rule's
/// state is checkpointed while it runs, with the file position it covers;
/// the restart restores it and reads the file again from there, replaying
/// into the rule (not into the sinks) what was already written. The final
/// alert is the one an uninterrupted run gives, and every event is
/// written once.
#[test]
fn kill_9_in_a_window_keeps_it_and_the_final_alert_is_whole() {
    let dir = Scratch::new("kill9-window");
    let input = dir.write("in.ndjson", "");
    let cfg = |follow: bool| {
        let c = std::fs::read_to_string(follow_config(&dir, &input, follow)).unwrap();
        let c = c.replacen(
            "flush_interval_secs = 3600",
            "flush_interval_secs = 3600\ncheckpoint_interval_secs = 1",
            1,
        );
        dir.write(&format!("k-{follow}.toml"), c)
    };
    let smb = |i: u64| SMB.replace("1700000000", &(1_700_000_000 + i * 60).to_string());
    let lines = |p: &str| {
        std::fs::read_to_string(dir.path(p))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    let mut child = spawn(&cfg(true));
    for i in 0..5 {
        writeln!(f, "{}", smb(i)).unwrap();
    }
    f.flush().unwrap();
    wait_for("5 events out", Duration::from_secs(20), || {
        lines("events.out") == 5
    });
    let state = dir.path("data/state/rule.snapshot");
    wait_for("a state checkpoint", Duration::from_secs(20), || {
        state.exists()
    });
    for i in 5..8 {
        writeln!(f, "{}", smb(i)).unwrap();
    }
    f.flush().unwrap();
    wait_for("8 events out", Duration::from_secs(20), || {
        lines("events.out") == 8
    });
    // The checkpoint is written every second: once it covers the 8, the
    // only copy of the 3 newest is in the rule's memory.
    let len = std::fs::metadata(&input).unwrap().len();
    let cp = dir.path("data/checkpoints/in.json");
    wait_for("the checkpoint", Duration::from_secs(20), || {
        std::fs::read_to_string(&cp).is_ok_and(|c| c.contains(&format!("\"offset\":{len}")))
    });
    child.kill().unwrap();
    let _ = child.wait();
    assert!(alerts(&dir).is_empty(), "the window is still open");

    // Two more connections arrive while rulebox is down; the restart reads
    // to the end and flushes.
    for i in 8..10 {
        writeln!(f, "{}", smb(i)).unwrap();
    }
    f.flush().unwrap();
    let out = rulebox(&["run", "--config", cfg(false).to_str().unwrap()], None);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("restored plugin state"), "{log}");
    assert_eq!(lines("events.out"), 10, "each event written once:\n{log}");
    let a = alerts(&dir);
    assert_eq!(a.len(), 1, "{a:?}\n{log}");
    assert_eq!(a[0]["status"], "final");
    assert_eq!(a[0]["connection_count"], 10, "{log}");
}

/// The T1048 rule's windows survive a restart too: bytes sent before and
/// after it add up to one alert.
#[test]
fn the_t1048_rule_keeps_its_byte_sums_across_a_restart() {
    let dir = Scratch::new("persist-t1048");
    let input = dir.write("in.ndjson", "");
    let config = |follow: bool| {
        let p = follow_config(&dir, &input, follow);
        let text = std::fs::read_to_string(&p).unwrap();
        let text = text
            .replace(
                &rulebox_tests::rule_wasm().display().to_string(),
                &rulebox_tests::t1048_wasm().display().to_string(),
            )
            .replace("window_secs = 86400", "window_secs = 120");
        dir.write(&format!("t1048-{follow}.toml"), text)
    };
    let send = |bytes: u64| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        let line = SMB.replace("\"action\"", &format!("\"bytes_out\":{bytes},\"action\""));
        writeln!(f, "{line}").unwrap();
    };
    let mut child = spawn(&config(true));
    send(600_000_000);
    wait_for("1 event out", Duration::from_secs(20), || {
        std::fs::read_to_string(dir.path("events.out")).is_ok_and(|t| t.lines().count() == 1)
    });
    assert!(terminate(&mut child).success());
    assert!(alerts(&dir).is_empty(), "600 MB: under the threshold");
    assert!(dir.path("data/state/rule.snapshot").exists());

    send(470_000_001);
    let out = rulebox(&["run", "--config", config(false).to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("restored plugin state"),
        "{}",
        stderr(&out)
    );
    let a = alerts(&dir);
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["rule"], "T1048");
    assert_eq!(a[0]["connection_count"], 2);
    assert_eq!(a[0]["bytes_sent"], 1_070_000_001u64);
}

/// A folder in a disk buffer's spool named like a queued body is left
/// alone: it used to be read, fail, and be tried again at once, a loop
/// that never yielded, so the sink spun a core and the run ignored
/// SIGTERM. The run now delivers its events and ends.
#[test]
fn a_stranger_in_the_spool_named_like_a_body_is_left_alone() {
    let dir = Scratch::new("spool-stranger");
    let receiver = rulebox_bench::hec::Receiver::start("t", 0);
    let stranger = dir.path("data/spool/out/00000000000000000001-0000000001-5.body");
    std::fs::create_dir_all(&stranger).unwrap();
    let sink_keys = "buffer = { type = \"disk\" }\n";
    let cfg = rulebox_tests::numbered_into_hec(&dir, 10, &receiver.address, "", sink_keys);
    let mut run = rulebox_tests::spawn_run(&cfg, &dir.path("log"));
    let log = || std::fs::read_to_string(dir.path("log")).unwrap_or_default();
    wait_for("the run to end", Duration::from_secs(30), || {
        run.0.try_wait().unwrap().is_some()
    });
    assert_eq!(run.0.wait().unwrap().code(), Some(0), "{}", log());
    assert_eq!(receiver.count(), 10, "{}", log());
    assert!(stranger.is_dir(), "left in place");
}

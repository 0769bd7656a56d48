//! Hostile plugins, written in WAT, each run by the real `rulebox` binary
//! over a real pipeline. Every test checks the books balance: events in =
//! events out + dead-lettered + dropped, whatever the plugin did.

use std::time::{Duration, Instant};

use rulebox_bench::wat::Wat;
use rulebox_tests::{
    Scratch, rulebox, rulebox_bin, stderr, strip_ansi, summary_counter, terminate, wait_for,
};
use serde_json::Value;

const EVENTS: usize = 3000;

fn event(i: usize) -> String {
    format!(r#"{{"n":{i},"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21}}"#)
}

struct Run {
    dir: Scratch,
    stderr: String,
    code: Option<i32>,
    took: Duration,
}

impl Run {
    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.path(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn counter(&self, name: &str) -> u64 {
        summary_counter(&self.stderr, name)
            .unwrap_or_else(|| panic!("no counter {name} in: {}", self.stderr))
    }

    /// Events in = out + dead-lettered + dropped, and the files agree.
    fn books_balance(&self) {
        let c = |n| self.counter(n);
        assert_eq!(c("events_in"), EVENTS as u64, "{}", self.stderr);
        assert_eq!(
            c("events_in"),
            c("events_out") + c("dead_lettered") + c("dropped") + c("error_dropped"),
            "{}",
            self.stderr
        );
        assert_eq!(self.lines("events.out").len() as u64, c("events_out"));
        assert_eq!(self.lines("dead.out").len() as u64, c("dead_lettered"));
    }

    fn peak_rss_mib(&self) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("peak_rss_kib"))
            .unwrap();
        let at = line.find("peak_rss_kib").unwrap();
        let digits: String = line[at..]
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u64>().unwrap() / 1024
    }
}

/// Runs `plugin` over EVENTS events in batches of 500, with a 50 ms
/// deadline, no back-off (so failures in a row are deterministic) and
/// quarantine after 3 failures in a row.
fn run(name: &str, plugin: &Wat, transform_extra: &str) -> Run {
    let dir = Scratch::new(&format!("hostile-{name}"));
    let wasm = dir.write("plugin.wat", plugin.text());
    let input: String = (0..EVENTS).map(|i| event(i) + "\n").collect();
    let input = dir.write("in.ndjson", input);
    let dead_sink = if transform_extra.contains("dead_letter") {
        format!(
            "[sinks.dead]\ntype = \"file\"\npath = \"{}\"\ninputs = [\"p.dead_letter\"]\n",
            dir.path("dead.out").display()
        )
    } else {
        String::new()
    };
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.in]
type = "file"
path = "{input}"
batch_max_events = 500

[transforms.p]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
{deadline}
{backoff}
quarantine_after = 3
{transform_extra}

[sinks.events]
type = "file"
path = "{events}"
inputs = ["p"]

{dead_sink}"#,
        data = dir.path("data").display(),
        input = input.display(),
        wasm = wasm.display(),
        deadline = if transform_extra.contains("deadline_ms") {
            ""
        } else {
            "deadline_ms = 50"
        },
        backoff = if transform_extra.contains("restart_backoff_ms") {
            ""
        } else {
            "restart_backoff_ms = 0"
        },
        events = dir.path("events.out").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let start = Instant::now();
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let took = start.elapsed();
    // For the record (visible with --nocapture).
    eprintln!(
        "hostile {name}: exit {:?}, {:?} wall, {}",
        out.status.code(),
        took,
        strip_ansi(&stderr(&out))
            .lines()
            .filter(|l| l.contains("transform done")
                || l.contains("summary")
                || l.contains("fresh plugin")
                || l.contains("call failed")
                || l.contains("quarantined"))
            .map(|l| l.chars().take(400).collect::<String>())
            .collect::<Vec<_>>()
            .join("\n    ")
    );
    Run {
        stderr: strip_ansi(&stderr(&out)),
        code: out.status.code(),
        took,
        dir,
    }
}

/// Every event out, in order, untouched but for the error tag.
fn assert_tagged(r: &Run, reasons: &[&str]) {
    let lines = r.lines("events.out");
    assert_eq!(lines.len(), EVENTS);
    for (i, l) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["n"], i, "order kept");
        let reason = v["rulebox_error"]["reason"].as_str().unwrap_or("none");
        assert!(reasons.contains(&reason), "event {i}: reason {reason}");
        assert_eq!(v["rulebox_error"]["transform"], "p");
        let orig = event(i);
        assert!(
            l.starts_with(&orig[..orig.len() - 1]),
            "original bytes kept"
        );
    }
}

#[test]
fn an_endless_loop_in_process_hits_the_deadline_then_the_plugin_is_quarantined() {
    let p = Wat {
        process: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let r = run("loop", &p, "");
    r.books_balance();
    assert_tagged(&r, &["deadline", "backing_off", "quarantined"]);
    assert_eq!(r.counter("plugin_failures"), 3, "{}", r.stderr);
    assert_eq!(r.counter("quarantined"), 1);
    assert_eq!(r.counter("unprocessed"), EVENTS as u64);
    assert!(r.stderr.contains("plugin quarantined"), "{}", r.stderr);
    assert_eq!(
        r.code,
        Some(1),
        "a quarantine is reported in the exit status"
    );
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
}

#[test]
fn failures_in_a_row_back_off_before_the_next_fresh_instance() {
    let p = Wat {
        process: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let r = run("backoff", &p, "restart_backoff_ms = 60000");
    r.books_balance();
    // The first failure restarts at once, the second waits a minute: the
    // rest of the input goes on meanwhile, unprocessed and tagged.
    assert_eq!(r.counter("plugin_failures"), 2, "{}", r.stderr);
    assert_eq!(r.counter("restarts"), 1);
    assert_eq!(r.counter("quarantined"), 0);
    let lines = r.lines("events.out");
    for (i, want) in [
        (0, "deadline"),
        (500, "deadline"),
        (1000, "backing_off"),
        (2999, "backing_off"),
    ] {
        let v: Value = serde_json::from_str(&lines[i]).unwrap();
        assert_eq!(v["rulebox_error"]["reason"], want, "event {i}");
    }
    assert!(
        r.took < Duration::from_secs(10),
        "no waiting on the hot path: {:?}",
        r.took
    );
}

#[test]
fn dead_letters_carry_the_event_and_the_reason() {
    let p = Wat {
        process: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let r = run("dead", &p, "on_error = \"dead_letter\"");
    r.books_balance();
    assert!(r.lines("events.out").is_empty());
    let dead = r.lines("dead.out");
    assert_eq!(dead.len(), EVENTS);
    for (i, l) in dead.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["event"], event(i), "the original event, exactly");
        assert_eq!(v["transform"], "p");
        assert!(
            v["reason"] == "deadline"
                || v["reason"] == "backing_off"
                || v["reason"] == "quarantined",
            "{v}"
        );
    }
    let first: Value = serde_json::from_str(&dead[0]).unwrap();
    assert!(
        first["error"].as_str().unwrap().contains("deadline"),
        "{first}"
    );
    // drop: counted, nothing written.
    let r = run("drop", &p, "on_error = \"drop\"");
    r.books_balance();
    assert_eq!(r.counter("error_dropped"), EVENTS as u64);
}

#[test]
fn a_poison_event_costs_one_batch_and_the_fresh_instance_goes_on() {
    // Traps when the batch's first event is event 1000 (the third batch).
    let p = Wat {
        process: r#"(if (i32.eq (i32.load (i32.add (local.get $p) (i32.const 5))) (i32.const 0x30303031)) (then unreachable)) (call $pass (local.get $n))"#,
        ..Wat::default()
    };
    let r = run("poison", &p, "");
    r.books_balance();
    assert_eq!(r.counter("plugin_failures"), 1);
    assert_eq!(r.counter("restarts"), 1);
    assert_eq!(r.counter("quarantined"), 0);
    assert_eq!(r.counter("unprocessed"), 500, "just the poisoned batch");
    let lines = r.lines("events.out");
    assert!(
        lines[1000].contains(r#""rulebox_error":{"transform":"p","reason":"trap"}"#),
        "{}",
        lines[1000]
    );
    assert_eq!(
        lines[1500],
        event(1500),
        "later batches are processed again"
    );
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

#[test]
fn sleeping_or_spinning_in_host_calls_does_not_hold_the_worker() {
    // poll_oneoff is how a wasip1 guest sleeps: denied at once, so the
    // plugin spins on it (and on sched_yield) until the deadline.
    let p = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (import "rulebox" "log" (func $log (param i32 i32 i32)))
  (data (i32.const 900) "SPAM")"#,
        process: "(loop $l (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128))) (drop (call $yield)) (call $log (i32.const 2) (i32.const 900) (i32.const 4)) (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let r = run("sleep", &p, "");
    r.books_balance();
    assert_eq!(r.counter("plugin_failures"), 3, "{}", r.stderr);
    assert!(r.took < Duration::from_secs(10), "took {:?}", r.took);
    // The log calls were rate-limited, not one line per call.
    let logged = r.stderr.lines().filter(|l| l.contains("SPAM")).count();
    assert!(logged > 0 && logged <= 3 * 32, "{logged} plugin log lines");
}

#[test]
fn an_endless_loop_in_tick_is_stopped_and_events_keep_flowing() {
    let p = Wat {
        tick: "(loop $l (br $l)) (i64.const 0)",
        flush: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let r = run("tick", &p, "flush_interval_secs = 1");
    r.books_balance();
    // The run ends before the first tick; the final flush loops instead.
    assert!(r.counter("plugin_failures") >= 1, "{}", r.stderr);
    assert_eq!(r.lines("events.out")[0], event(0), "processed untouched");
    assert_eq!(r.counter("unprocessed"), 0);
    assert!(r.stderr.contains("call=\"flush\""), "{}", r.stderr);
}

#[test]
fn memory_and_table_bombs_are_capped_and_host_memory_stays_bounded() {
    let cases = [
        // Grow memory until refused, then trap.
        (
            "memory",
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 256)) (i32.const -1)))) unreachable",
            "(table 1 funcref)",
        ),
        // Ask for 4 GiB at once, then touch the last page it got.
        (
            "memory4g",
            "(drop (memory.grow (i32.const 65535))) (i32.store (i32.sub (i32.shl (memory.size) (i32.const 16)) (i32.const 4)) (i32.const 1)) unreachable",
            "(table 1 funcref)",
        ),
        // Grow a table until refused.
        (
            "table",
            "(loop $l (br_if $l (i32.ne (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1)))) unreachable",
            "(table $t 1 funcref)",
        ),
        // Recurse until the stack runs out.
        (
            "stack",
            "(drop (call $deep (i32.const 0))) (i64.const 0)",
            "(func $deep (param i32) (result i32) (i32.add (call $deep (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
        ),
    ];
    for (name, process, funcs) in cases {
        let p = Wat {
            process,
            funcs,
            ..Wat::default()
        };
        let r = run(name, &p, "max_memory_mib = 64");
        r.books_balance();
        assert_eq!(r.counter("plugin_failures"), 3, "{name}: {}", r.stderr);
        assert_eq!(r.counter("unprocessed"), EVENTS as u64, "{name}");
        assert!(
            r.peak_rss_mib() < 200,
            "{name}: host peak RSS {} MiB",
            r.peak_rss_mib()
        );
    }
}

#[test]
fn a_frame_asking_for_huge_output_is_refused_without_allocating_it() {
    // One million records, all pointing at the same 60 kB payload: 60 GB
    // of output from a 12 MB frame.
    let p = Wat {
        funcs: r#"(func $huge (result i64)
    (local $i i32)
    (drop (memory.grow (i32.const 256)))
    (i32.store (i32.const 0x200000) (i32.const 0))
    (i32.store (i32.const 0x200004) (i32.const 0))
    (i32.store (i32.const 0x200008) (i32.const 1000000))
    (i32.store (i32.const 0x20000c) (i32.const 60000))
    (loop $l
      (i32.store (i32.add (i32.const 0x200010) (i32.mul (local.get $i) (i32.const 12))) (i32.const 1))
      (i32.store (i32.add (i32.const 0x200014) (i32.mul (local.get $i) (i32.const 12))) (i32.const 0))
      (i32.store (i32.add (i32.const 0x200018) (i32.mul (local.get $i) (i32.const 12))) (i32.const 60000))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 1000000))))
    (i64.or (i64.const 0x0020000000000000) (i64.const 12060016)))"#,
        init: r#"\00\00\00\00\01\00\00\00\04\00\00\00huge"#,
        flush: "(call $huge)",
        ..Wat::default()
    };
    let r = run("huge", &p, "deadline_ms = 2000");
    r.books_balance();
    assert_eq!(r.counter("plugin_failures"), 1, "{}", r.stderr);
    assert!(r.stderr.contains("over the cap"), "{}", r.stderr);
    assert_eq!(r.counter("records"), 0);
    assert!(
        r.peak_rss_mib() < 200,
        "host peak RSS {} MiB",
        r.peak_rss_mib()
    );
}

#[test]
fn capability_probes_are_all_denied() {
    // flush calls each probe and reports the errnos as two digits each.
    let p = Wat {
        imports: r#"(import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_accept" (func $accept (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $prestat (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sock_recv" (func $recv (param i32 i32 i32 i32 i32 i32) (result i32)))
  (data (i32.const 3072) "\00\00\00\00\00\00\00\00\01\00\00\00\20\00\00\00\01\00\00\00\00\00\00\00\20\00\00\00{\"probe\":\"....................\"}")
  (data (i32.const 200) "\90\01\00\00\0a\00\00\00")
  (data (i32.const 500) "\ff\ff\ff\ff")"#,
        funcs: r#"(func $d (param $k i32) (param $v i32)
    (i32.store8 (i32.add (i32.const 3110) (i32.mul (local.get $k) (i32.const 2))) (i32.add (i32.const 48) (i32.div_u (local.get $v) (i32.const 10))))
    (i32.store8 (i32.add (i32.const 3111) (i32.mul (local.get $k) (i32.const 2))) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10)))))"#,
        init: r#"\00\00\00\00\01\00\00\00\05\00\00\00probe"#,
        flush: r#"(call $d (i32.const 0) (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 100)))
    (call $d (i32.const 1) (call $read (i32.const 0) (i32.const 200) (i32.const 1) (i32.const 300)))
    (call $d (i32.const 2) (call $env (i32.const 500) (i32.const 504)))
    (call $d (i32.const 3) (call $accept (i32.const 3) (i32.const 0) (i32.const 508)))
    (call $d (i32.const 4) (call $clock (i32.const 0) (i64.const 1) (i32.const 512)))
    (call $d (i32.const 5) (call $prestat (i32.const 3) (i32.const 520)))
    (call $d (i32.const 6) (call $poll (i32.const 600) (i32.const 700) (i32.const 1) (i32.const 524)))
    (call $d (i32.const 7) (call $write (i32.const 5) (i32.const 200) (i32.const 1) (i32.const 528)))
    (call $d (i32.const 8) (call $recv (i32.const 3) (i32.const 200) (i32.const 1) (i32.const 0) (i32.const 532) (i32.const 536)))
    (call $d (i32.const 9) (i32.load (i32.const 500)))
    (i64.const 0x00000c000000003c)"#,
        ..Wat::default()
    };
    let dir_run = run("probe", &p, "");
    let r = &dir_run;
    r.books_balance();
    assert_eq!(r.counter("plugin_failures"), 0, "{}", r.stderr);
    // A sink for the probe output is not configured; read it from a second run with one.
    let cfg = std::fs::read_to_string(r.dir.path("p.toml")).unwrap()
        + &format!(
            "[sinks.probe]\ntype = \"file\"\npath = \"{}\"\ninputs = [\"p.probe\"]\n",
            r.dir.path("probe.out").display()
        );
    let cfg_path = r.dir.write("probe.toml", cfg);
    let out = rulebox(&["run", "--config", cfg_path.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let probe = r.lines("probe.out");
    let v: Value = serde_json::from_str(&probe[0]).unwrap();
    // path_open, fd_read(stdin), environ_sizes_get, sock_accept,
    // clock_time_get, fd_prestat_get, poll_oneoff, fd_write(5), sock_recv:
    // ENOTCAPABLE (76) or EBADF (8); the environment has 0 entries.
    assert_eq!(v["probe"], "76760076767676087600", "{v}");
}

#[test]
fn plugins_breaking_the_contract_are_refused_with_a_clear_error() {
    // 65 outputs declared: one over the cap.
    let many: String = (0..65)
        .map(|i| format!("\\{:02x}\\00\\00\\00o{i}", format!("o{i}").len()))
        .collect();
    let many = format!("\\00\\00\\00\\00\\41\\00\\00\\00{many}");
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "abi",
            Wat::default().text().replace(
                "(i32.const 1))\n  (func (export \"rulebox_reserve\")",
                "(i32.const 7))\n  (func (export \"rulebox_reserve\")",
            ),
            "ABI version 7 is not supported",
        ),
        (
            "export",
            Wat::default()
                .text()
                .replace("\"rulebox_tick\"", "\"tick\""),
            "missing export rulebox_tick",
        ),
        (
            "output",
            Wat {
                init: r#"\00\00\00\00\01\00\00\00\0b\00\00\00dead_letter"#,
                ..Wat::default()
            }
            .text(),
            "reserved for the host",
        ),
    ];
    cases.extend([
        (
            "outputs",
            // The init frame: 8 + 10 × (4 + 2) + 55 × (4 + 3) = 453 bytes.
            Wat {
                init: many.leak(),
                ..Wat::default()
            }
            .text()
            .replace(
                "(i64.const 0x0000040000000100)",
                "(i64.const 0x00000400000001c5)",
            ),
            "65 outputs declared (at most 64)",
        ),
        (
            // 65 empty plan groups: within the path budget, over the groups'.
            "groups",
            Wat {
                init: Box::leak(
                    format!(
                        "\\00\\00\\00\\00\\00\\00\\00\\00\\05\\00\\00\\00\\41\\00\\00\\00{}",
                        "\\00".repeat(65 * 8)
                    )
                    .into_boxed_str(),
                ),
                ..Wat::default()
            }
            .text()
            .replace(
                "(i64.const 0x0000040000000100)",
                "(i64.const 0x0000040000000218)",
            ),
            "65 plan groups declared (at most 64)",
        ),
        (
            "output-name",
            Wat {
                init: r#"\00\00\00\00\01\00\00\00\06\00\00\00a\0ab\1b[m"#,
                ..Wat::default()
            }
            .text(),
            r#"declared output "a\nb\u{1b}[m" must be 1 to 64 characters"#,
        ),
        (
            // An init error message is the plugin's text: one line, escaped.
            "config-message",
            Wat::default()
                .text()
                .replace(
                    "(i64.const 0x0000040000000100)",
                    "(i64.const 0x0000040000000015)",
                )
                .replace(
                    r#"(data (i32.const 1024) ""#,
                    r#"(data (i32.const 1024) "\01\00\00\00\0d\00\00\00bad\0aFORGED\1b[m"#,
                ),
            r#"plugin rejected its configuration: bad\nFORGED\u{1b}[m"#,
        ),
    ]);
    for (name, text, want) in cases {
        let dir = Scratch::new(&format!("contract-{name}"));
        let wasm = dir.write("plugin.wat", text);
        let cfg = format!(
            "[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"p\"]\n",
            wasm.display()
        );
        let cfg = dir.write("p.toml", cfg);
        let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = stderr(&out);
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            !err.contains('\x1b'),
            "{name}: a raw ESC reached stderr: {err:?}"
        );
        assert!(
            !err.lines().any(|l| l.starts_with("FORGED")),
            "{name}: {err}"
        );
    }
}

/// Text a plugin logs (through the host's log import or by writing to
/// stdout/stderr) cannot start a line of its own in the host's log, nor
/// reach a terminal's escape sequences: control characters are escaped.
#[test]
fn plugin_text_cannot_forge_host_log_lines() {
    let forged =
        r#"hello\0a2026-11-27T00:00:00.000000Z  INFO summary events_in=0 errors=0\0dFORGED\1b[2J"#;
    let p = Wat {
        imports: r#"(import "rulebox" "log" (func $log (param i32 i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))"#,
        funcs: Box::leak(
            format!(
                r#"(data (i32.const 4096) "{forged}")
  (data (i32.const 200) "\00\10\00\00\51\00\00\00")"#
            )
            .into_boxed_str(),
        ),
        process: r#"(call $log (i32.const 2) (i32.const 4096) (i32.const 81))
    (drop (call $write (i32.const 2) (i32.const 200) (i32.const 1) (i32.const 300)))
    (call $pass (local.get $n))"#,
        ..Wat::default()
    };
    let r = run("log-forgery", &p, "");
    r.books_balance();
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        !r.stderr.contains('\x1b'),
        "a raw ESC reached the log: {:?}",
        r.stderr
    );
    assert!(!r.stderr.contains('\r'), "a raw CR reached the log");
    let forged_lines = r.stderr.lines().filter(|l| l.contains("FORGED")).count();
    let plugin_lines = (r.stderr.lines())
        .filter(|l| l.contains("FORGED") && l.contains("plugin"))
        .count();
    assert!(
        forged_lines > 0,
        "the plugin's lines are logged: {}",
        r.stderr
    );
    assert_eq!(
        forged_lines, plugin_lines,
        "every FORGED text sits inside a plugin log line"
    );
    // A host line: a timestamp, a level, then its message.
    let host_says = |what: &str| {
        (r.stderr.lines())
            .filter(|l| l.split_whitespace().nth(2) == Some(what))
            .count()
    };
    assert_eq!(
        host_says("summary"),
        1,
        "one summary, the host's: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(r"hello\n2026-11-27T00:00:00.000000Z"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_endless_loop_in_a_periodic_tick_is_stopped_and_the_next_events_are_processed() {
    // A followed file keeps the pipeline up across several 1 s ticks.
    let dir = Scratch::new("hostile-ticks");
    let p = Wat {
        tick: "(loop $l (br $l)) (i64.const 0)",
        ..Wat::default()
    };
    let wasm = dir.write("plugin.wat", p.text());
    let input = dir.write("in.ndjson", "");
    let cfg = format!(
        "data_dir = \"{}\"\n[sources.in]\ntype = \"file\"\npath = \"{}\"\nfollow = true\npoll_interval_ms = 20\n\
         [transforms.p]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\nflush_interval_secs = 1\npersist_state = false\n\
         [sinks.events]\ntype = \"file\"\npath = \"{}\"\ninputs = [\"p\"]\n",
        dir.path("data").display(),
        input.display(),
        wasm.display(),
        dir.path("events.out").display()
    );
    let cfg = dir.write("p.toml", cfg);
    let log = dir.path("log.txt");
    let mut child = std::process::Command::new(rulebox_bin())
        .args([
            "--log-file",
            log.to_str().unwrap(),
            "run",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let append = |from: usize, to: usize| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        for i in from..to {
            writeln!(f, "{}", event(i)).unwrap();
        }
    };
    append(0, 10);
    wait_for(
        "a tick stopped at the deadline",
        Duration::from_secs(20),
        || read(&log).contains("call=\"tick\""),
    );
    // Events after the failed tick go through a fresh instance, untouched.
    append(10, 20);
    wait_for("20 events out", Duration::from_secs(20), || {
        read(&dir.path("events.out")).lines().count() == 20
    });
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    let out = read(&dir.path("events.out"));
    for (i, l) in out.lines().enumerate() {
        assert_eq!(l, event(i), "event {i} processed and untouched");
    }
    let log = read(&log);
    assert!(
        log.contains("plugin exceeded its deadline of 100ms"),
        "default deadline: {log}"
    );
    assert!(log.contains("fresh plugin instance started"), "{log}");
}

/// A plugin that traps every second call is never failing twice in a row,
/// but half its calls fail: judged over a window of calls, it is
/// quarantined (exit 1), and the books still balance.
#[test]
fn a_plugin_failing_every_other_call_is_quarantined_by_rate() {
    // Memory starts at 0 in every fresh instance: pass, trap, (fresh) pass, trap, ...
    let p = Wat {
        process: r#"(i32.store (i32.const 900) (i32.add (i32.load (i32.const 900)) (i32.const 1)))
    (if (i32.eq (i32.load (i32.const 900)) (i32.const 2)) (then unreachable))
    (call $pass (local.get $n))"#,
        ..Wat::default()
    };
    let r = run("every-other", &p, "quarantine_window_calls = 6");
    r.books_balance();
    assert_eq!(r.counter("quarantined"), 1, "{}", r.stderr);
    assert_eq!(r.counter("plugin_failures"), 3, "{}", r.stderr);
    assert_eq!(r.code, Some(1), "{}", r.stderr);
}

/// Answering rsyslog's mmexternal, a plugin's records on the default
/// output would be extra answer lines: they are refused (counted), and
/// there is exactly one answer per message.
#[test]
fn records_on_the_default_output_cannot_add_mmexternal_answers() {
    let record = r#"(i32.store (i32.const 8200) (i32.const 1))
    (i32.store (i32.const 8204) (i32.const 11))
    (local.set $r (i32.add (i32.const 8208) (i32.mul (local.get $n) (i32.const 20))))
    (i32.store (local.get $r) (i32.const 0))
    (i32.store offset=4 (local.get $r) (i32.const 0))
    (i32.store offset=8 (local.get $r) (i32.const 11))
    (memory.copy (i32.add (local.get $r) (i32.const 12)) (i32.const 4000) (i32.const 11))
    (i64.or (i64.const 0x0000200000000000)
      (i64.extend_i32_u (i32.add (i32.const 39) (i32.mul (local.get $n) (i32.const 20)))))"#;
    let process = format!("(local $r i32) (drop (call $pass (local.get $n)))\n    {record}");
    let flush =
        format!("(local $n i32) (local $r i32) (drop (call $pass (i32.const 0)))\n    {record}");
    let p = Wat {
        funcs: r#"(data (i32.const 4000) "{\"extra\":1}")"#,
        process: Box::leak(process.into_boxed_str()),
        flush: Box::leak(flush.into_boxed_str()),
        ..Wat::default()
    };
    let dir = Scratch::new("hostile-mmexternal-records");
    let wasm = dir.write("plugin.wat", p.text());
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.in]\ntype = \"stdin\"\nprotocol = \"mmexternal\"\n[transforms.p]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{wasm}\"\n[sinks.answers]\ntype = \"stdout\"\nprotocol = \"mmexternal\"\ninputs = [\"p\"]\n",
        data = dir.path("data").display(),
        wasm = wasm.display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let input: String = (0..1000).map(|i| event(i) + "\n").collect();
    let out = rulebox(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--log-file",
            dir.path("log").to_str().unwrap(),
        ],
        Some(input.as_bytes()),
    );
    let log = std::fs::read_to_string(dir.path("log")).unwrap_or_default();
    assert!(out.status.success(), "{log}");
    let answers = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        answers.lines().count(),
        1000,
        "one answer per message: {log}"
    );
    assert!(!answers.contains("extra"), "{answers}");
    let refused = summary_counter(&log, "invalid_results").unwrap();
    assert!(refused >= 2, "the records are counted as refused: {log}");
}

/// Compiling is host work outside any deadline: a module over its size or
/// function cap is refused before it is compiled, and one whose compile
/// runs past `max_compile_secs` is refused then, each with the reason.
#[test]
fn modules_too_big_to_compile_cheaply_are_refused() {
    let body = "(i32.add (i32.mul (local.get 0) (i32.const 3)) (i32.const 7))";
    let funcs: String = (0..20_000)
        .map(|_| format!("(func (param i32) (result i32) {body})"))
        .collect();
    let many = Wat {
        funcs: Box::leak(funcs.into_boxed_str()),
        ..Wat::default()
    }
    .text();
    // More functions with bodies many times larger: about 4 s of compiling
    // here (a full compile of 20,000 with 10 levels took 1.5 s).
    let big_body = (0..20).fold("(local.get 0)".to_string(), |acc, k| {
        format!(
            "(i32.xor (i32.mul {acc} (i32.const {})) (local.get 0))",
            3 + k
        )
    });
    let heavy_funcs: String = (0..30_000)
        .map(|_| format!("(func (param i32) (result i32) {big_body})"))
        .collect();
    let heavy = Wat {
        funcs: Box::leak(heavy_funcs.into_boxed_str()),
        ..Wat::default()
    }
    .text();
    let cases = [
        (
            "functions",
            many.as_str(),
            "",
            "functions; at most 20000 (max_module_functions)",
        ),
        (
            "size",
            many.as_str(),
            "max_module_bytes = 65536",
            "bytes; at most 65536",
        ),
        (
            "time",
            heavy.as_str(),
            "max_module_bytes = 67108864\nmax_module_functions = 40000\nmax_compile_secs = 1",
            "compiling took longer than 1s",
        ),
    ];
    for (name, text, extra, want) in cases {
        let dir = Scratch::new(&format!("compile-{name}"));
        let wasm = dir.write("plugin.wat", text);
        let cfg = format!(
            "data_dir = \"{}\"\n[sources.in]\ntype = \"stdin\"\n[transforms.p]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{}\"\n{extra}\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"p\"]\n",
            dir.path("data").display(),
            wasm.display()
        );
        let cfg = dir.write("p.toml", cfg);
        let start = Instant::now();
        let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
        let took = start.elapsed();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(want), "{name}: {}", stderr(&out));
        eprintln!("compile-{name}: refused in {took:?}");
        assert!(took < Duration::from_secs(20), "{name}: {took:?}");
    }
}

/// Empty records cost a plugin 12 bytes and would cost the host a line
/// each: they are refused (counted), and a frame with more records than
/// `max_records_per_call` fails its call; either way the events go on.
#[test]
fn record_floods_are_refused() {
    let p = Wat {
        process: r#"(local $r i32)
    (drop (call $pass (local.get $n)))
    (i32.store (i32.const 8200) (i32.const 2000))
    (local.set $r (i32.add (i32.const 8208) (i32.mul (local.get $n) (i32.const 20))))
    (memory.fill (local.get $r) (i32.const 0) (i32.const 24000))
    (i64.or (i64.const 0x0000200000000000)
      (i64.extend_i32_u (i32.add (i32.const 24016) (i32.mul (local.get $n) (i32.const 20)))))"#,
        ..Wat::default()
    };
    let r = run("empty-records", &p, "");
    r.books_balance();
    assert_eq!(
        r.lines("events.out").len(),
        EVENTS,
        "no line besides the events"
    );
    assert_eq!(r.counter("invalid_results"), 6 * 2000, "{}", r.stderr);
    assert_eq!(r.counter("plugin_failures"), 0, "{}", r.stderr);
    let r = run("many-records", &p, "max_records_per_call = 1000");
    r.books_balance();
    assert_eq!(r.lines("events.out").len(), EVENTS);
    assert!(r.counter("plugin_failures") >= 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("over the cap of 1000 (max_records_per_call)"),
        "{}",
        r.stderr
    );
    // 2,000 records of the same 1 KiB per 40 KB batch: 50 times the input,
    // over max_output_ratio (16, at least 1 MiB), though under the
    // plugin's memory.
    let amplify = Wat {
        process: r#"(local $r i32) (local $i i32)
    (drop (call $pass (local.get $n)))
    (i32.store (i32.const 8200) (i32.const 2000))
    (i32.store (i32.const 8204) (i32.const 1024))
    (local.set $r (i32.add (i32.const 8208) (i32.mul (local.get $n) (i32.const 20))))
    (memory.fill (local.get $r) (i32.const 0) (i32.const 25024))
    (loop $l
      (i32.store offset=8 (i32.add (local.get $r) (i32.mul (local.get $i) (i32.const 12))) (i32.const 1024))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 2000))))
    (i64.or (i64.const 0x0000200000000000)
      (i64.extend_i32_u (i32.add (i32.const 25040) (i32.mul (local.get $n) (i32.const 20)))))"#,
        ..Wat::default()
    };
    let r = run("amplify", &amplify, "");
    r.books_balance();
    assert_eq!(r.lines("events.out").len(), EVENTS);
    assert!(r.counter("plugin_failures") >= 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("bytes of output, over the cap of 1048576"),
        "{}",
        r.stderr
    );
}

/// A shutdown is one budget, counted from SIGTERM: three chained
/// transforms whose snapshots spin share one `state_deadline_ms` (they
/// used to take one each, one after the other), and the run exits soon
/// after it, each falling back to its final flush.
#[test]
fn spinning_snapshots_along_a_chain_share_one_shutdown_budget() {
    let p = Wat {
        funcs: r#"(func (export "rulebox_snapshot") (param i64) (result i64) (loop $l (br $l)) (i64.const 0))
  (func (export "rulebox_restore") (param i32 i32 i64) (result i64) (i64.const 0x0000080000000010))"#,
        ..Wat::default()
    };
    let dir = Scratch::new("hostile-snapshots");
    let wasm = dir.write("plugin.wat", p.text());
    let input = dir.write("in.ndjson", event(1) + "\n");
    let stage = |id: &str, input: &str| {
        format!(
            "[transforms.{id}]\ntype = \"wasm\"\ninputs = [\"{input}\"]\nmodule = \"{}\"\nstate_deadline_ms = 2000\n",
            wasm.display()
        )
    };
    let cfg = format!(
        "data_dir = \"{}\"\n[sources.in]\ntype = \"file\"\npath = \"{}\"\nfollow = true\npoll_interval_ms = 50\n{}{}{}[sinks.out]\ntype = \"file\"\npath = \"{}\"\ninputs = [\"c\"]\n",
        dir.path("data").display(),
        input.display(),
        stage("a", "in"),
        stage("b", "a"),
        stage("c", "b"),
        dir.path("events.out").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let mut child = rulebox_tests::spawn_run(&cfg, &dir.path("log"));
    let out = dir.path("events.out");
    wait_for("the event through", Duration::from_secs(20), || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() == 1)
    });
    let start = Instant::now();
    terminate(&mut child.0);
    let took = start.elapsed();
    let log = std::fs::read_to_string(dir.path("log")).unwrap();
    assert!(took < Duration::from_millis(4500), "took {took:?}:\n{log}");
    assert_eq!(
        log.matches("plugin snapshot failed; flushing instead")
            .count(),
        3,
        "{log}"
    );
}

/// A network sink whose receiver is down, holding many batches at a
/// shutdown, gives up within its `shutdown_grace_secs` counted once from
/// SIGTERM (it used to wait that long per batch) and spools what it held:
/// the next start delivers it first, then the rest of the input, every
/// event once and in order.
#[test]
fn a_sink_that_cannot_deliver_spools_within_one_grace_and_delivers_at_the_next_start() {
    use std::io::{BufRead, BufReader};
    let dir = Scratch::new("hostile-grace");
    let port = rulebox_tests::free_port();
    let input: String = (0..2000).map(|i| event(i) + "\n").collect();
    let input = dir.write("in.ndjson", input);
    let cfg = format!(
        "data_dir = \"{}\"\n[sources.in]\ntype = \"file\"\npath = \"{}\"\nfollow = true\nbatch_max_events = 10\n[sinks.down]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\ninputs = [\"in\"]\nbatch_max_events = 10\nretry = {{ initial_ms = 50, max_ms = 200, shutdown_grace_secs = 2 }}\n",
        dir.path("data").display(),
        input.display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let mut child = rulebox_tests::spawn_run(&cfg, &dir.path("log"));
    let log = dir.path("log");
    wait_for("retries", Duration::from_secs(20), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("delivery failed"))
    });
    let start = Instant::now();
    let status = terminate(&mut child.0);
    let took = start.elapsed();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(took < Duration::from_secs(5), "took {took:?}:\n{log}");
    assert!(log.contains("shutdown grace of 2s spent"), "{log}");
    assert!(log.contains("events spooled"), "{log}");
    assert_eq!(status.code(), Some(0), "nothing lost:\n{log}");
    let spooled = rulebox_tests::counter_on(&log, "sink done", "spooled").unwrap();
    assert!(spooled >= 10, "{log}");

    // The receiver is back: the next run delivers the spool, then the rest.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = std::thread::spawn(move || {
        let mut lines = Vec::new();
        while lines.len() < 2000 {
            let (conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(30)))
                .unwrap();
            for l in BufReader::new(conn).lines() {
                match l {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
                if lines.len() == 2000 {
                    break;
                }
            }
        }
        lines
    });
    let child = rulebox_tests::spawn_run(&cfg, &dir.path("log2"));
    let log2 = dir.path("log2");
    wait_for("all delivered", Duration::from_secs(30), || {
        got.is_finished()
    });
    child.stop();
    let got = got.join().unwrap();
    let log2 = std::fs::read_to_string(&log2).unwrap();
    let want: Vec<String> = (0..2000).map(event).collect();
    assert_eq!(got, want, "{log2}");
    let unspooled = rulebox_tests::counter_on(&log2, "sink done", "unspooled");
    assert_eq!(unspooled, Some(spooled), "{log2}");
    let left = std::fs::read_dir(dir.path("data/spool/down"))
        .unwrap()
        .count();
    assert_eq!(left, 0, "spool emptied");
}

/// A path plan the host resolves outside the plugin's deadline is bounded
/// per batch: 512 never-matching four-dot paths over events whose nested
/// objects are ~900 KB (each lookup enters every level: gigabytes of work
/// an event) fail each batch's call at the budget, within a second or so,
/// instead of holding the worker for seconds an event; every event goes on,
/// tagged `plan_budget`.
#[test]
fn a_path_plan_too_costly_to_resolve_fails_the_batch_at_the_host_budget() {
    let mut init = vec![0u8; 8];
    init.extend_from_slice(&5u32.to_le_bytes()); // reads objects, with a plan
    init.extend_from_slice(&1u32.to_le_bytes()); // one group,
    init.extend_from_slice(&0u32.to_le_bytes()); // no `when` paths,
    init.extend_from_slice(&512u32.to_le_bytes()); // 512 paths
    for i in 0..512 {
        let p = format!("a.b.c.d.x{i:03}");
        init.extend_from_slice(&(p.len() as u32).to_le_bytes());
        init.extend_from_slice(p.as_bytes());
    }
    let data: String = init.iter().map(|b| format!("\\{b:02x}")).collect();
    let funcs = format!(
        r#"(data (i32.const 65536) "{data}")
  (func (export "rulebox_process_objects") (param i32 i32) (param $n i32) (param i32 i64) (result i64)
    (call $pass (local.get $n)))"#
    );
    let p = Wat {
        funcs: funcs.leak(),
        ..Wat::default()
    };
    let wat = p.text().replace(
        "(i64.const 0x0000040000000100)",
        &format!("(i64.const 0x{:08x}{:08x})", 65536, init.len()),
    );
    let dir = Scratch::new("hostile-plan-cost");
    let events = 20;
    let pad = "y".repeat(900_000);
    let input: String = (0..events)
        .map(|i| format!(r#"{{"n":{i},"a":{{"b":{{"c":{{"d":{{"pad":"{pad}"}}}}}}}}}}"#) + "\n")
        .collect();
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.in]
type = "file"
path = "{input}"

[transforms.p]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
restart_backoff_ms = 0
quarantine_after = 1000
quarantine_rate_percent = 100
quarantine_window_calls = 64

[sinks.events]
type = "file"
path = "{out}"
inputs = ["p"]
"#,
        data = dir.path("data").display(),
        input = dir.write("in.ndjson", input).display(),
        wasm = dir.write("plugin.wat", wat).display(),
        out = dir.path("events.out").display(),
    );
    let cfg = dir.write("p.toml", cfg);
    let start = Instant::now();
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let took = start.elapsed();
    let err = strip_ansi(&stderr(&out));
    let lines: Vec<String> = std::fs::read_to_string(dir.path("events.out"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), events, "{err}");
    for (i, l) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["n"], i, "order kept");
        assert_eq!(v["rulebox_error"]["reason"], "plan_budget", "{err}");
    }
    assert_eq!(
        summary_counter(&err, "plugin_failures"),
        Some(events as u64)
    );
    assert!(err.contains("passed the host's budget"), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

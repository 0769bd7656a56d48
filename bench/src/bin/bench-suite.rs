//! The benchmark suite: one command, every baseline on the same input, in
//! the same run, interleaved (this VM drifts; compare within a run only).
//!
//! ```text
//! bench-suite [--events N] [--raw-events N] [--runs R] [--out FILE]
//! ```
//!
//! Cases (each in its own process, so each has its own peak RSS):
//! - `cat`: read the file and write it out in 256 KiB chunks (the I/O ceiling);
//! - `passthrough`: `rulebox run` file → file with a plugin that passes every
//!   event untouched (the cost of the host and the ABI);
//! - `native-rule`: the T1071.002 rule compiled natively, called batch by
//!   batch in memory through the SDK's `Runner` (the rule without a sandbox);
//! - `wasm-rule`: the same batches in memory through the host's
//!   `WasmTransform` and the `.wasm`, sandbox on (100 ms deadline, 64 MiB);
//! - `rulebox`: `rulebox run` file → file with the `.wasm` rule, default
//!   sandbox settings (the end-to-end figure);
//! - `warm-start`: `rulebox run` over one event with the module cache warm;
//! - `native-rule <format>` and `wasm-rule <format>`: the two in-memory
//!   cases over each raw format (`rulebox_bench::raw`), the same connection
//!   mix as the JSON input (`--raw-events N` lines each, default `--events`).
//!
//! Writes a Markdown table (with the commit) to `--out` (default
//! `target/bench/results.md`) and prints it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--case") {
        return child(&args[1..]);
    }
    let mut events = 1_000_000usize;
    let mut raw_events: Option<usize> = None;
    let mut runs = 3usize;
    let mut out: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--events" => events = val().parse().unwrap_or_else(|_| usage("bad --events")),
            "--raw-events" => {
                raw_events = Some(val().parse().unwrap_or_else(|_| usage("bad --raw-events")))
            }
            "--runs" => runs = val().parse().unwrap_or_else(|_| usage("bad --runs")),
            "--out" => out = Some(PathBuf::from(val())),
            _ => usage(&format!("unknown argument {a}")),
        }
    }
    let root = root();
    let dir = root.join("target").join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    let input = dir.join(format!("bench-events-{events}.ndjson"));
    if !input.exists() {
        eprintln!(
            "bench-suite: generating {events} events into {}",
            input.display()
        );
        let mut data = Vec::with_capacity(events * 450);
        for l in rulebox_bench::bench_events(events, 42, 1_763_683_200_000) {
            data.extend_from_slice(l.as_bytes());
            data.push(b'\n');
        }
        std::fs::write(&input, &data).expect("write events");
    }
    let bytes = std::fs::metadata(&input).expect("input").len();
    let rulebox = root.join("target/release/rulebox");
    let wasm = root.join("target/wasm32-wasip1/wasm/rule_t1071_002.wasm");
    for p in [&rulebox, &wasm] {
        if !p.exists() {
            usage(&format!(
                "{} is missing: run `bash scripts/bench.sh`",
                p.display()
            ));
        }
    }
    let pass = dir.join("passthrough.wat");
    std::fs::write(&pass, rulebox_bench::wat::Wat::default().text()).expect("write plugin");
    let one = dir.join("one-event.ndjson");
    std::fs::write(
        &one,
        b"{\"src_ip\":\"10.0.0.5\",\"dest_ip\":\"203.0.113.9\",\"dest_port\":21}\n",
    )
    .expect("write");
    let cfg = |name: &str, module: &Path, input: &Path| {
        let p = dir.join(format!("{name}.toml"));
        let text = format!(
            "data_dir = \"{d}/data\"\n[sources.in]\ntype = \"file\"\npath = \"{i}\"\n\
             [transforms.t]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{m}\"\n\
             [sinks.events]\ntype = \"file\"\nappend = false\npath = \"{d}/out/{name}.out\"\ninputs = [\"t\"]\n",
            d = dir.display(),
            i = input.display(),
            m = module.display(),
        );
        std::fs::write(&p, text).expect("write config");
        p
    };
    // The rule split in two stages: `classify` on two workers, one
    // `aggregate` (both cores).
    let two_cfg = dir.join("rulebox-2-workers.toml");
    std::fs::write(
        &two_cfg,
        format!(
            "data_dir = \"{d}/data\"\n[sources.in]\ntype = \"file\"\npath = \"{i}\"\n\
             [transforms.classify]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{m}\"\nworkers = 2\n\
             config = {{ stage = \"classify\" }}\n\
             [transforms.aggregate]\ntype = \"wasm\"\ninputs = [\"classify.observations\"]\nmodule = \"{m}\"\n\
             config = {{ stage = \"aggregate\" }}\n\
             [sinks.events]\ntype = \"file\"\nappend = false\npath = \"{d}/out/rulebox-2-workers.out\"\ninputs = [\"classify\", \"aggregate\"]\n\
             [sinks.alerts]\ntype = \"file\"\nappend = false\npath = \"{d}/out/rulebox-2-workers.alerts\"\ninputs = [\"aggregate.alerts\"]\n",
            d = dir.display(),
            i = input.display(),
            m = wasm.display(),
        ),
    )
    .expect("write config");
    let pass_cfg = cfg("passthrough", &pass, &input);
    let rule_cfg = cfg("rulebox", &wasm, &input);
    let warm_cfg = cfg("warm-start", &wasm, &one);
    // Compile both modules into the cache before timing anything.
    remove_outputs(&dir);
    for c in [&pass_cfg, &warm_cfg] {
        run_rulebox(&rulebox, c);
    }
    let me = std::env::current_exe().expect("own path");
    let input_s = input.to_string_lossy().into_owned();
    let wasm_s = wasm.to_string_lossy().into_owned();
    let copy_s = dir.join("out/cat.out").to_string_lossy().into_owned();
    let raw_n = raw_events.unwrap_or(events);
    let raw_inputs = raw_inputs(&dir, raw_n);
    type Case<'a> = (&'a str, Box<dyn Fn() -> (f64, u64) + 'a>, usize);
    let cases: Vec<Case> = vec![
        (
            "cat",
            Box::new(|| run_child(&me, &["cat", &input_s, &copy_s])),
            events,
        ),
        (
            "passthrough",
            Box::new(|| run_rulebox(&rulebox, &pass_cfg)),
            events,
        ),
        (
            "native-rule",
            Box::new(|| run_child(&me, &["native", &input_s])),
            events,
        ),
        (
            "wasm-rule",
            Box::new(|| run_child(&me, &["wasm", &input_s, &wasm_s])),
            events,
        ),
        (
            "rulebox",
            Box::new(|| run_rulebox(&rulebox, &rule_cfg)),
            events,
        ),
        (
            "rulebox-pinned",
            Box::new(|| run_rulebox_as(&rulebox, &rule_cfg, true)),
            events,
        ),
        (
            "rulebox-2-workers",
            Box::new(|| run_rulebox(&rulebox, &two_cfg)),
            events,
        ),
        (
            "warm-start",
            Box::new(|| run_rulebox(&rulebox, &warm_cfg)),
            1,
        ),
    ];
    let mut cases = cases;
    // Each case's input size, for MB/s.
    let mut sizes: Vec<Option<u64>> = cases
        .iter()
        .map(|(_, _, n)| (*n == events).then_some(bytes))
        .collect();
    for (name, path) in &raw_inputs {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        for kind in ["native", "wasm"] {
            let label: &str = Box::leak(format!("{kind}-rule {name}").into_boxed_str());
            let (me, path, wasm_s) = (&me, path.clone(), wasm_s.clone());
            let run: Box<dyn Fn() -> (f64, u64)> = Box::new(move || match kind {
                "native" => run_child(me, &["native", &path]),
                _ => run_child(me, &["wasm", &path, &wasm_s]),
            });
            cases.push((label, run, raw_n));
            sizes.push(size);
        }
    }
    let mut results: Vec<Vec<(f64, u64)>> = vec![Vec::new(); cases.len()];
    for r in 0..runs {
        for (i, (name, f, _)) in cases.iter().enumerate() {
            remove_outputs(&dir);
            let res = f();
            eprintln!(
                "bench-suite: run {} {name}: {:.3} s, peak {} KiB",
                r + 1,
                res.0,
                res.1
            );
            results[i].push(res);
        }
    }
    let median = |v: &[(f64, u64)]| {
        let mut s: Vec<f64> = v.iter().map(|x| x.0).collect();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    };
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut md = format!(
        "# rulebox benchmarks\n\ncommit `{commit}`, {events} events, {:.0} bytes mean (keys from a pool of {keys}, ~5 % on watched ports), \
         median of {runs} interleaved runs\n\n\
         | case | median s | events/s | MB/s | peak RSS MiB | runs (s) |\n|---|---|---|---|---|---|\n",
        bytes as f64 / events as f64,
        keys = rulebox_bench::BENCH_KEYS,
    );
    let mut med = Vec::new();
    for (((name, _, n), r), size) in cases.iter().zip(&results).zip(&sizes) {
        let m = median(r);
        med.push(m);
        let peak = r.iter().map(|x| x.1).max().unwrap_or(0) as f64 / 1024.0;
        let mbs = match size {
            Some(b) => format!("{:.1}", *b as f64 / m / 1e6),
            None => "-".into(),
        };
        let all: Vec<String> = r.iter().map(|x| format!("{:.3}", x.0)).collect();
        md.push_str(&format!(
            "| {name} | {m:.3} | {:.0} | {mbs} | {peak:.1} | {} |\n",
            *n as f64 / m,
            all.join(", ")
        ));
    }
    md.push_str(&format!(
        "\nRatios (same run): wasm-rule / native-rule throughput = {:.2} (target ≥ 0.8); \
         passthrough / cat = {:.2} (target ≥ 0.5); rulebox end to end = {:.0} events/s, \
         pinned to one CPU {:.0} events/s (target ≥ 1,000,000 per core); warm start = {:.0} ms \
         (target ≤ 50); rulebox 2 workers / 1 worker = {:.2}x, / 1 worker pinned = {:.2}x \
         (target ≥ 1.8).\n",
        med[2] / med[3],
        med[0] / med[1],
        events as f64 / med[4],
        events as f64 / med[5],
        med[7] * 1000.0,
        med[4] / med[6],
        med[5] / med[6],
    ));
    let json_wasm = events as f64 / med[3];
    md.push_str(
        "\nRaw formats, `wasm-rule <format>` events/s against `wasm-rule` (JSON) in the same run:",
    );
    for (i, (name, _, n)) in cases.iter().enumerate().skip(8) {
        if let Some(format) = name.strip_prefix("wasm-rule ") {
            md.push_str(&format!(
                " {format} {:.2}x;",
                *n as f64 / med[i] / json_wasm
            ));
        }
    }
    md.push('\n');
    let out = out.unwrap_or_else(|| dir.join("results.md"));
    std::fs::write(&out, &md).expect("write results");
    println!("{md}");
    eprintln!("bench-suite: written to {}", out.display());
}

/// Empties `dir/out`, where every case writes, so that no case pays for
/// truncating what the run before wrote: freeing the last run's hundreds
/// of MB of tmpfs pages costs about a tenth of a pinned `rulebox run`,
/// and is no work per event.
fn remove_outputs(dir: &Path) {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("create the outputs' directory");
}

/// Each raw format's input (`n` lines), generated once into `dir`.
fn raw_inputs(dir: &Path, n: usize) -> Vec<(&'static str, String)> {
    use rulebox_bench::raw::{RawFormat, raw_bench_events};
    RawFormat::ALL
        .iter()
        .map(|&f| {
            let path = dir.join(format!("bench-raw-{}-{n}.log", f.name()));
            if !path.exists() {
                let mut data = Vec::new();
                for l in raw_bench_events(n, f, 42, 1_763_683_200_000) {
                    data.extend_from_slice(l.as_bytes());
                    data.push(b'\n');
                }
                std::fs::write(&path, &data).expect("write raw events");
            }
            (f.name(), path.to_string_lossy().into_owned())
        })
        .collect()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn usage(msg: &str) -> ! {
    eprintln!("bench-suite: {msg}\nusage: bench-suite [--events N] [--runs R] [--out FILE]");
    std::process::exit(2)
}

/// Wall time of `rulebox run` and the peak RSS from its summary.
fn run_rulebox(bin: &Path, cfg: &Path) -> (f64, u64) {
    run_rulebox_as(bin, cfg, false)
}

/// [`run_rulebox`], pinned to CPU 0 (`taskset -c 0`) when `pinned`.
fn run_rulebox_as(bin: &Path, cfg: &Path, pinned: bool) -> (f64, u64) {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let start = Instant::now();
    let out = cmd
        .args(["--log-level", "info", "run", "--config"])
        .arg(cfg)
        .env_remove("RUST_LOG")
        .output()
        .expect("run rulebox");
    let secs = start.elapsed().as_secs_f64();
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        panic!("rulebox failed on {}: {err}", cfg.display());
    }
    let peak = err
        .split("peak_rss_kib")
        .nth(1)
        .and_then(|s| {
            let d: String = s
                .chars()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(char::is_ascii_digit)
                .collect();
            d.parse().ok()
        })
        .unwrap_or(0);
    (secs, peak)
}

/// Runs a case of this binary in its own process: it prints "secs peak_kib".
fn run_child(me: &Path, args: &[&str]) -> (f64, u64) {
    let out = Command::new(me)
        .arg("--case")
        .args(args)
        .output()
        .expect("run case");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    match (
        it.next().and_then(|s| s.parse().ok()),
        it.next().and_then(|s| s.parse().ok()),
    ) {
        (Some(s), Some(p)) if out.status.success() => (s, p),
        _ => panic!(
            "case {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Batches of up to 1024 lines, as the host cuts them.
fn batches(data: &[u8]) -> Vec<rulebox::batch::Batch> {
    let mut s = rulebox::batch::LineSplitter::new(1024);
    let mut out = Vec::new();
    s.push(data, &mut out);
    s.finish(&mut out);
    out
}

/// The timed part of the `native` case (not inlined, so that a profiler can
/// count it alone: `valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect=bench_suite::timed_native`).
#[inline(never)]
fn timed_native(
    r: &mut rulebox_plugin::Runner<rule_t1071_002::T1071>,
    batches: &[rulebox::batch::Batch],
) -> f64 {
    // The same job as the wasm case: the enriched events and the records
    // come out as bytes, not only as a result frame.
    let (mut events, mut records) = (Vec::new(), Vec::new());
    let start = Instant::now();
    for b in batches {
        let frame = r.process(b.bytes(), b.count(), 0);
        rulebox_bench::splice(b.bytes(), frame, &mut events, &mut records);
        std::hint::black_box((&events, &records));
        events.clear();
        records.clear();
    }
    let frame = r.flush(0);
    rulebox_bench::splice(b"", frame, &mut events, &mut records);
    std::hint::black_box((&events, &records));
    start.elapsed().as_secs_f64()
}

/// The timed part of the `wasm` case (see [`timed_native`]).
#[inline(never)]
fn timed_wasm(
    t: &mut rulebox::transforms::wasm::WasmTransform,
    batches: &[rulebox::batch::Batch],
) -> f64 {
    let mut outs = t.new_outputs();
    let start = Instant::now();
    for b in batches {
        t.process(b, 0, &mut outs);
        outs.clear();
    }
    t.flush(0, &mut outs);
    let failures = rulebox::transforms::wasm::TransformStats::get(&t.stats.plugin_failures);
    assert_eq!(failures, 0, "the plugin failed during the benchmark");
    start.elapsed().as_secs_f64()
}

fn child(args: &[String]) {
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| usage("case needs arguments"))
    };
    let secs = match arg(0) {
        "cat" => {
            use std::io::{Read, Write};
            let start = Instant::now();
            let mut r = std::fs::File::open(arg(1)).expect("open input");
            let mut w = std::fs::File::create(arg(2)).expect("create output");
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = r.read(&mut buf).expect("read");
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).expect("write");
            }
            start.elapsed().as_secs_f64()
        }
        "native" => {
            let data = std::fs::read(arg(1)).expect("read input");
            let batches = batches(&data);
            let mut r = rulebox_plugin::Runner::<rule_t1071_002::T1071>::new();
            r.init(b"{}");
            timed_native(&mut r, &batches)
        }
        "wasm" => {
            use rulebox::sandbox::{Limits, Plugin, Runtime};
            use rulebox::transforms::wasm::{Options, WasmTransform};
            let data = std::fs::read(arg(1)).expect("read input");
            let batches = batches(&data);
            let rt = Runtime::new().expect("runtime");
            let limits = Limits {
                max_memory_bytes: 64 << 20,
                deadline: std::time::Duration::from_millis(100),
            };
            let cache = root().join("target/bench/data/cache");
            let p = Plugin::load(&rt, "t", Path::new(arg(2)), Some(&cache), limits).expect("load");
            let mut t = WasmTransform::new("t", Arc::new(p), b"{}".to_vec(), Options::default())
                .expect("init");
            timed_wasm(&mut t, &batches)
        }
        c => usage(&format!("unknown case {c}")),
    };
    println!("{secs} {}", rulebox::topology::peak_rss_kib());
}

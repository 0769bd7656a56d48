//! The run: one generated CIM input on tmpfs, `rulebox run` once for the
//! reference output, each peer checked against it (a mismatch aborts
//! before anything is timed), then rounds of every case, pinned to CPU 0
//! with `taskset` and unpinned, interleaved; a Markdown table of medians.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::check;

/// What a run is asked for.
#[derive(Debug)]
pub struct Options {
    pub events: usize,
    pub rounds: usize,
    pub out: Option<PathBuf>,
}

/// One case: its name, whether it aggregates, and its command line.
struct Case {
    name: &'static str,
    aggregates: bool,
    argv: Vec<String>,
    output: PathBuf,
    alerts: PathBuf,
}

/// One timed run: wall seconds and CPU seconds (user + system).
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
}

/// The repository root (this crate sits in `bench/peers`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// tmpfs when there is one, else `target/peers`.
fn work_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.join("rulebox-peers")
    } else {
        root().join("target/peers")
    };
    std::fs::create_dir_all(&dir).expect("create the work directory");
    dir
}

fn fail(msg: &str) -> ! {
    eprintln!("rulebox-peers: {msg}");
    std::process::exit(1)
}

/// The input: `events` CIM events from `gen-events`, made once.
fn input(dir: &Path, events: usize) -> PathBuf {
    let path = dir.join(format!("cim-{events}.ndjson"));
    if path.exists() {
        return path;
    }
    eprintln!(
        "rulebox-peers: generating {events} CIM events into {}",
        path.display()
    );
    let file = std::fs::File::create(&path).expect("create the input");
    let ok = Command::new(root().join("target/release/gen-events"))
        .args(["--bench-schema", "cim", "--count", &events.to_string()])
        .stdout(file)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = std::fs::remove_file(&path);
        fail("gen-events failed (run `bash scripts/bench-peers.sh`, which builds it)");
    }
    path
}

/// `rulebox run`'s configuration: the file source, the `.wasm` rule with
/// `schema = "cim"`, events and alerts to files.
fn rulebox_case(dir: &Path, input: &Path) -> Case {
    let root = root();
    let wasm = root.join("target/wasm32-wasip1/wasm/rule_t1071_002.wasm");
    let bin = root.join("target/release/rulebox");
    for p in [&wasm, &bin] {
        if !p.exists() {
            fail(&format!(
                "{} is missing: run `bash scripts/bench-peers.sh`",
                p.display()
            ));
        }
    }
    let (output, alerts) = (dir.join("rulebox.out"), dir.join("rulebox.alerts"));
    let cfg = dir.join("rulebox.toml");
    let text = format!(
        "data_dir = \"{d}/data\"\n[sources.in]\ntype = \"file\"\npath = \"{i}\"\n\
         [transforms.t]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"{m}\"\n\
         config = {{ schema = \"cim\" }}\n\
         [sinks.events]\ntype = \"file\"\nappend = false\npath = \"{o}\"\ninputs = [\"t\"]\n\
         [sinks.alerts]\ntype = \"file\"\nappend = false\npath = \"{a}\"\ninputs = [\"t.alerts\"]\n",
        d = dir.display(),
        i = input.display(),
        m = wasm.display(),
        o = output.display(),
        a = alerts.display(),
    );
    std::fs::write(&cfg, text).expect("write the configuration");
    let argv = [
        bin.as_path(),
        Path::new("--log-level"),
        Path::new("warn"),
        Path::new("run"),
        Path::new("--config"),
        &cfg,
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect();
    Case {
        name: "`rulebox run` (`.wasm` rule, alerts)",
        aggregates: true,
        argv,
        output,
        alerts,
    }
}

/// A peer of this binary, in its own process.
fn peer_case(
    dir: &Path,
    input: &Path,
    peer: &'static str,
    name: &'static str,
    aggregates: bool,
) -> Case {
    let me = std::env::current_exe().expect("own path");
    let (output, alerts) = (
        dir.join(format!("{peer}.out")),
        dir.join(format!("{peer}.alerts")),
    );
    let argv = vec![
        me.display().to_string(),
        "--case".into(),
        peer.into(),
        input.display().to_string(),
        output.display().to_string(),
        alerts.display().to_string(),
    ];
    Case {
        name,
        aggregates,
        argv,
        output,
        alerts,
    }
}

/// CPU time of the children waited for so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is a valid `who`.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Runs `case` once (under `taskset -c 0` when `pinned`).
fn time(case: &Case, pinned: bool) -> Sample {
    let mut cmd = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).args(&case.argv);
        c
    } else {
        let mut c = Command::new(&case.argv[0]);
        c.args(&case.argv[1..]);
        c
    };
    let cpu0 = children_cpu();
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().expect("start a case");
    let wall = start.elapsed().as_secs_f64();
    if !out.status.success() {
        fail(&format!(
            "{} failed: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Sample {
        wall,
        cpu: children_cpu() - cpu0,
    }
}

/// Runs every peer once and compares it with `rulebox run`'s output.
fn check_all(reference: &Case, peers: &[Case]) {
    time(reference, false);
    let read =
        |p: &Path| std::fs::read(p).unwrap_or_else(|e| fail(&format!("{}: {e}", p.display())));
    let (ref_out, ref_alerts) = (read(&reference.output), read(&reference.alerts));
    for p in peers {
        time(p, false);
        let out = read(&p.output);
        let bytes = if out == ref_out {
            ", byte for byte"
        } else {
            ""
        };
        let labelled = check::same_labels(&ref_out, &out)
            .unwrap_or_else(|e| fail(&format!("{}: labels differ from rulebox's: {e}", p.name)));
        let alerts = if p.aggregates {
            check::same_alerts(&ref_alerts, &read(&p.alerts))
                .unwrap_or_else(|e| fail(&format!("{}: alerts differ from rulebox's: {e}", p.name)))
                .to_string()
        } else {
            "not compared".into()
        };
        eprintln!(
            "rulebox-peers: {}: same labels ({labelled} labelled lines{bytes}), alerts {alerts}",
            p.name
        );
    }
}

/// The whole run; returns the Markdown table.
pub fn run(o: &Options) -> String {
    let dir = work_dir();
    let input = input(&dir, o.events);
    let reference = rulebox_case(&dir, &input);
    let peers = vec![
        peer_case(
            &dir,
            &input,
            "splice",
            "Rust: serde derive + splice (alerts)",
            true,
        ),
        peer_case(
            &dir,
            &input,
            "value",
            "Rust: `serde_json::Value` (alerts)",
            true,
        ),
        peer_case(
            &dir,
            &input,
            "vrl",
            "Vector VRL `remap` (labels only)",
            false,
        ),
    ];
    check_all(&reference, &peers);
    let mut cases = vec![reference];
    cases.extend(peers);
    // samples[pinned as usize][case]
    let mut samples: [Vec<Vec<Sample>>; 2] =
        [vec![Vec::new(); cases.len()], vec![Vec::new(); cases.len()]];
    for r in 0..o.rounds {
        for pinned in [true, false] {
            for (i, c) in cases.iter().enumerate() {
                let s = time(c, pinned);
                eprintln!(
                    "rulebox-peers: round {} {} {}: {:.3} s, {:.3} CPU s",
                    r + 1,
                    if pinned { "pinned" } else { "unpinned" },
                    c.name,
                    s.wall,
                    s.cpu
                );
                samples[pinned as usize][i].push(s);
            }
        }
    }
    let table = table(o, &input, &cases, &samples);
    // The outputs take about twice the input in tmpfs (RAM); the input
    // stays for the next run.
    for c in &cases {
        let _ = std::fs::remove_file(&c.output);
        let _ = std::fs::remove_file(&c.alerts);
    }
    let out = o
        .out
        .clone()
        .unwrap_or_else(|| root().join("target/bench/peers.md"));
    if let Some(p) = out.parent() {
        let _ = std::fs::create_dir_all(p);
    }
    std::fs::write(&out, &table).expect("write the table");
    eprintln!("rulebox-peers: written to {}", out.display());
    table
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn table(o: &Options, input: &Path, cases: &[Case], samples: &[Vec<Vec<Sample>>; 2]) -> String {
    let bytes = std::fs::metadata(input).map_or(0, |m| m.len());
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let n = o.events as f64;
    let mut md = format!(
        "commit `{commit}`, {} CIM events ({:.0} bytes mean) in `{}`, medians of {} interleaved rounds; \
         every peer's labels (and alerts, where it aggregates) checked equal to `rulebox run`'s before timing. \
         Pinned: `taskset -c 0`. CPU: user + system seconds per million events. \
         \"vs rulebox\": the case's events/s over `rulebox run`'s in the same mode.\n\n\
         | case | pinned events/s | pinned CPU s / M events | pinned vs rulebox | unpinned events/s | unpinned CPU s / M events | unpinned vs rulebox |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        o.events,
        bytes as f64 / n,
        input
            .parent()
            .map_or(String::new(), |p| p.display().to_string()),
        o.rounds,
    );
    let stat = |pinned: usize, i: usize| {
        let s = &samples[pinned][i];
        let wall = median(&s.iter().map(|x| x.wall).collect::<Vec<_>>());
        let cpu = median(&s.iter().map(|x| x.cpu).collect::<Vec<_>>());
        (n / wall, cpu / n * 1e6)
    };
    let (base_pinned, base_free) = (stat(1, 0).0, stat(0, 0).0);
    for (i, c) in cases.iter().enumerate() {
        let ((pe, pc), (fe, fc)) = (stat(1, i), stat(0, i));
        md.push_str(&format!(
            "| {} | {} | {pc:.2} | {:.2} | {} | {fc:.2} | {:.2} |\n",
            c.name,
            thousands(pe),
            pe / base_pinned,
            thousands(fe),
            fe / base_free
        ));
    }
    md.push_str(
        "\nThe cases, each file to file: `rulebox run` with the T1071.002 `.wasm` rule, \
         `schema = \"cim\"`, events and alerts to files; a Rust program reading only the \
         rule's fields with serde derive (borrowed where it can), splicing the label in \
         before the closing brace, aggregating natively; the same logic through a \
         `serde_json::Value` (parsed, member inserted, written again); Vector's `remap` \
         as Vector runs it (JSON → `serde_json` value → VRL value → compiled program → \
         JSON; `vrl` 0.38, `stdlib-base`), labelling only (no aggregation in VRL).\n",
    );
    md
}

/// 641234.5 → "641,235".
fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

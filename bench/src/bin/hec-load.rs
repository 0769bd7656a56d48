//! Throughput of the Splunk HEC path: HEC clients → rulebox `splunk_hec`
//! source → the T1071.002 rule (.wasm, production sandbox) → rulebox HEC
//! sink → a HEC receiver, all on loopback. A request is answered only
//! once its events reached the receiver, so the clients' wall time covers
//! the whole path. Medians of `--runs` per client count, with the CPU the
//! rulebox process spent per million events (its own threads only: the
//! clients and the receiver run in this process); Markdown table to
//! target/bench/hec.md. The file path's input and output, and rulebox's
//! data directory, are in tmpfs (`/dev/shm/rulebox-hec-load`) when there
//! is one.
//!
//! Both legs (clients → rulebox, rulebox → receiver) are gzip or both
//! uncompressed (`--gzip on,off`: a row for each). gzip is what Splunk's
//! own forwarders and many HEC libraries send; Vector's and Fluent Bit's
//! HEC outputs send uncompressed unless told otherwise.
//!
//! `--receiver-ms` makes the receiver answer each request no sooner than
//! that many milliseconds after it came (an indexer far away), and
//! `--concurrency` gives the sink's `request_concurrency` (a row for
//! each; default: the sink's own default).
//!
//! `--pinned` runs rulebox on CPU 0 (`taskset -c 0`, the file path too)
//! and this process, its clients and receiver, on CPU 1: on a two-core
//! machine the load no longer takes rulebox's CPU, so the two paths
//! compare per core.
//!
//! usage: hec-load [--events N] [--runs R] [--clients 1,32] [--batch B]
//!                 [--gzip on,off] [--receiver-ms MS] [--concurrency 1,4]
//!                 [--pinned] [--rulebox PATH]
//!                 (--rulebox: default target/release/rulebox)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rulebox_bench::hec::{Answering, Bodies, ClientOpts, Receiver};

fn main() {
    let mut events = 200_000usize;
    let mut runs = 3usize;
    let mut clients = vec![1usize, 32];
    let mut batch = 500usize;
    let mut gzips = vec![true, false];
    let mut receiver_ms = 0u64;
    let mut pinned = false;
    let mut concurrency: Vec<Option<usize>> = vec![None];
    let mut rulebox = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--events" => events = val().parse().unwrap_or_else(|_| usage("bad --events")),
            "--runs" => runs = val().parse().unwrap_or_else(|_| usage("bad --runs")),
            "--batch" => batch = val().parse().unwrap_or_else(|_| usage("bad --batch")),
            "--rulebox" => rulebox = Some(PathBuf::from(val())),
            "--pinned" => pinned = true,
            "--receiver-ms" => {
                receiver_ms = val().parse().unwrap_or_else(|_| usage("bad --receiver-ms"))
            }
            "--concurrency" => {
                concurrency = val()
                    .split(',')
                    .map(|c| Some(c.parse().unwrap_or_else(|_| usage("bad --concurrency"))))
                    .collect()
            }
            "--clients" => {
                clients = val()
                    .split(',')
                    .map(|c| c.parse().unwrap_or_else(|_| usage("bad --clients")))
                    .collect()
            }
            "--gzip" => {
                gzips = val()
                    .split(',')
                    .map(|g| match g {
                        "on" => true,
                        "off" => false,
                        _ => usage("bad --gzip (on, off or on,off)"),
                    })
                    .collect()
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if pinned {
        pin_self_to_cpu_1();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    let bin = rulebox.unwrap_or_else(|| root.join("target/release/rulebox"));
    let wasm = root.join("target/wasm32-wasip1/wasm/rule_t1071_002.wasm");
    for p in [&bin, &wasm] {
        if !p.exists() {
            usage(&format!("{} is missing: run scripts/bench.sh", p.display()));
        }
    }
    let work = work_dir(&root);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("work dir");
    // Shippers send JSON objects; the sample's deliberately broken lines are left out.
    let lines: Vec<Vec<u8>> =
        rulebox_bench::sample(events + events / 50 + 100, 5, 1_763_683_200_000)
            .into_iter()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
            .take(events)
            .map(String::into_bytes)
            .collect();
    let mean = lines.iter().map(Vec::len).sum::<usize>() / lines.len().max(1);
    // The file path on the same events, for the ratio; and its first run,
    // untimed, compiles the module into the data directory's cache, so
    // no timed run pays for that.
    let file = work.join("events.ndjson");
    std::fs::write(&file, lines.join(&b'\n')).expect("write events");
    let rb = Rulebox { bin, pinned };
    file_run(&rb, &wasm, &work, &file);
    // Rounds interleaved (the file path, then each client count), so a
    // slower stretch of a shared machine touches every row alike.
    let hec_runs: Vec<HecCase> = clients
        .iter()
        .flat_map(|&clients| gzips.iter().map(move |&gzip| (clients, gzip)))
        .flat_map(|(clients, gzip)| {
            concurrency.iter().map(move |&concurrency| HecCase {
                clients,
                gzip,
                concurrency,
                batch,
                receiver_delay: Duration::from_millis(receiver_ms),
            })
        })
        .collect();
    let mut rows: Vec<Row> = std::iter::once("file (`rulebox run`)".to_string())
        .chain(hec_runs.iter().map(HecCase::name))
        .map(|name| Row {
            name,
            times: Vec::new(),
            cpus: Vec::new(),
        })
        .collect();
    for r in 0..runs {
        for (i, row) in rows.iter_mut().enumerate() {
            let (t, cpu) = match i {
                0 => file_run(&rb, &wasm, &work, &file),
                _ => one_run(&rb, &wasm, &work, &lines, &hec_runs[i - 1]),
            };
            let cpu_per_m = cpu / lines.len() as f64 * 1e6;
            eprintln!(
                "hec-load: {}, run {}: {t:.3} s ({:.0} events/s), rulebox CPU {cpu_per_m:.2} s per million events",
                row.name,
                r + 1,
                lines.len() as f64 / t,
            );
            row.times.push(t);
            row.cpus.push(cpu_per_m);
        }
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut md = format!(
        "# HEC path throughput ({commit})\n\n{} events per run ({mean} B mean event), {batch} events per request; HEC clients → rulebox splunk_hec source → T1071.002 .wasm (100 ms deadline, 64 MiB) → rulebox splunk_hec sink → receiver (answering each request {receiver_ms} ms after it came, at the soonest), both legs gzip or both uncompressed; loopback. The file path: the same events from a file, the same rule, to a file, both in {place}; its time runs from the process's start to its exit, a HEC run's from the first request (bodies made beforehand) to the last answer. {pinning}Medians of {runs} interleaved rounds; CPU is the rulebox process's alone.\n\n| path | median s | events/s | of the file path | rulebox CPU s per million events | runs (s) |\n|---|---:|---:|---:|---:|---|\n",
        lines.len(),
        place = if work.starts_with("/dev/shm") {
            "tmpfs"
        } else {
            "`target/bench/hec`"
        },
        pinning = if rb.pinned {
            "rulebox pinned to CPU 0 (both paths), the clients and the receiver to CPU 1. "
        } else {
            ""
        },
    );
    let file_median = median(&rows[0].times);
    for row in &rows {
        let t = median(&row.times);
        md.push_str(&format!(
            "| {} | {t:.3} | {:.0} | {:.2} | {:.2} | {} |\n",
            row.name,
            lines.len() as f64 / t,
            file_median / t,
            median(&row.cpus),
            row.times
                .iter()
                .map(|t| format!("{t:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let out = root.join("target/bench/hec.md");
    std::fs::write(&out, &md).expect("write results");
    println!("{md}");
    eprintln!("hec-load: written to {}", out.display());
}

/// tmpfs when there is one (the file path's input and output in memory,
/// as the HEC path's are), else `target/bench/hec`.
fn work_dir(root: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.join("rulebox-hec-load")
    } else {
        root.join("target/bench/hec")
    }
}

/// The rule's transform, the same on both paths, reading `input`.
fn rule_toml(wasm: &Path, input: &str) -> String {
    format!(
        r#"[transforms.rule]
type = "wasm"
inputs = ["{input}"]
module = "{}"
persist_state = false
[transforms.rule.config]
schema = "auto""#,
        wasm.display()
    )
}

/// One row of the table: a path's times and CPU per million events.
struct Row {
    name: String,
    times: Vec<f64>,
    cpus: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn usage(msg: &str) -> ! {
    eprintln!(
        "hec-load: {msg}\nusage: hec-load [--events N] [--runs R] [--clients 1,32] [--batch B] [--gzip on,off] [--receiver-ms MS] [--concurrency 1,4] [--pinned] [--rulebox PATH]"
    );
    std::process::exit(2)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The rulebox binary, and whether it runs pinned to CPU 0.
struct Rulebox {
    bin: PathBuf,
    pinned: bool,
}

impl Rulebox {
    fn command(&self) -> Command {
        if !self.pinned {
            return Command::new(&self.bin);
        }
        // taskset execs rulebox: the child's pid is rulebox's.
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&self.bin);
        c
    }
}

/// Pins this process (and the threads it starts from now on: the
/// clients' and the receiver's) to CPU 1, leaving CPU 0 to rulebox.
fn pin_self_to_cpu_1() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        usage("--pinned needs two CPUs");
    }
    let ok = Command::new("taskset")
        .args(["-p", "-c", "1", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        usage("--pinned: taskset could not pin this process to CPU 1");
    }
}

/// One HEC row: how the clients send and how the sink delivers.
struct HecCase {
    clients: usize,
    gzip: bool,
    /// The sink's `request_concurrency` (`None`: its default).
    concurrency: Option<usize>,
    /// Events per client request.
    batch: usize,
    /// The receiver's answer, no sooner than this after a request came.
    receiver_delay: Duration,
}

impl HecCase {
    fn name(&self) -> String {
        let legs = if self.gzip { "gzip" } else { "uncompressed" };
        let conc = self
            .concurrency
            .map_or(String::new(), |c| format!(", request_concurrency {c}"));
        format!("HEC, {} client(s), {legs}{conc}", self.clients)
    }
}

/// Seconds for every event to go from the clients to the receiver, and
/// the CPU seconds the rulebox process spent meanwhile (from its start:
/// its listening, the module's load). The clients' request bodies are
/// made (and gzipped) before the clock starts, as a shipper's buffer
/// holds them: the time is rulebox's and the sending's, not the
/// benchmark's making of its input.
fn one_run(
    rb: &Rulebox,
    wasm: &Path,
    work: &Path,
    lines: &[Vec<u8>],
    case: &HecCase,
) -> (f64, f64) {
    let opts = ClientOpts {
        token: "bench-up".into(),
        batch: case.batch,
        gzip: case.gzip,
        clients: case.clients,
        sourcetype: "fw:traffic".into(),
    };
    let bodies = Bodies::make(lines, &opts);
    let how = Answering {
        keep: false,
        delay: case.receiver_delay,
        ..Answering::default()
    };
    let receiver = Receiver::start_with("bench-down", how);
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:{port}"
tokens = ["bench-up"]
{rule}
[sinks.down]
type = "splunk_hec"
inputs = ["rule", "rule.alerts"]
endpoint = "http://{recv}"
token = "bench-down"
gzip = {gzip}
{concurrency}
"#,
        data = work.join("data").display(),
        rule = rule_toml(wasm, "hec"),
        recv = receiver.address,
        gzip = case.gzip,
        concurrency = case
            .concurrency
            .map_or(String::new(), |c| format!("request_concurrency = {c}")),
    );
    let cfg_path: PathBuf = work.join("hec.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let log = std::fs::File::create(work.join("rulebox.log")).expect("log");
    let mut child = rb
        .command()
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start rulebox");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rulebox did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    rulebox_bench::hec::send_bodies(&format!("127.0.0.1:{port}"), bodies, &opts);
    let secs = t.elapsed().as_secs_f64();
    assert!(
        receiver.count() >= lines.len(),
        "receiver has {} of {}",
        receiver.count(),
        lines.len()
    );
    let cpu = cpu_seconds(child.id());
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    (secs, cpu)
}

/// `rulebox run` over `file` with the HEC runs' rule, to a file: its
/// seconds from start to exit, and its CPU seconds.
fn file_run(rb: &Rulebox, wasm: &Path, work: &Path, file: &Path) -> (f64, f64) {
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.file]
type = "file"
path = "{file}"
{rule}
[sinks.out]
type = "file"
append = false
inputs = ["rule", "rule.alerts"]
path = "{out}"
"#,
        data = work.join("data").display(),
        file = file.display(),
        rule = rule_toml(wasm, "file"),
        out = work.join("file-out.ndjson").display(),
    );
    let cfg_path = work.join("file.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    // Each run writes anew: truncating the last run's output is not timed.
    let _ = std::fs::remove_file(work.join("file-out.ndjson"));
    let before = children_cpu_seconds();
    let t = Instant::now();
    let status = rb
        .command()
        .args(["run", "--config", cfg_path.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("rulebox-file.log")).expect("log"))
        .status()
        .expect("run rulebox");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "rulebox run failed: see {}",
        work.join("rulebox-file.log").display()
    );
    (secs, children_cpu_seconds() - before)
}

/// User and system CPU seconds of the children this process waited for
/// (`/proc/self/stat`, fields 16 and 17).
fn children_cpu_seconds() -> f64 {
    stat_ticks("self", 13) / 100.0
}

/// User and system CPU seconds of process `pid`, every thread, so far
/// (`/proc/PID/stat`, fields 14 and 15, in clock ticks of 1/100 s: the
/// value Linux gives `USER_HZ` on every architecture it runs on).
fn cpu_seconds(pid: u32) -> f64 {
    stat_ticks(&pid.to_string(), 11) / 100.0
}

/// The sum of two clock-tick fields of `/proc/PROC/stat`, `skip` fields
/// after the command name (which, in parentheses, may hold spaces).
fn stat_ticks(proc: &str, skip: usize) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{proc}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .skip(skip)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum()
}

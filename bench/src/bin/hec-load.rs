//! Throughput of the Splunk HEC path: HEC clients → rulebox `splunk_hec`
//! source → the T1071.002 rule (.wasm, production sandbox) → rulebox HEC
//! sink → a HEC receiver, all on loopback. A request is answered only
//! once its events reached the receiver, so the clients' wall time covers
//! the whole path. Medians of `--runs` per client count; Markdown table to
//! target/bench/hec.md.
//!
//! usage: hec-load [--events N] [--runs R] [--clients 1,32] [--batch B]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rulebox_bench::hec::{ClientOpts, Receiver};

fn main() {
    let mut events = 200_000usize;
    let mut runs = 3usize;
    let mut clients = vec![1usize, 32];
    let mut batch = 500usize;
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
            "--clients" => {
                clients = val()
                    .split(',')
                    .map(|c| c.parse().unwrap_or_else(|_| usage("bad --clients")))
                    .collect()
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf();
    let bin = root.join("target/release/rulebox");
    let wasm = root.join("target/wasm32-wasip1/wasm/rule_t1071_002.wasm");
    for p in [&bin, &wasm] {
        if !p.exists() {
            usage(&format!("{} is missing: run scripts/bench.sh", p.display()));
        }
    }
    let work = root.join("target/bench/hec");
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
    let mut rows = Vec::new();
    for &c in &clients {
        let mut times = Vec::new();
        for r in 0..runs {
            let t = one_run(&bin, &wasm, &work, &lines, c, batch);
            eprintln!(
                "hec-load: {c} client(s), run {}: {:.3} s ({:.0} events/s)",
                r + 1,
                t,
                lines.len() as f64 / t
            );
            times.push(t);
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        rows.push((c, median, times));
    }
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(&root)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mut md = format!(
        "# HEC path throughput ({commit})\n\n{} events per run ({mean} B mean event), {batch} events per request, gzip; HEC clients → rulebox splunk_hec source → T1071.002 .wasm (100 ms deadline, 64 MiB) → rulebox splunk_hec sink (gzip) → receiver; loopback.\n\n| clients | median s | events/s | runs (s) |\n|---:|---:|---:|---|\n",
        lines.len()
    );
    for (c, median, times) in rows {
        md.push_str(&format!(
            "| {c} | {median:.3} | {:.0} | {} |\n",
            lines.len() as f64 / median,
            times
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

fn usage(msg: &str) -> ! {
    eprintln!(
        "hec-load: {msg}\nusage: hec-load [--events N] [--runs R] [--clients 1,32] [--batch B]"
    );
    std::process::exit(2)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Seconds for every event to go from the clients to the receiver.
fn one_run(
    bin: &Path,
    wasm: &Path,
    work: &Path,
    lines: &[Vec<u8>],
    clients: usize,
    batch: usize,
) -> f64 {
    let receiver = Receiver::start_with("bench-down", 0, false);
    let port = free_port();
    let cfg = format!(
        r#"data_dir = "{data}"
[sources.hec]
type = "splunk_hec"
address = "127.0.0.1:{port}"
tokens = ["bench-up"]
[transforms.rule]
type = "wasm"
inputs = ["hec"]
module = "{wasm}"
persist_state = false
[transforms.rule.config]
schema = "auto"
[sinks.down]
type = "splunk_hec"
inputs = ["rule", "rule.alerts"]
endpoint = "http://{recv}"
token = "bench-down"
"#,
        data = work.join("data").display(),
        wasm = wasm.display(),
        recv = receiver.address,
    );
    let cfg_path: PathBuf = work.join("hec.toml");
    std::fs::write(&cfg_path, cfg).expect("config");
    let log = std::fs::File::create(work.join("rulebox.log")).expect("log");
    let mut child = Command::new(bin)
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
    let opts = ClientOpts {
        token: "bench-up".into(),
        batch,
        gzip: true,
        clients,
        sourcetype: "fw:traffic".into(),
    };
    let t = Instant::now();
    rulebox_bench::hec::send(&format!("127.0.0.1:{port}"), lines, &opts);
    let secs = t.elapsed().as_secs_f64();
    assert!(
        receiver.count() >= lines.len(),
        "receiver has {} of {}",
        receiver.count(),
        lines.len()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    secs
}

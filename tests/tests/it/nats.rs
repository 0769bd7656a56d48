//! Scale-out on NATS JetStream: the real nats-server (Debian's package,
//! installed by the e2e lane), run on a loopback port with its JetStream
//! store in a scratch folder, and real rulebox processes around it (TLS
//! with certificates made here).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rulebox_tests::{
    Running, Scratch, free_port, root, rule_pipeline, rule_wasm, rulebox_bin, wait_for,
    wait_listening,
};

fn nats_server_bin() -> PathBuf {
    let found = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.expect(
        "nats-server is missing: run `bash scripts/test.sh e2e` (it installs Debian's nats-server)",
    )
}

/// A nats-server with JetStream on a loopback port.
struct Nats {
    server: Option<Running>,
    port: u16,
    conf: PathBuf,
    store: PathBuf,
    log: PathBuf,
}

impl Nats {
    /// `extra`: more server configuration (an `authorization` block, say).
    fn start(dir: &Path, extra: &str) -> Nats {
        let mut n = Nats::configure(dir, free_port(), extra);
        n.restart();
        n
    }

    /// The server's configuration, on `port`; not started.
    fn configure(dir: &Path, port: u16, extra: &str) -> Nats {
        let conf = dir.join("nats-server.conf");
        let store = dir.join("jetstream");
        std::fs::write(
            &conf,
            format!("listen: \"127.0.0.1:{port}\"\nmax_payload: 8MB\njetstream {{ store_dir: \"{}\" }}\n{extra}\n", store.display()),
        )
        .unwrap();
        Nats {
            server: None,
            port,
            conf,
            store,
            log: dir.join("nats-server.log"),
        }
    }

    fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(nats_server_bin())
            .args(["-c", self.conf.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.server = Some(Running(child));
        wait_listening(self.port);
        let _ = &self.store;
    }

    fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `rulebox run` with `args` in the background, logs to `log`.
fn spawn(cfg: &Path, extra: &[&str], log: &Path) -> Running {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(rulebox_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .env_remove("RUST_LOG")
        .spawn()
        .expect("start rulebox");
    Running(child)
}

/// Waits (at most `limit`) for every process to exit; their statuses. On
/// timeout it fails with the end of each process's log (`logs`, in order).
fn wait_all(
    procs: &mut [&mut Running],
    logs: &[&Path],
    limit: Duration,
) -> Vec<std::process::ExitStatus> {
    let start = Instant::now();
    let mut out = vec![None; procs.len()];
    while out.iter().any(|s| s.is_none()) {
        if start.elapsed() >= limit {
            panic!(
                "processes did not end within {limit:?}:\n{}",
                logs.iter().map(|l| log_tail(l)).collect::<String>()
            );
        }
        for (i, p) in procs.iter_mut().enumerate() {
            if out[i].is_none() {
                out[i] = p.0.try_wait().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    out.into_iter().map(Option::unwrap).collect()
}

/// The last lines of a log, headed by its name.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(60)..].join("\n");
    format!("--- {} (last 60 lines)\n{tail}\n", log.display())
}

fn run_to_end(cfg: &Path, log: &Path) -> String {
    let mut p = spawn(cfg, &[], log);
    let st = wait_all(&mut [&mut p], &[log], Duration::from_secs(240));
    let text = std::fs::read_to_string(log).unwrap();
    assert!(st[0].success(), "{} failed:\n{text}", cfg.display());
    text
}

fn feed_config(dir: &Path, url: &str, input: &Path) -> String {
    format!(
        r#"data_dir = "{data}"
[sources.events]
type = "file"
path = "{input}"
[sinks.raw]
type = "nats"
inputs = ["events"]
url = "{url}"
subject = "rulebox.raw"
lines_per_message = 100
create_stream = {{ name = "RULEBOX_RAW", subjects = ["rulebox.raw"], retention = "workqueue" }}
"#,
        data = dir.join("feed-data").display(),
        input = input.display(),
    )
}

fn classify_config(url: &str, idle: u64) -> String {
    format!(
        r#"[sources.raw]
type = "nats"
url = "{url}"
stream = "RULEBOX_RAW"
consumer = "classify"
batch_max_events = 256
# What a process took and did not ack comes back this soon (the tests
# restart servers).
ack_wait_secs = 10
idle_end_secs = {idle}
[transforms.classify]
type = "wasm"
inputs = ["raw"]
module = "{wasm}"
[transforms.classify.config]
stage = "classify"
schema = "auto"
[sinks.enriched]
type = "nats"
inputs = ["classify"]
url = "{url}"
subject = "rulebox.enriched"
lines_per_message = 100
create_stream = {{ name = "RULEBOX_ENRICHED", subjects = ["rulebox.enriched"] }}
[sinks.observations]
type = "nats"
inputs = ["classify.observations"]
url = "{url}"
subject = "rulebox.obs.{{partition(8, src, dest, port)}}"
lines_per_message = 16
create_stream = {{ name = "RULEBOX_OBS", subjects = ["rulebox.obs.*"] }}
"#,
        wasm = rule_wasm().display(),
    )
}

/// The rule's configuration, here and in the one-process reference. The
/// generated day replays in seconds, so a process that stalls for one
/// second falls hours behind in event time while the other classify
/// process runs on: the allowed lateness covers the whole replay, and the
/// windows close at the final flush (docs/scale-out.md: order within a
/// partition).
const RULE: &str =
    "schema = \"auto\"\nmin_connections = 3\nwindow_secs = 3600\nallowed_lateness_secs = 172800";

fn aggregate_config(url: &str, idle: u64) -> String {
    format!(
        r#"[sources.obs]
type = "nats"
url = "{url}"
stream = "RULEBOX_OBS"
idle_end_secs = {idle}
partitions = {{ count = 8, subject = "rulebox.obs.{{}}", lease_ttl_secs = 4 }}
[transforms.aggregate]
type = "wasm"
inputs = ["obs"]
module = "{wasm}"
checkpoint_interval_secs = 1
[transforms.aggregate.config]
stage = "aggregate"
{RULE}
[sinks.alerts]
type = "nats"
inputs = ["aggregate.alerts"]
url = "{url}"
subject = "rulebox.alerts"
msg_id = "{{alert_id}}:{{status}}:{{connection_count}}:{{bytes_sent}}"
create_stream = {{ name = "RULEBOX_ALERTS", subjects = ["rulebox.alerts"], duplicate_window_secs = 600 }}
"#,
        wasm = rule_wasm().display(),
    )
}

fn collect_config(dir: &Path, url: &str) -> String {
    format!(
        r#"data_dir = "{data}"
[sources.enriched]
type = "nats"
url = "{url}"
stream = "RULEBOX_ENRICHED"
consumer = "collect"
idle_end_secs = 3
[sources.alerts]
type = "nats"
url = "{url}"
stream = "RULEBOX_ALERTS"
consumer = "collect"
idle_end_secs = 3
[sinks.enriched_file]
type = "file"
inputs = ["enriched"]
path = "{out}/enriched.ndjson"
[sinks.alerts_file]
type = "file"
inputs = ["alerts"]
path = "{out}/alerts.ndjson"
"#,
        data = dir.join("collect-data").display(),
        out = dir.display(),
    )
}

/// Generated events (`gen-events`, the benchmark's generator).
fn generate(dir: &Path, count: usize, seed: u64) -> PathBuf {
    let out = Command::new(root().join("target/release/gen-events"))
        .args(["--count", &count.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("gen-events (built by scripts/test.sh)");
    assert!(out.status.success());
    let p = dir.join("events.ndjson");
    std::fs::write(&p, out.stdout).unwrap();
    p
}

/// The `final` line of each alert_id in an alerts file; resends of one
/// (the same line again) are counted, two different finals fail.
fn finals(path: &Path) -> (BTreeMap<String, serde_json::Value>, usize) {
    let mut out = BTreeMap::new();
    let mut resent = 0;
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["status"] != "final" {
            continue;
        }
        let id = v["alert_id"].as_str().unwrap().to_string();
        match out.get(&id) {
            Some(old) => {
                assert_eq!(old, &v, "two different final alerts for {id}");
                resent += 1;
            }
            None => {
                out.insert(id, v);
            }
        }
    }
    (out, resent)
}

#[test]
fn processes_on_jetstream_give_the_alerts_of_one_even_when_an_aggregate_is_killed() {
    scale_out("nats-kill", 200_000, Leaves::Killed);
}

#[test]
fn an_aggregate_stopped_with_sigterm_hands_its_windows_over() {
    scale_out("nats-term", 100_000, Leaves::Terminated);
}

/// How the first aggregate process leaves mid-stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Leaves {
    /// `kill -9`: its last saved states stand, its leases age out.
    Killed,
    /// SIGTERM: it saves its partitions' state and gives them up.
    Terminated,
}

/// Two classify and two aggregate processes over `count` generated events;
/// halfway, the first aggregate leaves as `leaves` says and a fresh one
/// starts. The final alerts must equal one stage = "all" process's, and
/// every event must leave enriched.
fn scale_out(name: &str, count: usize, leaves: Leaves) {
    let s = Scratch::new(name);
    let events = generate(&s.0, count, 11);
    let text = std::fs::read(&events).unwrap();
    // The reference: one stage = "all" process over the same events.
    let one = s.path("one");
    std::fs::create_dir_all(&one).unwrap();
    let cfg = s.write("one.toml", rule_pipeline(&one, &events, RULE, ""));
    run_to_end(&cfg, &s.path("one.log"));
    let (want, _) = finals(&one.join("alerts.out"));
    assert!(want.len() > 10, "too few alerts to compare: {}", want.len());

    let nats = Nats::start(&s.0, "");
    let url = nats.url();
    // The events in two halves: the second after an aggregate is killed.
    let cut = text.len() / 2
        + text[text.len() / 2..]
            .iter()
            .position(|&c| c == b'\n')
            .unwrap()
        + 1;
    let half1 = s.write("half1.ndjson", &text[..cut]);
    let half2 = s.write("half2.ndjson", &text[cut..]);
    let feed1 = s.write("feed1.toml", feed_config(&s.path("f1"), &url, &half1));
    run_to_end(&feed1, &s.path("feed1.log"));

    let classify = s.write("classify.toml", classify_config(&url, 20));
    let aggregate = s.write("aggregate.toml", aggregate_config(&url, 25));
    let dd = |n: &str| s.path(n).to_str().unwrap().to_string();
    let debug = ["--log-level", "info,rulebox::nats=debug"];
    let mut c1 = spawn(&classify, &["--data-dir", &dd("c1")], &s.path("c1.log"));
    let mut c2 = spawn(&classify, &["--data-dir", &dd("c2")], &s.path("c2.log"));
    let mut a1 = spawn(
        &aggregate,
        &[&["--data-dir", &dd("a1")][..], &debug].concat(),
        &s.path("a1.log"),
    );
    let mut a2 = spawn(&aggregate, &["--data-dir", &dd("a2")], &s.path("a2.log"));
    let a1_log = s.path("a1.log");
    wait_for(
        "a partition state saved by the first aggregate",
        Duration::from_secs(60),
        || {
            std::fs::read_to_string(&a1_log)
                .unwrap_or_default()
                .contains("partition state saved")
        },
    );
    // Mid-stream: the first aggregate leaves, a fresh one starts.
    match leaves {
        Leaves::Killed => {
            a1.0.kill().unwrap();
            a1.0.wait().unwrap();
        }
        Leaves::Terminated => {
            let st = rulebox_tests::terminate(&mut a1.0);
            let log = std::fs::read_to_string(&a1_log).unwrap();
            assert!(st.success(), "{log}");
            assert!(
                !log.contains("ERROR") && log.contains("partition state saved"),
                "{log}"
            );
        }
    }
    let mut a3 = spawn(&aggregate, &["--data-dir", &dd("a3")], &s.path("a3.log"));
    let feed2 = s.write("feed2.toml", feed_config(&s.path("f2"), &url, &half2));
    run_to_end(&feed2, &s.path("feed2.log"));
    let paths = ["c1", "c2", "a2", "a3"].map(|n| s.path(&format!("{n}.log")));
    let st = wait_all(
        &mut [&mut c1, &mut c2, &mut a2, &mut a3],
        &paths.each_ref().map(PathBuf::as_path),
        Duration::from_secs(240),
    );
    let logs: Vec<String> = paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for (st, log) in st.iter().zip(&logs) {
        assert!(st.success(), "a process failed:\n{log}");
    }
    assert!(
        logs[3].contains("partition claimed"),
        "the fresh aggregate took no partition:\n{}",
        logs[3]
    );
    assert!(
        logs[3].contains("partition state restored")
            || logs[2].contains("partition state restored"),
        "no partition state was taken over"
    );

    let collect = s.write("collect.toml", collect_config(&s.0, &url));
    run_to_end(&collect, &s.path("collect.log"));
    let (got, resent) = finals(&s.path("alerts.ndjson"));
    eprintln!(
        "{} final alerts; {resent} resends kept by the stream (not removed by the message id)",
        got.len()
    );
    assert_eq!(
        got.len(),
        want.len(),
        "final alerts: {} distributed, {} in one process",
        got.len(),
        want.len()
    );
    for (id, w) in &want {
        assert_eq!(got.get(id), Some(w), "alert {id} differs");
    }
    // Every event leaves enriched at least once; duplicates are counted.
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for line in std::fs::read(s.path("enriched.ndjson"))
        .unwrap()
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
    {
        *seen.entry(rulebox_tests::unsplice(line)).or_default() += 1;
    }
    assert_every_event_left(&text, &seen);
}

/// Every input line is among the enriched ones (as often as it is in the
/// input); what left more often is counted and reported.
fn assert_every_event_left(input: &[u8], seen: &HashMap<Vec<u8>, usize>) -> usize {
    let mut want: HashMap<&[u8], usize> = HashMap::new();
    for line in input.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        *want.entry(line).or_default() += 1;
    }
    let missing: usize = (want.iter())
        .map(|(l, n)| n.saturating_sub(seen.get(*l).copied().unwrap_or(0)))
        .sum();
    let extra: usize = (want.iter())
        .map(|(l, n)| seen.get(*l).copied().unwrap_or(0).saturating_sub(*n))
        .sum();
    eprintln!(
        "enriched: {} events in, {extra} delivered more than once",
        want.values().sum::<usize>()
    );
    assert_eq!(missing, 0, "events that never left enriched");
    extra
}

/// Runs the collector: the enriched events (unspliced) and how often each
/// left.
fn enriched(dir: &Path, url: &str) -> HashMap<Vec<u8>, usize> {
    let collect = dir.join("collect.toml");
    std::fs::write(&collect, collect_config(dir, url)).unwrap();
    run_to_end(&collect, &dir.join("collect.log"));
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let text = std::fs::read(dir.join("enriched.ndjson")).unwrap_or_default();
    for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        *seen.entry(rulebox_tests::unsplice(line)).or_default() += 1;
    }
    seen
}

fn classify_once(s: &Scratch, url: &str, idle: u64, name: &str) -> Running {
    let cfg = s.write(&format!("{name}.toml"), classify_config(url, idle));
    let dd = s.path(name);
    spawn(
        &cfg,
        &["--data-dir", dd.to_str().unwrap()],
        &s.path(&format!("{name}.log")),
    )
}

/// A server with `count` generated events (`seed`) fed into its raw
/// stream: the server, and the events' bytes.
fn fed_server(s: &Scratch, count: usize, seed: u64) -> (Nats, Vec<u8>) {
    let nats = Nats::start(&s.0, "");
    let events = generate(&s.0, count, seed);
    run_to_end(
        &s.write("feed.toml", feed_config(&s.path("f"), &nats.url(), &events)),
        &s.path("feed.log"),
    );
    (nats, std::fs::read(&events).unwrap())
}

/// Waits until a classify process logs its observations sink's first
/// connection: it is publishing.
fn wait_publishing(log: &Path) {
    wait_for(
        "the first observations out",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("connected to the NATS server component=observations")
        },
    );
}

#[test]
fn malformed_messages_leave_untouched_and_are_counted() {
    let s = Scratch::new("nats-malformed");
    let nats = Nats::start(&s.0, "");
    let good = br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":21,"_time":"2025-11-21T09:00:00Z"}"#;
    let mut input = Vec::new();
    for l in [
        &good[..],
        b"not json",
        b"{\"cut\":",
        b"\xff\xfe{\"x\":1}",
        b"[1,2]",
    ] {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    let file = s.write("in.ndjson", &input);
    run_to_end(
        &s.write("feed.toml", feed_config(&s.path("f"), &nats.url(), &file)),
        &s.path("feed.log"),
    );
    let mut c = classify_once(&s, &nats.url(), 3, "c");
    let st = wait_all(&mut [&mut c], &[&s.path("c.log")], Duration::from_secs(60));
    let log = std::fs::read_to_string(s.path("c.log")).unwrap();
    assert!(st[0].success(), "{log}");
    assert_eq!(
        rulebox_tests::summary_counter(&log, "malformed"),
        Some(2),
        "{log}"
    );
    assert!(
        rulebox_tests::summary_counter(&log, "invalid_utf8").unwrap_or(0)
            + rulebox_tests::summary_counter(&log, "not_object").unwrap()
            >= 2,
        "{log}"
    );
    let seen = enriched(&s.0, &nats.url());
    assert_every_event_left(&input, &seen);
}

#[test]
fn an_unreachable_server_at_the_start_is_waited_for() {
    let s = Scratch::new("nats-unreachable");
    let mut nats = Nats::configure(&s.0, free_port(), "");
    let mut c = classify_once(&s, &nats.url(), 8, "c");
    let log = s.path("c.log");
    wait_for("the retry message", Duration::from_secs(20), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cannot reach the NATS server; trying again")
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        c.0.try_wait().unwrap().is_none(),
        "it gave up instead of waiting"
    );
    nats.restart();
    let events = generate(&s.0, 5_000, 3);
    run_to_end(
        &s.write("feed.toml", feed_config(&s.path("f"), &nats.url(), &events)),
        &s.path("feed.log"),
    );
    let st = wait_all(&mut [&mut c], &[&log], Duration::from_secs(90));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st[0].success(), "{text}");
    assert_eq!(
        rulebox_tests::counter_on(&text, "source done", "events"),
        Some(5_000),
        "{text}"
    );
    assert_every_event_left(
        &std::fs::read(&events).unwrap(),
        &enriched(&s.0, &nats.url()),
    );
}

#[test]
fn a_server_restarted_mid_run_loses_nothing() {
    let s = Scratch::new("nats-restart");
    let (mut nats, text) = fed_server(&s, 100_000, 5);
    let url = nats.url();
    let mut c = classify_once(&s, &url, 12, "c");
    let log = s.path("c.log");
    wait_publishing(&log);
    nats.stop();
    std::thread::sleep(Duration::from_millis(500));
    nats.restart();
    let st = wait_all(&mut [&mut c], &[&log, &nats.log], Duration::from_secs(240));
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(st[0].success(), "{out}");
    assert!(
        out.contains("disconnected from the NATS server"),
        "the restart did not reach the run:\n{out}"
    );
    assert_every_event_left(&text, &enriched(&s.0, &url));
}

/// A server that dies while a sink has a body of many messages out (frozen
/// first with SIGSTOP, so their acks are surely pending, then killed): the
/// acks cannot come, and the body is sent again as soon as the connection
/// is seen to drop, or at worst after one `request_timeout_secs`, not one
/// per message (hundreds of messages × 2 s would hold the run for minutes).
#[test]
fn acks_lost_with_the_server_cost_one_timeout_per_body_at_most() {
    let s = Scratch::new("nats-frozen");
    let (mut nats, text) = fed_server(&s, 100_000, 6);
    let url = nats.url();
    let cfg = classify_config(&url, 8).replace(
        "lines_per_message = 100",
        "lines_per_message = 1\nrequest_timeout_secs = 2",
    );
    let cfg = s.write("c.toml", cfg);
    let log = s.path("c.log");
    let mut c = spawn(&cfg, &["--data-dir", s.path("c").to_str().unwrap()], &log);
    wait_publishing(&log);
    let mut server = nats.server.take().unwrap();
    let pid = server.0.id().to_string();
    let stopped = Command::new("kill").args(["-STOP", &pid]).status().unwrap();
    assert!(stopped.success());
    std::thread::sleep(Duration::from_secs(1));
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    nats.restart();
    let started = Instant::now();
    let st = wait_all(&mut [&mut c], &[&log, &nats.log], Duration::from_secs(90));
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(st[0].success(), "{out}");
    assert!(
        out.contains("delivery failed; keeping the events and retrying"),
        "the server's death did not reach the sinks:\n{out}"
    );
    eprintln!(
        "the classify process ended {:?} after the restart",
        started.elapsed()
    );
    assert_every_event_left(&text, &enriched(&s.0, &url));
}

#[test]
fn refused_credentials_are_a_clear_error_and_the_right_ones_work() {
    let s = Scratch::new("nats-auth");
    let nats = Nats::start(&s.0, "authorization { token: \"s3cret-nats-token\" }");
    let url = nats.url();
    let file = s.write("in.ndjson", "{\"a\":1}\n{\"a\":2}\n");
    let cfg = feed_config(&s.path("f"), &url, &file).replace(
        "subject = \"rulebox.raw\"",
        "subject = \"rulebox.raw\"\nauth = { token = { env = \"RB_NATS_TOKEN\" } }\nretry = { limit_secs = 2 }",
    );
    let cfg = s.write("feed.toml", cfg);
    // The feed with a token from the environment: (success, stderr).
    let feed = |token: &str| {
        let out = Command::new(rulebox_bin())
            .args(["run", "--config", cfg.to_str().unwrap()])
            .env("RB_NATS_TOKEN", token)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = feed("not-the-token");
    assert!(!ok, "{err}");
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains("not-the-token"),
        "the token was logged:\n{err}"
    );
    // A source with the wrong token stops at once, saying why.
    let src = classify_config(&url, 30).replacen(
        "consumer = \"classify\"",
        "consumer = \"classify\"\nauth = { token = \"not-the-token\" }",
        1,
    );
    let cfg = s.write("src.toml", src);
    let started = Instant::now();
    let out = rulebox_tests::rulebox(
        &[
            "run",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            s.path("src").to_str().unwrap(),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("refused the credentials"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "it did not stop at once"
    );
    // The right token, from the environment.
    let (ok, err) = feed("s3cret-nats-token");
    assert!(ok, "{err}");
    assert_eq!(
        rulebox_tests::counter_on(&err, "sink done", "events"),
        Some(2),
        "{err}"
    );
}

#[test]
fn tls_to_the_server_with_a_client_certificate() {
    let s = Scratch::new("nats-tls");
    crate::tls::pki(&s);
    let p = |n: &str| s.path(n).display().to_string();
    let tls = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\", ca_file: \"{}\", verify: true }}",
        p("server.pem"),
        p("server.key"),
        p("ca.pem")
    );
    let nats = Nats::start(&s.0, &tls);
    let url = format!("tls://127.0.0.1:{}", nats.port);
    let file = s.write("in.ndjson", "{\"a\":1}\n{\"a\":2}\n");
    let with_tls = |client: &str| {
        feed_config(&s.path("f"), &url, &file).replace(
            "subject = \"rulebox.raw\"",
            &format!("subject = \"rulebox.raw\"\nretry = {{ limit_secs = 2 }}\ntls = {{ ca_file = \"{}\"{client} }}", p("ca.pem")),
        )
    };
    let client = format!(
        ", cert_file = \"{}\", key_file = \"{}\"",
        p("client.pem"),
        p("client.key")
    );
    let good = s.write("good.toml", with_tls(&client));
    let log = run_to_end(&good, &s.path("good.log"));
    assert_eq!(
        rulebox_tests::counter_on(&log, "sink done", "events"),
        Some(2),
        "{log}"
    );
    // Without a client certificate the server refuses the handshake.
    let bare = s.write("bare.toml", with_tls(""));
    let out = rulebox_tests::rulebox(&["run", "--config", bare.to_str().unwrap()], None);
    let err = rulebox_tests::stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        rulebox_tests::counter_on(&err, "sink done", "write_errors"),
        Some(2),
        "{err}"
    );
}

#[test]
fn statically_assigned_partitions_give_the_alerts_of_one_process() {
    let s = Scratch::new("nats-static");
    let events = generate(&s.0, 40_000, 4);
    let one = s.path("one");
    std::fs::create_dir_all(&one).unwrap();
    let cfg = s.write("one.toml", rule_pipeline(&one, &events, RULE, ""));
    run_to_end(&cfg, &s.path("one.log"));
    let (want, _) = finals(&one.join("alerts.out"));
    assert!(!want.is_empty());
    let nats = Nats::start(&s.0, "");
    let url = nats.url();
    run_to_end(
        &s.write("feed.toml", feed_config(&s.path("f"), &url, &events)),
        &s.path("feed.log"),
    );
    let mut c = classify_once(&s, &url, 8, "c");
    let statically = |assign: &str| {
        aggregate_config(&url, 10).replace("lease_ttl_secs = 4", &format!("assign = {assign}"))
    };
    let a = s.write("a.toml", statically("[0, 1, 2, 3]"));
    let b = s.write("b.toml", statically("[4, 5, 6, 7]"));
    let mut pa = spawn(
        &a,
        &["--data-dir", s.path("a").to_str().unwrap()],
        &s.path("a.log"),
    );
    let mut pb = spawn(
        &b,
        &["--data-dir", s.path("b").to_str().unwrap()],
        &s.path("b.log"),
    );
    let st = wait_all(
        &mut [&mut c, &mut pa, &mut pb],
        &[&s.path("c.log"), &s.path("a.log"), &s.path("b.log")],
        Duration::from_secs(240),
    );
    for (st, n) in st.iter().zip(["c", "a", "b"]) {
        let log = std::fs::read_to_string(s.path(&format!("{n}.log"))).unwrap();
        assert!(st.success(), "{log}");
        assert!(
            !log.contains("partition claimed"),
            "a static owner claimed:\n{log}"
        );
    }
    let collect = s.write("collect.toml", collect_config(&s.0, &url));
    run_to_end(&collect, &s.path("collect.log"));
    let (got, _) = finals(&s.path("alerts.ndjson"));
    assert_eq!(got, want);
}

#[test]
fn a_classify_process_stopped_with_sigterm_acks_what_it_delivered() {
    let s = Scratch::new("nats-sigterm");
    let nats = Nats::start(&s.0, "");
    let url = nats.url();
    let events = generate(&s.0, 60_000, 8);
    let feed = feed_config(&s.path("f"), &url, &events)
        .replace("lines_per_message = 100", "lines_per_message = 1");
    run_to_end(&s.write("feed.toml", feed), &s.path("feed.log"));
    // No idle end: it runs until SIGTERM, which comes while it reads.
    let mut first = classify_once(&s, &url, 0, "c1");
    let log = s.path("c1.log");
    wait_publishing(&log);
    let st = rulebox_tests::terminate(&mut first.0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{text}");
    let read = rulebox_tests::counter_on(&text, "source done", "events").unwrap();
    let mut second = classify_once(&s, &url, 5, "c2");
    let st = wait_all(
        &mut [&mut second],
        &[&s.path("c2.log")],
        Duration::from_secs(120),
    );
    assert!(st[0].success());
    let extra = assert_every_event_left(&std::fs::read(&events).unwrap(), &enriched(&s.0, &url));
    eprintln!("the first process read {read} of 60000 events before SIGTERM");
    assert_eq!(
        extra, 0,
        "events the first process delivered came again: its acks were lost"
    );
}

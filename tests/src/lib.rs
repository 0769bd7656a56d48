//! Helpers for rulebox's end-to-end tests: where the built artefacts are,
//! running the real `rulebox` binary, and scratch folders.
//!
//! The artefacts are built by `scripts/test.sh` before the tests run (the
//! `.wasm` for `wasm32-wasip1`, the host in release mode). A missing one is a
//! test failure with the command to run, never a skip.

pub mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn artefact(env: &str, rel: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(rel));
    assert!(
        p.exists(),
        "{} is missing: run `bash scripts/test.sh` (it builds the plugin and host first)",
        p.display()
    );
    p
}

/// The shipped T1071.002 plugin.
pub fn rule_wasm() -> PathBuf {
    artefact(
        "RULEBOX_RULE_WASM",
        "target/wasm32-wasip1/wasm/rule_t1071_002.wasm",
    )
}

/// The second rule, T1048 large outbound transfers.
pub fn t1048_wasm() -> PathBuf {
    artefact(
        "RULEBOX_T1048_WASM",
        "target/wasm32-wasip1/wasm/rule_t1048_large_outbound.wasm",
    )
}

/// The `rulebox` binary.
pub fn rulebox_bin() -> PathBuf {
    artefact("RULEBOX_BIN", "target/release/rulebox")
}

/// A fresh scratch folder under the target directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = root()
            .join("target")
            .join("test-scratch")
            .join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, data).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `rulebox <args>` to completion.
pub fn rulebox(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(rulebox_bin());
    cmd.args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("start rulebox");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = si.write_all(&data);
        });
    }
    child.wait_with_output().expect("wait for rulebox")
}

/// A pipeline config: `n` events `{"i":0}`, `{"i":1}`, ... in a file, read
/// by a file source (`source_keys`: more of its TOML lines) into a
/// `splunk_hec` sink `out` that posts to `receiver` with the token `t`
/// (`sink_keys`: more of its lines).
pub fn numbered_into_hec(
    dir: &Scratch,
    n: usize,
    receiver: &str,
    source_keys: &str,
    sink_keys: &str,
) -> PathBuf {
    let input: String = (0..n).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let input = dir.write("in.ndjson", input);
    let cfg = format!(
        "data_dir = \"{data}\"\n[sources.in]\ntype = \"file\"\npath = \"{input}\"\n{source_keys}[sinks.out]\ntype = \"splunk_hec\"\ninputs = [\"in\"]\nendpoint = \"http://{receiver}\"\ntoken = \"t\"\n{sink_keys}",
        data = dir.path("data").display(),
        input = input.display(),
    );
    dir.write("p.toml", cfg)
}

/// A pipeline config: one file source, the T1071.002 rule with `rule_config`
/// (TOML lines), events and alerts to files in `dir`.
pub fn rule_pipeline(dir: &Path, input: &Path, rule_config: &str, extra_transform: &str) -> String {
    format!(
        r#"data_dir = "{data}"

[sources.in]
type = "file"
path = "{input}"

[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
{extra_transform}

[transforms.rule.config]
{rule_config}

[sinks.events]
type = "file"
path = "{dir}/events.out"
inputs = ["rule"]

[sinks.alerts]
type = "file"
path = "{dir}/alerts.out"
inputs = ["rule.alerts"]
"#,
        data = dir.join("data").display(),
        input = input.display(),
        wasm = rule_wasm().display(),
        dir = dir.display(),
    )
}

/// The text of a process's stderr, for assertion messages.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A counter from the `transform done` summary line, e.g. `malformed`.
pub fn summary_counter(stderr: &str, name: &str) -> Option<u64> {
    counter_on(stderr, "transform done", name)
}

/// A counter from the first log line that holds `marker` (`sink done`, say).
pub fn counter_on(stderr: &str, marker: &str, name: &str) -> Option<u64> {
    let line = stderr.lines().find(|l| l.contains(marker))?;
    let plain: String = strip_ansi(line);
    let key = format!(" {name}=");
    let at = plain.find(&key)? + key.len();
    plain[at..].split_whitespace().next()?.parse().ok()
}

/// `s` without terminal colour codes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Sends SIGTERM and waits (at most 10 s) for the exit status.
pub fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Instant::now();
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "rulebox did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 50 ms until it holds; fails the test after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Removes the `,"t1071":{...}` the rule adds, to recover the original.
/// A line cut inside the label (the last line a killed run wrote) comes
/// back as it is.
pub fn unsplice(line: &[u8]) -> Vec<u8> {
    let key = b",\"t1071\":{";
    let at = line.windows(key.len()).rposition(|w| w == key);
    match at.and_then(|at| Some((at, line[at..].iter().position(|&c| c == b'}')? + at + 1))) {
        Some((at, end)) => [&line[..at], &line[end..]].concat(),
        None => line.to_vec(),
    }
}

/// A background process, killed if the test fails before it ends it.
pub struct Running(pub std::process::Child);

impl Running {
    /// SIGTERM, then a bounded wait for the exit (10 s; then SIGKILL): for
    /// the real daemons the tests start (rsyslog, syslog-ng).
    pub fn stop(mut self) {
        let child = &mut self.0;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `rulebox run --config cfg` in the background, its logs going to
/// `log` (a file: a pipe nobody reads could fill and stall it).
pub fn spawn_run(cfg: &Path, log: &Path) -> Running {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(rulebox_bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .env_remove("RUST_LOG")
        .spawn()
        .expect("start rulebox");
    Running(child)
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something listens on `127.0.0.1:port`.
pub fn wait_listening(port: u16) {
    wait_for(
        &format!("a listener on port {port}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (413) before reading the whole body.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A `[transforms.rule]` table: the T1071.002 rule on `inputs` (a TOML
/// list's items), ticking every second so open alerts come out while it
/// runs, no saved state.
pub fn live_rule(inputs: &str) -> String {
    format!(
        r#"
[transforms.rule]
type = "wasm"
inputs = [{inputs}]
module = "{wasm}"
flush_interval_secs = 1
persist_state = false

[transforms.rule.config]
schema = "auto"
"#,
        wasm = rule_wasm().display()
    )
}

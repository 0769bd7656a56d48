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
    let line = stderr.lines().find(|l| l.contains("transform done"))?;
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

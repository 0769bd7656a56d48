//! `rulebox new rule`: a rule crate generated outside the checkout (a
//! standalone crate, `--sdk`) passes its own `cargo test`, builds for
//! wasm32-wasip1, passes its `rulebox test` files, runs in its pipeline,
//! and, signed with Debian's real `minisign`, runs where a signature is
//! required; unsigned, it is refused there. A bad name and an existing
//! folder are refused with exit 2.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use rulebox_tests::{Scratch, root, rulebox, stderr};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `program args` in `dir`, which must succeed.
fn ok(dir: &Path, program: &str, args: &[&str], envs: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .env_remove("CARGO_TARGET_DIR");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// `rulebox run --config <crate>/<pipeline>`: (success, stdout, stderr).
fn run(krate: &Path, pipeline: &str) -> (bool, String, String) {
    let cfg = krate.join(pipeline);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    (out.status.success(), stdout(&out), stderr(&out))
}

#[test]
fn a_generated_rule_builds_tests_signs_and_runs_as_documented() {
    let dir = Scratch::new("scaffold");
    let krate = dir.path("my-rule");
    let repo = root();
    let out = rulebox(
        &[
            "new",
            "rule",
            "my-rule",
            "--dir",
            krate.to_str().unwrap(),
            "--sdk",
            repo.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("created rule my-rule"),
        "{}",
        stdout(&out)
    );
    // The versions this checkout pins, so the build needs nothing new.
    std::fs::copy(repo.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();

    // Native unit tests, in a shared target folder (warm on a rerun).
    let native = repo.join("target/scaffold-native");
    let tested = ok(&krate, "cargo", &["test"], &[("CARGO_TARGET_DIR", &native)]);
    let said = stdout(&tested);
    assert!(said.contains("test result: ok. 4 passed"), "{said}");

    // The module, into the crate's own target/, where its files point.
    ok(
        &krate,
        "cargo",
        &["build", "--target", "wasm32-wasip1", "--profile", "wasm"],
        &[],
    );
    let wasm = krate.join("target/wasm32-wasip1/wasm/my_rule.wasm");
    assert!(wasm.is_file());

    let rules = krate.join("tests/rules");
    let out = rulebox(&["test", rules.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 tests: 1 passed"),
        "{}",
        stdout(&out)
    );

    let (ran, events, log) = run(&krate, "pipeline.toml");
    assert!(ran, "{log}");
    assert!(
        events.contains(r#"{"user":"bob","action":"denied","matched":true}"#),
        "{events}"
    );
    assert_eq!(
        events
            .matches(r#"{"field":"action","value":"denied""#)
            .count(),
        2,
        "{events}"
    );
    assert!(
        events.contains("not json"),
        "the unreadable line passes: {events}"
    );

    // Required signature: refused unsigned, run once signed.
    ok(
        &krate,
        "minisign",
        &["-G", "-W", "-p", "rulebox.pub", "-s", "rulebox.key"],
        &[],
    );
    let (ran, _, log) = run(&krate, "pipeline-signed.toml");
    assert!(!ran && log.contains("it is not signed"), "{log}");
    let module = "target/wasm32-wasip1/wasm/my_rule.wasm";
    ok(
        &krate,
        "minisign",
        &[
            "-S",
            "-s",
            "rulebox.key",
            "-m",
            module,
            "-t",
            "my-rule 0.1.0",
        ],
        &[],
    );
    let (ran, events, log) = run(&krate, "pipeline-signed.toml");
    assert!(ran, "{log}");
    assert_eq!(events.lines().count(), 6, "4 events and 2 alerts: {events}");
}

#[test]
fn a_bad_name_or_an_existing_folder_is_refused() {
    let dir = Scratch::new("scaffold-bad");
    let repo = root();
    let sdk = ["--sdk", repo.to_str().unwrap()];
    let into = dir.path("x");
    let dir_arg = ["--dir", into.to_str().unwrap()];
    let out = rulebox(
        &[&["new", "rule", "My_Rule"][..], &dir_arg, &sdk].concat(),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bad rule name \"My_Rule\""),
        "{}",
        stderr(&out)
    );
    assert!(!into.exists());
    std::fs::create_dir(&into).unwrap();
    let out = rulebox(
        &[&["new", "rule", "ok-name"][..], &dir_arg, &sdk].concat(),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_dir(&into).unwrap().count(),
        0,
        "nothing written"
    );
}

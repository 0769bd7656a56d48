//! `rulebox test`: the T1071.002 and T1048 rules' own test files pass
//! through the real binary and `.wasm`, and so do every rule crate's
//! (found by pattern, as scripts/rule-crates.sh finds the crates); a test
//! whose expectation is off by one fails with exit 1 and says where; one
//! that cannot run exits 2.

use rulebox_tests::{Scratch, root, rule_wasm, rulebox, t1048_wasm};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_rules_shipped_tests_pass() {
    let dir = root().join("plugin/t1071-002/tests/rules");
    let wasm = rule_wasm();
    let args = [
        "test",
        dir.to_str().unwrap(),
        "--module",
        wasm.to_str().unwrap(),
    ];
    let out = rulebox(&args, None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= 7, "{files} test files");
    assert!(
        text.contains(&format!("{files} tests: {files} passed")),
        "{text}"
    );
}

/// Every `tests/rules` folder of a crate under plugin/, examples/ or
/// templates/, sorted.
fn rule_test_dirs() -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for parent in ["plugin", "examples", "templates"] {
        let Ok(crates) = std::fs::read_dir(root().join(parent)) else {
            continue;
        };
        for c in crates {
            let dir = c.unwrap().path().join("tests/rules");
            if dir.is_dir() {
                dirs.push(dir);
            }
        }
    }
    dirs.sort();
    dirs
}

/// Each rule crate's test files name its module (built by the e2e lane for
/// every rule crate) relative to themselves.
#[test]
fn every_rule_crates_tests_pass() {
    let dirs = rule_test_dirs();
    let rel: Vec<String> = dirs
        .iter()
        .map(|d| d.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for known in [
        "plugin/t1071-002/tests/rules",
        "examples/tag-events/tests/rules",
        "examples/counter/tests/rules",
        "examples/path-plan/tests/rules",
        "templates/rule/tests/rules",
    ] {
        assert!(
            rel.iter().any(|r| r == known),
            "{known} not found in {rel:?}"
        );
    }
    for dir in &dirs {
        let out = rulebox(&["test", dir.to_str().unwrap()], None);
        let text = stdout(&out);
        let files = std::fs::read_dir(dir).unwrap().count();
        assert_eq!(out.status.code(), Some(0), "{}: {text}", dir.display());
        assert!(
            text.contains(&format!("{files} tests: {files} passed")),
            "{}: {text}",
            dir.display()
        );
    }
}

#[test]
fn the_t1048_rules_shipped_tests_pass() {
    let dir = root().join("plugin/t1048-large-outbound/tests/rules");
    // The files name the module themselves (relative to each file).
    let _ = t1048_wasm();
    let out = rulebox(&["test", dir.to_str().unwrap()], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= 5, "{files} test files");
    assert!(
        text.contains(&format!("{files} tests: {files} passed")),
        "{text}"
    );
}

#[test]
fn an_alert_count_off_by_one_fails_with_a_diff() {
    let dir = Scratch::new("ruletest");
    let shipped = root().join("plugin/t1071-002/tests/rules/four_connections_alert.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    assert!(text.contains("connection_count = 4,"));
    let off = dir.write(
        "off.toml",
        text.replace("connection_count = 4,", "connection_count = 5,"),
    );
    let wasm = rule_wasm();
    let module = ["--module", wasm.to_str().unwrap()];
    let out = rulebox(
        &[&["test", off.to_str().unwrap()][..], &module].concat(),
        None,
    );
    let said = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("alerts line 1: connection_count: expected 5, got 4"),
        "{said}"
    );
    assert!(said.contains("1 tests: 0 passed, 1 failed"), "{said}");

    let fewer = dir.write("fewer.toml", text.replace("alerts = 1", "alerts = 2"));
    let out = rulebox(
        &[&["test", fewer.to_str().unwrap()][..], &module].concat(),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("alerts: 1 lines out, expected 2"),
        "{}",
        stdout(&out)
    );

    let lost = dir.write("lost.toml", "module = \"nowhere.wasm\"\n");
    let out = rulebox(&["test", lost.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("nowhere.wasm"), "{}", stdout(&out));
}

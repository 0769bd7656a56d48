//! The manifest inside a module, through the real binary: `rulebox
//! inspect` prints the rule's, a module without one still runs (and says
//! it has none), and `validate` names a configuration key its schema
//! refuses, at the key's line.

use rulebox_bench::wat::Wat;
use rulebox_tests::{Scratch, rule_pipeline, rule_wasm, rulebox, stderr};
use serde_json::Value;

fn inspect(args: &[&str]) -> String {
    let out = rulebox(&[&["inspect"], args].concat(), None);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn inspect_prints_the_rules_manifest_and_interface() {
    let wasm = rule_wasm();
    let text = inspect(&[wasm.to_str().unwrap()]);
    for want in [
        "name: t1071-002",
        &format!("version: {}", env!("CARGO_PKG_VERSION")),
        "author: rulebox",
        "techniques: T1071.002",
        "outputs: alerts, observations",
        "abi version: 1",
        "config schema: yes (keys: allowed_lateness_secs, allowlist,",
        "rulebox.log (func)",
        "rulebox_process_objects (func)",
        "memory (memory)",
        &format!("size: {} bytes", std::fs::metadata(&wasm).unwrap().len()),
        "signature: none",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let sum = std::process::Command::new("sha256sum")
        .arg(&wasm)
        .output()
        .unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let sum = sum.split_whitespace().next().unwrap();
    assert!(text.contains(&format!("sha256: {sum}\n")), "{text}");
    let json: Value = serde_json::from_str(&inspect(&["--json", wasm.to_str().unwrap()])).unwrap();
    assert_eq!(json["sha256"], sum);
    let m = &json["manifest"];
    assert_eq!(m["manifest_version"], 1);
    assert_eq!(m["techniques"], serde_json::json!(["T1071.002"]));
    assert_eq!(m["config_schema"]["additionalProperties"], false);
    assert!(json["exports"].as_array().unwrap().len() >= 7);
}

#[test]
fn a_module_without_a_manifest_says_so_and_still_runs() {
    let dir = Scratch::new("manifest-none");
    let module = dir.write("plain.wat", Wat::default().text());
    let text = inspect(&[module.to_str().unwrap()]);
    assert!(text.contains("manifest: no manifest"), "{text}");

    let input = dir.write("in.ndjson", "{\"a\":1}\n{\"a\":2}\n");
    let cfg = rule_pipeline(&dir.0, &input, "anything = \"goes\"", "").replace(
        &rule_wasm().display().to_string(),
        &module.display().to_string(),
    );
    // The pass-through plugin declares no alerts output: read only events.
    let cfg = cfg.split("[sinks.alerts]").next().unwrap();
    let cfg = dir.write("p.toml", cfg);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = std::fs::read_to_string(dir.path("events.out")).unwrap();
    assert_eq!(events, "{\"a\":1}\n{\"a\":2}\n");
}

#[test]
fn a_malformed_manifest_is_refused() {
    let dir = Scratch::new("manifest-bad");
    let plugin = Wat {
        funcs: r#"(@custom "rulebox.manifest" "{\"manifest_version\":1,")"#,
        ..Wat::default()
    };
    let module = dir.write("bad.wat", plugin.text());
    let text = inspect(&[module.to_str().unwrap()]);
    assert!(
        text.contains("manifest: refused: its rulebox.manifest section is not a valid manifest"),
        "{text}"
    );
}

#[test]
fn validate_names_the_key_the_rules_schema_refuses_at_its_line() {
    let dir = Scratch::new("manifest-schema");
    let input = dir.write("in.ndjson", "");
    let rule_config = "schema = \"cim\"\nwindow_secs = \"3600\"\nwindw = 1\n\n[[transforms.rule.config.protocols]]\nlabel = \"FTP\"\nports = [21, 70000]";
    let cfg = rule_pipeline(&dir.0, &input, rule_config, "");
    let line = |key: &str| cfg.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    let (window, typo, ports) = (line("window_secs"), line("windw"), line("ports"));
    let cfg = dir.write("p.toml", &cfg);
    let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    let at = |line: usize, rest: &str| format!("p.toml:{line}: transforms.rule.config.{rest}");
    for want in [
        at(
            window,
            "window_secs: expected integer, found string \"3600\" (the schema of t1071-002)",
        ),
        at(
            typo,
            "windw: unknown key; expected one of: allowed_lateness_secs,",
        ),
        at(
            ports,
            "protocols[0].ports[1]: 70000 is more than the maximum 65535",
        ),
    ] {
        assert!(e.contains(&want), "{want:?} not in:\n{e}");
    }
}

/// A manifest must list every output the module declares, and speak the
/// host's ABI version: one that says otherwise is refused by `validate`
/// and `run`, naming the difference.
#[test]
fn a_manifest_that_disagrees_with_its_module_is_refused() {
    let dir = Scratch::new("manifest-disagrees");
    let input = dir.write("in.ndjson", "{\"a\":1}\n");
    for (manifest, want) in [
        (
            r#"(@custom "rulebox.manifest" "{\"manifest_version\":1,\"name\":\"m\",\"version\":\"1\",\"outputs\":[\"other\"]}")"#,
            "the module declares output(s) [\"probe\"] at init that its manifest's outputs [\"other\"] do not list",
        ),
        (
            r#"(@custom "rulebox.manifest" "{\"manifest_version\":1,\"name\":\"m\",\"version\":\"1\",\"outputs\":[\"probe\"],\"abi_version\":9}")"#,
            "its manifest says ABI version 9; this host speaks 1",
        ),
    ] {
        let plugin = Wat {
            funcs: manifest,
            init: r#"\00\00\00\00\01\00\00\00\05\00\00\00probe"#,
            ..Wat::default()
        };
        let module = dir.write("m.wat", plugin.text());
        let cfg = rule_pipeline(&dir.0, &input, "", "").replace(
            &rule_wasm().display().to_string(),
            &module.display().to_string(),
        );
        let cfg = cfg.split("[sinks.alerts]").next().unwrap();
        let cfg = dir.write("p.toml", cfg);
        let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains(want),
            "{want:?} not in {}",
            stderr(&out)
        );
    }
}

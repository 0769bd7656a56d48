//! A rule in C (`examples/c-tag`), built with Debian's clang against the
//! contract in `plugin/abi` alone: it passes the checks the Rust rules
//! pass (imports and exports, the host's load), runs through the real
//! `rulebox run`, `inspect`, `validate` and `test`, and answers every event
//! as an independent reading of the input (serde_json) says it should.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rulebox::batch::{Batch, LineSplitter};
use rulebox::sandbox::{Limits, Plugin, PluginError, Runtime};
use rulebox::transforms::wasm::{Options, TransformStats, WasmTransform};
use rulebox_tests::{Scratch, root, rulebox, stderr, summary_counter};
use serde_json::{Value, json};
use wasmtime::{Engine, Module};

/// The C rule, built by `examples/c-tag/build.sh` (the e2e lane runs it).
fn c_wasm() -> PathBuf {
    let p = root().join("target/c-tag/c_tag.wasm");
    assert!(
        p.exists(),
        "{} is missing: run `bash examples/c-tag/build.sh` (scripts/test.sh e2e does)",
        p.display()
    );
    p
}

fn load() -> Result<Plugin, PluginError> {
    load_within(16 << 20)
}

fn load_within(max_memory_bytes: usize) -> Result<Plugin, PluginError> {
    static RT: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    let rt = RT.get_or_init(|| Runtime::new().unwrap());
    let limits = Limits {
        max_memory_bytes,
        deadline: Duration::from_millis(500),
    };
    Plugin::load(rt, "c-tag", &c_wasm(), None, limits)
}

#[test]
fn the_c_module_imports_and_exports_match_the_contract() {
    let module = Module::from_file(&Engine::default(), c_wasm()).unwrap();
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    // No stdio, no WASI: the host's log is all it needs.
    assert_eq!(imports, ["rulebox::log"]);
    crate::contract::assert_contract_exports(&module);
    // The host's own check (exact types, ABI version, init frame) agrees.
    load().unwrap().instantiate(b"{}").unwrap();
}

#[test]
fn init_refuses_a_bad_configuration_and_says_why() {
    let plugin = load().unwrap();
    for (config, why) in [
        (&br#"{"tag":5}"#[..], "tag must be a string"),
        (br#"{"tagg":"x"}"#, "unknown key \"tagg\""),
        (br#"{"tag":""}"#, "tag must be 1 to 64 bytes"),
        (br#"[]"#, "expected a JSON object"),
        (br#"{"tag":"a"} {}"#, "nothing after it"),
        (br#"{"tag":"a",}"#, "a ',' before '}'"),
    ] {
        match plugin.instantiate(config) {
            Err(PluginError::Config(e)) => assert!(e.contains(why), "{why:?} not in {e:?}"),
            Err(e) => panic!("{}: wrong error {e}", String::from_utf8_lossy(config)),
            Ok(_) => panic!("{} must be refused", String::from_utf8_lossy(config)),
        }
    }
    let long = format!(r#"{{"tag":"{}"}}"#, "x".repeat(65));
    assert!(matches!(
        plugin.instantiate(long.as_bytes()),
        Err(PluginError::Config(_))
    ));
    plugin.instantiate(br#" { "tag" : "a\"b" } "#).unwrap();
}

/// A pipeline: `in.ndjson` through the C rule, events and counts to files.
fn pipeline(dir: &Scratch, config: &str) -> PathBuf {
    let text = format!(
        r#"data_dir = "{d}/data"

[sources.in]
type = "file"
path = "{d}/in.ndjson"

[transforms.tag]
type = "wasm"
inputs = ["in"]
module = "{wasm}"

[transforms.tag.config]
{config}

[sinks.events]
type = "file"
path = "{d}/events.out"
inputs = ["tag"]

[sinks.counts]
type = "file"
path = "{d}/counts.out"
inputs = ["tag.counts"]
"#,
        d = dir.0.display(),
        wasm = c_wasm().display(),
    );
    dir.write("p.toml", text)
}

#[test]
fn rulebox_run_tags_every_object_and_passes_every_other_line() {
    let dir = Scratch::new("c-rule-run");
    let input = [
        r#"{"a":1}"#,
        r#"{}"#,
        "garbage {",
        r#"[1,2]"#,
        r#"{"c_tag":"old","b":2}"#,
        r#"{"x":{"c_tag":1}}"#,
        r#"  { "y" : "z" }  "#,
        r#"{"a":1"#,
    ];
    dir.write("in.ndjson", input.join("\n") + "\n");
    let cfg = pipeline(&dir, r#"tag = "seen-by-c""#);
    let out = rulebox(&["run", "--config", cfg.to_str().unwrap()], None);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let t = r#""c_tag":"seen-by-c""#;
    let want = [
        format!(r#"{{"a":1,{t}}}"#),
        format!("{{{t}}}"),
        "garbage {".into(),
        "[1,2]".into(),
        format!(r#"{{{t},"b":2}}"#),
        format!(r#"{{"x":{{"c_tag":1}},{t}}}"#),
        format!(r#"  {{ "y" : "z" ,{t}}}  "#),
        r#"{"a":1"#.into(),
    ];
    let events = std::fs::read_to_string(dir.path("events.out")).unwrap();
    assert_eq!(events, want.join("\n") + "\n");
    let counts = std::fs::read_to_string(dir.path("counts.out")).unwrap();
    let counts: Value = serde_json::from_str(&counts).unwrap();
    assert_eq!(
        counts,
        json!({"events": 8, "tagged": 5, "replaced": 1, "malformed": 2, "not_object": 1})
    );
    assert_eq!(summary_counter(&log, "malformed"), Some(2), "{log}");
    assert_eq!(summary_counter(&log, "not_object"), Some(1), "{log}");
    assert_eq!(summary_counter(&log, "plugin_failures"), Some(0), "{log}");
    assert!(
        log.contains(r#"c-tag: tagging events with c_tag="seen-by-c" plugin="tag""#),
        "the rule's log line, through the host's log import: {log}"
    );
}

fn batch(lines: &[&str]) -> Batch {
    let mut s = LineSplitter::new(1 << 20);
    let mut out = Vec::new();
    s.push((lines.join("\n") + "\n").as_bytes(), &mut out);
    out.pop().unwrap()
}

/// What the rule must make of `line`, read by serde_json, not by the rule
/// or the host's scanner: an object gets `c_tag` (and keeps every other
/// member), anything else leaves byte-identical.
fn check_line(line: &str, got: &str, tag: &Value) -> &'static str {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(mut want)) => {
            let mut got: serde_json::Map<String, Value> = match serde_json::from_str(got) {
                Ok(Value::Object(m)) => m,
                _ => panic!("not an object out: {got}"),
            };
            assert_eq!(got.remove("c_tag").as_ref(), Some(tag), "{got:?}");
            want.remove("c_tag");
            assert_eq!(got, want, "the other members are kept: {line}");
            "object"
        }
        Ok(_) => {
            assert_eq!(got, line);
            "not_object"
        }
        Err(_) => {
            assert_eq!(got, line);
            "malformed"
        }
    }
}

#[test]
fn every_event_of_a_mixed_input_comes_out_as_serde_json_reads_it() {
    let day = 1_763_683_200_000;
    let mut lines = rulebox_bench::sample(4_000, 11, day);
    lines.extend(rulebox_bench::bench_events(1_000, 12, day));
    lines.extend(
        [
            r#"{"c\u005ftag":1,"k":[{"c_tag":2}]}"#,
            "{}",
            " { \t } ",
            r#"{"c_tag":{"deep":[1,2,{"c_tag":3}]}}"#,
            r#""just a string""#,
            "null",
            "{\"a\":\"\u{e9}\u{2603}\"}",
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":tru}"#,
            "",
        ]
        .map(String::from),
    );
    lines.push(format!("{}1{}", "[".repeat(200), "]".repeat(200)));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let options = Options {
        error_field: String::new(),
        ..Options::default()
    };
    let config = br#"{"tag":"c\"rule"}"#.to_vec();
    let mut t = WasmTransform::new("t", Arc::new(load().unwrap()), config, options).unwrap();
    let mut out = t.new_outputs();
    for chunk in refs.chunks(300) {
        t.process(&batch(chunk), day, &mut out);
    }
    t.flush(day, &mut out);
    let events = String::from_utf8(out.default.bytes().to_vec()).unwrap();
    let got: Vec<&str> = events.lines().collect();
    assert_eq!(got.len(), refs.len(), "every event comes out");
    let tag = json!("c\"rule");
    let mut kinds = std::collections::BTreeMap::<&str, u64>::new();
    for (line, got) in refs.iter().zip(&got) {
        *kinds.entry(check_line(line, got, &tag)).or_default() += 1;
    }
    assert_eq!(TransformStats::get(&t.stats.plugin_failures), 0);
    assert_eq!(TransformStats::get(&t.stats.malformed), kinds["malformed"]);
    assert_eq!(
        TransformStats::get(&t.stats.not_object),
        kinds["not_object"]
    );
    assert!(
        kinds["malformed"] >= 3 && kinds["not_object"] >= 3,
        "{kinds:?}"
    );
    let counts: Value = serde_json::from_slice(out.named[0].bytes()).unwrap();
    assert_eq!(counts["events"], refs.len() as u64);
    assert_eq!(counts["tagged"], kinds["object"]);
    assert_eq!(counts["malformed"], kinds["malformed"]);
    assert_eq!(counts["not_object"], kinds["not_object"]);
}

#[test]
fn a_batch_over_the_memory_cap_passes_on_and_the_next_is_tagged() {
    // 2 MiB of linear memory at most: malloc cannot hold a 3 MB batch, so
    // rulebox_reserve answers 0 (no buffer); the host passes the batch on
    // untouched, counts the failure, and the next batch is tagged.
    let options = Options {
        error_field: String::new(),
        max_line_bytes: 8 << 20,
        ..Options::default()
    };
    let plugin = Arc::new(load_within(2 << 20).unwrap());
    let mut t = WasmTransform::new("t", plugin, b"{}".to_vec(), options).unwrap();
    let mut out = t.new_outputs();
    let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(3 << 20));
    let lines = [big.as_str(), r#"{"a":1}"#];
    t.process(&batch(&lines), 0, &mut out);
    let passed = out.default.bytes() == batch(&lines).bytes();
    assert!(passed, "the batch passes on untouched");
    assert_eq!(TransformStats::get(&t.stats.plugin_failures), 1);
    assert_eq!(TransformStats::get(&t.stats.unprocessed), 2);
    let mut out = t.new_outputs();
    t.process(&batch(&[r#"{"a":2}"#]), 0, &mut out);
    assert_eq!(out.default.bytes(), b"{\"a\":2,\"c_tag\":\"c-tag\"}\n");
}

#[test]
fn inspect_shows_the_manifest_written_from_manifest_json() {
    let wasm = c_wasm();
    let out = rulebox(&["inspect", wasm.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "name: c-tag",
        "version: 0.1.0",
        "outputs: counts",
        "abi version: 1",
        "config schema: yes (keys: tag)",
        "imports: 1\n  rulebox.log (func)",
        "rulebox_process_objects (func)",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
    let out = rulebox(&["inspect", "--json", wasm.to_str().unwrap()], None);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = std::fs::read(root().join("examples/c-tag/manifest.json")).unwrap();
    let file: Value = serde_json::from_slice(&file).unwrap();
    assert_eq!(json["manifest"], file);
}

#[test]
fn validate_checks_the_config_against_the_schema_then_the_rules_init() {
    let dir = Scratch::new("c-rule-validate");
    dir.write("in.ndjson", "");
    let cfg = pipeline(&dir, "tag = 7\ncolour = \"red\"");
    let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    for want in [
        "transforms.tag.config.tag: expected string, found integer 7 (the schema of c-tag)",
        "transforms.tag.config.colour: unknown key; expected one of: tag",
    ] {
        assert!(e.contains(want), "{want:?} not in:\n{e}");
    }
    // The schema cannot say "printable ASCII"; the rule's init does.
    let cfg = pipeline(&dir, "tag = \"caf\u{e9}\"");
    let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let want = "transforms.tag.config: plugin rejected its configuration: \
                config: tag must be a string of printable ASCII";
    assert!(stderr(&out).contains(want), "{}", stderr(&out));
    let cfg = pipeline(&dir, "tag = \"ok\"");
    let out = rulebox(&["validate", "--config", cfg.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_c_rules_test_files_pass_through_rulebox_test() {
    let dir = root().join("examples/c-tag/tests");
    let wasm = c_wasm();
    let args = ["test", dir.to_str().unwrap()];
    let out = rulebox(&args, None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files >= 3, "{files} test files");
    assert!(
        text.contains(&format!("{files} tests: {files} passed")),
        "{text}"
    );
    // An expectation off by one value fails, with the difference: the
    // files test the rule, they do not merely run it.
    let off = Scratch::new("c-rule-test");
    let text = std::fs::read_to_string(dir.join("tags_objects.toml")).unwrap();
    assert!(text.contains("tagged = 3,"));
    let file = off.write("off.toml", text.replace("tagged = 3,", "tagged = 2,"));
    let module = ["--module", wasm.to_str().unwrap()];
    let out = rulebox(
        &[&["test", file.to_str().unwrap()][..], &module].concat(),
        None,
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("counts line 1: tagged: expected 2, got 3"),
        "{said}"
    );
}

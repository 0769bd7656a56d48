//! The host↔plugin contract: the shipped module's imports and exports, and
//! small hand-written plugins (WAT) that break it, each refused with a clear
//! error or contained without losing events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rulebox::batch::{Batch, LineSplitter};
use rulebox::sandbox::{Limits, Plugin, PluginError, Runtime};
use rulebox::transforms::wasm::{Options, WasmTransform};
use rulebox_abi as abi;
use rulebox_tests::{Scratch, rule_wasm};
use wasmtime::{Engine, ExternType, Module};

/// Every function export of the contract (objects mode too) and the
/// memory: what a rule in any language must export.
pub(crate) fn assert_contract_exports(module: &Module) {
    for name in abi::export::FUNCTIONS
        .iter()
        .chain(&[abi::export::PROCESS_OBJECTS])
    {
        assert!(
            matches!(module.get_export(name), Some(ExternType::Func(_))),
            "missing export {name}"
        );
    }
    assert!(matches!(
        module.get_export(abi::export::MEMORY),
        Some(ExternType::Memory(_))
    ));
}

#[test]
fn shipped_module_imports_and_exports_match_the_contract() {
    let engine = Engine::default();
    let module = Module::from_file(&engine, rule_wasm()).unwrap();
    for imp in module.imports() {
        assert!(
            imp.module() == abi::WASI_MODULE
                || (imp.module() == abi::HOST_MODULE && imp.name() == abi::import::LOG),
            "unexpected import {}::{}",
            imp.module(),
            imp.name()
        );
    }
    let wasi: Vec<&str> = module
        .imports()
        .filter(|i| i.module() == abi::WASI_MODULE)
        .map(|i| i.name())
        .collect();
    assert!(
        wasi.len() <= 6,
        "the rule should need only a few WASI functions: {wasi:?}"
    );
    assert_contract_exports(&module);
}

fn limits() -> Limits {
    Limits {
        max_memory_bytes: 16 << 20,
        deadline: Duration::from_millis(50),
    }
}

/// A minimal plugin in WAT. `process` is the body of `rulebox_process`; the
/// default answers an empty frame (which is wrong for a non-empty batch).
fn wat(version: i32, process: &str, extra: &str) -> String {
    wat_with_flush(version, process, extra, "(i64.const 0x0000080000000010)")
}

fn wat_with_flush(version: i32, process: &str, extra: &str, flush: &str) -> String {
    format!(
        r#"(module
  {extra}
  (memory (export "memory") 2)
  ;; 1024: an init frame with no outputs; 2048: an empty result frame.
  (data (i32.const 1024) "\00\00\00\00\00\00\00\00")
  (data (i32.const 2048) "\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  (func (export "rulebox_abi_version") (result i32) (i32.const {version}))
  (func (export "rulebox_reserve") (param i32) (result i32) (i32.const 4096))
  (func (export "rulebox_init") (param i32 i32) (result i64) (i64.const 0x0000040000000008))
  (func (export "rulebox_process") (param i32 i32 i32 i64) (result i64) {process})
  (func (export "rulebox_tick") (param i64) (result i64) (i64.const 0x0000080000000010))
  (func (export "rulebox_flush") (param i64) (result i64) {flush})
)"#
    )
}

fn load(dir: &Scratch, name: &str, text: &str) -> Result<Plugin, PluginError> {
    let path = dir.write(&format!("{name}.wasm"), wat::parse_str(text).unwrap());
    let rt = runtime();
    Plugin::load(rt, name, &path, None, limits())
}

fn runtime() -> &'static Runtime {
    static RT: std::sync::OnceLock<Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| Runtime::new().unwrap())
}

fn batch(lines: &[&str]) -> Batch {
    let mut s = LineSplitter::new(10_000);
    let mut out = Vec::new();
    s.push((lines.join("\n") + "\n").as_bytes(), &mut out);
    out.pop().unwrap()
}

#[test]
fn wrong_abi_version_is_refused() {
    let dir = Scratch::new("abi");
    let p = load(&dir, "v99", &wat(99, "(i64.const 0)", "")).unwrap();
    match p.instantiate(b"{}") {
        Err(PluginError::AbiVersion {
            found: 99,
            expected,
        }) => assert_eq!(expected, abi::ABI_VERSION),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("ABI 99 must be refused"),
    }
}

#[test]
fn missing_export_and_foreign_import_are_refused_at_load() {
    let dir = Scratch::new("exports");
    let no_tick = wat(1, "(i64.const 0)", "").replace(
        r#"(func (export "rulebox_tick")"#,
        r#"(func (export "other_tick")"#,
    );
    let e = load(&dir, "no-tick", &no_tick).err().expect("must fail");
    assert!(e.to_string().contains("missing export rulebox_tick"), "{e}");
    let env = wat(
        1,
        "(i64.const 0)",
        r#"(import "env" "now" (func (result i64)))"#,
    );
    let e = load(&dir, "env", &env).err().expect("must fail");
    assert!(e.to_string().contains("imports env::now"), "{e}");
    let bad_sig = wat(1, "(i64.const 0)", "").replace(
        r#"(func (export "rulebox_reserve") (param i32) (result i32)"#,
        r#"(func (export "rulebox_reserve") (param i64) (result i32)"#,
    );
    let e = load(&dir, "sig", &bad_sig).err().expect("must fail");
    assert!(
        e.to_string().contains("export rulebox_reserve has type"),
        "{e}"
    );
    // An init frame asking for scanned events (flags word 1) from a module
    // without the export that takes them.
    let objects = wat(1, "(i64.const 0)", "")
        .replace(
            r#"(data (i32.const 1024) "\00\00\00\00\00\00\00\00")"#,
            r#"(data (i32.const 1024) "\00\00\00\00\00\00\00\00\01\00\00\00")"#,
        )
        .replace(
            "(i64.const 0x0000040000000008)",
            "(i64.const 0x000004000000000c)",
        );
    let p = load(&dir, "objects", &objects).unwrap();
    let e = p.instantiate(b"{}").err().expect("must fail");
    assert!(e.to_string().contains(abi::export::PROCESS_OBJECTS), "{e}");
    // A path plan deeper than the host resolves (flags 5: objects and paths;
    // one group, no `when` paths, one path with five dots): refused, as the
    // host would resolve it outside the plugin's deadline.
    let deep = wat(
        1,
        "(i64.const 0)",
        r#"(func (export "rulebox_process_objects") (param i32 i32 i32 i32 i64) (result i64) (i64.const 0))"#,
    )
    .replace(
        r#"(data (i32.const 1024) "\00\00\00\00\00\00\00\00")"#,
        r#"(data (i32.const 1024) "\00\00\00\00\00\00\00\00\05\00\00\00\01\00\00\00\00\00\00\00\01\00\00\00\0b\00\00\00a.b.c.d.e.f")"#,
    )
    .replace(
        "(i64.const 0x0000040000000008)",
        "(i64.const 0x0000040000000027)",
    );
    let p = load(&dir, "deep", &deep).unwrap();
    let e = p.instantiate(b"{}").err().expect("must fail");
    assert!(e.to_string().contains("more than 4 dots"), "{e}");
}

/// Failures pass events on byte-identical (no error field added).
fn untagged() -> Options {
    Options {
        error_field: String::new(),
        ..Options::default()
    }
}

fn run_transform(
    p: Plugin,
    lines: &[&str],
) -> (
    Vec<u8>,
    Arc<rulebox::transforms::wasm::TransformStats>,
    Duration,
) {
    let mut t = WasmTransform::new("t", Arc::new(p), b"{}".to_vec(), untagged()).unwrap();
    let mut out = t.new_outputs();
    let input = batch(lines);
    let start = Instant::now();
    t.process(&input, 0, &mut out);
    let took = start.elapsed();
    t.flush(0, &mut out);
    (out.default.bytes().to_vec(), t.stats.clone(), took)
}

#[test]
fn a_runaway_plugin_is_stopped_at_the_deadline_and_the_batch_passes_on() {
    let dir = Scratch::new("loop");
    let p = load(&dir, "loop", &wat(1, "(loop $l (br $l)) (i64.const 0)", "")).unwrap();
    let lines = [r#"{"a":1}"#, "garbage", r#"{"b":2}"#];
    let (out, stats, took) = run_transform(p, &lines);
    assert_eq!(out, batch(&lines).bytes(), "events pass on untouched");
    assert!(
        took < Duration::from_secs(2),
        "deadline of 50 ms took {took:?}"
    );
    assert_eq!(
        stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        stats.unprocessed.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[test]
fn a_memory_bomb_hits_the_cap_and_the_batch_passes_on() {
    let dir = Scratch::new("bomb");
    // Grow by 64 KiB pages until growth fails, then trap.
    let body =
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable";
    let p = load(&dir, "bomb", &wat(1, body, "")).unwrap();
    let lines = [r#"{"a":1}"#];
    let mut t = WasmTransform::new("t", Arc::new(p), b"{}".to_vec(), untagged()).unwrap();
    let mut out = t.new_outputs();
    t.process(&batch(&lines), 0, &mut out);
    assert_eq!(out.default.bytes(), batch(&lines).bytes());
    assert_eq!(
        t.stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_frame_that_lies_about_its_events_passes_the_batch_on() {
    let dir = Scratch::new("lies");
    // An empty frame (0 event results) for a 2-event batch; then a pointer past memory.
    let p = load(&dir, "empty", &wat(1, "(i64.const 0x0000080000000010)", "")).unwrap();
    let (out, stats, _) = run_transform(p, &[r#"{"a":1}"#, r#"{"b":2}"#]);
    assert_eq!(out, batch(&[r#"{"a":1}"#, r#"{"b":2}"#]).bytes());
    assert_eq!(
        stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let p = load(&dir, "oob", &wat(1, "(i64.const 0x7fffff0000001000)", "")).unwrap();
    let (out, stats, _) = run_transform(p, &[r#"{"a":1}"#]);
    assert_eq!(out, batch(&[r#"{"a":1}"#]).bytes());
    assert_eq!(
        stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_proc_exit_call_traps_and_unlisted_wasi_calls_are_denied() {
    let dir = Scratch::new("wasi");
    let exit = wat(
        1,
        "(call $exit (i32.const 3)) (i64.const 0)",
        r#"(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))"#,
    );
    let p = load(&dir, "exit", &exit).unwrap();
    let (out, stats, _) = run_transform(p, &[r#"{"a":1}"#]);
    assert_eq!(out, batch(&[r#"{"a":1}"#]).bytes());
    assert_eq!(
        stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // path_open answers ENOTCAPABLE (76): the plugin's flush traps unless it got 76.
    let open = wat_with_flush(
        1,
        "(i64.const 0)",
        r#"(import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"#,
        "(if (i32.ne (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)) (i32.const 76)) (then unreachable)) (i64.const 0x0000080000000010)",
    );
    let p = load(&dir, "open", &open).unwrap();
    let mut t = WasmTransform::new("t", Arc::new(p), b"{}".to_vec(), untagged()).unwrap();
    let mut out = t.new_outputs();
    t.flush(0, &mut out);
    let stats = t.stats.clone();
    assert_eq!(
        stats
            .plugin_failures
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "path_open must answer ENOTCAPABLE"
    );
}

#[test]
fn the_sandboxed_rule_on_the_hosts_index_answers_like_the_rule_scanning_natively() {
    // The shipped rule reads objects: in the sandbox the host scans every
    // event and hands over an objects index; natively the SDK scans in the
    // rule's own process. Both must give the same bytes, alerts included.
    let day = 1_763_683_200_000;
    let mut lines = rulebox_bench::sample(3_000, 7, day);
    lines.extend(rulebox_bench::bench_events(2_000, 8, day));
    lines.extend(
        [
            r#"{"src_ip":"10.0.0.5","dest\u005fip":"8.8.8.8","dest_port":445,"action":"allowed","bytes_out":5}"#,
            r#"{"src_ip":"10.0.0.5","dest_ip":"8.8.4.4","dest_port":21,"action":"allowed","t1071":{"old":1}}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#"{"dest_ip":"8.8.8.8","dest_port":445,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
            r#"{"dest_ip":"8.8.8.8","dest_port":445,"#,
        ]
        .map(String::from),
    );
    for _ in 0..4 {
        let (a, b) = lines.split_at(lines.len() / 2);
        let more: Vec<String> = a
            .iter()
            .zip(b)
            .flat_map(|(x, y)| [x.clone(), y.clone()])
            .collect();
        lines.extend(more);
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let p = Plugin::load(runtime(), "t1071", &rule_wasm(), None, limits()).unwrap();
    let mut t = WasmTransform::new("t", Arc::new(p), b"{}".to_vec(), untagged()).unwrap();
    let mut native = rulebox_plugin::Runner::<rule_t1071_002::T1071>::new();
    native.init(b"{}");
    let (mut want_events, mut want_alerts) = (Vec::new(), Vec::new());
    let (mut malformed, mut not_object) = (0, 0);
    let mut out = t.new_outputs();
    for chunk in refs.chunks(256) {
        let input = batch(chunk);
        t.process(&input, 0, &mut out);
        let frame = native.process(input.bytes(), input.count(), 0);
        let f = abi::ResultFrame::parse(frame).unwrap();
        for i in 0..f.n_events() {
            match f.event(i).reason {
                abi::Reason::Malformed => malformed += 1,
                abi::Reason::NotObject => not_object += 1,
                _ => {}
            }
        }
        rulebox_bench::splice(input.bytes(), frame, &mut want_events, &mut want_alerts);
    }
    t.flush(0, &mut out);
    rulebox_bench::splice(b"", native.flush(0), &mut want_events, &mut want_alerts);
    assert_eq!(
        rulebox::transforms::wasm::TransformStats::get(&t.stats.plugin_failures),
        0
    );
    let count = |c| rulebox::transforms::wasm::TransformStats::get(c);
    assert_eq!(
        (count(&t.stats.malformed), count(&t.stats.not_object)),
        (malformed, not_object)
    );
    assert!(malformed > 0 && not_object > 0);
    assert!(want_alerts.len() > 1000, "the input makes alerts");
    let got_events = out.default.bytes();
    assert_eq!(got_events.len(), want_events.len());
    for (i, (g, w)) in got_events
        .split(|&c| c == b'\n')
        .zip(want_events.split(|&c| c == b'\n'))
        .enumerate()
    {
        assert_eq!(
            String::from_utf8_lossy(g),
            String::from_utf8_lossy(w),
            "event {i}"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(out.named[0].bytes()),
        String::from_utf8_lossy(&want_alerts)
    );
}

/// With a sink downstream that checks its events are JSON (the HEC sink:
/// `vouch_json`), the shipped rule's labelled events are vouched for as
/// JSON, so that the sink need not read them again; a batch holding a
/// line the host did not read as JSON is not, and without the option
/// nothing is.
#[test]
fn the_shipped_rule_s_labelled_events_are_vouched_for_as_json() {
    let day = 1_763_683_200_000;
    let lines: Vec<String> = rulebox_bench::bench_events(600, 9, day)
        .into_iter()
        .chain(rulebox_bench::sample(600, 9, day))
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .collect();
    let mut refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let load = || Arc::new(Plugin::load(runtime(), "t1071", &rule_wasm(), None, limits()).unwrap());
    let vouching = Options {
        vouch_json: true,
        ..untagged()
    };
    let mut t = WasmTransform::new("t", load(), b"{}".to_vec(), vouching).unwrap();
    let mut out = t.new_outputs();
    t.process(&batch(&refs), 0, &mut out);
    assert_eq!(out.default.count(), refs.len());
    assert!(out.default.all_json());
    let labelled = out
        .default
        .iter()
        .filter(|l| l.windows(7).any(|w| w == b"\"t1071\""))
        .count();
    assert!(labelled > 500, "{labelled} events labelled");
    for l in out.default.iter() {
        serde_json::from_slice::<serde_json::Value>(l).expect("a vouched-for line is JSON");
    }
    refs.push(r#"{"dest_ip":"8.8.8.8","dest_port":445,"#);
    let mut out = t.new_outputs();
    t.process(&batch(&refs), 0, &mut out);
    assert_eq!(out.default.count(), refs.len());
    assert!(!out.default.all_json(), "a malformed line in the batch");
    refs.pop();
    let mut t = WasmTransform::new("t", load(), b"{}".to_vec(), untagged()).unwrap();
    let mut out = t.new_outputs();
    t.process(&batch(&refs), 0, &mut out);
    assert!(!out.default.all_json(), "no sink asked for it");
}

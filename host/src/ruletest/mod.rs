//! `rulebox test FILE|DIR ...`: rule tests, written as files (see [`file`]
//! for the format), run through the real sandboxed module with the limits
//! and checks `run` applies, at a simulated clock: batches, ticks and the
//! final flush, so stateful aggregation is tested as it runs. Each output
//! line is compared with what the test expects ([`compare`]).

pub mod compare;
pub mod file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::batch::Batch;
use crate::config::Paths;
use crate::sandbox::Runtime;
use crate::transforms::wasm::{Outputs, PluginCache, WasmTransform, WasmTransformConfig};
use file::TestFile;

/// What one test file came to: its name and what did not match (empty:
/// passed).
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub failures: Vec<String>,
}

/// Every test file named by `paths` (a folder: its `*.toml` files, sorted).
pub fn test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let dir = std::fs::read_dir(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let mut found: Vec<PathBuf> = dir
                .filter_map(|e| Some(e.ok()?.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

/// Runs one test file; `Err`: it could not run (unreadable, bad module or
/// configuration), which is not a failure of the rule.
pub fn run_file(
    rt: &Runtime,
    plugins: &mut PluginCache,
    path: &Path,
    module: Option<&Path>,
) -> Result<Outcome, String> {
    let test = TestFile::read(path)?;
    let name = test.name.clone().unwrap_or_else(|| {
        let stem = path.file_stem().unwrap_or_default();
        stem.to_string_lossy().into_owned()
    });
    let mut t = build(rt, plugins, path, &test, module)?;
    let outputs = drive(&mut t, &test)?;
    let failures = compare::check(&test, &outputs);
    Ok(Outcome { name, failures })
}

/// The rule's transform, built as `run` builds one (same checks, limits,
/// schema check of its configuration).
fn build(
    rt: &Runtime,
    plugins: &mut PluginCache,
    path: &Path,
    test: &TestFile,
    module: Option<&Path>,
) -> Result<WasmTransform, String> {
    // The file's `module` is relative to the file (the pipeline's paths
    // resolve it); --module, to where rulebox runs.
    let module = match (module, &test.module) {
        (Some(m), _) => std::path::absolute(m).map_err(|e| e.to_string())?,
        (None, Some(m)) => m.clone(),
        (None, None) => return Err("no module: give `module` in the file or --module".into()),
    };
    let mut table = toml::Table::new();
    table.insert("inputs".into(), toml::Value::Array(vec!["test".into()]));
    let module_text = module.to_string_lossy().into_owned();
    table.insert("module".into(), toml::Value::String(module_text));
    if let Some(c) = &test.config {
        table.insert("config".into(), toml::Value::Table(c.clone()));
    }
    let config: WasmTransformConfig = table.try_into().map_err(|e| e.to_string())?;
    // Compiled code is cached beside other runs', not beside the tests.
    let cache = std::env::temp_dir().join("rulebox-test");
    let paths = Paths::new(path, Some(&cache));
    let problems = config.check();
    let stage = match problems.is_empty() {
        true => config.build("test", &paths, rt, plugins),
        false => Err(problems),
    };
    let stage = stage.map_err(|ps| {
        let each: Vec<String> = ps
            .iter()
            .map(|p| match &p.key {
                Some(k) => format!("{k}: {}", p.message),
                None => p.message.clone(),
            })
            .collect();
        each.join("; ")
    })?;
    Ok(stage.into_transform())
}

/// The steps through `t`, then the final flush: the lines out, by output
/// (`events` for the default one).
fn drive(t: &mut WasmTransform, test: &TestFile) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut clock = test.start_ms()?;
    let mut outs = t.new_outputs();
    let mut got: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for step in &test.step {
        match step.advance_secs {
            Some(secs) => {
                clock += secs as i64 * 1000;
                t.tick(clock, &mut outs);
            }
            None => {
                let mut b = Batch::default();
                step.events.iter().for_each(|e| b.push_line(e.as_bytes()));
                t.process(&b, clock, &mut outs);
            }
        }
        collect(t, &mut outs, &mut got);
    }
    if test.flush {
        t.flush(clock, &mut outs);
        collect(t, &mut outs, &mut got);
    }
    Ok(got)
}

/// Moves what `outs` holds into `got`, by output name.
fn collect(t: &WasmTransform, outs: &mut Outputs, got: &mut BTreeMap<String, Vec<String>>) {
    let names = std::iter::once("events")
        .chain(t.outputs().iter().map(String::as_str))
        .chain(std::iter::once(rulebox_abi::DEAD_LETTER_OUTPUT));
    let batches = std::iter::once(&outs.default)
        .chain(outs.named.iter())
        .chain(std::iter::once(&outs.dead_letter));
    for (name, b) in names.zip(batches) {
        let lines = b.iter().map(|l| String::from_utf8_lossy(l).into_owned());
        got.entry(name.to_string()).or_default().extend(lines);
    }
    outs.clear();
}

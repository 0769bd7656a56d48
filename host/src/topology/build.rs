//! Building a pipeline: everything a configuration names is loaded and
//! checked (plugins compiled, contract-checked and initialised with their
//! configuration), so `rulebox validate` and `rulebox run` find the same
//! errors, and every error found is reported, not just the first.

use std::collections::BTreeMap;

use rulebox_abi::DEAD_LETTER_OUTPUT;

use super::config::Loaded;
use super::mmexternal::answer_chain;
use crate::config::graph::{self, Graph, split_input};
use crate::config::{ConfigError, ConfigErrors};
use crate::sandbox::Runtime;
use crate::transforms::TransformConfig;
use crate::transforms::wasm::{OnError, PluginCache, Stage};

/// A pipeline whose plugins are loaded and initialised, ready to run.
pub struct Built {
    pub(super) loaded: Loaded,
    pub(super) transforms: BTreeMap<String, Stage>,
}

impl Built {
    /// Where this pipeline keeps its state.
    pub fn data_dir(&self) -> &std::path::Path {
        self.loaded.paths.data_dir()
    }

    /// Each transform's outputs: those its plugin declares, then the host's
    /// `dead_letter`.
    pub fn outputs(&self) -> BTreeMap<String, Vec<String>> {
        (self.transforms.iter())
            .map(|(k, s)| {
                let mut outs = s.transform().outputs().to_vec();
                outs.push(DEAD_LETTER_OUTPUT.to_string());
                (k.clone(), outs)
            })
            .collect()
    }
}

/// Loads every plugin and checks the whole configuration.
pub fn build(loaded: Loaded, rt: &Runtime) -> Result<Built, ConfigErrors> {
    let mut errors = check_components(&loaded);
    let mut built = Built {
        transforms: build_transforms(&loaded, rt, &mut errors),
        loaded,
    };
    let (g, file) = (built.loaded.config.graph(), &built.loaded.file);
    errors.extend(graph::check_outputs(&g, file, &built.outputs()));
    match answer_chain(&built.loaded.config, file) {
        Ok(chain) => {
            for id in chain {
                if let Some(stage) = built.transforms.get_mut(&id) {
                    stage.set_one_to_one(true);
                }
            }
        }
        Err(e) => errors.push(e),
    }
    for id in read_by_json_checkers(&built.loaded) {
        if let Some(stage) = built.transforms.get_mut(&id) {
            stage.set_vouch_json(true);
        }
    }
    errors.extend(check_consumers(&built, &g));
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    for (id, stage) in &mut built.transforms {
        if let Err(p) = stage.add_workers() {
            errors.push(built.loaded.file.problem("transforms", id, p));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(built)
}

/// Each component's own checks, those that need nothing loaded.
fn check_components(loaded: &Loaded) -> Vec<ConfigError> {
    let (c, file) = (&loaded.config, &loaded.file);
    let mut errors = Vec::new();
    if let Some(api) = &c.api {
        errors.extend(
            api.check()
                .into_iter()
                .map(|p| file.table_problem("api", p)),
        );
    }
    for (id, s) in &c.sources {
        let mut found = s.kind().check();
        found.extend(s.kind().check_paths(&loaded.paths));
        errors.extend(found.into_iter().map(|p| file.problem("sources", id, p)));
    }
    for (id, t) in &c.transforms {
        let found = t.check();
        errors.extend(found.into_iter().map(|p| file.problem("transforms", id, p)));
    }
    for (id, s) in &c.sinks {
        let mut found = s.kind().check();
        found.extend(s.kind().check_paths(&loaded.paths));
        errors.extend(found.into_iter().map(|p| file.problem("sinks", id, p)));
    }
    errors
}

/// One stage per transform whose plugin loads and accepts its
/// configuration; the others' errors go to `errors`.
fn build_transforms(
    loaded: &Loaded,
    rt: &Runtime,
    errors: &mut Vec<ConfigError>,
) -> BTreeMap<String, Stage> {
    let mut plugins = PluginCache::new();
    let mut stages = BTreeMap::new();
    for (id, t) in &loaded.config.transforms {
        let TransformConfig::Wasm(w) = t;
        match w.build(id, &loaded.paths, rt, &mut plugins) {
            Ok(mut stage) => {
                let reads_partitions = w.inputs.iter().any(|i| {
                    let src = loaded.config.sources.get(split_input(i).0);
                    src.is_some_and(|s| s.kind().partitioned())
                });
                if let Err(p) = stage.set_partitioned(reads_partitions) {
                    errors.push(loaded.file.problem("transforms", id, p));
                    continue;
                }
                stages.insert(id.clone(), stage);
            }
            Err(found) => errors.extend(
                found
                    .into_iter()
                    .map(|p| loaded.file.problem("transforms", id, p)),
            ),
        }
    }
    stages
}

/// The components whose default output a sink reads that checks its
/// events are JSON (a transform among them vouches for its events, so
/// that the sink need not read them again).
fn read_by_json_checkers(loaded: &Loaded) -> Vec<String> {
    let sinks = loaded.config.sinks.values().map(|s| s.kind());
    let inputs = sinks.filter(|s| s.checks_json()).flat_map(|s| s.inputs());
    inputs
        .filter(|i| split_input(i).1.is_none())
        .cloned()
        .collect()
}

/// Outputs nobody reads are warned about; a dead letter output must be
/// read when `on_error = "dead_letter"` sends events there.
fn check_consumers(built: &Built, g: &Graph<'_>) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (id, stage) in &built.transforms {
        let t = stage.transform();
        if !graph::is_read(g, id) {
            tracing::warn!(transform = %id, "the default output has no consumer: its events are discarded");
        }
        for o in t.outputs() {
            if !graph::is_read(g, &format!("{id}.{o}")) {
                tracing::warn!(transform = %id, output = %o, "output has no consumer: its records are discarded");
            }
        }
        let dead = graph::is_read(g, &format!("{id}.{DEAD_LETTER_OUTPUT}"));
        match (t.options().on_error, dead) {
            (OnError::DeadLetter, false) => {
                let msg = format!(
                    "transforms.{id}.on_error = \"dead_letter\", but nothing reads \"{id}.{DEAD_LETTER_OUTPUT}\": add it to a sink's inputs"
                );
                errors.push(built.loaded.file.error("transforms", id, None, msg));
            }
            (OnError::PassThrough | OnError::Drop, true) => {
                tracing::warn!(transform = %id, on_error = ?t.options().on_error, "{id}.{DEAD_LETTER_OUTPUT} is read, but on_error is not \"dead_letter\": it stays empty");
            }
            _ => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A transform vouches for its events as JSON only when a sink that
    /// checks them (the HEC sink) reads its default output.
    #[test]
    fn json_checking_sinks_name_the_outputs_they_read() {
        let mut text = String::from("[sources.in]\ntype = \"stdin\"\n");
        for t in ["a", "b", "c"] {
            text += &format!(
                "[transforms.{t}]\ntype = \"wasm\"\ninputs = [\"in\"]\nmodule = \"rule.wasm\"\n"
            );
        }
        text += r#"
[sinks.hec]
type = "splunk_hec"
inputs = ["a", "b.alerts", "in"]
endpoint = "http://127.0.0.1:8088"
token = "t"
[sinks.file]
type = "file"
path = "out.ndjson"
inputs = ["c"]
"#;
        let loaded = Loaded::parse(Path::new("/etc/rb/p.toml"), text).unwrap();
        assert_eq!(read_by_json_checkers(&loaded), ["a", "in"]);
    }
}

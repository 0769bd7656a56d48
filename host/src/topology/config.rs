//! The pipeline file, read like Vector's: `[sources.<id>]`,
//! `[transforms.<id>]` with `inputs`, `[sinks.<id>]` with `inputs`. An
//! input names a source, a transform (its default output) or
//! `<transform>.<output>`. Relative paths are resolved against the
//! configuration file's folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::ApiConfig;
use crate::config::graph::{self, Graph};
use crate::config::{ConfigErrors, ConfigFile, Paths};
use crate::sinks::SinkConfig;
use crate::sources::SourceConfig;
use crate::transforms::TransformConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Where the host keeps state (the compiled-module cache). Created if
    /// missing. Default: `data` beside the configuration file.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The health and metrics endpoint; absent: none.
    #[serde(default)]
    pub api: Option<ApiConfig>,
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    #[serde(default)]
    pub transforms: BTreeMap<String, TransformConfig>,
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
}

impl PipelineConfig {
    /// The component graph, for the checks of [`crate::config::graph`].
    pub fn graph(&self) -> Graph<'_> {
        Graph {
            sources: self.sources.keys().map(String::as_str).collect(),
            transforms: (self.transforms.iter())
                .map(|(k, t)| (k.as_str(), t.inputs()))
                .collect(),
            sinks: (self.sinks.iter())
                .map(|(k, s)| (k.as_str(), s.kind().inputs()))
                .collect(),
        }
    }
}

/// A loaded configuration: the parsed file, its text (to point at lines)
/// and where its paths lead.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: PipelineConfig,
    pub file: ConfigFile,
    pub paths: Paths,
}

impl Loaded {
    pub fn read(file: &Path) -> Result<Loaded, ConfigErrors> {
        Loaded::from_file(ConfigFile::read(file)?)
    }

    /// With `dir` (relative to the working directory) instead of the
    /// configuration's `data_dir`.
    pub fn with_data_dir(mut self, dir: Option<&Path>) -> Loaded {
        if let Some(d) = dir {
            let d = std::path::absolute(d).unwrap_or_else(|_| d.to_path_buf());
            self.paths = Paths::new(&self.file.path, Some(&d));
        }
        self
    }

    pub fn parse(file: &Path, text: String) -> Result<Loaded, ConfigErrors> {
        Loaded::from_file(ConfigFile {
            path: file.to_path_buf(),
            text,
        })
    }

    /// Parses the file and checks its graph (every problem found).
    fn from_file(file: ConfigFile) -> Result<Loaded, ConfigErrors> {
        let config: PipelineConfig = file.parse()?;
        let errors = graph::check(&config.graph(), &file);
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let paths = Paths::new(&file.path, config.data_dir.as_deref());
        Ok(Loaded {
            config,
            file,
            paths,
        })
    }

    /// Whether stdout answers rsyslog (logs must then go to a file).
    pub fn answers_mmexternal(&self) -> bool {
        self.config
            .sinks
            .values()
            .any(|s| s.kind().answers_mmexternal())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::graph;

    fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
        Loaded::parse(Path::new("/etc/rb/p.toml"), text.to_string())
    }

    const OK: &str = r#"
[sources.in]
type = "stdin"

[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "rule.wasm"

[transforms.rule.config]
schema = "cim"
internal_networks = ["10.0.0.0/8"]

[sinks.out]
type = "stdout"
inputs = ["rule", "rule.alerts"]
"#;

    #[test]
    fn parses_and_resolves_relative_paths() {
        let l = parse(OK).unwrap();
        let TransformConfig::Wasm(w) = &l.config.transforms["rule"];
        assert_eq!(l.paths.resolve(&w.module), Path::new("/etc/rb/rule.wasm"));
        assert_eq!(l.paths.data_dir(), Path::new("/etc/rb/data"));
        assert_eq!(w.flush_interval_secs, 60);
        let json: serde_json::Value = serde_json::from_slice(&w.plugin_config_json()).unwrap();
        assert_eq!(json["internal_networks"][0], "10.0.0.0/8");
    }

    #[test]
    fn unknown_key_is_located() {
        let err = parse(&OK.replace(
            "module = \"rule.wasm\"",
            "module = \"rule.wasm\"\nflush_secs = 3",
        ))
        .unwrap_err();
        assert!(
            err[0].message.contains("unknown field `flush_secs`"),
            "{err}"
        );
        assert_eq!(err[0].line, Some(9));
        assert!(err.to_string().starts_with("/etc/rb/p.toml:9: "), "{err}");
    }

    #[test]
    fn unknown_input_is_located() {
        let err = parse(&OK.replace("inputs = [\"in\"]", "inputs = [\"nope\"]")).unwrap_err();
        assert!(err[0].message.contains("unknown input \"nope\""), "{err}");
        assert_eq!(err[0].line, Some(5));
    }

    #[test]
    fn cycles_and_duplicates_are_refused() {
        let cyc = r#"
[sources.in]
type = "stdin"
[transforms.a]
type = "wasm"
inputs = ["b"]
module = "x.wasm"
[transforms.b]
type = "wasm"
inputs = ["a"]
module = "x.wasm"
[sinks.out]
type = "stdout"
inputs = ["a"]
"#;
        assert!(parse(cyc).unwrap_err().to_string().contains("cycle"));
        let dup = "[sources.x]\ntype = \"stdin\"\n[sinks.x]\ntype = \"stdout\"\ninputs = [\"x\"]\n";
        assert!(parse(dup).unwrap_err().to_string().contains("already used"));
        let nosink = "[sources.x]\ntype = \"stdin\"\n";
        assert!(parse(nosink).unwrap_err().to_string().contains("no [sinks"));
    }

    #[test]
    fn named_outputs_are_checked_against_the_plugin() {
        let l = parse(&OK.replace("rule.alerts", "rule.alarms")).unwrap();
        let declared = BTreeMap::from([("rule".to_string(), vec!["alerts".to_string()])]);
        let check = |l: &Loaded| graph::check_outputs(&l.config.graph(), &l.file, &declared);
        let err = &check(&l)[0];
        assert!(
            err.message
                .contains("no output \"alarms\" (it declares: alerts)"),
            "{err}"
        );
        assert!(check(&parse(OK).unwrap()).is_empty());
    }

    #[test]
    fn source_with_output_suffix_is_unknown() {
        let err = parse(&OK.replace("inputs = [\"in\"]", "inputs = [\"in.x\"]")).unwrap_err();
        assert!(err.to_string().contains("unknown input"), "{err}");
    }

    #[test]
    fn every_graph_problem_is_reported_at_once() {
        let text = OK
            .replace("inputs = [\"in\"]", "inputs = [\"nope\"]")
            .replace(
                "inputs = [\"rule\", \"rule.alerts\"]",
                "inputs = [\"gone\", \"rule.alerts\"]",
            );
        let err = parse(&text).unwrap_err();
        assert_eq!(err.len(), 2, "{err}");
        assert!(err[0].message.contains("unknown input \"nope\""), "{err}");
        assert!(err[1].message.contains("unknown input \"gone\""), "{err}");
        assert_eq!((err[0].line, err[1].line), (Some(5), Some(14)), "{err}");
    }
}

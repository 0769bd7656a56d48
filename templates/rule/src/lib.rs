//! rule-template: a rulebox detection rule. It looks at one field of each
//! event (`action` by default) and, when it equals a configured value
//! (`denied`), tags the event with `"matched": true` and emits an alert on
//! the `alerts` output. Everything else passes untouched.
//!
//! Change `on_object` in `impl Rule for RuleTemplate` to detect what you
//! need; the unit tests are in `src/tests.rs` (run with `cargo test`),
//! the rule tests, which run the built `.wasm`, in `tests/rules/` (run
//! with `rulebox test`).

use rulebox_plugin::json::{self, KeySet, Object, ScanError, Scanner};
use rulebox_plugin::{EventOut, Manifest, OutputId, Rule};

/// The `alerts` output's id: the first of [`Rule::OUTPUTS`].
const ALERTS: OutputId = 1;

/// The rule, built from its configuration.
#[derive(Debug)]
pub struct RuleTemplate {
    /// The dotted path of the field to look at.
    field: String,
    /// The value that makes an event match.
    equals: String,
}

/// String member `name` of `config`, or `default` when absent.
fn string(config: &Object<'_, '_>, name: &str, default: &str) -> Result<String, String> {
    match config.get(name) {
        None => Ok(default.to_string()),
        Some(v) => v
            .as_str()
            .map(|s| s.into_owned())
            .ok_or_else(|| format!("{name}: expected a string")),
    }
}

impl Rule for RuleTemplate {
    const OUTPUTS: &'static [&'static str] = &["alerts"];
    /// The host hands the rule each event as a JSON object.
    const READS_OBJECTS: bool = true;
    /// No state across events: several instances may share the input.
    const PARALLEL: bool = true;

    /// The configuration: the `[transforms.<id>.config]` table as JSON.
    fn new(config: &[u8]) -> Result<Self, String> {
        let mut scanner = Scanner::new();
        let config = scanner
            .scan(config)
            .map_err(|_| "the configuration is not a JSON object".to_string())?;
        let field = string(&config, "field", "action")?;
        if field.is_empty() {
            return Err("field: must not be empty".into());
        }
        Ok(RuleTemplate {
            field,
            equals: string(&config, "equals", "denied")?,
        })
    }

    /// The top-level keys the rule reads or sets.
    fn object_keys(&self) -> Option<Vec<String>> {
        let mut keys: Vec<String> = KeySet::path_keys(&self.field).map(String::from).collect();
        keys.push("matched".into());
        Some(keys)
    }

    fn on_object(
        &mut self,
        _event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        let obj = match object {
            Ok(obj) => obj,
            // Not a JSON object: it passes untouched, and the host counts why.
            Err(e) => return out.unreadable(e),
        };
        let value = obj.get(&self.field).and_then(|v| v.as_str());
        if value.as_deref() != Some(self.equals.as_str()) {
            return;
        }
        out.set_field(&obj, "matched", |b| b.extend_from_slice(b"true"));
        out.emitter().emit_with(ALERTS, |b| {
            b.extend_from_slice(b"{\"field\":");
            json::write_str(b, &self.field);
            b.extend_from_slice(b",\"value\":");
            json::write_str(b, &self.equals);
            b.extend_from_slice(format!(",\"at_ms\":{now_ms}}}").as_bytes());
        });
    }
}

/// What `rulebox inspect` shows, and the schema `rulebox validate` checks
/// the configuration against, written into the module.
pub const MANIFEST: Manifest<'static> = Manifest {
    name: "rule-template",
    version: env!("CARGO_PKG_VERSION"),
    description: "Tags events whose field equals a value and alerts on them",
    author: "",
    techniques: &[],
    outputs: &["alerts"],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(RuleTemplate, manifest = MANIFEST);

#[cfg(test)]
mod tests;

//! path-plan: a rule that reads its fields through a [`PathPlan`] instead
//! of looking them up. It knows two shapes of network event, flat
//! (`src_ip`, `dest_ip`, `dest_port`) and nested as in ECS (`source.ip`,
//! `destination.ip`, `destination.port`), declares one group of paths per
//! shape ([`Rule::object_paths`]), and per event reads which group applied
//! ([`Object::group`]) and each path's value by its index in that group
//! ([`Object::slot`]). In the sandbox the host resolves the plan natively,
//! with the scan, so the guest gets spans and compares no key.
//!
//! It tags each event with `"flow": {"src", "dest", "port", "shape"}` (the
//! port as text, and only when present), and routes an event of neither
//! shape, or without both addresses, to its `unknown` output. The shapes'
//! paths are configurable (`flat` and `nested`, each three paths: source,
//! destination, port).

use rulebox_plugin::json::{self, Object, PathPlan, ScanError, Scanner, Value};
use rulebox_plugin::{EventOut, Manifest, OutputId, Rule};

/// The `unknown` output's id.
const UNKNOWN: OutputId = 1;
/// The shapes, in the plan's group order.
const SHAPES: [&str; 2] = ["flat", "nested"];
/// Each shape's default paths: source, destination, port.
const DEFAULT_PATHS: [[&str; 3]; 2] = [
    ["src_ip", "dest_ip", "dest_port"],
    ["source.ip", "destination.ip", "destination.port"],
];

/// The rule: the paths of each shape.
#[derive(Debug)]
pub struct FlowTag {
    paths: [[String; 3]; 2],
}

/// Shape `name`'s three paths from `config`, or `default`.
fn shape_paths(
    config: &Object<'_, '_>,
    name: &str,
    default: [&str; 3],
) -> Result<[String; 3], String> {
    let Some(v) = config.get(name) else {
        return Ok(default.map(String::from));
    };
    let paths: Vec<String> = v
        .array_items()
        .map(|p| p.as_str().map(|s| s.into_owned()).filter(|s| !s.is_empty()))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{name}: expected three non-empty paths"))?;
    paths
        .try_into()
        .map_err(|_| format!("{name}: expected three non-empty paths"))
}

/// A slot's value as text: a string's content, a number's text.
fn text(v: Option<Value<'_>>) -> Option<String> {
    let v = v?;
    match v.as_str() {
        Some(s) => Some(s.into_owned()),
        None => v.as_number_text().map(String::from),
    }
}

impl Rule for FlowTag {
    const OUTPUTS: &'static [&'static str] = &["unknown"];
    const READS_OBJECTS: bool = true;
    const PARALLEL: bool = true;

    /// `{"flat": [src, dest, port], "nested": [src, dest, port]}`, both optional.
    fn new(config: &[u8]) -> Result<Self, String> {
        let mut scanner = Scanner::new();
        let config = scanner
            .scan(config)
            .map_err(|_| "the configuration is not a JSON object".to_string())?;
        Ok(FlowTag {
            paths: [
                shape_paths(&config, SHAPES[0], DEFAULT_PATHS[0])?,
                shape_paths(&config, SHAPES[1], DEFAULT_PATHS[1])?,
            ],
        })
    }

    /// A group per shape: it applies when its source path is present, and
    /// its slots are the three paths.
    fn object_paths(&self) -> Option<PathPlan> {
        let mut plan = PathPlan::new();
        for paths in &self.paths {
            plan.add_group(&paths[..1], &paths[..]);
        }
        Some(plan)
    }

    /// Besides the plan's keys (which the host resolves anyway), only the
    /// one this rule sets.
    fn object_keys(&self) -> Option<Vec<String>> {
        Some(vec!["flow".into()])
    }

    fn on_object(
        &mut self,
        _event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        _now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        let obj = match object {
            Ok(obj) => obj,
            Err(e) => return out.unreadable(e),
        };
        let Some(group) = obj.group() else {
            return out.route(UNKNOWN);
        };
        let (Some(src), Some(dest)) = (text(obj.slot(0)), text(obj.slot(1))) else {
            return out.route(UNKNOWN);
        };
        let port = text(obj.slot(2));
        out.set_field(&obj, "flow", |b| {
            b.extend_from_slice(b"{\"src\":");
            json::write_str(b, &src);
            b.extend_from_slice(b",\"dest\":");
            json::write_str(b, &dest);
            if let Some(port) = &port {
                b.extend_from_slice(b",\"port\":");
                json::write_str(b, port);
            }
            b.extend_from_slice(b",\"shape\":");
            json::write_str(b, SHAPES[group]);
            b.push(b'}');
        });
    }
}

/// What `rulebox inspect` shows; the schema `rulebox validate` checks the
/// configuration against.
pub const MANIFEST: Manifest<'static> = Manifest {
    name: "example-path-plan",
    version: env!("CARGO_PKG_VERSION"),
    description: "Tags network events with their flow, read through a path plan (an example rule)",
    author: "rulebox",
    techniques: &[],
    outputs: &["unknown"],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(FlowTag, manifest = MANIFEST);

#[cfg(test)]
mod tests;

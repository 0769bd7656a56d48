//! tag-events: the smallest useful rule. It sets one field on every event
//! (`"tag": true` unless configured otherwise) and passes it on; an event
//! that is not a JSON object passes untouched and is counted by the host.
//!
//! One idea: a rule that reads objects gets each event as spans the host
//! made natively, declares the one key it touches ([`Rule::object_keys`]),
//! and splices its field in with [`EventOut::set_field`]: the rest of the
//! event keeps its bytes. It keeps no state, so it says
//! [`Rule::PARALLEL`] and the host may run several instances.

use rulebox_plugin::json::{Object, ScanError, Scanner};
use rulebox_plugin::{EventOut, Manifest, Rule};

/// The rule, built from its configuration.
#[derive(Debug)]
pub struct TagEvents {
    /// The top-level field to set.
    field: String,
    /// Its value, as JSON text.
    value: Vec<u8>,
}

impl Rule for TagEvents {
    const READS_OBJECTS: bool = true;
    const PARALLEL: bool = true;

    /// `{"field": "tag", "value": true}`, both optional; `value` is any JSON.
    fn new(config: &[u8]) -> Result<Self, String> {
        let mut scanner = Scanner::new();
        let config = scanner
            .scan(config)
            .map_err(|_| "the configuration is not a JSON object".to_string())?;
        let field = match config.get("field") {
            None => "tag".to_string(),
            Some(v) => v.as_str().ok_or("field: expected a string")?.into_owned(),
        };
        if field.is_empty() {
            return Err("field: must not be empty".into());
        }
        let value = config
            .get("value")
            .map_or(b"true".to_vec(), |v| v.raw.to_vec());
        Ok(TagEvents { field, value })
    }

    fn object_keys(&self) -> Option<Vec<String>> {
        Some(vec![self.field.clone()])
    }

    fn on_object(
        &mut self,
        _event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        _now_ms: i64,
        out: &mut EventOut<'_>,
    ) {
        match object {
            Ok(obj) => out.set_field(&obj, &self.field, |b| b.extend_from_slice(&self.value)),
            Err(e) => out.unreadable(e),
        }
    }
}

/// What `rulebox inspect` shows; the schema `rulebox validate` checks the
/// configuration against.
pub const MANIFEST: Manifest<'static> = Manifest {
    name: "example-tag-events",
    version: env!("CARGO_PKG_VERSION"),
    description: "Sets one field on every event (an example rule)",
    author: "rulebox",
    techniques: &[],
    outputs: &[],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(TagEvents, manifest = MANIFEST);

#[cfg(test)]
mod tests;

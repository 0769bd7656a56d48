//! A module's manifest (its `rulebox.manifest` section, format in
//! `rulebox_abi::manifest`), read on the host: parsed once when the module
//! is admitted, its `config_schema` read into a [`Schema`]. Guest data: the
//! section is capped in size before it is parsed, and its text is escaped
//! wherever it is printed.

use rulebox_abi::manifest::{MANIFEST_VERSION, SECTION};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::admission::sections;
use super::schema::{Finding, Schema};

/// What a module says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub techniques: Vec<String>,
    #[serde(default)]
    pub outputs: Vec<String>,
    #[serde(default)]
    pub abi_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_schema: Option<Value>,
    #[serde(skip)]
    schema: Option<Schema>,
}

impl Manifest {
    /// The section's bytes read as a manifest; an error says why not.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let bad = |e: String| format!("its {SECTION} section is not a valid manifest: {e}");
        let mut m: Manifest = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if m.manifest_version != MANIFEST_VERSION {
            return Err(bad(format!(
                "manifest_version {} (this host reads {MANIFEST_VERSION})",
                m.manifest_version
            )));
        }
        if m.name.is_empty() || m.version.is_empty() {
            return Err(bad("name and version must not be empty".into()));
        }
        if let Some(s) = &m.config_schema {
            m.schema = Some(Schema::parse(s).map_err(|e| bad(format!("config_schema: {e}")))?);
        }
        Ok(m)
    }

    /// The manifest of a wasm module, if it has one.
    pub fn of_module(wasm: &[u8]) -> Result<Option<Manifest>, String> {
        sections(wasm)?.manifest.map(Manifest::parse).transpose()
    }

    /// How `config` (the plugin's configuration as JSON) breaks the
    /// manifest's schema; nothing without a schema.
    pub fn check_config(&self, config: &Value) -> Vec<Finding> {
        self.schema
            .as_ref()
            .map_or_else(Vec::new, |s| s.check(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_read_and_checked() {
        let m = Manifest::parse(
            br#"{"manifest_version":1,"name":"r","version":"1","future":true,
                "config_schema":{"properties":{"a":{"type":"integer"}}}}"#,
        )
        .unwrap();
        assert_eq!(m.name, "r");
        let found = m.check_config(&serde_json::json!({"a": "x"}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].dotted(), "a");
    }

    #[test]
    fn a_bad_manifest_says_why() {
        let e = |text: &str| Manifest::parse(text.as_bytes()).unwrap_err();
        assert!(e("{").contains("not a valid manifest"));
        assert!(
            e(r#"{"manifest_version":2,"name":"r","version":"1"}"#).contains("manifest_version 2")
        );
        assert!(e(r#"{"manifest_version":1,"name":"","version":"1"}"#).contains("empty"));
        let schema =
            r#"{"manifest_version":1,"name":"r","version":"1","config_schema":{"type":7}}"#;
        assert!(e(schema).contains("config_schema: type"));
    }
}

//! The subset of JSON Schema (draft 2020-12) a manifest's `config_schema`
//! is read as (see `rulebox_abi::manifest`), and the check of a plugin's
//! configuration against it.
//!
//! The schema comes from the module, so it is guest data: it is read into
//! a [`Schema`] once, its nesting capped ([`MAX_DEPTH`]), and a check
//! walks the configuration along it (the work is bounded by the schema's
//! and the configuration's size) and stops after [`MAX_ERRORS`] findings.
//! Keywords outside the subset are annotations: not checked.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Deepest schema nesting read.
pub const MAX_DEPTH: usize = 32;

/// Most findings one check reports.
pub const MAX_ERRORS: usize = 32;

/// A schema: each keyword, when present.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    /// `false` as a schema: nothing is valid.
    never: bool,
    types: Option<Vec<String>>,
    properties: Vec<(String, Schema)>,
    required: Vec<String>,
    /// `additionalProperties`: absent or `true` is `None`.
    additional: Option<Box<Schema>>,
    enumeration: Option<Vec<Value>>,
    items: Option<Box<Schema>>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
}

const TYPES: &[&str] = &[
    "object", "array", "string", "integer", "number", "boolean", "null",
];

/// One step of the path to a value: a key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Where a configuration breaks its schema, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub path: Vec<Step>,
    pub message: String,
}

impl Finding {
    /// The path as TOML writes it below a table: `protocols[1].ports`.
    pub fn dotted(&self) -> String {
        let mut s = String::new();
        for step in &self.path {
            match step {
                Step::Key(k) if s.is_empty() => s.push_str(k),
                Step::Key(k) => {
                    let _ = write!(s, ".{k}");
                }
                Step::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        s
    }
}

impl Schema {
    /// Reads `v` as a schema of the subset; an error says where it is not.
    pub fn parse(v: &Value) -> Result<Schema, String> {
        parse_at(v, 0)
    }

    /// Every way (up to [`MAX_ERRORS`]) `v` breaks this schema.
    pub fn check(&self, v: &Value) -> Vec<Finding> {
        let mut found = Vec::new();
        self.check_at(v, &mut Vec::new(), &mut found);
        found
    }

    fn check_at(&self, v: &Value, path: &mut Vec<Step>, found: &mut Vec<Finding>) {
        if found.len() >= MAX_ERRORS {
            return;
        }
        let mut fail = |message: String| {
            found.push(Finding {
                path: path.clone(),
                message,
            })
        };
        if self.never {
            return fail("not allowed here".into());
        }
        if let Some(types) = &self.types
            && !types.iter().any(|t| is_type(v, t))
        {
            return fail(format!(
                "expected {}, found {}",
                types.join(" or "),
                shown(v)
            ));
        }
        if let Some(values) = &self.enumeration
            && !values.contains(v)
        {
            let names: Vec<String> = values.iter().map(Value::to_string).collect();
            return fail(format!("{} is not one of {}", shown(v), names.join(", ")));
        }
        match v {
            Value::Object(m) => self.check_object(m, path, found),
            Value::Array(a) => self.check_array(a, path, found),
            Value::Number(n) => self.check_number(n.as_f64().unwrap_or(f64::NAN), fail),
            Value::String(s) => {
                let n = s.chars().count() as u64;
                if self.min_length.is_some_and(|min| n < min) {
                    fail(format!(
                        "shorter than {} characters",
                        self.min_length.unwrap_or(0)
                    ));
                } else if self.max_length.is_some_and(|max| n > max) {
                    fail(format!(
                        "longer than {} characters",
                        self.max_length.unwrap_or(0)
                    ));
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn check_number(&self, n: f64, mut fail: impl FnMut(String)) {
        if let Some(min) = self.minimum
            && n < min
        {
            fail(format!("{n} is less than the minimum {min}"));
        }
        if let Some(max) = self.maximum
            && n > max
        {
            fail(format!("{n} is more than the maximum {max}"));
        }
    }

    fn check_object(&self, m: &Map<String, Value>, path: &mut Vec<Step>, found: &mut Vec<Finding>) {
        for key in &self.required {
            if !m.contains_key(key) {
                path.push(Step::Key(key.clone()));
                let message = "missing: this key is required".to_string();
                found.push(Finding {
                    path: path.clone(),
                    message,
                });
                path.pop();
            }
        }
        for (k, v) in m {
            path.push(Step::Key(k.clone()));
            match self.properties.iter().find(|(name, _)| name == k) {
                Some((_, s)) => s.check_at(v, path, found),
                None => match &self.additional {
                    Some(s) if s.never => {
                        let known: Vec<&str> =
                            self.properties.iter().map(|(n, _)| n.as_str()).collect();
                        found.push(Finding {
                            path: path.clone(),
                            message: format!("unknown key; expected one of: {}", known.join(", ")),
                        });
                    }
                    Some(s) => s.check_at(v, path, found),
                    None => {}
                },
            }
            path.pop();
        }
    }

    fn check_array(&self, a: &[Value], path: &mut Vec<Step>, found: &mut Vec<Finding>) {
        let n = a.len() as u64;
        if let Some(min) = self.min_items.filter(|&min| n < min) {
            found.push(Finding {
                path: path.clone(),
                message: format!("{n} items; at least {min}"),
            });
        }
        if let Some(max) = self.max_items.filter(|&max| n > max) {
            found.push(Finding {
                path: path.clone(),
                message: format!("{n} items; at most {max}"),
            });
        }
        if let Some(items) = &self.items {
            for (i, v) in a.iter().enumerate() {
                path.push(Step::Index(i));
                items.check_at(v, path, found);
                path.pop();
            }
        }
    }
}

fn parse_at(v: &Value, depth: usize) -> Result<Schema, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let m = match v {
        Value::Bool(b) => {
            return Ok(Schema {
                never: !b,
                ..Schema::default()
            });
        }
        Value::Object(m) => m,
        _ => {
            return Err(format!(
                "a schema is an object or a boolean, not {}",
                shown(v)
            ));
        }
    };
    let sub = |key: &str| -> Result<Option<Box<Schema>>, String> {
        match m.get(key) {
            None | Some(Value::Bool(true)) => Ok(None),
            Some(s) => parse_at(s, depth + 1)
                .map(|s| Some(Box::new(s)))
                .map_err(|e| format!("{key}: {e}")),
        }
    };
    let mut s = Schema {
        types: types(m.get("type"))?,
        required: strings(m.get("required"), "required")?,
        additional: sub("additionalProperties")?,
        items: sub("items")?,
        enumeration: match m.get("enum") {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => return Err("enum: not an array".into()),
        },
        minimum: number(m, "minimum")?,
        maximum: number(m, "maximum")?,
        min_items: count(m, "minItems")?,
        max_items: count(m, "maxItems")?,
        min_length: count(m, "minLength")?,
        max_length: count(m, "maxLength")?,
        ..Schema::default()
    };
    match m.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            for (k, p) in props {
                let p = parse_at(p, depth + 1).map_err(|e| format!("properties.{k}: {e}"))?;
                s.properties.push((k.clone(), p));
            }
        }
        Some(_) => return Err("properties: not an object".into()),
    }
    Ok(s)
}

fn types(v: Option<&Value>) -> Result<Option<Vec<String>>, String> {
    let list = match v {
        None => return Ok(None),
        Some(Value::String(t)) => vec![t.clone()],
        Some(_) => strings(v, "type")?,
    };
    match list.iter().find(|t| !TYPES.contains(&t.as_str())) {
        Some(t) => Err(format!("type: {t:?} is not a JSON Schema type")),
        None => Ok(Some(list)),
    }
}

fn strings(v: Option<&Value>, key: &str) -> Result<Vec<String>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let a = v.as_array().ok_or_else(|| format!("{key}: not an array"))?;
    a.iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("{key}: not an array of strings"))
}

fn number(m: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    m.get(key)
        .map(|v| v.as_f64().ok_or_else(|| format!("{key}: not a number")))
        .transpose()
}

fn count(m: &Map<String, Value>, key: &str) -> Result<Option<u64>, String> {
    m.get(key)
        .map(|v| v.as_u64().ok_or_else(|| format!("{key}: not a count")))
        .transpose()
}

fn is_type(v: &Value, t: &str) -> bool {
    match (t, v) {
        ("object", Value::Object(_)) | ("array", Value::Array(_)) => true,
        ("string", Value::String(_)) | ("boolean", Value::Bool(_)) => true,
        ("null", Value::Null) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// A value as an error message names it: its type, and a short one whole.
fn shown(v: &Value) -> String {
    let kind = match v {
        Value::Object(_) => return "a table".into(),
        Value::Array(_) => return "an array".into(),
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::Bool(_) => "boolean",
        Value::Null => return "null".into(),
    };
    let text = v.to_string();
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{kind} {}...", &text[..at]),
        None => format!("{kind} {text}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Schema {
        Schema::parse(&json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "stage": { "enum": ["all", "classify"] },
                "window_secs": { "type": "integer", "minimum": 1 },
                "name": { "type": "string", "minLength": 1, "maxLength": 3 },
                "protocols": {
                    "type": "array", "maxItems": 2,
                    "items": {
                        "type": "object", "required": ["label"],
                        "properties": { "ports": { "type": "array", "items": { "type": "integer", "maximum": 65535 } } }
                    }
                }
            }
        }))
        .unwrap()
    }

    fn findings(v: Value) -> Vec<(String, String)> {
        let found = schema().check(&v);
        found
            .iter()
            .map(|f| (f.dotted(), f.message.clone()))
            .collect()
    }

    #[test]
    fn a_valid_configuration_has_no_findings() {
        let ok = json!({"stage": "all", "window_secs": 60, "name": "abc",
            "protocols": [{"label": "x", "ports": [21, 22]}]});
        assert_eq!(findings(ok), []);
        assert_eq!(findings(json!({})), []);
    }

    #[test]
    fn each_finding_names_its_key() {
        let f = findings(json!({"window_secs": "60", "stage": "some", "nope": 1, "name": ""}));
        assert_eq!(
            f,
            [
                ("name".into(), "shorter than 1 characters".into()),
                (
                    "nope".into(),
                    "unknown key; expected one of: name, protocols, stage, window_secs".into()
                ),
                (
                    "stage".into(),
                    "string \"some\" is not one of \"all\", \"classify\"".into()
                ),
                (
                    "window_secs".into(),
                    "expected integer, found string \"60\"".into()
                ),
            ]
        );
        let f = findings(
            json!({"window_secs": 0, "protocols": [{"label": "a"}, {"ports": [1, 70000]}, {"label": "c"}]}),
        );
        assert_eq!(
            f,
            [
                ("protocols".into(), "3 items; at most 2".into()),
                (
                    "protocols[1].label".into(),
                    "missing: this key is required".into()
                ),
                (
                    "protocols[1].ports[1]".into(),
                    "70000 is more than the maximum 65535".into()
                ),
                ("window_secs".into(), "0 is less than the minimum 1".into()),
            ]
        );
    }

    #[test]
    fn a_schema_outside_the_subset_or_too_deep_is_refused() {
        assert!(Schema::parse(&json!({"type": "text"})).is_err());
        assert!(Schema::parse(&json!({"properties": {"a": 1}})).is_err());
        assert!(Schema::parse(&json!(true)).is_ok());
        let mut deep = json!({});
        for _ in 0..=MAX_DEPTH {
            deep = json!({ "items": deep });
        }
        let e = Schema::parse(&deep).unwrap_err();
        assert!(e.contains("deeper than 32"), "{e}");
        // Annotations are not checked.
        assert!(Schema::parse(&json!({"description": "d", "oneOf": []})).is_ok());
    }

    #[test]
    fn findings_are_capped() {
        let s = Schema::parse(&json!({"items": {"type": "string"}})).unwrap();
        let many = Value::Array(vec![json!(1); 1000]);
        assert_eq!(s.check(&many).len(), MAX_ERRORS);
    }
}

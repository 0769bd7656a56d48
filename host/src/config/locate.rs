//! Which key a TOML error is about. toml places an error inside a
//! component table (`[sources.x]`, read through the `type`-tagged enum of
//! its kind) at the table's header and names no key: serde buffers the
//! table before it knows the kind, and the buffered values have lost their
//! place in the file. The key is found again from the message: an unknown
//! field names it; a wrong type or value names the value, which is matched
//! against the table's `key = value` lines, and only a single match counts.

use serde::de::Unexpected;

/// One `key = value` line of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry<'a> {
    /// 1-based.
    pub line: usize,
    pub key: &'a str,
    /// The text after `=`, comment included.
    pub value: &'a str,
}

/// The `key = value` lines of the table whose header is on line `table`
/// (1-based), up to the next header.
pub(super) fn table_entries(text: &str, table: usize) -> Vec<Entry<'_>> {
    text.lines()
        .enumerate()
        .skip(table)
        .take_while(|(_, l)| !l.trim_start().starts_with('['))
        .filter_map(|(i, l)| {
            let (key, value) = l.split_once('=')?;
            let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
            let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
            (!key.is_empty() && key.chars().all(plain)).then(|| Entry {
                line: i + 1,
                key,
                value: value.trim(),
            })
        })
        .collect()
}

/// The entry an error message is about, when the message tells which one:
/// an unknown field by its name; a wrong type or value, or an unknown
/// variant, by the value when exactly one entry holds it.
pub(super) fn entry_at_fault<'a>(message: &str, entries: &[Entry<'a>]) -> Option<Entry<'a>> {
    if let Some(key) = quoted_after(message, "unknown field `") {
        return entries.iter().find(|e| e.key == key).copied();
    }
    let holds = |value: &str| {
        if let Some(v) = quoted_after(message, "unknown variant `") {
            return matches!(toml_value(value), Some(toml::Value::String(s)) if s == v);
        }
        let wrong = (message.strip_prefix("invalid type: "))
            .or_else(|| message.strip_prefix("invalid value: "));
        wrong.is_some_and(|rest| {
            unexpected(value).is_some_and(|u| rest.starts_with(&format!("{u}, expected")))
        })
    };
    let mut found = entries.iter().filter(|e| holds(e.value));
    match (found.next(), found.next()) {
        (Some(e), None) => Some(*e),
        _ => None,
    }
}

/// The text between `prefix` and the next backtick.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// A value's text (a comment may follow it) read as TOML.
fn toml_value(text: &str) -> Option<toml::Value> {
    let mut t: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    t.remove("v")
}

/// How serde names a value it did not expect (`string "64"`,
/// `integer \`64\``, `sequence`), as in its error messages.
fn unexpected(text: &str) -> Option<String> {
    let named = match toml_value(text) {
        Some(toml::Value::String(s)) => Unexpected::Str(&s).to_string(),
        Some(toml::Value::Integer(i)) => Unexpected::Signed(i).to_string(),
        Some(toml::Value::Float(f)) => Unexpected::Float(f).to_string(),
        Some(toml::Value::Boolean(b)) => Unexpected::Bool(b).to_string(),
        Some(toml::Value::Array(_)) => Unexpected::Seq.to_string(),
        Some(toml::Value::Table(_)) => Unexpected::Map.to_string(),
        Some(toml::Value::Datetime(_)) => return None,
        // A value over several lines starts an array or a string.
        None if text.starts_with('[') => Unexpected::Seq.to_string(),
        None => return None,
    };
    Some(named)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "[transforms.rule]\ntype = \"wasm\"\ninputs = [\"in\"] # a comment\nmax_memory_mib = \"64\"\ndeadline_ms = -1\non_error = \"drpo\"\n\"quoted\" = 1.5\nenabled = true\n[transforms.rule.config]\nschema = \"64\"\n";

    fn at_fault(message: &str) -> Option<(usize, &'static str)> {
        entry_at_fault(message, &table_entries(TABLE, 1)).map(|e| (e.line, e.key))
    }

    #[test]
    fn entries_stop_at_the_next_header() {
        let keys: Vec<&str> = table_entries(TABLE, 1).iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            [
                "type",
                "inputs",
                "max_memory_mib",
                "deadline_ms",
                "on_error",
                "quoted",
                "enabled"
            ]
        );
    }

    #[test]
    fn the_value_in_the_message_finds_its_key() {
        assert_eq!(
            at_fault("invalid type: string \"64\", expected usize"),
            Some((4, "max_memory_mib"))
        );
        assert_eq!(
            at_fault("invalid value: integer `-1`, expected u64"),
            Some((5, "deadline_ms"))
        );
        assert_eq!(
            at_fault("unknown variant `drpo`, expected one of `pass_through`, `drop`"),
            Some((6, "on_error"))
        );
        assert_eq!(
            at_fault("invalid type: floating point `1.5`, expected u64"),
            Some((7, "quoted"))
        );
        assert_eq!(
            at_fault("invalid type: boolean `true`, expected a string"),
            Some((8, "enabled"))
        );
        assert_eq!(
            at_fault("invalid type: sequence, expected a string"),
            Some((3, "inputs"))
        );
        assert_eq!(
            at_fault("unknown field `on_error`, expected ..."),
            Some((6, "on_error"))
        );
    }

    #[test]
    fn no_key_when_the_message_does_not_tell_which() {
        assert_eq!(at_fault("missing field `module`"), None);
        assert_eq!(
            at_fault("invalid type: string \"65\", expected usize"),
            None
        );
        assert_eq!(at_fault("unknown field `nope`, expected ..."), None);
        // Two entries hold the same value: neither is chosen.
        let twice = "[sinks.x]\na = \"64\"\nb = \"64\"\n";
        let entries = table_entries(twice, 1);
        assert_eq!(
            entry_at_fault("invalid type: string \"64\", expected usize", &entries),
            None
        );
    }
}

//! Checks of the component graph, each a small function that reports every
//! problem it finds: ids, presence of sources and sinks, inputs, cycles
//! among transforms, and named outputs once the plugins have declared them.
//!
//! An input names a source, a transform (its default output) or
//! `<transform>.<output>`.

use std::collections::{BTreeMap, BTreeSet};

use super::{ConfigError, ConfigFile};

/// The components of a configuration and what each reads.
#[derive(Debug, Default)]
pub struct Graph<'a> {
    pub sources: Vec<&'a str>,
    pub transforms: Vec<(&'a str, &'a [String])>,
    pub sinks: Vec<(&'a str, &'a [String])>,
}

impl<'a> Graph<'a> {
    /// Every consumer with its section and inputs: transforms, then sinks.
    fn consumers(&self) -> impl Iterator<Item = (&'static str, &'a str, &'a [String])> + '_ {
        let t = self.transforms.iter().map(|(k, i)| ("transforms", *k, *i));
        t.chain(self.sinks.iter().map(|(k, i)| ("sinks", *k, *i)))
    }

    fn is_transform(&self, id: &str) -> bool {
        self.transforms.iter().any(|(k, _)| *k == id)
    }

    fn inputs_of(&self, transform: &str) -> &'a [String] {
        let found = self.transforms.iter().find(|(k, _)| *k == transform);
        found.map_or(&[], |(_, i)| *i)
    }
}

/// `"t1071.alerts"` -> `("t1071", Some("alerts"))`.
pub fn split_input(input: &str) -> (&str, Option<&str>) {
    match input.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (input, None),
    }
}

/// Every check that needs no plugin, in order.
pub fn check(g: &Graph<'_>, file: &ConfigFile) -> Vec<ConfigError> {
    let mut errors = check_ids(g, file);
    errors.extend(check_present(g, file));
    errors.extend(check_inputs(g, file));
    errors.extend(check_cycles(g, file));
    errors
}

/// Ids are non-empty, hold no '.', and are unique across sections.
pub fn check_ids(g: &Graph<'_>, file: &ConfigFile) -> Vec<ConfigError> {
    let mut seen = BTreeMap::new();
    let all = g.sources.iter().map(|k| ("sources", *k));
    let all = all
        .chain(g.transforms.iter().map(|(k, _)| ("transforms", *k)))
        .chain(g.sinks.iter().map(|(k, _)| ("sinks", *k)));
    let mut errors = Vec::new();
    for (section, id) in all {
        let why = if id.is_empty() || id.contains('.') {
            Some("a component id must be non-empty and contain no '.'".to_string())
        } else {
            seen.insert(id, section)
                .map(|other| format!("id already used in [{other}]"))
        };
        if let Some(why) = why {
            errors.push(file.error(section, id, None, format!("{section}.{id}: {why}")));
        }
    }
    errors
}

/// At least one source and one sink.
pub fn check_present(g: &Graph<'_>, file: &ConfigFile) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    if g.sources.is_empty() {
        errors.push(file.error_at(None, "no [sources.<id>] defined".into()));
    }
    if g.sinks.is_empty() {
        errors.push(file.error_at(None, "no [sinks.<id>] defined".into()));
    }
    errors
}

/// Every consumer has inputs, each naming a source or a transform other
/// than itself (a source has no named outputs).
pub fn check_inputs(g: &Graph<'_>, file: &ConfigFile) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (section, id, inputs) in g.consumers() {
        let mut err = |m: String| errors.push(file.error(section, id, None, m));
        if inputs.is_empty() {
            err(format!(
                "{section}.{id}.inputs: at least one input is required"
            ));
        }
        for input in inputs {
            let (base, _) = split_input(input);
            let known = g.sources.contains(&base) && !input.contains('.') || g.is_transform(base);
            if !known {
                err(format!(
                    "{section}.{id}.inputs: unknown input {input:?} (no source or transform of that id)"
                ));
            } else if base == id {
                err(format!(
                    "{section}.{id}.inputs: a component cannot read its own output"
                ));
            }
        }
    }
    errors
}

/// No transform reads, through others, its own output. Each cycle is
/// reported once.
pub fn check_cycles(g: &Graph<'_>, file: &ConfigFile) -> Vec<ConfigError> {
    let mut done = BTreeSet::new();
    let mut errors = Vec::new();
    for (id, _) in &g.transforms {
        let mut stack = Vec::new();
        if let Some(cycle) = find_cycle(g, id, &mut stack, &mut done) {
            done.extend(cycle.iter().copied());
            let message = format!("transforms form a cycle: {}", cycle.join(" -> "));
            errors.push(file.error("transforms", id, None, message));
        }
    }
    errors
}

/// Depth-first from `id`: the first cycle met, as the path that closes it.
fn find_cycle<'a>(
    g: &Graph<'a>,
    id: &'a str,
    stack: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
) -> Option<Vec<&'a str>> {
    if done.contains(id) {
        return None;
    }
    if let Some(pos) = stack.iter().position(|s| *s == id) {
        let mut cycle = stack[pos..].to_vec();
        cycle.push(id);
        return Some(cycle);
    }
    stack.push(id);
    for input in g.inputs_of(id) {
        let (base, _) = split_input(input);
        if g.is_transform(base)
            && let Some(cycle) = find_cycle(g, base, stack, done)
        {
            return Some(cycle);
        }
    }
    stack.pop();
    done.insert(id);
    None
}

/// Every `<transform>.<output>` input names an output the plugin declares
/// (`declared`: by transform; transforms not in it are not checked).
pub fn check_outputs(
    g: &Graph<'_>,
    file: &ConfigFile,
    declared: &BTreeMap<String, Vec<String>>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (section, id, inputs) in g.consumers() {
        for input in inputs {
            if let (base, Some(out)) = split_input(input)
                && let Some(outs) = declared.get(base)
                && !outs.iter().any(|o| o == out)
            {
                let has = if outs.is_empty() {
                    "none".to_string()
                } else {
                    outs.join(", ")
                };
                let message = format!(
                    "{section}.{id}.inputs: transform {base:?} has no output {out:?} (it declares: {has})"
                );
                errors.push(file.error(section, id, None, message));
            }
        }
    }
    errors
}

/// Whether any consumer reads `input`.
pub fn is_read(g: &Graph<'_>, input: &str) -> bool {
    g.consumers()
        .any(|(_, _, inputs)| inputs.iter().any(|i| i == input))
}

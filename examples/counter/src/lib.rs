//! counter: a stateful rule. It counts events per value of one field (the
//! key, `user` by default), tags each event with its key's count so far,
//! and emits one alert on its `alerts` output when a key's count reaches
//! `threshold`. Its counts survive a restart: [`Rule::snapshot`] writes
//! them at a graceful shutdown and [`Rule::restore`] reads them back,
//! refusing bytes it did not write (the host then starts it empty).
//!
//! The counts are bounded: past `max_keys` distinct keys a new key is not
//! counted and its event passes untouched, so a flood of keys cannot fill
//! the sandbox's memory. Counting across events, it keeps
//! [`Rule::PARALLEL`] false: one instance sees the whole stream.

use std::collections::BTreeMap;

use rulebox_plugin::json::{self, KeySet, Object, ScanError, Scanner};
use rulebox_plugin::{EventOut, Manifest, OutputId, Rule};

/// The `alerts` output's id (the first declared output).
const ALERTS: OutputId = 1;
/// The first byte of a snapshot: this rule's snapshot format.
const SNAPSHOT_VERSION: u8 = 1;

/// The rule: its configuration and the counts.
#[derive(Debug)]
pub struct Counter {
    /// The dotted path of the field counted by.
    key: String,
    threshold: u64,
    max_keys: usize,
    counts: BTreeMap<String, u64>,
}

/// A positive integer member `name` of `config`, or `default` when absent.
fn positive(config: &Object<'_, '_>, name: &str, default: u64) -> Result<u64, String> {
    match config.get(name) {
        None => Ok(default),
        Some(v) => v
            .as_number_text()
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}: expected a positive integer")),
    }
}

impl Counter {
    /// The text a key's value counts under: a string's content, or the
    /// JSON text of any other value; `None` when absent or null.
    fn key_of(&self, obj: &Object<'_, '_>) -> Option<String> {
        let v = obj.get(&self.key).filter(|v| !v.is_null())?;
        Some(match v.as_str() {
            Some(s) => s.into_owned(),
            None => String::from_utf8_lossy(v.raw).into_owned(),
        })
    }

    /// Counts one event under `key`; its count, or `None` when the key is
    /// new and the map is full.
    fn count(&mut self, key: String) -> Option<u64> {
        if !self.counts.contains_key(&key) && self.counts.len() >= self.max_keys {
            return None;
        }
        let n = self.counts.entry(key).or_insert(0);
        *n += 1;
        Some(*n)
    }
}

impl Rule for Counter {
    const OUTPUTS: &'static [&'static str] = &["alerts"];
    const READS_OBJECTS: bool = true;

    /// `{"key": "user", "threshold": 3, "max_keys": 10000}`, all optional.
    fn new(config: &[u8]) -> Result<Self, String> {
        let mut scanner = Scanner::new();
        let config = scanner
            .scan(config)
            .map_err(|_| "the configuration is not a JSON object".to_string())?;
        let key = match config.get("key") {
            None => "user".to_string(),
            Some(v) => v.as_str().ok_or("key: expected a string")?.into_owned(),
        };
        if key.is_empty() {
            return Err("key: must not be empty".into());
        }
        Ok(Counter {
            key,
            threshold: positive(&config, "threshold", 3)?,
            max_keys: positive(&config, "max_keys", 10_000)? as usize,
            counts: BTreeMap::new(),
        })
    }

    fn object_keys(&self) -> Option<Vec<String>> {
        Some(KeySet::path_keys(&self.key).map(String::from).collect())
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
            Err(e) => return out.unreadable(e),
        };
        let Some(key) = self.key_of(&obj) else { return };
        let Some(n) = self.count(key.clone()) else {
            return;
        };
        out.set_field(&obj, "count", |b| {
            b.extend_from_slice(n.to_string().as_bytes())
        });
        if n == self.threshold {
            out.emitter().emit_with(ALERTS, |b| {
                b.extend_from_slice(b"{\"key\":");
                json::write_str(b, &key);
                b.extend_from_slice(format!(",\"count\":{n},\"at_ms\":{now_ms}}}").as_bytes());
            });
        }
    }

    /// Version byte, then per key: its length (u32 LE), its bytes, its
    /// count (u64 LE).
    fn snapshot(&mut self, _now_ms: i64, out: &mut Vec<u8>) {
        if self.counts.is_empty() {
            return;
        }
        out.push(SNAPSHOT_VERSION);
        for (key, n) in &self.counts {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(&n.to_le_bytes());
        }
    }

    fn restore(&mut self, data: &[u8], _now_ms: i64) -> Result<(), String> {
        self.counts = read_snapshot(data, self.max_keys)?;
        Ok(())
    }
}

/// The first `n` bytes of `rest`, and what follows.
fn cut(rest: &[u8], n: usize) -> Result<(&[u8], &[u8]), &'static str> {
    (rest.len() >= n)
        .then(|| rest.split_at(n))
        .ok_or("the counter snapshot is cut short")
}

/// The counts a snapshot holds; an error for bytes [`Rule::snapshot`] did
/// not write (another version, cut short, or more keys than `max_keys`).
fn read_snapshot(data: &[u8], max_keys: usize) -> Result<BTreeMap<String, u64>, String> {
    let Some((&SNAPSHOT_VERSION, mut rest)) = data.split_first() else {
        return Err("not a counter snapshot (unknown version)".into());
    };
    let mut counts = BTreeMap::new();
    while !rest.is_empty() {
        let (len, r) = cut(rest, 4)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let (key, r) = cut(r, len)?;
        let (n, r) = cut(r, 8)?;
        let key = std::str::from_utf8(key).map_err(|_| "a key in the snapshot is not UTF-8")?;
        counts.insert(
            key.to_string(),
            u64::from_le_bytes(n.try_into().expect("8 bytes")),
        );
        rest = r;
    }
    if counts.len() > max_keys {
        return Err(format!(
            "the snapshot holds {} keys, over max_keys",
            counts.len()
        ));
    }
    Ok(counts)
}

/// What `rulebox inspect` shows; the schema `rulebox validate` checks the
/// configuration against.
pub const MANIFEST: Manifest<'static> = Manifest {
    name: "example-counter",
    version: env!("CARGO_PKG_VERSION"),
    description: "Counts events per key and alerts when a key reaches a threshold (an example rule)",
    author: "rulebox",
    techniques: &[],
    outputs: &["alerts"],
    config_schema: Some(include_str!("../config.schema.json")),
};

rulebox_plugin::export_rule!(Counter, manifest = MANIFEST);

#[cfg(test)]
mod tests;

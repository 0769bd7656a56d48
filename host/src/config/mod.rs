//! What every component's configuration leans on: errors that say where
//! they are, the configuration file's text (to find lines), path
//! resolution, and the checks of the component graph.
//!
//! This module knows no component: components describe their problems as
//! [`Problem`]s, and the topology places them in the file.

pub mod graph;
mod locate;

use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// A configuration problem, with where it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// Every problem found in one configuration, in the order found.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl std::ops::Deref for ConfigErrors {
    type Target = [ConfigError];
    fn deref(&self) -> &[ConfigError] {
        &self.0
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

/// What a component's own check found: the key at fault (if one is) and
/// what is wrong with it. Placed in the file by [`ConfigFile::problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// A key of the component's table, or a path below it as TOML writes
    /// it (`config.protocols[1].ports`).
    pub key: Option<Cow<'static, str>>,
    pub message: String,
}

impl Problem {
    pub fn at(key: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Problem {
        Problem {
            key: Some(key.into()),
            message: message.into(),
        }
    }

    pub fn whole(message: impl Into<String>) -> Problem {
        Problem {
            key: None,
            message: message.into(),
        }
    }
}

/// A configuration file's path and text.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read: {e}"),
        })?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
        })
    }

    /// The text as TOML into `T`, an error pointing at its line. An error
    /// toml places at a component's table header (an unknown key, a wrong
    /// type or value) points at the key's own line when the message tells
    /// which key it is (see `locate`), and a wrong type or value names it.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(self.text.len()));
            let line = self.text[..at].matches('\n').count() + 1;
            let message = e.message();
            let Some(table) = self.header_at(line) else {
                return self.error_at(Some(line), message.to_string());
            };
            let entries = locate::table_entries(&self.text, line);
            match locate::entry_at_fault(message, &entries) {
                Some(e) if message.starts_with("unknown field") => {
                    self.error_at(Some(e.line), message.to_string())
                }
                Some(e) => self.error_at(Some(e.line), format!("{table}.{}: {message}", e.key)),
                None => self.error_at(Some(line), message.to_string()),
            }
        })
    }

    /// The name of the table whose header is on line `line` (1-based):
    /// `sources.in` for `[sources.in]`.
    fn header_at(&self, line: usize) -> Option<&str> {
        let l = self.text.lines().nth(line.checked_sub(1)?)?.trim();
        let name = l.strip_prefix('[')?.split(']').next()?;
        Some(name.trim())
    }

    /// The line of `[<section>.<id>]` (or of `[<section>.<id>.<sub>]`).
    pub fn line_of(&self, section: &str, id: &str, sub: Option<&str>) -> Option<usize> {
        let header = match sub {
            Some(s) => format!("[{section}.{id}.{s}]"),
            None => format!("[{section}.{id}]"),
        };
        self.header_line(&header, 0)
    }

    pub fn error_at(&self, line: Option<usize>, message: String) -> ConfigError {
        ConfigError {
            file: self.path.display().to_string(),
            line,
            message,
        }
    }

    /// An error about component `[<section>.<id>]`, at the line of its
    /// `sub` table when it has one, else of its own header.
    pub fn error(
        &self,
        section: &str,
        id: &str,
        sub: Option<&str>,
        message: String,
    ) -> ConfigError {
        let line = self
            .line_of(section, id, sub)
            .or_else(|| self.line_of(section, id, None));
        self.error_at(line, message)
    }

    /// A component's [`Problem`], prefixed with where it is
    /// (`sinks.out.path: ...`), at the line of its key when it names one
    /// that is there (see [`ConfigFile::line_of_key`]), else of the
    /// component's header.
    pub fn problem(&self, section: &str, id: &str, p: Problem) -> ConfigError {
        let Some(key) = p.key else {
            return self.error(section, id, None, format!("{section}.{id}: {}", p.message));
        };
        let message = format!("{section}.{id}.{key}: {}", p.message);
        self.error_at(self.line_of_key(section, id, &key), message)
    }

    /// A problem of the top-level table `[<table>]` (not a component), at
    /// its key's line when the key is found, else at the table's header.
    pub fn table_problem(&self, table: &str, p: Problem) -> ConfigError {
        let header = self.header_line(&format!("[{table}]"), 0);
        let Some(key) = p.key else {
            return self.error_at(header, format!("{table}: {}", p.message));
        };
        let line = header.map(|at| {
            let entries = locate::table_entries(&self.text, at);
            entries.iter().find(|e| e.key == key).map_or(at, |e| e.line)
        });
        self.error_at(line, format!("{table}.{key}: {}", p.message))
    }

    /// The line of `key` in component `[<section>.<id>]`: a path of keys
    /// and indexes (`config.protocols[1].ports`), each found as a table of
    /// its own (`[<section>.<id>.config]`, the second
    /// `[[<section>.<id>.config.protocols]]`) or as a `key = ...` line of
    /// the table reached so far; where the path goes on past what the file
    /// shows (a key that is missing, or inside an inline value), the line
    /// of the last table or key found.
    pub fn line_of_key(&self, section: &str, id: &str, key: &str) -> Option<usize> {
        let mut table = format!("{section}.{id}");
        let mut at = self.line_of(section, id, None)?;
        for step in key.split('.') {
            let (name, index) = match step.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (step, None),
            };
            let path = format!("{table}.{name}");
            let header = match index {
                None => self.header_line(&format!("[{path}]"), 0),
                Some(n) => self.header_line(&format!("[[{path}]]"), n),
            };
            if let Some(h) = header {
                (table, at) = (path, h);
                continue;
            }
            let entries = locate::table_entries(&self.text, at);
            let dotted = format!("{name}.");
            let entry = entries
                .iter()
                .find(|e| e.key == name || e.key.starts_with(&dotted));
            return Some(entry.map_or(at, |e| e.line));
        }
        Some(at)
    }

    /// The line of the `n`-th (0-based) header written `header`.
    fn header_line(&self, header: &str, n: usize) -> Option<usize> {
        (self.text.lines().enumerate())
            .filter(|(_, l)| l.trim().replace(' ', "") == header)
            .nth(n)
            .map(|(i, _)| i + 1)
    }
}

/// Paths named in a configuration resolve against the file's folder.
#[derive(Debug, Clone)]
pub struct Paths {
    base: PathBuf,
    data_dir: PathBuf,
}

impl Paths {
    /// `data_dir`: the configured one, or `data` beside the file.
    pub fn new(config_file: &Path, data_dir: Option<&Path>) -> Paths {
        let base = config_file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut p = Paths {
            base,
            data_dir: PathBuf::new(),
        };
        p.data_dir = p.resolve(data_dir.unwrap_or(Path::new("data")));
        p
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.base.join(p)
    }

    /// Where the host keeps its state.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    /// Shaped like a pipeline: kinds of component behind a `type` tag
    /// (their fields are read only by the deserializer).
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        #[serde(default)]
        parts: BTreeMap<String, Kind>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Kind {
        Thing(Thing),
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        #[serde(default)]
        size_mib: usize,
        #[serde(default)]
        name: String,
    }

    fn file(text: &str) -> ConfigFile {
        ConfigFile {
            path: "p.toml".into(),
            text: text.into(),
        }
    }

    fn parse_error(text: &str) -> String {
        file(text).parse::<File>().unwrap_err().to_string()
    }

    const THING: &str =
        "[parts.other]\ntype = \"thing\"\n\n[parts.a]\ntype = \"thing\"\nname = \"x\"\n";

    /// Why `locate` exists: toml 0.8 places an error inside a tagged table
    /// at the table's header, and the message names no key.
    #[test]
    fn toml_places_a_type_error_in_a_tagged_table_at_its_header() {
        let text = format!("{THING}size_mib = \"64\"\n");
        let e = toml::from_str::<File>(&text).unwrap_err();
        let header = text.find("[parts.a]").unwrap();
        assert_eq!(e.span().map(|s| s.start), Some(header));
        assert_eq!(e.message(), "invalid type: string \"64\", expected usize");
    }

    #[test]
    fn a_type_error_names_its_key_at_its_line() {
        assert_eq!(
            parse_error(&format!("{THING}size_mib = \"64\"\n")),
            "p.toml:7: parts.a.size_mib: invalid type: string \"64\", expected usize"
        );
        assert_eq!(
            parse_error(&format!("{THING}size_mib = -1 # comment\n")),
            "p.toml:7: parts.a.size_mib: invalid value: integer `-1`, expected usize"
        );
        assert_eq!(
            parse_error("[parts.a]\ntype = \"thing\"\nname = [\n  \"x\",\n]\n"),
            "p.toml:3: parts.a.name: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn an_unknown_key_is_at_its_line_and_a_missing_one_at_the_header() {
        assert_eq!(
            parse_error(&format!("{THING}size = 1\n")),
            "p.toml:7: unknown field `size`, expected `size_mib` or `name`"
        );
        assert_eq!(
            parse_error(&format!("{THING}[parts.b]\nname = \"x\"\n")),
            "p.toml:7: missing field `type`"
        );
    }

    #[test]
    fn a_problem_is_at_its_key_or_sub_table_else_at_the_header() {
        let f = file(&format!("{THING}size_mib = 5\n[parts.a.extra]\nk = 1\n"));
        let at = |key| f.problem("parts", "a", Problem::at(key, "bad")).to_string();
        assert_eq!(at("size_mib"), "p.toml:7: parts.a.size_mib: bad");
        assert_eq!(at("extra"), "p.toml:8: parts.a.extra: bad");
        assert_eq!(at("absent"), "p.toml:4: parts.a.absent: bad");
        // The same key in another component's table does not count.
        assert_eq!(at("type"), "p.toml:5: parts.a.type: bad");
        let whole = f.problem("parts", "other", Problem::whole("bad"));
        assert_eq!(whole.to_string(), "p.toml:1: parts.other: bad");
    }

    #[test]
    fn a_path_below_a_component_is_at_its_line() {
        let f = file(concat!(
            "[parts.a]\ntype = \"thing\"\n",                  // 1-2
            "[parts.a.config]\nwindow = \"x\"\nf.port = 1\n", // 3-5
            "[[parts.a.config.list]]\nport = 1\n",            // 6-7
            "[[parts.a.config.list]]\nname = 1\nport = 2\n",  // 8-10
            "[parts.a.config.sub]\nk = 1\n",                  // 11-12
        ));
        let at = |key: &str| f.line_of_key("parts", "a", key);
        assert_eq!(at("config.window"), Some(4));
        assert_eq!(at("config.f.port"), Some(5));
        assert_eq!(at("config.list[1].port"), Some(10));
        assert_eq!(at("config.list[0].port"), Some(7));
        assert_eq!(at("config.list[1].label"), Some(8));
        assert_eq!(at("config.sub.k"), Some(12));
        assert_eq!(at("config.absent"), Some(3));
        assert_eq!(at("type"), Some(2));
        assert_eq!(f.line_of_key("parts", "b", "x"), None);
        let p = f.problem(
            "parts",
            "a",
            Problem::at("config.window".to_string(), "bad"),
        );
        assert_eq!(p.to_string(), "p.toml:4: parts.a.config.window: bad");
    }
}

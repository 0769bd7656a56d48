//! What every component's configuration leans on: errors that say where
//! they are, the configuration file's text (to find lines), path
//! resolution, and the checks of the component graph.
//!
//! This module knows no component: components describe their problems as
//! [`Problem`]s, and the topology places them in the file.

pub mod graph;

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
    pub key: Option<&'static str>,
    pub message: String,
}

impl Problem {
    pub fn at(key: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            key: Some(key),
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

    /// The text as TOML into `T`, an error pointing at its line (at the
    /// key itself for an unknown key: toml points at its table).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(self.text.len()));
            let mut line = self.text[..at].matches('\n').count() + 1;
            if let Some(key) = e
                .message()
                .strip_prefix("unknown field `")
                .and_then(|m| m.split('`').next())
                && let Some(l) = self.key_line_in_table(line, key)
            {
                line = l;
            }
            self.error_at(Some(line), e.message().to_string())
        })
    }

    /// The line of `key = ...` in the table whose header is on line
    /// `table`, up to the next header.
    fn key_line_in_table(&self, table: usize, key: &str) -> Option<usize> {
        self.text
            .lines()
            .enumerate()
            .skip(table)
            .take_while(|(_, l)| !l.trim_start().starts_with('['))
            .find(|(_, l)| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(i, _)| i + 1)
    }

    /// The line of `[<section>.<id>]` (or of `[<section>.<id>.<sub>]`).
    pub fn line_of(&self, section: &str, id: &str, sub: Option<&str>) -> Option<usize> {
        let header = match sub {
            Some(s) => format!("[{section}.{id}.{s}]"),
            None => format!("[{section}.{id}]"),
        };
        self.text
            .lines()
            .position(|l| l.trim().replace(' ', "") == header)
            .map(|i| i + 1)
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
    /// (`sinks.out.path: ...`).
    pub fn problem(&self, section: &str, id: &str, p: Problem) -> ConfigError {
        match p.key {
            Some(key) => self.error(
                section,
                id,
                Some(key),
                format!("{section}.{id}.{key}: {}", p.message),
            ),
            None => self.error(section, id, None, format!("{section}.{id}: {}", p.message)),
        }
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

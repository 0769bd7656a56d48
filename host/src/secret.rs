//! Secrets in a configuration: tokens a listener accepts, a sink's token,
//! a header's value. Each is written as the value itself, or as where to
//! read it, so the configuration file need not hold it:
//!
//! ```toml
//! token = "5f1c…"                          # the value
//! token = { env = "RULEBOX_HEC_TOKEN" }    # an environment variable
//! token = { file = "secrets/hec.token" }   # a file (relative to the config); its
//!                                          # trailing newline is not part of it
//! ```
//!
//! A secret is never printed: its `Debug` is `<secret>`, and the errors
//! here name the variable or the file, never what they hold.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use subtle::ConstantTimeEq;

use crate::config::Paths;

/// A secret as the configuration gives it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    Env(String),
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Value(_) => f.write_str("<secret>"),
            Secret::Env(v) => write!(f, "<secret from env {v}>"),
            Secret::File(p) => write!(f, "<secret from file {}>", p.display()),
        }
    }
}

impl Secret {
    /// The secret's value (a file's is read now, relative to `paths`); the
    /// error says where it was looked for, not what was found.
    pub fn reveal(&self, paths: &Paths) -> Result<String, String> {
        let value = match self {
            Secret::Value(v) => v.clone(),
            Secret::Env(name) => std::env::var(name).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    format!("environment variable {name} is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    format!("environment variable {name} is not UTF-8")
                }
            })?,
            Secret::File(p) => {
                let path = paths.resolve(p);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("secret file {}: {e}", path.display()))?;
                text.trim_end_matches(['\n', '\r']).to_string()
            }
        };
        if value.trim().is_empty() {
            return Err(format!("{}: empty", self.origin()));
        }
        Ok(value)
    }

    /// Where the secret comes from, for messages.
    fn origin(&self) -> String {
        match self {
            Secret::Value(_) => "the secret".into(),
            Secret::Env(name) => format!("environment variable {name}"),
            Secret::File(p) => format!("secret file {}", p.display()),
        }
    }
}

/// Accepted tokens, revealed; compared in constant time.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Vec<u8>>);

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokens(<{} secrets>)", self.0.len())
    }
}

impl Tokens {
    /// Every secret of `list` revealed; the first that cannot be is the
    /// error (placed at `key[i]`).
    pub fn reveal(list: &[Secret], paths: &Paths, key: &str) -> Result<Tokens, (String, String)> {
        let mut all = Vec::with_capacity(list.len());
        for (i, s) in list.iter().enumerate() {
            let v = s.reveal(paths).map_err(|e| (format!("{key}[{i}]"), e))?;
            all.push(v.into_bytes());
        }
        Ok(Tokens(all))
    }

    /// Tokens given as values (tests).
    pub fn of(values: &[&str]) -> Tokens {
        Tokens(values.iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is one of the tokens. Every token is compared, each
    /// in time independent of where it differs.
    pub fn accepts(&self, given: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0);
        for t in &self.0 {
            ok |= t.as_slice().ct_eq(given);
        }
        ok.into()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"a string, { env = "VARIABLE" } or { file = "path" }"#)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
        Ok(Secret::Value(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                r#"give env = "VARIABLE" or file = "path""#,
            ));
        };
        let value: String = map.next_value()?;
        let secret = match key.as_str() {
            "env" => Secret::Env(value),
            "file" => Secret::File(value.into()),
            other => return Err(de::Error::unknown_field(other, &["env", "file"])),
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom("give one of env or file, not both"));
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        s: Secret,
    }

    fn parse(text: &str) -> Result<Secret, String> {
        toml::from_str::<T>(text)
            .map(|t| t.s)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn three_ways_to_give_a_secret() {
        assert_eq!(parse(r#"s = "abc""#).unwrap(), Secret::Value("abc".into()));
        assert_eq!(
            parse(r#"s = { env = "X" }"#).unwrap(),
            Secret::Env("X".into())
        );
        assert_eq!(
            parse(r#"s = { file = "t" }"#).unwrap(),
            Secret::File("t".into())
        );
        assert!(
            parse(r#"s = { path = "t" }"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(
            parse(r#"s = { env = "X", file = "t" }"#)
                .unwrap_err()
                .contains("not both")
        );
        assert!(parse("s = 5").unwrap_err().contains("env"));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::Value("hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
        let t = Tokens(vec![b"hunter2".to_vec()]);
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn revealed_from_a_file_without_its_newline_and_errors_name_the_place() {
        let dir = std::env::temp_dir().join(format!("rulebox-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tok"), "s3cret\n").unwrap();
        let paths = Paths::new(&dir.join("rulebox.toml"), None);
        let f = Secret::File("tok".into());
        assert_eq!(f.reveal(&paths).unwrap(), "s3cret");
        let missing = Secret::File("nope".into()).reveal(&paths).unwrap_err();
        assert!(missing.contains("nope"), "{missing}");
        let unset = Secret::Env("RULEBOX_TEST_UNSET_VARIABLE".into());
        assert!(unset.reveal(&paths).unwrap_err().contains("is not set"));
        std::fs::write(dir.join("empty"), "\n").unwrap();
        let e = Secret::File("empty".into()).reveal(&paths).unwrap_err();
        assert!(e.contains("empty") && !e.contains("s3cret"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tokens_accept_only_their_own() {
        let t = Tokens(vec![b"abc".to_vec(), b"def".to_vec()]);
        assert!(t.accepts(b"def"));
        assert!(t.accepts(b"abc"));
        assert!(!t.accepts(b"ab"));
        assert!(!t.accepts(b"abcd"));
        assert!(!t.accepts(b""));
    }
}

//! `rulebox new rule NAME`: writes a new rule crate from the template in
//! `templates/rule/`, whose files are compiled into the binary. The
//! template is a real crate of the workspace, built, linted and tested by
//! the test lanes like every rule crate, so what this writes builds, tests
//! and runs as it is.
//!
//! Where the generated crate gets the SDK from:
//! - inside a rulebox checkout, as `plugin/NAME` or `examples/NAME` (no
//!   `--sdk`): the template's own relative path (`../../plugin/sdk`); the
//!   workspace's member globs take the crate in, and it builds into the
//!   checkout's `target/`;
//! - anywhere else, with `--sdk PATH` (a checkout's `plugin/sdk`, or the
//!   checkout itself): that path, absolute; the crate is then its own
//!   workspace, with the `wasm` profile, the checkout's pinned toolchain
//!   and its own `target/`, and the module paths in its pipelines and
//!   rule tests point there.

use std::path::{Path, PathBuf};

/// The template's files: path in the crate, text.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/rule/Cargo.toml"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/rule/.gitignore"),
    ),
    ("README.md", include_str!("../../templates/rule/README.md")),
    (
        "config.schema.json",
        include_str!("../../templates/rule/config.schema.json"),
    ),
    (
        "sample.ndjson",
        include_str!("../../templates/rule/sample.ndjson"),
    ),
    (
        "pipeline.toml",
        include_str!("../../templates/rule/pipeline.toml"),
    ),
    (
        "pipeline-signed.toml",
        include_str!("../../templates/rule/pipeline-signed.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/rule/src/lib.rs"),
    ),
    (
        "src/tests.rs",
        include_str!("../../templates/rule/src/tests.rs"),
    ),
    (
        "tests/rules/denied_alerts.toml",
        include_str!("../../templates/rule/tests/rules/denied_alerts.toml"),
    ),
];

/// A standalone crate's toolchain: the checkout's pinned one (with its
/// wasm32-wasip1 target), as the crate is built outside the checkout.
const TOOLCHAIN: &str = include_str!("../../rust-toolchain.toml");

/// The template's package name, replaced by the new one (and in snake
/// case, the library's).
const TEMPLATE_NAME: &str = "rule-template";
/// The template's rule type, replaced by the new name in camel case.
const TEMPLATE_TYPE: &str = "RuleTemplate";
/// The SDK dependency line of the template's Cargo.toml.
const SDK_LINE: &str = "rulebox-plugin = { path = \"../../plugin/sdk\" }";
/// What a standalone crate adds to its Cargo.toml: its own workspace, and
/// the profile the rulebox workspace builds modules with.
const STANDALONE: &str = "
# Its own workspace, outside the rulebox checkout.
[workspace]

# Small, fast modules: `cargo build --target wasm32-wasip1 --profile wasm`.
[profile.wasm]
inherits = \"release\"
lto = true
codegen-units = 1
opt-level = 3
debug = false
panic = \"abort\"
strip = true
";

/// Why no crate was written.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("bad rule name {name:?}: {why}")]
    BadName { name: String, why: &'static str },
    #[error("{} already exists: choose another name or --dir", .0.display())]
    Exists(PathBuf),
    #[error(
        "{} is not plugin/<name> or examples/<name> of a rulebox checkout: \
         pass --sdk PATH (a checkout's plugin/sdk) to make a standalone crate",
        .0.display()
    )]
    NotInCheckout(PathBuf),
    #[error("{} is not the rulebox SDK (plugin/sdk of a rulebox checkout, or the checkout)", .0.display())]
    BadSdk(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Names a crate may not take: the standard library's and the compiler's
/// own, and the template's.
const RESERVED: &[&str] = &[
    "std",
    "core",
    "alloc",
    "test",
    "proc-macro",
    "self",
    "crate",
    "super",
    TEMPLATE_NAME,
];

/// Checks a rule name: 1 to 64 lower-case ASCII letters, digits and `-`,
/// starting with a letter, no `--` and no trailing `-` (a crate name that
/// is also a file name and a manifest name as it is).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |why| {
        Err(ScaffoldError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("it must be 1 to 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("only lower-case letters, digits and '-' are allowed");
    }
    if name.contains("--") || name.ends_with('-') {
        return bad("'-' separates words: no '--', no '-' at the end");
    }
    if RESERVED.contains(&name) {
        return bad("it is reserved");
    }
    Ok(())
}

/// Where the new crate gets the SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// Inside a checkout, at `plugin/NAME` or `examples/NAME`.
    InCheckout,
    /// A standalone crate using the SDK at this absolute path.
    At(PathBuf),
}

/// Where the crate goes and how it gets the SDK: `dir` (default: `name` in
/// the current folder) must not exist; with `sdk` (an SDK or checkout
/// folder) the crate is standalone, without it `dir` must be
/// `plugin/<x>` or `examples/<x>` of a checkout.
pub fn plan(
    name: &str,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<(PathBuf, Sdk), ScaffoldError> {
    check_name(name)?;
    let cwd = std::env::current_dir().map_err(|source| ScaffoldError::Io {
        path: PathBuf::from("."),
        source,
    })?;
    let dir = cwd.join(dir.unwrap_or(Path::new(name)));
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let sdk = match sdk {
        Some(path) => Sdk::At(find_sdk(&cwd.join(path))?),
        None if in_checkout(&dir) => Sdk::InCheckout,
        None => return Err(ScaffoldError::NotInCheckout(dir)),
    };
    Ok((dir, sdk))
}

/// The SDK folder at `path` (it, or its `plugin/sdk`), absolute.
fn find_sdk(path: &Path) -> Result<PathBuf, ScaffoldError> {
    for candidate in [path.to_path_buf(), path.join("plugin/sdk")] {
        let manifest = std::fs::read_to_string(candidate.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains("name = \"rulebox-plugin\"") {
            return candidate
                .canonicalize()
                .map_err(|source| ScaffoldError::Io {
                    path: candidate,
                    source,
                });
        }
    }
    Err(ScaffoldError::BadSdk(path.to_path_buf()))
}

/// Whether `dir` is `<checkout>/plugin/<x>` or `<checkout>/examples/<x>`.
fn in_checkout(dir: &Path) -> bool {
    let Some(parent) = dir.parent() else {
        return false;
    };
    let Ok(parent) = parent.canonicalize() else {
        return false;
    };
    let kind = parent.file_name().and_then(|n| n.to_str());
    matches!(kind, Some("plugin" | "examples"))
        && parent
            .parent()
            .is_some_and(|root| root.join("plugin/sdk/Cargo.toml").is_file())
}

/// The template's files for rule `name`: (path in the crate, text); a
/// standalone crate also gets the checkout's `rust-toolchain.toml`.
pub fn render(name: &str, sdk: &Sdk) -> Vec<(&'static str, String)> {
    let snake = name.replace('-', "_");
    let camel = camel_case(name);
    let toolchain = match sdk {
        Sdk::At(_) => Some(("rust-toolchain.toml", TOOLCHAIN.to_string())),
        Sdk::InCheckout => None,
    };
    TEMPLATE
        .iter()
        .map(|(path, text)| {
            let mut text = text
                .replace(TEMPLATE_TYPE, &camel)
                .replace(TEMPLATE_NAME, name)
                .replace(&TEMPLATE_NAME.replace('-', "_"), &snake);
            if let Sdk::At(sdk) = sdk {
                text = standalone(path, text, sdk);
            }
            (*path, text)
        })
        .chain(toolchain)
        .collect()
}

/// `my-rule-2` as `MyRule2`: a type name (a checked name starts with a
/// letter).
fn camel_case(name: &str) -> String {
    name.split('-')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect()
}

/// `text` of template file `path` for a standalone crate using `sdk`.
fn standalone(path: &str, text: String, sdk: &Path) -> String {
    if path == "Cargo.toml" {
        let quoted = toml_string(&sdk.display().to_string());
        let line = format!("rulebox-plugin = {{ path = {quoted} }}");
        return text.replace(SDK_LINE, &line) + STANDALONE;
    }
    // The module is built into the crate's own target/.
    if path.starts_with("tests/rules/") {
        return text.replace("../../../../target/", "../../target/");
    }
    if path.starts_with("pipeline") {
        return text.replace("../../target/", "target/");
    }
    text
}

/// `s` as a TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes rule `name`'s crate into `dir` (which must not exist); on a
/// failure removes what it wrote. Returns the files written.
pub fn write(name: &str, dir: &Path, sdk: &Sdk) -> Result<Vec<PathBuf>, ScaffoldError> {
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir.to_path_buf()));
    }
    let mut written = Vec::new();
    for (rel, text) in render(name, sdk) {
        let path = dir.join(rel);
        let res = std::fs::create_dir_all(path.parent().unwrap_or(dir))
            .and_then(|()| std::fs::write(&path, text));
        if let Err(source) = res {
            let _ = std::fs::remove_dir_all(dir);
            return Err(ScaffoldError::Io { path, source });
        }
        written.push(path);
    }
    Ok(written)
}

/// `rulebox new rule`: plans and writes the crate; returns what to tell the
/// user (what was written, and the commands that come next).
pub fn new_rule(
    name: &str,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<String, ScaffoldError> {
    let (dir, how) = plan(name, dir, sdk)?;
    let files = write(name, &dir, &how)?;
    let snake = name.replace('-', "_");
    let d = dir.display();
    let (build, module) = match how {
        Sdk::InCheckout => (
            format!("cargo build -p {name} --target wasm32-wasip1 --profile wasm"),
            format!("target/wasm32-wasip1/wasm/{snake}.wasm (in the checkout)"),
        ),
        Sdk::At(_) => (
            format!("cd {d} && cargo build --target wasm32-wasip1 --profile wasm"),
            format!("{d}/target/wasm32-wasip1/wasm/{snake}.wasm"),
        ),
    };
    Ok(format!(
        "created rule {name} in {d} ({} files)\n\
         next:\n  cargo test --manifest-path {d}/Cargo.toml\n  {build}\n  \
         rulebox test {d}/tests/rules\n  rulebox run --config {d}/pipeline.toml\n\
         the module: {module}\n",
        files.len()
    ))
}

#[cfg(test)]
#[path = "scaffold_tests.rs"]
mod tests;

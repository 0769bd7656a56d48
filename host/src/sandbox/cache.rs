//! Compiled native code on disk, so a restart does not compile a module
//! again.

use std::path::Path;
use std::time::Duration;

use wasmtime::{Engine, Module};

use super::error::PluginError;
use super::printable::printable_str;

/// Compiles `bytes`, or loads the native code compiled earlier for exactly
/// these bytes and this engine from `cache_dir`.
///
/// Invariant: the cache only holds files this host wrote (atomically, by
/// rename), named by a hash of the wasm bytes and the engine's
/// compatibility hash; a file that fails to load is compiled again.
pub(super) fn compile_cached(
    engine: &Engine,
    path: &Path,
    bytes: &[u8],
    cache_dir: Option<&Path>,
    max_compile: Duration,
) -> Result<Module, PluginError> {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let compile = || match compile_within(engine, bytes, max_compile) {
        Ok(m) => Ok(m),
        Err(Compile::Invalid(message)) => Err(PluginError::Compile {
            path: path.to_path_buf(),
            message,
        }),
        Err(Compile::TooLong(message)) => Err(PluginError::TooCostly {
            path: path.to_path_buf(),
            message,
        }),
    };
    let Some(dir) = cache_dir else {
        return compile();
    };
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    engine.precompile_compatibility_hash().hash(&mut h);
    let file = dir.join(format!("{:016x}-{}.cwasm", h.finish(), bytes.len()));
    if file.exists() {
        // SAFETY: see the invariant above; wasmtime checks the header and
        // engine compatibility before using the code.
        match unsafe { Module::deserialize_file(engine, &file) } {
            Ok(m) => return Ok(m),
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "compiled module cache entry unusable; recompiling")
            }
        }
    }
    let module = compile()?;
    match module.serialize() {
        Ok(code) => {
            let tmp = file.with_extension(format!("tmp{}", std::process::id()));
            let res = std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&tmp, &code))
                .and_then(|_| std::fs::rename(&tmp, &file));
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write compiled module cache");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot serialise compiled module"),
    }
    Ok(module)
}

/// Compiles on a thread of its own, waiting at most `max`: a compile cannot
/// be stopped, so past `max` it is left to finish and its module refused.
fn compile_within(engine: &Engine, bytes: &[u8], max: Duration) -> Result<Module, Compile> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (engine, bytes) = (engine.clone(), bytes.to_vec());
    std::thread::Builder::new()
        .name("rulebox-compile".into())
        .spawn(move || {
            let _ = tx.send(Module::new(&engine, &bytes));
        })
        .map_err(|e| Compile::Invalid(format!("cannot start the compile: {e}")))?;
    match rx.recv_timeout(max) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(Compile::Invalid(printable_str(&format!("{e:#}")))),
        Err(_) => Err(Compile::TooLong(format!(
            "compiling took longer than {max:?} (max_compile_secs)"
        ))),
    }
}

enum Compile {
    Invalid(String),
    TooLong(String),
}

//! Loading a plugin: check its signature when one is required, admit its
//! module (caps, manifest), compile it (or load the native code cached
//! for it), hold it to the contract, link the host's imports, and keep an
//! `InstancePre` from which fresh instances are made.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rulebox_abi as abi;
use wasmtime::{Caller, Engine, InstancePre, Linker};

use super::admission::{CompileLimits, admit};
use super::cache::compile_cached;
use super::contract::check_contract;
use super::error::PluginError;
use super::host_state::HostState;
use super::instance::Instance;
use super::manifest::Manifest;
use super::printable::printable_str;
use super::runtime::{Limits, Runtime};
use super::signature::Trust;
use super::wasi;

/// A compiled, contract-checked plugin module, ready to instantiate.
pub struct Plugin {
    name: Arc<str>,
    path: PathBuf,
    pre: InstancePre<HostState>,
    engine: Engine,
    limits: Limits,
    manifest: Option<Manifest>,
}

impl Plugin {
    /// Compiles `path` (or loads its native code from `cache_dir`), checks
    /// it against the contract and links the host's imports.
    pub fn load(
        rt: &Runtime,
        name: &str,
        path: &Path,
        cache_dir: Option<&Path>,
        limits: Limits,
    ) -> Result<Plugin, PluginError> {
        let compile = CompileLimits::default();
        Plugin::load_within(rt, name, path, cache_dir, limits, &compile, None)
    }

    /// [`Plugin::load`], with the module held to `compile` before and
    /// while it compiles, and, with `trust`, refused unless signed by a
    /// trusted key (checked on the bytes read, before anything else).
    pub fn load_within(
        rt: &Runtime,
        name: &str,
        path: &Path,
        cache_dir: Option<&Path>,
        limits: Limits,
        compile: &CompileLimits,
        trust: Option<&Trust>,
    ) -> Result<Plugin, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(trust) = trust {
            let ok = trust
                .verify(&bytes)
                .map_err(|source| PluginError::Signature {
                    path: path.to_path_buf(),
                    source,
                })?;
            tracing::info!(plugin = %name, key_id = %ok.key_id, trusted_comment = %printable_str(&ok.trusted_comment), "module signature verified");
        }
        let contract = |message: String| PluginError::Contract {
            path: path.to_path_buf(),
            message,
        };
        let admitted = admit(&bytes, compile).map_err(|message| PluginError::TooCostly {
            path: path.to_path_buf(),
            message,
        })?;
        let manifest = (admitted.manifest.as_deref().map(Manifest::parse))
            .transpose()
            .map_err(contract)?;
        let wasm = admitted.wasm;
        let module = compile_cached(rt.engine(), path, &wasm, cache_dir, compile.max_compile)?;
        check_contract(&module).map_err(contract)?;
        let mut linker: Linker<HostState> = Linker::new(rt.engine());
        linker
            .func_wrap(
                abi::HOST_MODULE,
                abi::import::LOG,
                |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
                    let len = (len as u32).min(4096);
                    if let Some(text) = wasi::guest_bytes(&mut caller, ptr as u32, len) {
                        caller.data_mut().log(level as u32, &text);
                    }
                },
            )
            .map_err(|e| contract(e.to_string()))?;
        wasi::link(&mut linker, &module).map_err(|e| contract(e.to_string()))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| contract(format!("{e:#}")))?;
        Ok(Plugin {
            name: name.into(),
            path: path.to_path_buf(),
            pre,
            engine: rt.engine().clone(),
            limits,
            manifest,
        })
    }

    /// What the module says about itself, if it has a manifest.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh instance, initialised with `config_json`; its log lines
    /// name it by the name the plugin was loaded with.
    pub fn instantiate(&self, config_json: &[u8]) -> Result<Instance, PluginError> {
        self.instantiate_as(&self.name, config_json)
    }

    /// [`Plugin::instantiate`], the instance's log lines naming it `name`
    /// (one module may serve several transforms, and a transform several
    /// workers).
    pub fn instantiate_as(&self, name: &str, config_json: &[u8]) -> Result<Instance, PluginError> {
        let state = HostState::new(name.into(), &self.limits);
        let mut inst = Instance::new(
            &self.engine,
            &self.pre,
            state,
            self.limits.deadline,
            &self.path,
        )?;
        inst.init(config_json, &self.path)?;
        Ok(inst)
    }
}

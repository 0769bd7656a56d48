//! `rulebox inspect RULE.wasm`: what a module is, without compiling or
//! running it. Its size and SHA-256, its manifest (or that it has none), its imports
//! and exports, and the signature file beside it (key id and trusted
//! comment; verified only against keys given with `--key`, as `validate`
//! and `run` verify against `trusted_keys`). Everything the module says
//! is escaped before it is printed.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::sandbox::{
    CompileLimits, Manifest, Trust, TrustedKey, Verified, default_signature_path, printable_str,
    read_signature, signature_key_id, to_wasm,
};

/// What `inspect` found.
#[derive(Debug)]
pub struct Inspection {
    pub path: PathBuf,
    pub size: usize,
    /// Of the file's bytes, in hex (as `sha256sum` prints it).
    pub sha256: String,
    /// `Ok(None)`: no manifest; `Err`: one the host refuses, and why.
    pub manifest: Result<Option<Manifest>, String>,
    /// `module.name (kind)`.
    pub imports: Vec<String>,
    /// `name (kind)`.
    pub exports: Vec<String>,
    pub signature: Signature,
    /// The module checked against its signature and the keys given
    /// (`None`: no key given; `Err`: why it does not verify).
    pub verified: Option<Result<Verified, String>>,
}

/// The signature file beside the module.
#[derive(Debug)]
pub enum Signature {
    Absent(PathBuf),
    Present {
        path: PathBuf,
        key_id: String,
        trusted_comment: String,
    },
    Unusable {
        path: PathBuf,
        why: String,
    },
}

/// Reads the module at `path` (wasm, or WAT text) and what is beside it;
/// with `keys` (minisign public keys in base64, or `.pub` files), verifies
/// its signature against them as `require_signature` would.
pub fn inspect(path: &Path, keys: &[String]) -> Result<Inspection, String> {
    let keys = keys
        .iter()
        .map(|k| TrustedKey::read(k, Path::to_path_buf))
        .collect::<Result<Vec<_>, _>>()?;
    let max = CompileLimits::default().max_module_bytes;
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > max as u64 {
        return Err(format!("{} is {size} bytes; at most {max}", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let wasm = to_wasm(&bytes)?;
    let (imports, exports) = interface(&wasm)?;
    Ok(Inspection {
        path: path.to_path_buf(),
        size: bytes.len(),
        sha256: sha256_hex(&bytes),
        manifest: Manifest::of_module(&wasm),
        imports,
        exports,
        signature: signature_beside(path),
        verified: (!keys.is_empty()).then(|| {
            let trust = Trust {
                signature: default_signature_path(path),
                keys,
            };
            trust.verify(&bytes).map_err(|e| e.to_string())
        }),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The module's imports and exports, each with its kind.
fn interface(wasm: &[u8]) -> Result<(Vec<String>, Vec<String>), String> {
    use wasmparser::Payload;
    let invalid = |e: wasmparser::BinaryReaderError| format!("not a valid wasm module: {e}");
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::ImportSection(s) => {
                for i in s.into_imports() {
                    let i = i.map_err(invalid)?;
                    let kind = match i.ty {
                        wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_) => "func",
                        wasmparser::TypeRef::Table(_) => "table",
                        wasmparser::TypeRef::Memory(_) => "memory",
                        wasmparser::TypeRef::Global(_) => "global",
                        wasmparser::TypeRef::Tag(_) => "tag",
                    };
                    imports.push(printable_str(&format!("{}.{} ({kind})", i.module, i.name)));
                }
            }
            Payload::ExportSection(s) => {
                for e in s {
                    let e = e.map_err(invalid)?;
                    let kind = format!("{:?}", e.kind).to_lowercase();
                    exports.push(printable_str(&format!("{} ({kind})", e.name)));
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports))
}

fn signature_beside(module: &Path) -> Signature {
    let path = default_signature_path(module);
    if !path.exists() {
        return Signature::Absent(path);
    }
    match read_signature(&path) {
        Ok((sig, text)) => Signature::Present {
            key_id: signature_key_id(&text).unwrap_or_default(),
            trusted_comment: printable_str(sig.trusted_comment()),
            path,
        },
        Err(e) => Signature::Unusable {
            why: e.to_string(),
            path,
        },
    }
}

impl Inspection {
    /// As JSON (`inspect --json`).
    pub fn json(&self) -> Value {
        let manifest = match &self.manifest {
            Ok(Some(m)) => serde_json::to_value(m).unwrap_or(Value::Null),
            Ok(None) => Value::Null,
            Err(e) => json!({ "error": e }),
        };
        let signature = match &self.signature {
            Signature::Absent(path) => json!({ "path": path, "present": false }),
            Signature::Present {
                path,
                key_id,
                trusted_comment,
            } => json!({ "path": path, "present": true, "key_id": key_id,
                "trusted_comment": trusted_comment,
                "verified": matches!(self.verified, Some(Ok(_))) }),
            Signature::Unusable { path, why } => {
                json!({ "path": path, "present": true, "error": why })
            }
        };
        json!({
            "path": self.path,
            "size_bytes": self.size,
            "sha256": self.sha256,
            "manifest": manifest,
            "imports": self.imports,
            "exports": self.exports,
            "signature": signature,
            "verification": match &self.verified {
                None => Value::Null,
                Some(Ok(v)) => json!({ "verified": true, "key_id": v.key_id }),
                Some(Err(e)) => json!({ "verified": false, "error": e }),
            },
        })
    }

    /// For a person to read.
    pub fn text(&self) -> String {
        let mut out = format!(
            "module: {}\nsize: {} bytes\nsha256: {}\n",
            self.path.display(),
            self.size,
            self.sha256
        );
        match &self.manifest {
            Ok(Some(m)) => out.push_str(&manifest_text(m)),
            Ok(None) => out.push_str("manifest: no manifest (it runs; its configuration is not checked against a schema)\n"),
            Err(e) => out.push_str(&format!("manifest: refused: {}\n", printable_str(e))),
        }
        for (title, list) in [("imports", &self.imports), ("exports", &self.exports)] {
            out.push_str(&format!("{title}: {}\n", list.len()));
            for item in list {
                out.push_str(&format!("  {item}\n"));
            }
        }
        match &self.verified {
            Some(Ok(v)) => out.push_str(&format!(
                "signature: verified, signed by trusted key {}\n  trusted comment: {}\n",
                v.key_id,
                printable_str(&v.trusted_comment)
            )),
            Some(Err(e)) => {
                out.push_str(&format!("signature: NOT VERIFIED: {}\n", printable_str(e)))
            }
            None => out.push_str(&self.signature_text()),
        }
        out
    }

    /// The signature file beside the module, unverified.
    fn signature_text(&self) -> String {
        match &self.signature {
            Signature::Absent(p) => format!("signature: none ({} is absent)\n", p.display()),
            Signature::Present {
                path,
                key_id,
                trusted_comment,
            } => format!(
                "signature: {} (key id {key_id}, not verified: give the trusted key with --key)\n  trusted comment: {trusted_comment}\n",
                path.display()
            ),
            Signature::Unusable { path, why } => {
                format!("signature: {} is unusable: {why}\n", path.display())
            }
        }
    }
}

fn manifest_text(m: &Manifest) -> String {
    let p = |s: &str| printable_str(s);
    let list = |l: &[String]| p(&l.join(", "));
    let abi = m.abi_version.map_or("-".into(), |v| v.to_string());
    let schema = match &m.config_schema {
        Some(s) => {
            let keys = s.get("properties").and_then(Value::as_object);
            let keys: Vec<String> = keys.map_or_else(Vec::new, |k| k.keys().cloned().collect());
            format!("yes (keys: {})", p(&keys.join(", ")))
        }
        None => "none".into(),
    };
    format!(
        "manifest:\n  name: {}\n  version: {}\n  description: {}\n  author: {}\n  techniques: {}\n  outputs: {}\n  abi version: {abi}\n  config schema: {schema}\n",
        p(&m.name),
        p(&m.version),
        p(&m.description),
        p(&m.author),
        list(&m.techniques),
        list(&m.outputs),
    )
}

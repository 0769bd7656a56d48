//! What a module must be before the host compiles it. Compiling is host
//! work outside any plugin deadline, and its time and memory grow with the
//! module (100,000 functions in 1.7 MB took 35 s and 1.2 GB): so the
//! module's size and function count are capped, and a compile that runs
//! past its time is refused. The same pass over the module's sections
//! takes its manifest (`rulebox.manifest`), if it has one, at most
//! `MAX_MANIFEST_BYTES`.

use std::time::Duration;

/// Caps on a module before and while it compiles.
#[derive(Debug, Clone, Copy)]
pub struct CompileLimits {
    /// Largest module, bytes (as given: wasm, or WAT text).
    pub max_module_bytes: usize,
    /// Most functions the module may define.
    pub max_functions: u32,
    /// Longest a compile may take; past it the module is refused (the
    /// compile cannot be stopped and finishes on a thread of its own).
    pub max_compile: Duration,
}

impl Default for CompileLimits {
    fn default() -> CompileLimits {
        CompileLimits {
            max_module_bytes: 16 << 20,
            max_functions: 20_000,
            max_compile: Duration::from_secs(60),
        }
    }
}

/// A module's wasm bytes: as given, or converted from WAT text.
pub fn to_wasm(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, String> {
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes.into());
    }
    wat::parse_bytes(bytes).map_err(|e| format!("not a wasm module, nor WAT text: {e}"))
}

/// A module within its limits: its wasm bytes and its manifest section.
#[derive(Debug)]
pub struct Admitted {
    pub wasm: Vec<u8>,
    pub manifest: Option<Vec<u8>>,
}

/// The module as wasm bytes (WAT text is converted), once it is within
/// `limits`; or why it is not.
pub fn admit(bytes: &[u8], limits: &CompileLimits) -> Result<Admitted, String> {
    if bytes.len() > limits.max_module_bytes {
        return Err(format!(
            "the module is {} bytes; at most {} (max_module_bytes)",
            bytes.len(),
            limits.max_module_bytes
        ));
    }
    let wasm = to_wasm(bytes)?.into_owned();
    let sections = sections(&wasm)?;
    if sections.functions > limits.max_functions {
        return Err(format!(
            "the module defines {} functions; at most {} (max_module_functions)",
            sections.functions, limits.max_functions
        ));
    }
    let manifest = sections.manifest.map(<[u8]>::to_vec);
    Ok(Admitted { wasm, manifest })
}

/// What admission reads of a module's sections.
#[derive(Debug, Default)]
pub struct Sections<'a> {
    /// How many functions it defines (its function section's count).
    pub functions: u32,
    /// Its `rulebox.manifest` custom section.
    pub manifest: Option<&'a [u8]>,
}

/// The module's function count and manifest, read in one pass over its
/// sections without parsing the code (a function body is skipped whole).
pub fn sections(wasm: &[u8]) -> Result<Sections<'_>, String> {
    use rulebox_abi::manifest::{MAX_MANIFEST_BYTES, SECTION};
    use wasmparser::Payload;
    let mut found = Sections::default();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a valid wasm module: {e}"))? {
            Payload::FunctionSection(s) => found.functions = s.count(),
            Payload::CustomSection(c) if c.name() == SECTION => {
                if found.manifest.is_some() {
                    return Err(format!("more than one {SECTION} section"));
                }
                if c.data().len() > MAX_MANIFEST_BYTES {
                    return Err(format!(
                        "its {SECTION} section is {} bytes; at most {MAX_MANIFEST_BYTES}",
                        c.data().len()
                    ));
                }
                found.manifest = Some(c.data());
            }
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(functions: usize) -> Vec<u8> {
        let f = "(func)".repeat(functions);
        admit(
            format!("(module {f})").as_bytes(),
            &CompileLimits::default(),
        )
        .unwrap()
        .wasm
    }

    #[test]
    fn size_and_functions_are_capped() {
        let limits = CompileLimits {
            max_module_bytes: 1000,
            max_functions: 10,
            ..CompileLimits::default()
        };
        assert_eq!(sections(&module(10)).unwrap().functions, 10);
        assert!(admit(&module(10), &limits).is_ok());
        let e = admit(&module(11), &limits).unwrap_err();
        assert!(e.contains("defines 11 functions; at most 10"), "{e}");
        let e = admit(&[b' '; 1001], &limits).unwrap_err();
        assert!(e.contains("1001 bytes; at most 1000"), "{e}");
        assert!(admit(b"\0asm\x01\0\0\0\x03", &limits).is_err());
    }

    #[test]
    fn the_manifest_section_is_taken_bounded_and_once() {
        let with = |data: &str| format!(r#"(module (@custom "rulebox.manifest" "{data}") (func))"#);
        let limits = CompileLimits::default();
        let a = admit(with("{}").as_bytes(), &limits).unwrap();
        assert_eq!(a.manifest.as_deref(), Some(&b"{}"[..]));
        assert!(admit(b"(module)", &limits).unwrap().manifest.is_none());
        let big = with(&"x".repeat(rulebox_abi::manifest::MAX_MANIFEST_BYTES + 1));
        let e = admit(big.as_bytes(), &limits).unwrap_err();
        assert!(e.contains("at most 65536"), "{e}");
        let two = r#"(module (@custom "rulebox.manifest" "{}") (@custom "rulebox.manifest" "{}"))"#;
        let e = admit(two.as_bytes(), &limits).unwrap_err();
        assert!(e.contains("more than one"), "{e}");
    }
}

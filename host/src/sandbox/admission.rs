//! What a module must be before the host compiles it. Compiling is host
//! work outside any plugin deadline, and its time and memory grow with the
//! module (100,000 functions in 1.7 MB took 35 s and 1.2 GB): so the
//! module's size and function count are capped, and a compile that runs
//! past its time is refused.

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

/// The module as wasm bytes (WAT text is converted), once it is within
/// `limits`; or why it is not.
pub fn admit(bytes: &[u8], limits: &CompileLimits) -> Result<Vec<u8>, String> {
    if bytes.len() > limits.max_module_bytes {
        return Err(format!(
            "the module is {} bytes; at most {} (max_module_bytes)",
            bytes.len(),
            limits.max_module_bytes
        ));
    }
    let wasm = if bytes.starts_with(b"\0asm") {
        bytes.to_vec()
    } else {
        wat::parse_bytes(bytes)
            .map_err(|e| format!("not a wasm module, nor WAT text: {e}"))?
            .into_owned()
    };
    let functions = defined_functions(&wasm)?;
    if functions > limits.max_functions {
        return Err(format!(
            "the module defines {functions} functions; at most {} (max_module_functions)",
            limits.max_functions
        ));
    }
    Ok(wasm)
}

/// How many functions the module defines (its function section's count),
/// read without parsing the code.
fn defined_functions(wasm: &[u8]) -> Result<u32, String> {
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("not a valid wasm module: {e}"))? {
            wasmparser::Payload::FunctionSection(s) => return Ok(s.count()),
            // The code follows the function section: there is none.
            wasmparser::Payload::CodeSectionStart { .. } => return Ok(0),
            _ => {}
        }
    }
    Ok(0)
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
    }

    #[test]
    fn size_and_functions_are_capped() {
        let limits = CompileLimits {
            max_module_bytes: 1000,
            max_functions: 10,
            ..CompileLimits::default()
        };
        assert_eq!(defined_functions(&module(10)).unwrap(), 10);
        assert!(admit(&module(10), &limits).is_ok());
        let e = admit(&module(11), &limits).unwrap_err();
        assert!(e.contains("defines 11 functions; at most 10"), "{e}");
        let e = admit(&[b' '; 1001], &limits).unwrap_err();
        assert!(e.contains("1001 bytes; at most 1000"), "{e}");
        assert!(admit(b"\0asm\x01\0\0\0\x03", &limits).is_err());
    }
}

//! The contract a module is held to before it runs: the exports it must
//! have (with their exact types), the imports it may ask for, and the
//! output names it may declare.

use rulebox_abi as abi;
use wasmtime::{ExternType, Module, ValType};

/// Every export and import of `module` against the contract.
pub(super) fn check_contract(module: &Module) -> Result<(), String> {
    use ValType::{I32, I64};
    let want: [(&str, &[ValType], &[ValType]); 6] = [
        (abi::export::ABI_VERSION, &[], &[I32]),
        (abi::export::RESERVE, &[I32], &[I32]),
        (abi::export::INIT, &[I32, I32], &[I64]),
        (abi::export::PROCESS, &[I32, I32, I32, I64], &[I64]),
        (abi::export::TICK, &[I64], &[I64]),
        (abi::export::FLUSH, &[I64], &[I64]),
    ];
    let sig = |ps: &[ValType], rs: &[ValType]| {
        let f = |v: &[ValType]| {
            v.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!("({}) -> ({})", f(ps), f(rs))
    };
    let optional: [(&str, &[ValType], &[ValType]); 3] = [
        (abi::export::SNAPSHOT, &[I64], &[I64]),
        (abi::export::RESTORE, &[I32, I32, I64], &[I64]),
        (
            abi::export::PROCESS_OBJECTS,
            &[I32, I32, I32, I32, I64],
            &[I64],
        ),
    ];
    for (name, params, results) in want.into_iter().chain(optional) {
        let required = abi::export::FUNCTIONS.contains(&name);
        match module.get_export(name) {
            Some(ExternType::Func(ft)) => {
                let ps: Vec<ValType> = ft.params().collect();
                let rs: Vec<ValType> = ft.results().collect();
                let same = |a: &[ValType], b: &[ValType]| {
                    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ValType::eq(x, y))
                };
                if !same(&ps, params) || !same(&rs, results) {
                    return Err(format!(
                        "export {name} has type {}, expected {}",
                        sig(&ps, &rs),
                        sig(params, results)
                    ));
                }
            }
            Some(_) => return Err(format!("export {name} is not a function")),
            None if required => return Err(format!("missing export {name}")),
            None => {}
        }
    }
    let has_snapshot = module.get_export(abi::export::SNAPSHOT).is_some();
    if has_snapshot != module.get_export(abi::export::RESTORE).is_some() {
        return Err(format!(
            "exports only one of {} and {}; a plugin with state needs both",
            abi::export::SNAPSHOT,
            abi::export::RESTORE
        ));
    }
    if !matches!(
        module.get_export(abi::export::MEMORY),
        Some(ExternType::Memory(_))
    ) {
        return Err("missing exported memory \"memory\"".into());
    }
    for imp in module.imports() {
        match imp.module() {
            abi::WASI_MODULE => {}
            abi::HOST_MODULE if imp.name() == abi::import::LOG => {}
            m => {
                return Err(format!(
                    "imports {m}::{}, which the host does not provide",
                    imp.name()
                ));
            }
        }
    }
    Ok(())
}

/// The output names an init frame declares: each non-empty, without '.'
/// or white space, not the host's own `dead_letter`, and declared once.
pub(super) fn check_output_names(outputs: &[String]) -> Result<(), String> {
    for (i, o) in outputs.iter().enumerate() {
        let bad = if o.is_empty() || o.contains('.') || o.contains(char::is_whitespace) {
            Some("must be non-empty, without '.' or spaces")
        } else if o == abi::DEAD_LETTER_OUTPUT {
            Some("is reserved for the host")
        } else if outputs[..i].contains(o) {
            Some("is declared twice")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(format!("declared output {o:?} {why}"));
        }
    }
    Ok(())
}

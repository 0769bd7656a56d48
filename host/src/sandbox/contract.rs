//! The contract a module is held to before it runs: the exports it must
//! have (with their exact types), the imports it may ask for, and the
//! output names it may declare.

use rulebox_abi as abi;
use wasmtime::{ExternType, Module, ValType};

use super::printable::printable_str;

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
    let optional: [(&str, &[ValType], &[ValType]); 4] = [
        (abi::export::SNAPSHOT, &[I64], &[I64]),
        (abi::export::CHECKPOINT, &[I64], &[I64]),
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
                    "imports {}::{}, which the host does not provide",
                    printable_str(m),
                    printable_str(imp.name())
                ));
            }
        }
    }
    Ok(())
}

/// The output names an init frame declares: at most [`abi::MAX_OUTPUTS`]
/// (the frame's reading refuses more), each 1 to [`abi::MAX_OUTPUT_NAME`]
/// bytes of `A-Z a-z 0-9 _ -`, not the host's own
/// `dead_letter`, and declared once. Linear in the names: what a plugin
/// declares is checked outside its deadline.
pub(super) fn check_output_names(outputs: &[String]) -> Result<(), String> {
    if outputs.len() > abi::MAX_OUTPUTS {
        let (n, max) = (outputs.len(), abi::MAX_OUTPUTS);
        return Err(format!("declares {n} outputs; at most {max}"));
    }
    let mut seen = std::collections::HashSet::with_capacity(outputs.len());
    for o in outputs {
        let well_formed = (1..=abi::MAX_OUTPUT_NAME).contains(&o.len())
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let why = if !well_formed {
            "must be 1 to 64 characters of A-Z, a-z, 0-9, '_' or '-' (no '.' or spaces)"
        } else if o == abi::DEAD_LETTER_OUTPUT {
            "is reserved for the host"
        } else if !seen.insert(o.as_str()) {
            "is declared twice"
        } else {
            continue;
        };
        return Err(format!("declared output \"{}\" {why}", printable_str(o)));
    }
    Ok(())
}

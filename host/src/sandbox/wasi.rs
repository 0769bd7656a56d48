//! The host's answer to `wasi_snapshot_preview1`, deny-by-default: no
//! preopened directories, no environment, no arguments, no sockets, no
//! clocks. A `wasm32-wasip1` guest built with Rust's std links against a few
//! of these even when it never uses them, so they exist, but they grant
//! nothing:
//!
//! * `fd_write` to fd 1 or 2 becomes a (truncated, rate-limited) log line;
//!   every other fd is `EBADF`.
//! * `environ_*` and `args_*` report zero entries.
//! * `random_get` fills from a fixed-seed generator, so detection stays
//!   deterministic.
//! * `proc_exit` traps.
//! * `sched_yield` succeeds.
//! * Any other wasip1 function the module imports is defined from the
//!   import's own signature and returns `ENOTCAPABLE` (or traps, when its
//!   signature has no errno result).
//!
//! This replaces `wasmtime-wasi`, whose p1 support pulls in p2, the component
//! model and async, and adds minutes to a cold build (`docs/performance.md`).

use wasmtime::{Caller, Extern, ExternType, Linker, Module, Val, ValType};

use super::host_state::HostState;

pub const ERRNO_SUCCESS: i32 = 0;
pub const ERRNO_BADF: i32 = 8;
pub const ERRNO_INVAL: i32 = 28;
pub const ERRNO_NOTCAPABLE: i32 = 76;

/// Most bytes of one `fd_write` that reach the log.
const MAX_LOGGED: usize = 4096;

/// Reads `len` bytes of guest memory at `ptr`, bounds-checked.
pub(crate) fn guest_bytes(
    caller: &mut Caller<'_, HostState>,
    ptr: u32,
    len: u32,
) -> Option<Vec<u8>> {
    let mem = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return None,
    };
    let data = mem.data(&caller);
    let start = ptr as usize;
    data.get(start..start.checked_add(len as usize)?)
        .map(<[u8]>::to_vec)
}

fn write_guest(caller: &mut Caller<'_, HostState>, ptr: u32, bytes: &[u8]) -> bool {
    let mem = match caller.get_export("memory") {
        Some(Extern::Memory(m)) => m,
        _ => return false,
    };
    mem.write(caller, ptr as usize, bytes).is_ok()
}

fn write_u32(caller: &mut Caller<'_, HostState>, ptr: u32, v: u32) -> bool {
    write_guest(caller, ptr, &v.to_le_bytes())
}

const M: &str = rulebox_abi::WASI_MODULE;

/// The wasip1 functions given an answer of their own; every other one
/// the module imports is denied ([`deny`]).
const ANSWERED: &[&str] = &[
    "fd_write",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "proc_exit",
    "random_get",
    "sched_yield",
];

/// Defines the wasip1 functions `module` imports.
pub fn link(linker: &mut Linker<HostState>, module: &Module) -> wasmtime::Result<()> {
    let imported: Vec<(String, ExternType)> = module
        .imports()
        .filter(|i| i.module() == M)
        .map(|i| (i.name().to_string(), i.ty()))
        .collect();
    let wants = |name: &str| imported.iter().any(|(n, _)| n == name);
    if wants("fd_write") {
        link_fd_write(linker)?;
    }
    for (sizes, get) in [
        ("environ_sizes_get", "environ_get"),
        ("args_sizes_get", "args_get"),
    ] {
        link_empty_list(linker, sizes, get, &wants)?;
    }
    if wants("proc_exit") {
        linker.func_wrap(
            M,
            "proc_exit",
            |_: Caller<'_, HostState>, code: i32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::msg(format!(
                    "plugin called proc_exit({code})"
                )))
            },
        )?;
    }
    if wants("random_get") {
        link_random_get(linker)?;
    }
    if wants("sched_yield") {
        linker.func_wrap(M, "sched_yield", || -> i32 { ERRNO_SUCCESS })?;
    }
    for (name, ty) in &imported {
        if !ANSWERED.contains(&name.as_str()) {
            deny(linker, name, ty)?;
        }
    }
    Ok(())
}

/// `fd_write` to stdout or stderr becomes a (truncated, rate-limited) log
/// line; any other fd is `EBADF`.
fn link_fd_write(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        M,
        "fd_write",
        |mut caller: Caller<'_, HostState>, fd: i32, iovs: i32, n: i32, nwritten: i32| -> i32 {
            if fd != 1 && fd != 2 {
                return ERRNO_BADF;
            }
            let n = (n as u32).min(1024);
            let Some(table) = guest_bytes(&mut caller, iovs as u32, n * 8) else {
                return ERRNO_INVAL;
            };
            let mut total: u32 = 0;
            let mut text = Vec::new();
            for iov in table.chunks_exact(8) {
                let p = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let l = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                total = total.saturating_add(l);
                let take = l.min(MAX_LOGGED.saturating_sub(text.len()) as u32);
                match guest_bytes(&mut caller, p, take) {
                    Some(b) => text.extend_from_slice(&b),
                    None => return ERRNO_INVAL,
                }
            }
            caller.data_mut().log_guest_output(fd, &text);
            if !write_u32(&mut caller, nwritten as u32, total) {
                return ERRNO_INVAL;
            }
            ERRNO_SUCCESS
        },
    )?;
    Ok(())
}

/// `environ_*` or `args_*`: a list of zero entries.
fn link_empty_list(
    linker: &mut Linker<HostState>,
    sizes: &str,
    get: &str,
    wants: &dyn Fn(&str) -> bool,
) -> wasmtime::Result<()> {
    if wants(sizes) {
        linker.func_wrap(
            M,
            sizes,
            |mut caller: Caller<'_, HostState>, count: i32, size: i32| -> i32 {
                if write_u32(&mut caller, count as u32, 0) && write_u32(&mut caller, size as u32, 0)
                {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_INVAL
                }
            },
        )?;
    }
    if wants(get) {
        linker.func_wrap(M, get, |_: Caller<'_, HostState>, _: i32, _: i32| -> i32 {
            ERRNO_SUCCESS
        })?;
    }
    Ok(())
}

/// `random_get` from the store's fixed-seed generator (at most 1 MiB a call).
fn link_random_get(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        M,
        "random_get",
        |mut caller: Caller<'_, HostState>, buf: i32, len: i32| -> i32 {
            let len = len as u32;
            if len > 1 << 20 {
                return ERRNO_INVAL;
            }
            let bytes = caller.data_mut().pseudo_random(len as usize);
            if write_guest(&mut caller, buf as u32, &bytes) {
                ERRNO_SUCCESS
            } else {
                ERRNO_INVAL
            }
        },
    )?;
    Ok(())
}

/// Any other import: defined from its own signature, answering
/// `ENOTCAPABLE`, or trapping when it has no errno result.
fn deny(linker: &mut Linker<HostState>, name: &str, ty: &ExternType) -> wasmtime::Result<()> {
    let ExternType::Func(ft) = ty else {
        return Ok(()); // Not a function: instantiation reports the missing import.
    };
    let returns_errno =
        ft.results().len() == 1 && matches!(ft.results().next(), Some(ValType::I32));
    let fname = name.to_string();
    linker.func_new(M, name, ft.clone(), move |_caller, _params, results| {
        if returns_errno {
            results[0] = Val::I32(ERRNO_NOTCAPABLE);
            Ok(())
        } else {
            Err(wasmtime::Error::msg(format!(
                "wasi function {fname} is not available to plugins"
            )))
        }
    })?;
    Ok(())
}

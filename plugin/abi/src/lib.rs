//! The host↔plugin contract of rulebox, written down once and used by both
//! sides: the guest SDK (`rulebox-plugin`) encodes with it, the host
//! (`rulebox`) decodes with it, and neither depends on the other.
//!
//! # The module a plugin is
//!
//! A plugin is a core WebAssembly module built for `wasm32-wasip1`. It may
//! import only from [`WASI_MODULE`] (the host answers those deny-by-default:
//! no files, no environment, no arguments, no sockets, no clocks) and from
//! [`HOST_MODULE`] (see [`import`]). It must export a memory named `memory`
//! and the functions in [`export`]. Time never enters through a clock: the
//! host passes the current processing time (Unix milliseconds) as an argument,
//! so a rule is deterministic for a given input.
//!
//! # Calls, in order
//!
//! 1. `rulebox_abi_version() -> i32` must return [`ABI_VERSION`]; the host
//!    refuses any other value before calling anything else.
//! 2. `rulebox_reserve(len) -> ptr`, then `rulebox_init(ptr, len) -> frame`:
//!    the host copies the plugin's configuration (the `[transforms.<id>.config]`
//!    table, as UTF-8 JSON; `{}` when there is none) into the reserved buffer
//!    and calls init once. The answer is an [init frame](InitFrame): the
//!    named outputs, or an error. The buffer is reused for the batches: a
//!    plugin copies what it keeps of its configuration.
//! 3. For every batch: `rulebox_reserve(len) -> ptr`; the host copies the
//!    batch there; `rulebox_process(ptr, len, count, now_ms) -> frame`. A batch
//!    is `count` events, each an NDJSON line followed by exactly one `\n`; an
//!    event never contains `\n`. The answer is a [result frame](ResultFrame)
//!    with exactly `count` event results, in order, plus any records the rule
//!    emits on its named outputs.
//!
//!    A plugin whose init frame sets [`INIT_READS_OBJECTS`] gets its batches
//!    through `rulebox_process_objects(ptr, batch_len, count, index_len,
//!    now_ms) -> frame` instead: the host has already scanned every event
//!    with [`json::Scanner`] (natively, once) and the reserved buffer holds
//!    the batch (`batch_len` bytes) followed at once by its
//!    [objects index](frame::index) (`index_len` bytes), so the index has
//!    no alignment: read its words byte by byte (in C, not through a
//!    `uint32_t *`). The answer is the same result frame. Such a plugin
//!    must export [`export::PROCESS_OBJECTS`] (and still
//!    [`export::PROCESS`], which the host then never calls).
//! 4. Every flush interval: `rulebox_tick(now_ms) -> frame` (a result frame
//!    with no event results). At end of input (and at shutdown, unless the
//!    state is snapshotted instead, below), once: `rulebox_flush(now_ms) -> frame`.
//!
//! The host calls no export but these and the optional ones below: not a
//! WASI command's `_start`, nor a WASI reactor's `_initialize`. A module
//! may export them (a C module linked with `-mexec-model=reactor` exports
//! `_initialize`), but their work never happens: static constructors do
//! not run, so a plugin must not need them (in C: no
//! `__attribute__((constructor))`; `examples/c-tag` shows a C rule).
//!
//! # State across restarts (optional exports)
//!
//! A plugin that keeps state may also export [`export::SNAPSHOT`] and
//! [`export::RESTORE`]; the host uses them only when both exist.
//!
//! * On a graceful shutdown (SIGINT/SIGTERM) the host calls
//!   `rulebox_snapshot(now_ms) -> frame` *instead of* `rulebox_flush`. The
//!   answer is a result frame with no event results and no records whose
//!   payload is the plugin's state, in a format of the plugin's choosing (empty:
//!   nothing to keep). The host stores it whole, atomically, and never looks
//!   inside. If the call fails, the host calls `rulebox_flush` instead, so no
//!   alert is lost.
//! * At the next start, after `rulebox_init` and before any batch:
//!   `rulebox_reserve(len)`, the host copies the stored bytes there, then
//!   `rulebox_restore(ptr, len, now_ms) -> frame`. An ok frame means the state
//!   is in use; an error frame (or a trap) means the snapshot is corrupt or
//!   incompatible: the host sets the file aside, reports it, and goes on with a
//!   fresh instance. A plugin must check what it restores (it may be from
//!   another version or configuration) and say so rather than trap.
//!
//! * While the pipeline runs (every `checkpoint_interval_secs`), the host
//!   takes the state without ending anything, to survive a crash: it calls
//!   [`export::CHECKPOINT`] when the plugin exports it, else
//!   `rulebox_snapshot`. Same answer as `rulebox_snapshot`; the plugin goes
//!   on as if nothing happened (so `rulebox_snapshot` must not change the
//!   plugin's state, and a plugin whose snapshot does more, such as logging
//!   a run summary, exports `rulebox_checkpoint` for this). The host stores
//!   it once every event it covers is written, with the file positions it
//!   covers; after a crash the next start restores it and reads the files
//!   again from those positions (what the sinks had already written is
//!   replayed into the plugin, not written again).
//!
//! A plugin without these exports starts empty after every restart.
//!
//! # Several instances (`workers > 1`)
//!
//! The host may run several instances of one plugin on one input, each
//! getting some of the batches (in turn) and keeping its own state. That
//! gives the same answers as one instance only when no answer depends on
//! another batch. A plugin says so by setting [`INIT_PARALLEL`] in its
//! init frame. Without it, a plugin that exports [`export::SNAPSHOT`] and
//! [`export::RESTORE`] keeps state, so the host refuses to run more than
//! one instance of it (`rulebox validate` says why); a plugin without those
//! exports is taken to keep none and may run on several, as it could before
//! the flag existed (a plugin that keeps state it cannot snapshot should
//! not be given several workers).
//!
//! # The manifest (optional)
//!
//! A module may describe itself (name, version, author, MITRE technique
//! ids, outputs, a JSON Schema of its configuration) in a custom section
//! named [`manifest::SECTION`]; the format is in [`manifest`]. Nothing
//! above depends on it: a module without one runs the same.
//!
//! # Names the host keeps
//!
//! The output name [`DEAD_LETTER_OUTPUT`] belongs to the host (events the
//! plugin could not process, with the reason); a plugin that declares it is
//! refused at init.
//!
//! # Memory ownership
//!
//! All buffers the host and guest exchange live in the guest's linear memory
//! and belong to the guest.
//!
//! * `rulebox_reserve(len)` returns a pointer to a guest-owned buffer of at
//!   least `len` bytes (0 if the guest cannot provide one). It stays valid until
//!   the next call into the guest. The host writes into it and never frees it;
//!   the guest reuses it for the next batch.
//! * Every call that answers with a frame returns an `i64` whose upper 32 bits
//!   are a pointer and lower 32 bits a length ([`pack`], [`unpack`]). The frame
//!   is guest-owned and valid until the next call into the guest. The host
//!   bounds-checks it against the memory, decodes it in place, copies out what
//!   it keeps (edited events, records), and never writes to it.
//! * The host never frees guest memory and the guest never sees host memory.
//!   Nothing the guest says is trusted: every offset and length is checked
//!   ([`FrameError`]) before use.
//!
//! # Result frame layout
//!
//! All integers are little-endian `u32` unless stated.
//!
//! ```text
//! 0   status        0 = ok; 1 = error (the payload is a UTF-8 message)
//! 4   n_events      number of event results
//! 8   n_records     number of emitted records
//! 12  payload_len   bytes in the payload area
//! 16  n_events  × event result (EVENT_RESULT_LEN bytes each):
//!         u8  action   0 pass, 1 edit, 2 drop
//!         u8  reason   0 ok, 1 malformed (not JSON), 2 not an object, 3 other
//!         u16 output   0 = the default output, k = the k-th declared output
//!         u32 start, u32 end        edit: replace event bytes [start, end)
//!         u32 payload_off, u32 payload_len   with these payload bytes
//! ..  n_records × record (RECORD_LEN bytes each):
//!         u32 output   k = the k-th declared output (1-based; 0 = default)
//!         u32 payload_off, u32 payload_len   one NDJSON line, without `\n`
//! ..  payload_len bytes of payload; offsets above are relative to its start
//! ```
//!
//! # Init frame layout
//!
//! ```text
//! 0   status   0 = ok, 1 = error
//! 4   n        ok: number of declared output names; error: message length
//! 8   ok: n × (u32 len, len bytes of UTF-8 name); error: the message
//! ..  ok, optional: u32 flags (absent means 0); bit 0 = INIT_READS_OBJECTS,
//!         bit 1 = INIT_OBJECT_KEYS, bit 2 = INIT_OBJECT_PATHS,
//!         bit 3 = INIT_PARALLEL (see "Several instances" above)
//! ..  with INIT_OBJECT_KEYS: u32 k, then k × (u32 len, len bytes of UTF-8):
//!         the top-level keys the plugin reads (see `json::KeySet`)
//! ..  with INIT_OBJECT_PATHS: u32 g, then g groups, each a list of `when`
//!         paths then a list of paths, both as above (see `json::PathPlan`)
//! ```
//!
//! The host reads an init frame against the limits of what a plugin may
//! declare ([`MAX_OUTPUTS`] names of at most [`MAX_OUTPUT_NAME`] bytes,
//! [`MAX_OBJECT_KEYS`] keys, [`MAX_PLAN_GROUPS`] groups, [`MAX_PLAN_PATHS`]
//! paths in all, each key or path at most [`MAX_DECLARED_BYTES`] bytes and
//! [`MAX_PATH_DOTS`] dots) and refuses one over them as it reads it
//! ([`FrameError::TooMany`], [`FrameError::TooLong`]): the work it asks of
//! the host happens outside the plugin's deadline.
//!
//! # This crate
//!
//! [`frame`] reads and writes the frames (the result frame, applied to its
//! batch by [`ResultFrame::apply`]; the init frame; the objects index),
//! [`json`] is the scanner both sides run, and [`manifest`] the module's
//! description of itself. The names and numbers of the
//! contract are here; the frame types are re-exported here too.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod frame;
pub mod json;
pub mod manifest;
pub mod time;

pub use frame::{
    Action, EVENT_RESULT_LEN, EventResult, Fault, FrameError, FrameOutputs, HEADER_LEN,
    INIT_OBJECT_KEYS, INIT_OBJECT_PATHS, INIT_PARALLEL, INIT_READS_OBJECTS, InitFrame,
    MAX_DECLARED_BYTES, MAX_OBJECT_KEYS, MAX_OUTPUT_NAME, MAX_OUTPUTS, MAX_PATH_DOTS,
    MAX_PLAN_GROUPS, MAX_PLAN_PATHS, ObjectReads, Outcome, RECORD_LEN, Reads, Reason, Record,
    Refused, ResultFrame, ResultFrameWriter, Status, pack, unpack,
};

/// The version of this contract. Bumped on any incompatible change.
pub const ABI_VERSION: u32 = 1;

/// The import module of the host's own functions.
pub const HOST_MODULE: &str = "rulebox";

/// The only other import module a plugin may use.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// The host's own output of each transform: what could not be processed.
pub const DEAD_LETTER_OUTPUT: &str = "dead_letter";

/// The name of the default event output (a plugin's events go to
/// `<transform id>`; a declared output `x` to `<transform id>.x`).
pub const DEFAULT_OUTPUT: &str = "";

/// Names of the functions (and the memory) a plugin exports.
pub mod export {
    /// `() -> i32`: the plugin's [`ABI_VERSION`](crate::ABI_VERSION).
    pub const ABI_VERSION: &str = "rulebox_abi_version";
    /// `(len: i32) -> i32`: a guest buffer of at least `len` bytes, or 0.
    pub const RESERVE: &str = "rulebox_reserve";
    /// `(ptr: i32, len: i32) -> i64`: configuration JSON in, init frame out.
    pub const INIT: &str = "rulebox_init";
    /// `(ptr: i32, len: i32, count: i32, now_ms: i64) -> i64`: a batch in,
    /// result frame out.
    pub const PROCESS: &str = "rulebox_process";
    /// Optional; required when the init frame sets
    /// [`INIT_READS_OBJECTS`](crate::INIT_READS_OBJECTS). `(ptr: i32,
    /// batch_len: i32, count: i32, index_len: i32, now_ms: i64) -> i64`: a
    /// batch and its objects index in, result frame out.
    pub const PROCESS_OBJECTS: &str = "rulebox_process_objects";
    /// `(now_ms: i64) -> i64`: result frame with records only.
    pub const TICK: &str = "rulebox_tick";
    /// `(now_ms: i64) -> i64`: the final records, at end of input or shutdown.
    pub const FLUSH: &str = "rulebox_flush";
    /// The exported linear memory.
    pub const MEMORY: &str = "memory";
    /// Optional. `(now_ms: i64) -> i64`: result frame whose payload is the
    /// plugin's state.
    pub const SNAPSHOT: &str = "rulebox_snapshot";
    /// Optional. `(ptr: i32, len: i32, now_ms: i64) -> i64`: a snapshot in,
    /// result frame (ok, or an error saying why it cannot be used) out.
    pub const RESTORE: &str = "rulebox_restore";
    /// Optional (with [`SNAPSHOT`]). `(now_ms: i64) -> i64`: the state, as
    /// [`SNAPSHOT`] answers it, taken while the pipeline runs (a periodic
    /// checkpoint): the plugin goes on unchanged.
    pub const CHECKPOINT: &str = "rulebox_checkpoint";
    /// Every required function export, for checking a module against the contract.
    pub const FUNCTIONS: &[&str] = &[ABI_VERSION, RESERVE, INIT, PROCESS, TICK, FLUSH];
    /// The optional function exports.
    pub const OPTIONAL_FUNCTIONS: &[&str] = &[SNAPSHOT, RESTORE, CHECKPOINT, PROCESS_OBJECTS];
}

/// Functions the host offers in [`HOST_MODULE`](crate::HOST_MODULE).
pub mod import {
    /// `(level: i32, ptr: i32, len: i32)`: a UTF-8 log line from the plugin.
    /// Levels are [`LogLevel`](crate::LogLevel). The host truncates long lines
    /// and rate-limits them; it never fails the call.
    pub const LOG: &str = "log";
}

/// Log levels for [`import::LOG`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
}

impl LogLevel {
    pub fn from_u32(v: u32) -> LogLevel {
        match v {
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            _ => LogLevel::Debug,
        }
    }
}

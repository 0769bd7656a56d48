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
//!    table, as UTF-8 JSON) into the reserved buffer and calls init once. The
//!    answer is an [init frame](InitFrame): the named outputs, or an error.
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
//!    [objects index](json::EVENT_ENTRY_LEN) (`index_len` bytes). The answer
//!    is the same result frame. Such a plugin must export
//!    [`export::PROCESS_OBJECTS`].
//! 4. Every flush interval: `rulebox_tick(now_ms) -> frame` (a result frame
//!    with no event results). At end of input (and at shutdown, unless the
//!    state is snapshotted instead, below), once: `rulebox_flush(now_ms) -> frame`.
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
//! A plugin without these exports starts empty after every restart.
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
//!         bit 1 = INIT_OBJECT_KEYS, bit 2 = INIT_OBJECT_PATHS
//! ..  with INIT_OBJECT_KEYS: u32 k, then k × (u32 len, len bytes of UTF-8):
//!         the top-level keys the plugin reads (see `json::KeySet`)
//! ..  with INIT_OBJECT_PATHS: u32 g, then g groups, each a list of `when`
//!         paths then a list of paths, both as above (see `json::PathPlan`)
//! ```
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod json;

use alloc::vec::Vec;
use core::fmt;

/// The version of this contract. Bumped on any incompatible change.
pub const ABI_VERSION: u32 = 1;

/// Init-frame flag: give this plugin scanned events (an objects index)
/// through [`export::PROCESS_OBJECTS`].
pub const INIT_READS_OBJECTS: u32 = 1;

/// Init-frame flag (with [`INIT_READS_OBJECTS`]): the objects index need
/// only list the members with the top-level keys that follow the flags.
pub const INIT_OBJECT_KEYS: u32 = 2;

/// Init-frame flag (with [`INIT_READS_OBJECTS`]): resolve the path plan
/// that follows (after the keys, if any) for every event.
pub const INIT_OBJECT_PATHS: u32 = 4;

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
    /// Every required function export, for checking a module against the contract.
    pub const FUNCTIONS: &[&str] = &[ABI_VERSION, RESERVE, INIT, PROCESS, TICK, FLUSH];
    /// The optional function exports.
    pub const OPTIONAL_FUNCTIONS: &[&str] = &[SNAPSHOT, RESTORE, PROCESS_OBJECTS];
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

/// Frame status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    Error = 1,
}

/// What happens to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Action {
    /// The event leaves byte-identical.
    Pass = 0,
    /// Bytes `[start, end)` of the event are replaced by the payload.
    Edit = 1,
    /// The event is dropped (the host counts it).
    Drop = 2,
}

/// Why the rule had nothing to say about an event, for the host's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reason {
    Ok = 0,
    /// Not valid JSON (or not valid UTF-8).
    Malformed = 1,
    /// Valid JSON, but not an object.
    NotObject = 2,
    Other = 3,
}

impl Reason {
    pub fn from_u8(v: u8) -> Reason {
        match v {
            0 => Reason::Ok,
            1 => Reason::Malformed,
            2 => Reason::NotObject,
            _ => Reason::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Malformed => "malformed",
            Reason::NotObject => "not_object",
            Reason::Other => "other",
        }
    }
}

pub const HEADER_LEN: usize = 16;
pub const EVENT_RESULT_LEN: usize = 20;
pub const RECORD_LEN: usize = 12;

/// Packs a guest pointer and length into the `i64` a frame-returning export
/// answers with.
pub fn pack(ptr: u32, len: u32) -> i64 {
    (((ptr as u64) << 32) | len as u64) as i64
}

/// The inverse of [`pack`].
pub fn unpack(v: i64) -> (u32, u32) {
    let v = v as u64;
    ((v >> 32) as u32, v as u32)
}

/// One event's result, as the guest wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventResult {
    pub action: u8,
    pub reason: u8,
    pub output: u16,
    pub start: u32,
    pub end: u32,
    pub payload_off: u32,
    pub payload_len: u32,
}

/// One record on a named output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub output: u32,
    pub payload_off: u32,
    pub payload_len: u32,
}

/// A frame that does not follow the layout above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its header or its tables say.
    Truncated { need: usize, have: usize },
    /// A payload range outside the payload area.
    PayloadOutOfBounds {
        off: u32,
        len: u32,
        payload_len: u32,
    },
    /// An unknown status word.
    BadStatus(u32),
    /// A name or message that is not UTF-8.
    NotUtf8,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated { need, have } => {
                write!(f, "frame truncated: need {need} bytes, have {have}")
            }
            FrameError::PayloadOutOfBounds {
                off,
                len,
                payload_len,
            } => write!(
                f,
                "payload range {off}+{len} outside payload area of {payload_len} bytes"
            ),
            FrameError::BadStatus(s) => write!(f, "unknown frame status {s}"),
            FrameError::NotUtf8 => write!(f, "frame text is not utf-8"),
        }
    }
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, FrameError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(FrameError::Truncated {
            need: at + 4,
            have: b.len(),
        }),
    }
}

/// A decoded, bounds-checked view of a result frame.
#[derive(Debug, Clone, Copy)]
pub struct ResultFrame<'a> {
    events: &'a [u8],
    records: &'a [u8],
    payload: &'a [u8],
    n_events: usize,
    n_records: usize,
    error: Option<&'a [u8]>,
}

impl<'a> ResultFrame<'a> {
    /// Checks the header and table sizes against `bytes`. Payload ranges are
    /// checked as each result is read.
    pub fn parse(bytes: &'a [u8]) -> Result<ResultFrame<'a>, FrameError> {
        let status = read_u32(bytes, 0)?;
        let n_events = read_u32(bytes, 4)? as usize;
        let n_records = read_u32(bytes, 8)? as usize;
        let payload_len = read_u32(bytes, 12)? as usize;
        let ev_len = n_events.checked_mul(EVENT_RESULT_LEN);
        let rec_len = n_records.checked_mul(RECORD_LEN);
        let total = ev_len.zip(rec_len).and_then(|(e, r)| {
            HEADER_LEN
                .checked_add(e)?
                .checked_add(r)?
                .checked_add(payload_len)
        });
        let (Some(ev_len), Some(rec_len), Some(total)) = (ev_len, rec_len, total) else {
            return Err(FrameError::Truncated {
                need: usize::MAX,
                have: bytes.len(),
            });
        };
        if total > bytes.len() {
            return Err(FrameError::Truncated {
                need: total,
                have: bytes.len(),
            });
        }
        let events = &bytes[HEADER_LEN..HEADER_LEN + ev_len];
        let records = &bytes[HEADER_LEN + ev_len..HEADER_LEN + ev_len + rec_len];
        let payload = &bytes[HEADER_LEN + ev_len + rec_len..total];
        let error = match status {
            0 => None,
            1 => Some(payload),
            s => return Err(FrameError::BadStatus(s)),
        };
        Ok(ResultFrame {
            events,
            records,
            payload,
            n_events,
            n_records,
            error,
        })
    }

    /// The guest's error message, when the frame's status is an error.
    pub fn error(&self) -> Option<&'a [u8]> {
        self.error
    }

    pub fn n_events(&self) -> usize {
        self.n_events
    }

    pub fn n_records(&self) -> usize {
        self.n_records
    }

    /// The `i`-th event result (`i < n_events`).
    pub fn event(&self, i: usize) -> EventResult {
        let b = &self.events[i * EVENT_RESULT_LEN..(i + 1) * EVENT_RESULT_LEN];
        let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        EventResult {
            action: b[0],
            reason: b[1],
            output: u16::from_le_bytes([b[2], b[3]]),
            start: u(4),
            end: u(8),
            payload_off: u(12),
            payload_len: u(16),
        }
    }

    /// The `i`-th record (`i < n_records`).
    pub fn record(&self, i: usize) -> Record {
        let b = &self.records[i * RECORD_LEN..(i + 1) * RECORD_LEN];
        let u = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        Record {
            output: u(0),
            payload_off: u(4),
            payload_len: u(8),
        }
    }

    /// The whole payload area (a snapshot frame's state).
    pub fn payload_area(&self) -> &'a [u8] {
        self.payload
    }

    /// The payload bytes at `off..off+len`, checked.
    pub fn payload(&self, off: u32, len: u32) -> Result<&'a [u8], FrameError> {
        let start = off as usize;
        let end = start.checked_add(len as usize);
        match end.and_then(|end| self.payload.get(start..end)) {
            Some(s) => Ok(s),
            None => Err(FrameError::PayloadOutOfBounds {
                off,
                len,
                payload_len: self.payload.len() as u32,
            }),
        }
    }
}

/// Builds result frames; the guest SDK's side of [`ResultFrame`]. Buffers are
/// kept between frames so a steady stream of batches allocates nothing.
#[derive(Debug, Default)]
pub struct ResultFrameWriter {
    events: Vec<u8>,
    records: Vec<u8>,
    /// The payload area; rules append to it directly.
    pub payload: Vec<u8>,
    n_events: u32,
    n_records: u32,
    frame: Vec<u8>,
}

impl ResultFrameWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new frame, forgetting the previous one.
    pub fn clear(&mut self) {
        self.events.clear();
        self.records.clear();
        self.payload.clear();
        self.n_events = 0;
        self.n_records = 0;
    }

    pub fn push_event(&mut self, r: EventResult) {
        self.events.push(r.action);
        self.events.push(r.reason);
        self.events.extend_from_slice(&r.output.to_le_bytes());
        for v in [r.start, r.end, r.payload_off, r.payload_len] {
            self.events.extend_from_slice(&v.to_le_bytes());
        }
        self.n_events += 1;
    }

    /// Records a payload range already written to [`Self::payload`].
    pub fn push_record_range(&mut self, output: u32, off: u32, len: u32) {
        for v in [output, off, len] {
            self.records.extend_from_slice(&v.to_le_bytes());
        }
        self.n_records += 1;
    }

    /// Appends `line` to the payload and records it on `output`.
    pub fn push_record(&mut self, output: u32, line: &[u8]) {
        let off = self.payload.len() as u32;
        self.payload.extend_from_slice(line);
        self.push_record_range(output, off, line.len() as u32);
    }

    /// Writes the frame and returns it; valid until the next call.
    pub fn finish(&mut self) -> &[u8] {
        self.frame.clear();
        for v in [
            Status::Ok as u32,
            self.n_events,
            self.n_records,
            self.payload.len() as u32,
        ] {
            self.frame.extend_from_slice(&v.to_le_bytes());
        }
        self.frame.extend_from_slice(&self.events);
        self.frame.extend_from_slice(&self.records);
        self.frame.extend_from_slice(&self.payload);
        &self.frame
    }

    /// The frame last written by [`Self::finish`] or [`Self::finish_error`].
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }

    /// Writes an error frame carrying `message` and returns it.
    pub fn finish_error(&mut self, message: &str) -> &[u8] {
        self.frame.clear();
        for v in [Status::Error as u32, 0, 0, message.len() as u32] {
            self.frame.extend_from_slice(&v.to_le_bytes());
        }
        self.frame.extend_from_slice(message.as_bytes());
        &self.frame
    }
}

/// How a plugin reads its events (declared in its init frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads<'a> {
    /// The event bytes (`rulebox_process`).
    Bytes,
    /// Events scanned by the host, with an objects index
    /// ([`INIT_READS_OBJECTS`]).
    Objects(ObjectReads<'a>),
}

/// At most this many declared keys ([`INIT_OBJECT_KEYS`]).
pub const MAX_OBJECT_KEYS: usize = 4096;
/// At most this many paths in a plan, `when` paths included
/// ([`INIT_OBJECT_PATHS`]): the host resolves them outside the plugin's
/// deadline, so their number and depth are bounded.
pub const MAX_PLAN_PATHS: usize = 512;
/// At most this many dots in a plan's path (a lookup tries every split).
pub const MAX_PATH_DOTS: usize = 4;

/// What a plugin that reads objects asks the host for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReads<'a> {
    /// Only the members with these top-level keys ([`INIT_OBJECT_KEYS`]);
    /// `None`: every member.
    pub keys: Option<Vec<&'a str>>,
    /// A path plan to resolve ([`INIT_OBJECT_PATHS`]): per group, its
    /// `when` paths and its paths.
    pub groups: Option<Vec<(Vec<&'a str>, Vec<&'a str>)>>,
}

impl ObjectReads<'_> {
    /// Whether the request stays within [`MAX_OBJECT_KEYS`],
    /// [`MAX_PLAN_PATHS`] and [`MAX_PATH_DOTS`]; the error says how not.
    pub fn check(&self) -> Result<(), alloc::string::String> {
        use alloc::format;
        let keys = self.keys.as_ref().map_or(0, Vec::len);
        if keys > MAX_OBJECT_KEYS {
            return Err(format!("{keys} declared keys (at most {MAX_OBJECT_KEYS})"));
        }
        let paths = || {
            self.groups
                .iter()
                .flatten()
                .flat_map(|(w, p)| w.iter().chain(p))
        };
        let n = paths().count();
        if n > MAX_PLAN_PATHS {
            return Err(format!("{n} paths in the plan (at most {MAX_PLAN_PATHS})"));
        }
        match paths().find(|p| p.matches('.').count() > MAX_PATH_DOTS) {
            Some(p) => Err(format!(
                "plan path {p:?} has more than {MAX_PATH_DOTS} dots"
            )),
            None => Ok(()),
        }
    }
}

/// The answer to `rulebox_init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFrame<'a> {
    /// The plugin's declared outputs, in id order (id 1 is the first), and
    /// how it reads events.
    Ok(Vec<&'a str>, Reads<'a>),
    Error(&'a str),
}

impl<'a> InitFrame<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<InitFrame<'a>, FrameError> {
        let status = read_u32(bytes, 0)?;
        let n = read_u32(bytes, 4)? as usize;
        let text = |at: usize, len: usize| -> Result<&'a str, FrameError> {
            let end = at.checked_add(len).ok_or(FrameError::Truncated {
                need: usize::MAX,
                have: bytes.len(),
            })?;
            let s = bytes.get(at..end).ok_or(FrameError::Truncated {
                need: end,
                have: bytes.len(),
            })?;
            core::str::from_utf8(s).map_err(|_| FrameError::NotUtf8)
        };
        // `n` length-prefixed strings from `at`; returns them and the end.
        let strings = |mut at: usize, n: usize| -> Result<(Vec<&'a str>, usize), FrameError> {
            let mut out = Vec::new();
            for _ in 0..n {
                let len = read_u32(bytes, at)? as usize;
                out.push(text(at + 4, len)?);
                at = at + 4 + len;
            }
            Ok((out, at))
        };
        match status {
            0 => {
                let (names, at) = strings(8, n)?;
                let flags = if bytes.len() > at {
                    read_u32(bytes, at)?
                } else {
                    0
                };
                if flags & INIT_READS_OBJECTS == 0 {
                    return Ok(InitFrame::Ok(names, Reads::Bytes));
                }
                let mut at = at + 4;
                let list = |at: &mut usize| -> Result<Vec<&'a str>, FrameError> {
                    let n = read_u32(bytes, *at)? as usize;
                    let (items, end) = strings(*at + 4, n)?;
                    *at = end;
                    Ok(items)
                };
                let mut reads = ObjectReads::default();
                if flags & INIT_OBJECT_KEYS != 0 {
                    reads.keys = Some(list(&mut at)?);
                }
                if flags & INIT_OBJECT_PATHS != 0 {
                    let g = read_u32(bytes, at)? as usize;
                    at += 4;
                    let mut groups = Vec::new();
                    for _ in 0..g {
                        let when = list(&mut at)?;
                        groups.push((when, list(&mut at)?));
                    }
                    reads.groups = Some(groups);
                }
                let reads = Reads::Objects(reads);
                Ok(InitFrame::Ok(names, reads))
            }
            1 => Ok(InitFrame::Error(text(8, n)?)),
            s => Err(FrameError::BadStatus(s)),
        }
    }

    /// Encodes this answer (the guest's side).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        let strings = |out: &mut Vec<u8>, items: &[&str]| {
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for s in items {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        };
        match self {
            InitFrame::Ok(names, reads) => {
                out.extend_from_slice(&(Status::Ok as u32).to_le_bytes());
                strings(out, names);
                let flags = match reads {
                    Reads::Bytes => 0,
                    Reads::Objects(o) => {
                        INIT_READS_OBJECTS
                            | if o.keys.is_some() {
                                INIT_OBJECT_KEYS
                            } else {
                                0
                            }
                            | if o.groups.is_some() {
                                INIT_OBJECT_PATHS
                            } else {
                                0
                            }
                    }
                };
                out.extend_from_slice(&flags.to_le_bytes());
                if let Reads::Objects(o) = reads {
                    if let Some(keys) = &o.keys {
                        strings(out, keys);
                    }
                    if let Some(groups) = &o.groups {
                        out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
                        for (when, paths) in groups {
                            strings(out, when);
                            strings(out, paths);
                        }
                    }
                }
            }
            InitFrame::Error(msg) => {
                out.extend_from_slice(&(Status::Error as u32).to_le_bytes());
                out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
                out.extend_from_slice(msg.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_frame_round_trips() {
        let mut w = ResultFrameWriter::new();
        w.payload.extend_from_slice(b",\"k\":1");
        w.push_event(EventResult {
            action: Action::Edit as u8,
            start: 5,
            end: 5,
            payload_off: 0,
            payload_len: 6,
            ..Default::default()
        });
        w.push_event(EventResult {
            reason: Reason::Malformed as u8,
            ..Default::default()
        });
        w.push_record(1, b"{\"alert\":1}");
        let bytes = w.finish().to_vec();
        let f = ResultFrame::parse(&bytes).unwrap();
        assert_eq!(f.n_events(), 2);
        assert_eq!(f.n_records(), 1);
        let e = f.event(0);
        assert_eq!(
            f.payload(e.payload_off, e.payload_len).unwrap(),
            b",\"k\":1"
        );
        assert_eq!(f.event(1).reason, Reason::Malformed as u8);
        let r = f.record(0);
        assert_eq!(r.output, 1);
        assert_eq!(
            f.payload(r.payload_off, r.payload_len).unwrap(),
            b"{\"alert\":1}"
        );
        assert!(f.error().is_none());
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        // Claims more events than it holds.
        let mut b = Vec::new();
        for v in [0u32, 1_000_000, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert!(matches!(
            ResultFrame::parse(&b),
            Err(FrameError::Truncated { .. })
        ));
        // Overflowing sizes.
        let mut b = Vec::new();
        for v in [0u32, u32::MAX, u32::MAX, u32::MAX] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert!(ResultFrame::parse(&b).is_err());
        // Payload range outside the payload area.
        let mut w = ResultFrameWriter::new();
        w.push_event(EventResult {
            action: 1,
            payload_off: 10,
            payload_len: u32::MAX,
            ..Default::default()
        });
        let bytes = w.finish().to_vec();
        let f = ResultFrame::parse(&bytes).unwrap();
        let e = f.event(0);
        assert!(f.payload(e.payload_off, e.payload_len).is_err());
        // Short header, bad status.
        assert!(ResultFrame::parse(&[0, 0]).is_err());
        let mut b = vec![0u8; 16];
        b[0] = 7;
        assert_eq!(
            ResultFrame::parse(&b).unwrap_err(),
            FrameError::BadStatus(7)
        );
    }

    #[test]
    fn error_frame_carries_message() {
        let mut w = ResultFrameWriter::new();
        let bytes = w.finish_error("bad thing").to_vec();
        let f = ResultFrame::parse(&bytes).unwrap();
        assert_eq!(f.error(), Some(&b"bad thing"[..]));
    }

    #[test]
    fn init_frame_round_trips() {
        let mut out = Vec::new();
        let keys = |k: Option<Vec<&'static str>>| {
            Reads::Objects(ObjectReads {
                keys: k,
                groups: None,
            })
        };
        for reads in [
            Reads::Bytes,
            keys(None),
            keys(Some(vec![])),
            keys(Some(vec!["dest_ip", "destination", "é.x"])),
            Reads::Objects(ObjectReads {
                keys: Some(vec!["t1071"]),
                groups: Some(vec![
                    (vec!["id.resp_h"], vec!["id.resp_h", "id.resp_p"]),
                    (vec![], vec![]),
                    (vec![], vec!["dest_ip"]),
                ]),
            }),
            Reads::Objects(ObjectReads {
                keys: None,
                groups: Some(vec![]),
            }),
        ] {
            InitFrame::Ok(vec!["alerts", "dead"], reads.clone()).encode(&mut out);
            assert_eq!(
                InitFrame::parse(&out).unwrap(),
                InitFrame::Ok(vec!["alerts", "dead"], reads)
            );
        }
        // Keys announced but cut short.
        InitFrame::Ok(vec!["a"], keys(Some(vec!["key"]))).encode(&mut out);
        assert!(InitFrame::parse(&out[..out.len() - 1]).is_err());
        assert!(InitFrame::parse(&out[..out.len() - 11]).is_err());
        // A group cut short.
        let g = Reads::Objects(ObjectReads {
            keys: None,
            groups: Some(vec![(vec!["w"], vec!["p", "q"])]),
        });
        InitFrame::Ok(vec!["a"], g).encode(&mut out);
        for cut in 1..20 {
            assert!(InitFrame::parse(&out[..out.len() - cut]).is_err(), "{cut}");
        }
        // A frame that ends after the names (no flags word) reads raw events.
        let mut b = Vec::new();
        for v in [0u32, 1, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(b'x');
        assert_eq!(
            InitFrame::parse(&b).unwrap(),
            InitFrame::Ok(vec!["x"], Reads::Bytes)
        );
        InitFrame::Error("bad cidr").encode(&mut out);
        assert_eq!(
            InitFrame::parse(&out).unwrap(),
            InitFrame::Error("bad cidr")
        );
        // A name length pointing past the end.
        let mut b = Vec::new();
        for v in [0u32, 1, 99] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert!(InitFrame::parse(&b).is_err());
    }

    #[test]
    fn pack_unpack() {
        assert_eq!(unpack(pack(0xdead_beef, 17)), (0xdead_beef, 17));
    }
}

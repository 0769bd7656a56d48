//! The frames of the contract, as the crate docs lay them out: the result
//! frame a call answers with (`result`: reading it, checked, and writing
//! it), applying it to its batch (`apply`), the init frame (`init`) and the
//! objects index the host hands over with a batch ([`index`]), which may
//! start from the members a source's scan already found ([`prescanned`]). This file
//! holds what they share: the status word, the error of a frame that breaks
//! its layout, and the packed pointer and length a call answers with.

mod apply;
pub mod index;
mod init;
pub mod prescanned;
mod result;

pub use apply::{Fault, FrameOutputs, Outcome, Refused};
pub use init::{
    INIT_OBJECT_KEYS, INIT_OBJECT_PATHS, INIT_PARALLEL, INIT_READS_OBJECTS, InitFrame,
    MAX_DECLARED_BYTES, MAX_OBJECT_KEYS, MAX_OUTPUT_NAME, MAX_OUTPUTS, MAX_PATH_DOTS,
    MAX_PLAN_GROUPS, MAX_PLAN_PATHS, ObjectReads, Reads,
};
pub use result::{
    Action, EVENT_RESULT_LEN, EventResult, HEADER_LEN, RECORD_LEN, Reason, Record, ResultFrame,
    ResultFrameWriter,
};

use core::fmt;

/// Frame status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    Error = 1,
}

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

/// A frame that does not follow its layout (see the crate docs).
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
    /// An init frame declaring more than the contract allows (see
    /// [`crate::MAX_OUTPUTS`] and the other limits): refused while it is
    /// read, before the host holds any of it.
    TooMany {
        what: &'static str,
        n: usize,
        max: usize,
    },
    /// A declared name or path longer than the contract allows.
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
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
            FrameError::TooMany { what, n, max } => {
                write!(f, "{n} {what} declared (at most {max})")
            }
            FrameError::TooLong { what, len, max } => {
                write!(f, "a declared {what} of {len} bytes (at most {max})")
            }
        }
    }
}

pub(crate) fn read_u32(b: &[u8], at: usize) -> Result<u32, FrameError> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]])),
        None => Err(FrameError::Truncated {
            need: at + 4,
            have: b.len(),
        }),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack() {
        assert_eq!(unpack(pack(0xdead_beef, 17)), (0xdead_beef, 17));
    }
}

//! The result frame: [`ResultFrame`] reads one a guest answered with,
//! checking its tables against its size and each payload range as it is
//! read; [`ResultFrameWriter`] is the guest's side, writing one. The wire
//! bytes of an event result decode into typed [`Action`] and [`Reason`]
//! values, checked.

use alloc::vec::Vec;

use super::{FrameError, Status, read_u32};
use crate::json::find_byte;

/// What happens to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Action {
    /// The event leaves byte-identical.
    #[default]
    Pass = 0,
    /// Bytes `[start, end)` of the event are replaced by the payload.
    Edit = 1,
    /// The event is dropped (the host counts it).
    Drop = 2,
}

impl Action {
    /// The action wire byte `v` stands for; `None` for a byte the contract
    /// does not define.
    #[inline]
    pub fn from_u8(v: u8) -> Option<Action> {
        match v {
            0 => Some(Action::Pass),
            1 => Some(Action::Edit),
            2 => Some(Action::Drop),
            _ => None,
        }
    }
}

/// Why the rule had nothing to say about an event, for the host's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum Reason {
    #[default]
    Ok = 0,
    /// Not valid JSON (or not valid UTF-8).
    Malformed = 1,
    /// Valid JSON, but not an object.
    NotObject = 2,
    Other = 3,
}

impl Reason {
    /// The reason wire byte `v` stands for; a byte the contract does not
    /// define is [`Reason::Other`].
    #[inline]
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

/// One event's result, as the guest wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventResult {
    pub action: Action,
    pub reason: Reason,
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

/// A decoded, bounds-checked view of a result frame.
#[derive(Debug, Clone, Copy)]
pub struct ResultFrame<'a> {
    events: &'a [u8],
    records: &'a [u8],
    payload: &'a [u8],
    n_events: usize,
    n_records: usize,
    error: Option<&'a [u8]>,
    /// No `\n` anywhere in the payload area (the usual case), so no payload
    /// needs a search of its own before it is used as a line.
    pub(super) newline_free: bool,
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
            newline_free: find_byte(payload, b'\n').is_none(),
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
            // An action byte the contract does not define leaves the event
            // untouched, as a pass: the host has always read it so.
            action: Action::from_u8(b[0]).unwrap_or(Action::Pass),
            reason: Reason::from_u8(b[1]),
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

    /// Appends one event's result: made on the stack and written at once
    /// (one capacity check, not seven; this runs for every event).
    pub fn push_event(&mut self, r: EventResult) {
        let mut e = [0u8; EVENT_RESULT_LEN];
        e[0] = r.action as u8;
        e[1] = r.reason as u8;
        e[2..4].copy_from_slice(&r.output.to_le_bytes());
        for (k, v) in [r.start, r.end, r.payload_off, r.payload_len]
            .into_iter()
            .enumerate()
        {
            e[4 + 4 * k..8 + 4 * k].copy_from_slice(&v.to_le_bytes());
        }
        self.events.extend_from_slice(&e);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_frame_round_trips() {
        let mut w = ResultFrameWriter::new();
        w.payload.extend_from_slice(b",\"k\":1");
        w.push_event(EventResult {
            action: Action::Edit,
            start: 5,
            end: 5,
            payload_off: 0,
            payload_len: 6,
            ..Default::default()
        });
        w.push_event(EventResult {
            reason: Reason::Malformed,
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
        assert_eq!(f.event(1).reason, Reason::Malformed);
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
            action: Action::Edit,
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
    fn wire_bytes_decode_checked() {
        for a in [Action::Pass, Action::Edit, Action::Drop] {
            assert_eq!(Action::from_u8(a as u8), Some(a));
        }
        assert_eq!(Action::from_u8(3), None);
        for r in [
            Reason::Ok,
            Reason::Malformed,
            Reason::NotObject,
            Reason::Other,
        ] {
            assert_eq!(Reason::from_u8(r as u8), r);
        }
        // Bytes the contract does not define: a pass, for another reason.
        let mut w = ResultFrameWriter::new();
        w.push_event(EventResult::default());
        let mut bytes = w.finish().to_vec();
        bytes[HEADER_LEN] = 7;
        bytes[HEADER_LEN + 1] = 200;
        let e = ResultFrame::parse(&bytes).unwrap().event(0);
        assert_eq!((e.action, e.reason), (Action::Pass, Reason::Other));
    }
}

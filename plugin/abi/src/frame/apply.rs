//! Applying a result frame to the batch it answers ([`ResultFrame::apply`],
//! or event by event and then the records): the one reading of what a frame
//! asks for, shared by the host (which routes, counts and keeps metadata),
//! the benchmarks, the tests and the fuzz targets, each through its own
//! [`FrameOutputs`]. Everything a frame says is checked against the batch
//! here; what cannot be followed is reported as [`Refused`] and left
//! undone, never trusted.

use super::{Action, EventResult, ResultFrame};
use crate::json::find_byte;

/// What one event comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// The event leaves as it came (a pass, or an edit that was refused).
    Pass(&'a [u8]),
    /// The event leaves edited: its bytes before the edit range, the
    /// payload, its bytes after the range.
    Edit([&'a [u8]; 3]),
    /// The event is dropped (its bytes, for a caller that passes it on
    /// anyway).
    Drop(&'a [u8]),
}

impl<'a> Outcome<'a> {
    /// The event's bytes as it leaves (a dropped event's as it came), in
    /// pieces to write one after another: nothing is copied to splice.
    pub fn parts(&self) -> &[&'a [u8]] {
        match self {
            Outcome::Pass(line) | Outcome::Drop(line) => core::slice::from_ref(line),
            Outcome::Edit(parts) => parts,
        }
    }
}

/// Why part of a frame is not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An edit range `[start, end)` that is not inside its event.
    Range,
    /// A payload range outside the payload area.
    Payload,
    /// A payload holding a `\n`: an event or a record is one line.
    Newline,
}

/// Part of a frame that [`ResultFrame::apply`] does not follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The edit of event `event`: the event leaves untouched.
    Edit { event: usize, fault: Fault },
    /// Record `record`: it is not emitted.
    Record { record: usize, fault: Fault },
}

/// Where [`ResultFrame::apply`] puts what a frame says: every event, in
/// order, then every record, in order. Output numbers are the plugin's
/// (0 the default output, `k` its k-th declared one) and unchecked here:
/// which outputs exist is the caller's to know.
pub trait FrameOutputs {
    /// Event `i` of the batch: its result as the plugin wrote it, and what
    /// the event comes to (a refused edit has already been reported).
    fn event(&mut self, i: usize, result: &EventResult, outcome: Outcome<'_>);

    /// A record on `output`: one line, without its `\n`.
    fn record(&mut self, output: u32, line: &[u8]);

    /// Part of the frame that is not followed.
    fn refused(&mut self, what: Refused);
}

impl<'a> ResultFrame<'a> {
    /// Applies this frame to `batch`, the events it answers (each followed
    /// by `\n`, which the last may lack), into `out`: each event's
    /// [`Outcome`] ([`ResultFrame::apply_event`]), then each record
    /// ([`ResultFrame::apply_records`]). An event the batch runs out before
    /// is read as empty.
    pub fn apply(&self, batch: &[u8], out: &mut impl FrameOutputs) {
        let mut rest = batch;
        for i in 0..self.n_events() {
            // Cut as the guest SDK and the host cut a batch.
            let (event, next) = match find_byte(rest, b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            self.apply_event(i, event, out);
        }
        self.apply_records(out);
    }

    /// The part of [`ResultFrame::apply`] for event result `i` (`i <
    /// n_events`) and its event's bytes, alone: for a caller that holds,
    /// between the events the plugin answers for, lines it never saw (the
    /// host). The edit range is checked against the event, the payload
    /// against the payload area, and a payload may not hold a `\n`; an edit
    /// that fails is [`Refused`] and the event passes.
    #[inline]
    pub fn apply_event(&self, i: usize, event: &[u8], out: &mut impl FrameOutputs) {
        let result = self.event(i);
        let outcome = match self.outcome(&result, event) {
            Ok(outcome) => outcome,
            Err(fault) => {
                out.refused(Refused::Edit { event: i, fault });
                Outcome::Pass(event)
            }
        };
        out.event(i, &result, outcome);
    }

    /// The records part of [`ResultFrame::apply`], alone: also for a frame
    /// that answers no batch (a tick's, a flush's). A record's payload must
    /// lie in the payload area and hold no `\n`, or it is [`Refused`].
    pub fn apply_records(&self, out: &mut impl FrameOutputs) {
        for i in 0..self.n_records() {
            let r = self.record(i);
            match self.line(r.payload_off, r.payload_len) {
                Ok(line) => out.record(r.output, line),
                Err(fault) => out.refused(Refused::Record { record: i, fault }),
            }
        }
    }

    /// What `line` comes to under `result`, or why its edit is refused.
    #[inline]
    fn outcome<'l>(&self, result: &EventResult, line: &'l [u8]) -> Result<Outcome<'l>, Fault>
    where
        'a: 'l,
    {
        match result.action {
            Action::Pass => Ok(Outcome::Pass(line)),
            Action::Drop => Ok(Outcome::Drop(line)),
            Action::Edit => {
                let (start, end) = (result.start as usize, result.end as usize);
                if start > end || end > line.len() {
                    return Err(Fault::Range);
                }
                let payload = self.line(result.payload_off, result.payload_len)?;
                Ok(Outcome::Edit([&line[..start], payload, &line[end..]]))
            }
        }
    }

    /// The payload at `off..off+len` as (part of) a line: in the payload
    /// area, and without a `\n`.
    #[inline]
    fn line(&self, off: u32, len: u32) -> Result<&'a [u8], Fault> {
        let payload = self.payload(off, len).map_err(|_| Fault::Payload)?;
        if !self.newline_free && find_byte(payload, b'\n').is_some() {
            return Err(Fault::Newline);
        }
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ResultFrameWriter;
    use alloc::vec;
    use alloc::vec::Vec;

    /// Everything apply says, in order, as text.
    #[derive(Default)]
    struct Said(Vec<alloc::string::String>);

    impl FrameOutputs for Said {
        fn event(&mut self, i: usize, result: &EventResult, outcome: Outcome<'_>) {
            let bytes = outcome.parts().concat();
            let kind = match outcome {
                Outcome::Pass(_) => "pass",
                Outcome::Edit(_) => "edit",
                Outcome::Drop(_) => "drop",
            };
            let text = alloc::string::String::from_utf8_lossy(&bytes);
            self.0
                .push(alloc::format!("{i} {kind} {} {text}", result.output));
        }
        fn record(&mut self, output: u32, line: &[u8]) {
            let text = alloc::string::String::from_utf8_lossy(line);
            self.0.push(alloc::format!("record {output} {text}"));
        }
        fn refused(&mut self, what: Refused) {
            self.0.push(alloc::format!("{what:?}"));
        }
    }

    fn edit(start: u32, end: u32, payload_off: u32, payload_len: u32) -> EventResult {
        EventResult {
            action: Action::Edit,
            start,
            end,
            payload_off,
            payload_len,
            ..Default::default()
        }
    }

    #[test]
    fn events_are_spliced_dropped_or_passed_and_records_follow() {
        let mut w = ResultFrameWriter::new();
        w.payload.extend_from_slice(b",\"k\":1");
        w.push_event(edit(6, 6, 0, 6));
        w.push_event(EventResult {
            action: Action::Drop,
            ..Default::default()
        });
        w.push_event(EventResult {
            output: 2,
            ..Default::default()
        });
        w.push_event(edit(0, 2, 1, 3));
        w.push_record(1, b"{\"alert\":1}");
        let frame = w.finish().to_vec();
        let mut said = Said::default();
        // The batch runs out before the fourth event, which is then empty.
        ResultFrame::parse(&frame)
            .unwrap()
            .apply(b"{\"a\":1}\n{}\nlast", &mut said);
        assert_eq!(
            said.0,
            [
                "0 edit 0 {\"a\":1,\"k\":1}",
                "1 drop 0 {}",
                "2 pass 2 last",
                "Edit { event: 3, fault: Range }",
                "3 pass 0 ",
                "record 1 {\"alert\":1}",
            ]
        );
    }

    #[test]
    fn what_cannot_be_followed_is_refused() {
        let mut w = ResultFrameWriter::new();
        w.payload.extend_from_slice(b"a\nb");
        w.push_event(edit(2, 1, 0, 1));
        w.push_event(edit(0, 1, 2, 5));
        w.push_event(edit(0, 1, 0, 3));
        w.push_event(edit(0, 1, 2, 1));
        w.push_record_range(0, 1, 1);
        w.push_record_range(0, 3, 1);
        let frame = w.finish().to_vec();
        let mut said = Said::default();
        ResultFrame::parse(&frame)
            .unwrap()
            .apply(b"xyz\nxyz\nxyz\nxyz\n", &mut said);
        let want = vec![
            "Edit { event: 0, fault: Range }",
            "0 pass 0 xyz",
            "Edit { event: 1, fault: Payload }",
            "1 pass 0 xyz",
            "Edit { event: 2, fault: Newline }",
            "2 pass 0 xyz",
            "3 edit 0 byz",
            "Record { record: 0, fault: Newline }",
            "Record { record: 1, fault: Payload }",
        ];
        assert_eq!(said.0, want);
    }
}

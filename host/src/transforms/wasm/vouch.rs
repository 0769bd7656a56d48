//! Vouching for an event's output as JSON text, so that a sink which must
//! send valid JSON (the Splunk HEC sink) need not read it whole again
//! ([`Batch::all_json`](crate::batch::Batch::all_json)).
//!
//! The host's scan read every event of the batch as valid JSON text (its
//! objects index says so; see [`Instance::process`]). An event passed on
//! as it came is that text. An edited one is vouched for only when the
//! edit adds members to an object: an insertion right at its closing
//! brace, whose payload reads as members (a scan of the payload alone,
//! inside a small object, a fraction of the event's bytes). Any other
//! edit is not vouched for, and the sink reads that line as before.
//!
//! A rule adds much the same members to most events (a label of a few
//! words, in a handful of variants), so the check remembers the last
//! [`REMEMBERED`] payloads it vouched for, each of at most
//! [`REMEMBERED_BYTES`]: the same bytes at the same kind of brace are
//! vouched for again by a comparison, not a scan. The verdict is a
//! function of those two alone.
//!
//! [`Instance::process`]: crate::sandbox::Instance::process

use rulebox_abi::Outcome;
use rulebox_abi::json::Scanner;

/// How many payloads the check remembers having vouched for.
const REMEMBERED: usize = 4;
/// The longest payload it remembers.
const REMEMBERED_BYTES: usize = 256;

/// The check, with the scanner and buffer it reuses.
#[derive(Default)]
pub struct JsonCheck {
    scanner: Scanner,
    scratch: Vec<u8>,
    /// Payloads vouched for, each inside the small object it was read in
    /// (so with its kind of brace); the oldest replaced first.
    remembered: [Vec<u8>; REMEMBERED],
    next: usize,
}

impl JsonCheck {
    /// Whether `outcome` leaves as JSON text, for `line`, an event the
    /// host's scan read as valid JSON text.
    pub fn vouches(&mut self, line: &[u8], outcome: &Outcome<'_>) -> bool {
        match outcome {
            Outcome::Pass(_) => true,
            Outcome::Edit([before, payload, after]) => {
                self.adds_members(line, before, payload, after)
            }
            Outcome::Drop(_) => false,
        }
    }

    /// Whether `before`, `payload`, `after` is `line` with members added
    /// at its closing brace.
    fn adds_members(&mut self, line: &[u8], before: &[u8], payload: &[u8], after: &[u8]) -> bool {
        let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
        // Nothing of `line` replaced: its head and its tail.
        let whole = before.len() + after.len() == line.len()
            && before.as_ptr() == line.as_ptr()
            && after.as_ptr_range().end == line.as_ptr_range().end;
        // An object, its closing brace (valid JSON text ends with it and
        // whitespace) where `after` starts.
        let at_close = line.iter().find(|c| !ws(c)) == Some(&b'{')
            && after
                .split_first()
                .is_some_and(|(&c, rest)| c == b'}' && rest.iter().all(ws));
        if !(whole && at_close) {
            return false;
        }
        // Right before the brace: the object's opening one when it has no
        // member yet, else the end of its last member's value.
        let empty = before.iter().rev().find(|c| !ws(c)) == Some(&b'{');
        let head: &[u8] = if empty { b"{" } else { br#"{"":0"# };
        let holds = |s: &Vec<u8>| {
            s.len() == head.len() + payload.len() + 1
                && s.starts_with(head)
                && &s[head.len()..s.len() - 1] == payload
        };
        if self.remembered.iter().any(holds) {
            return true;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(payload);
        self.scratch.push(b'}');
        let vouched = self.scanner.scan_members(&self.scratch).is_ok();
        if vouched && payload.len() <= REMEMBERED_BYTES {
            let slot = &mut self.remembered[self.next];
            slot.clear();
            slot.extend_from_slice(&self.scratch);
            self.next = (self.next + 1) % REMEMBERED;
        }
        vouched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line` with `payload` put in at `at` (replacing `cut` bytes), as
    /// the frame hands it over.
    fn edit(check: &mut JsonCheck, line: &[u8], at: usize, cut: usize, payload: &[u8]) -> bool {
        let outcome = Outcome::Edit([&line[..at], payload, &line[at + cut..]]);
        check.vouches(line, &outcome)
    }

    #[test]
    fn members_added_at_the_closing_brace_are_vouched_for() {
        let mut c = JsonCheck::default();
        let line = br#"{"a":1,"b":"x"}"#;
        let close = line.len() - 1;
        assert!(c.vouches(line, &Outcome::Pass(line)));
        assert!(edit(
            &mut c,
            line,
            close,
            0,
            br#","t":{"p":"ftp","n":[1,2]}"#
        ));
        assert!(edit(&mut c, line, close, 0, b""), "nothing added");
        assert!(edit(&mut c, line, close, 0, br#" , "t" : 1 , "u":null "#));
        let spaced = b" { \"a\" : 1 } \t";
        assert!(edit(&mut c, spaced, 11, 0, br#","t":true"#));
        let empty = b"{ }";
        assert!(edit(&mut c, empty, 2, 0, br#""t":1"#));
        assert!(edit(&mut c, empty, 2, 0, b" "));
    }

    #[test]
    fn anything_else_is_not() {
        let mut c = JsonCheck::default();
        let line = br#"{"a":1,"b":"x"}"#;
        let close = line.len() - 1;
        for bad in [
            &br#""t":1"#[..],      // no comma
            br#",t:1"#,            // not a key
            br#","t":1,"#,         // a trailing comma
            br#","t":1}, {"u":2"#, // closes the object early
            br#","t":"#,           // no value
            b",\"t\":\"\xff\"",    // not UTF-8
            br#","t":"a\q""#,      // a bad escape
        ] {
            assert!(!edit(&mut c, line, close, 0, bad), "{bad:?}");
        }
        assert!(
            !edit(&mut c, b"{ }", 2, 0, br#","t":1"#),
            "a comma first in an empty object"
        );
        assert!(
            !edit(&mut c, line, 1, 0, br#""t":1,"#),
            "not at the closing brace"
        );
        assert!(!edit(&mut c, line, 5, 1, b"2"), "a value replaced");
        assert!(
            !edit(&mut c, line, close, 1, br#","t":1}"#),
            "the brace replaced"
        );
        let array = b"[1,2]";
        assert!(!edit(&mut c, array, 4, 0, b",3"), "not an object");
        assert!(!c.vouches(line, &Outcome::Drop(line)));
        // Parts that are not `line`'s own head and tail.
        let other = br#"{"a":1,"b":"x"}"#.to_vec();
        let outcome = Outcome::Edit([&other[..close], b"", &line[close..]]);
        assert!(!c.vouches(line, &outcome));
    }

    /// A payload remembered is vouched for again only at the same kind of
    /// brace, and only as the same bytes; one refused is not remembered.
    #[test]
    fn payloads_are_remembered_with_their_brace() {
        let mut c = JsonCheck::default();
        let line = br#"{"a":1}"#;
        let labels = [br#","t":{"x":true}"#, br#","t":{"x":null}"#];
        for _ in 0..2 {
            for label in labels {
                assert!(edit(&mut c, line, 6, 0, label));
            }
        }
        let label = labels[0];
        assert!(
            !edit(&mut c, b"{ }", 2, 0, label),
            "a comma first in an empty object"
        );
        assert!(edit(&mut c, b"{}", 1, 0, &label[1..]));
        assert!(
            !edit(&mut c, line, 6, 0, &label[1..]),
            "no comma after a member"
        );
        assert!(edit(&mut c, line, 6, 0, label));
        assert!(
            !edit(&mut c, line, 6, 0, &label[..label.len() - 1]),
            "a prefix"
        );
        let longer = [label, &b"}"[..]].concat();
        assert!(!edit(&mut c, line, 6, 0, &longer), "longer");
        assert!(!edit(&mut c, line, 6, 0, &longer), "again");
        // A long payload is checked each time.
        let long = format!(r#","t":"{}""#, "x".repeat(REMEMBERED_BYTES));
        for _ in 0..2 {
            assert!(edit(&mut c, line, 6, 0, long.as_bytes()));
        }
        assert!(c.remembered.iter().all(|s| s.len() <= REMEMBERED_BYTES + 6));
    }

    /// Random payloads made of JSON's pieces, put in at the closing brace
    /// of objects with and without members: whatever the check vouches
    /// for, serde_json reads as one JSON object; and what serde_json reads
    /// so, from a payload that adds members (a comma first, or a key
    /// first in an empty object), the check vouches for. (A payload that
    /// extends the last value, such as digits after a number, may make
    /// valid JSON too; the check need not vouch for it.)
    #[test]
    fn vouches_for_exactly_what_serde_json_reads_as_an_object() {
        let pieces: [&[u8]; 18] = [
            b",",
            b"\"k\"",
            b":",
            b"1",
            b"-2.5e3",
            b"\"v\"",
            b"{",
            b"}",
            b"[",
            b"]",
            b" ",
            b"null",
            b"true",
            b"\"\\\"\"",
            b"\"\xff\"",
            b"\"\\q\"",
            b"\n",
            b"\"\xc3\xa9\"",
        ];
        let lines: [&[u8]; 3] = [br#"{"a":1}"#, b" { } ", br#"{"a":{"b":[1,"}"]}} "#];
        let mut c = JsonCheck::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let (mut vouched, mut refused) = (0, 0);
        for round in 0..40_000 {
            crate::testing::step(&mut seed);
            let mut payload = Vec::new();
            for k in 0..(seed % 9) {
                payload.extend_from_slice(pieces[((seed >> (8 + 5 * k)) % 18) as usize]);
            }
            let line = lines[round % 3];
            let close = line.iter().rposition(|&b| b == b'}').unwrap();
            let got = edit(&mut c, line, close, 0, &payload);
            let result = [&line[..close], &payload, &line[close..]].concat();
            let want =
                serde_json::from_slice::<serde_json::Value>(&result).is_ok_and(|v| v.is_object());
            let text = String::from_utf8_lossy(&result);
            assert!(!got || want, "vouched for, but not JSON: {text:?}");
            let empty = line.iter().filter(|c| !c.is_ascii_whitespace()).count() == 2;
            let first = payload.iter().find(|c| !c.is_ascii_whitespace());
            let adds_members = first.is_none_or(|&c| c == if empty { b'"' } else { b',' });
            assert!(got || !(want && adds_members), "refused members: {text:?}");
            if got {
                vouched += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            vouched > 2_000 && refused > 2_000,
            "{vouched} vouched, {refused} refused"
        );
    }
}

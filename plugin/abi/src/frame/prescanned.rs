//! Events' members as an earlier scan of the same bytes found them: a
//! source that must read each event anyway (a Splunk HEC envelope's
//! `event`, read to answer the request) keeps what its scan found, and
//! [`index_batch_prescanned`](super::index::index_batch_prescanned) takes
//! it instead of scanning those events again. It is the host's own
//! bookkeeping, never the plugin's; still, an entry that does not fit its
//! event is not followed (the event is scanned).

use alloc::vec::Vec;

use crate::json::Member;

/// `close` of a line no scan was kept for.
const NOT_SCANNED: u32 = u32::MAX;

/// Per line of a batch, the top-level members and the closing brace a
/// scan by the fast path found (so no key holds an escape), or nothing.
/// Member spans are offsets in the line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Prescanned {
    members: Vec<Member>,
    lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    /// End of the line's members in `members`.
    end: u32,
    /// Offset of its closing `}` ([`NOT_SCANNED`]: none kept).
    close: u32,
}

impl Prescanned {
    /// `lines` lines, none with a scan kept.
    pub fn unscanned(lines: usize) -> Prescanned {
        Prescanned {
            members: Vec::new(),
            lines: alloc::vec![
                Line {
                    end: 0,
                    close: NOT_SCANNED
                };
                lines
            ],
        }
    }

    /// Room for `members` more members without growing.
    pub fn reserve(&mut self, members: usize) {
        self.members.reserve(members);
    }

    /// The memory it holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.members.capacity() * core::mem::size_of::<Member>()
            + self.lines.capacity() * core::mem::size_of::<Line>()
    }

    /// Lines described (scanned or not).
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// One more line, with no scan kept.
    pub fn push_unscanned(&mut self) {
        let end = self.members.len() as u32;
        self.lines.push(Line {
            end,
            close: NOT_SCANNED,
        });
    }

    /// One more line, an object a scan found to have `members` and its
    /// closing brace at `close` (offsets in the line, as
    /// [`Opened::close`](crate::json::Opened) gives them).
    pub fn push(&mut self, members: &[Member], close: usize) {
        self.members.extend_from_slice(members);
        self.lines.push(Line {
            end: self.members.len() as u32,
            close: u32::try_from(close).unwrap_or(NOT_SCANNED),
        });
    }

    /// Keeps the first `lines` lines.
    pub fn truncate(&mut self, lines: usize) {
        self.lines.truncate(lines);
        let end = self.lines.last().map_or(0, |l| l.end);
        self.members.truncate(end as usize);
    }

    /// `other`'s lines after these.
    pub fn extend(&mut self, other: &Prescanned) {
        let base = self.members.len() as u32;
        self.members.extend_from_slice(&other.members);
        self.lines.extend(other.lines.iter().map(|l| Line {
            end: l.end + base,
            close: l.close,
        }));
    }

    /// Line `i`'s members and closing brace, when a scan was kept for it
    /// and it fits `event` (the line's bytes): the object ends the line,
    /// and every span lies before its closing brace.
    pub fn get(&self, i: usize, event: &[u8]) -> Option<(&[Member], usize)> {
        let line = self.lines.get(i)?;
        if line.close == NOT_SCANNED {
            return None;
        }
        let start = match i {
            0 => 0,
            _ => self.lines[i - 1].end,
        };
        let members = self.members.get(start as usize..line.end as usize)?;
        let close = line.close as usize;
        let fits = close + 1 == event.len()
            && event[close] == b'}'
            && members.iter().all(|m| {
                m.key.start <= m.key.end
                    && m.key.end < m.value.start
                    && m.value.start <= m.value.end
                    && m.value.end <= line.close
            });
        fits.then_some((members, close))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Scanner;

    /// Envelopes read with their `event` opened, one line per event.
    fn read(envelopes: &[&str]) -> (Vec<Vec<u8>>, Prescanned) {
        let (mut scanner, mut inner) = (Scanner::new(), Vec::new());
        let mut pre = Prescanned::default();
        let mut lines = Vec::new();
        for e in envelopes {
            let (object, _, opened) = scanner
                .scan_prefix_opening(e.as_bytes(), b"event", &mut inner)
                .unwrap();
            let event = object.member("event").unwrap().value;
            lines.push(e.as_bytes()[event.range()].to_vec());
            match opened {
                Some(o) => pre.push(&inner, o.close),
                None => pre.push_unscanned(),
            }
        }
        (lines, pre)
    }

    #[test]
    fn a_kept_scan_is_the_scan_of_the_line() {
        let (lines, pre) = read(&[
            r#"{"time":1,"event":{"a":1,"b":{"c":[1,{"d":"x"}]},"e":"y"},"host":"h"}"#,
            r#"{"event":"text"}"#,
            r#"{"event":{"k\u0065y":1}}"#,
            r#"{"event":{}}"#,
        ]);
        assert_eq!(pre.len(), 4);
        for (i, line) in lines.iter().enumerate() {
            let mut scanner = Scanner::new();
            let scanned = scanner
                .scan(line)
                .ok()
                .map(|o| (o.members().to_vec(), o.close));
            match pre.get(i, line) {
                Some((m, close)) => assert_eq!(Some((m.to_vec(), close)), scanned, "{i}"),
                // Only the string, and the key with an escape, are not kept.
                None => assert!(i == 1 || i == 2, "{i}"),
            }
        }
    }

    #[test]
    fn an_entry_that_does_not_fit_its_line_is_not_followed() {
        let (lines, mut pre) = read(&[r#"{"event":{"a":1}}"#, r#"{"event":{"b":22}}"#]);
        assert!(pre.get(0, &lines[0]).is_some());
        assert!(pre.get(0, &lines[1]).is_none(), "longer line");
        assert!(
            pre.get(1, b"{\"b\":22 ").is_none(),
            "no closing brace there"
        );
        assert!(pre.get(2, &lines[1]).is_none(), "no such line");
        let mut other = pre.clone();
        other.extend(&pre);
        assert_eq!(other.get(3, &lines[1]), pre.get(1, &lines[1]));
        pre.truncate(1);
        assert_eq!(pre.len(), 1);
        assert!(pre.get(1, &lines[1]).is_none());
        assert_eq!(pre.members.len(), 1);
    }
}

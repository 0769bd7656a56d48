//! Cisco ASA (and Firepower Threat Defense, `%FTD-`) connection messages,
//! after the syslog header, as the ASA syslog message guide writes them:
//!
//! ```text
//! %ASA-6-302013: Built {inbound|outbound} TCP connection <id> for <if>:<A>/<p> (<mapped>) [(<user>)] to <if>:<B>/<q> (<mapped>) [(<user>)]
//! %ASA-6-302014: Teardown TCP connection <id> for <if>:<A>/<p> [(<user>)] to <if>:<B>/<q> [(<user>)] duration <h:mm:ss> bytes <n> [<reason>]
//! %ASA-6-302015 / 302016: the same for UDP
//! %ASA-4-106023: Deny <proto> src <if>:<A>/<p> [(<user>)] dst <if>:<B>/<q> [(<user>)] by access-group "<acl>" [...]
//! ```
//!
//! **Direction** (spec §6): in `Built outbound`, A/p is the remote server
//! and B the initiator (source B, destination A, port p); in `Built
//! inbound`, A is the initiator (source A, destination B, port q). A
//! teardown keeps the order of its built message, so the direction of each
//! connection id is remembered from its built message until its teardown
//! (at most [`MAX_OPEN`] connections; the oldest is forgotten first). A
//! teardown whose built message was not seen (the capture began after it,
//! the map forgot it, another worker read it) takes as the server the side
//! with the lower port (A on a tie). A deny's src is the initiator.
//!
//! | reading | from |
//! |---|---|
//! | source, destination, port | by direction, above |
//! | bytes | teardown's `bytes n`: the total of both directions (`bytes_total`) |
//! | user | the `(user)` after the source's address (identity firewall) |
//! | time | the syslog header's (`Nov 21 2025 09:00:00` or RFC 3339; a header without a year reads as missing) |
//! | permitted | built and teardown; a 106023 deny is not |
//! | counted record | the teardown (302014, 302016) and the deny; a built message is labelled only |
//!
//! Grouped like `cim` (no process). Labels go on as ` key=value` pairs.

use std::collections::VecDeque;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use super::stamp::When;
use super::{Format, Record, Splice, number, port, present};
use crate::schema::Details;

/// How many connections' directions are remembered at most.
pub const MAX_OPEN: usize = 65_536;

/// Each open connection's direction (true: outbound), by connection id,
/// with the order built messages came in (`order` may hold ids already
/// torn down: each entry carries the sequence number it was remembered
/// with, and evicts only that).
#[derive(Debug, Default)]
pub struct Directions {
    outbound: HashMap<u64, (bool, u64), FixedState>,
    order: VecDeque<(u64, u64)>,
    seq: u64,
}

/// `<if>:<address>/<port>` and the user in parentheses after it, if any.
#[derive(Debug, Clone, Copy)]
struct End<'a> {
    ip: &'a str,
    port: Option<u16>,
    user: Option<&'a str>,
}

impl Directions {
    /// Reads the ASA message whose `%ASA-` starts at `at` in `text`.
    pub fn read<'a>(&mut self, text: &'a str, at: usize) -> Option<Record<'a>> {
        let rest = &text[at + 5..];
        let (tag, msg) = rest.split_once(": ")?;
        // `6-302013`, or with a facility word, `session-6-302013`.
        let id = tag.rsplit('-').next()?;
        let words: Vec<&str> = msg.split(' ').filter(|w| !w.is_empty()).collect();
        let (a, b, server_first, closing, permitted, total) = match id {
            "302013" | "302015" => {
                let outbound = match *words.get(1)? {
                    "outbound" => true,
                    "inbound" => false,
                    _ => return None,
                };
                self.remember(words.get(4)?.parse().ok()?, outbound);
                let (a, b) = ends(&words, "for", "to")?;
                (a, b, outbound, false, true, None)
            }
            "302014" | "302016" => {
                let conn: u64 = words.get(3)?.parse().ok()?;
                let (a, b) = ends(&words, "for", "to")?;
                let outbound = self.forget(conn).unwrap_or(match (a.port, b.port) {
                    (Some(p), Some(q)) => p <= q,
                    _ => true,
                });
                let total = after(&words, "bytes").and_then(number);
                (a, b, outbound, true, true, total)
            }
            "106023" => {
                let (a, b) = ends(&words, "src", "dst")?;
                (a, b, false, true, false, None)
            }
            _ => return None,
        };
        let (src, dst) = if server_first { (b, a) } else { (a, b) };
        Some(Record {
            format: Format::Asa,
            destination: present(dst.ip),
            port: dst.port,
            details: Details {
                source: present(src.ip),
                bytes_out: None,
                bytes_in: None,
                user: src.user.and_then(present),
                process: None,
                time_ms: None,
                permitted,
            },
            when: When::Header(&text[..at]),
            bytes_total: total,
            closing,
            by_user: false,
            splice: Splice::Pairs,
        })
    }

    fn remember(&mut self, conn: u64, outbound: bool) {
        self.seq += 1;
        self.outbound.insert(conn, (outbound, self.seq));
        self.order.push_back((conn, self.seq));
        while self.order.len() > MAX_OPEN {
            if let Some((old, seq)) = self.order.pop_front()
                && self.outbound.get(&old).is_some_and(|&(_, s)| s == seq)
            {
                self.outbound.remove(&old);
            }
        }
    }

    fn forget(&mut self, conn: u64) -> Option<bool> {
        self.outbound.remove(&conn).map(|(d, _)| d)
    }
}

/// The word after `word`.
fn after<'a>(words: &[&'a str], word: &str) -> Option<&'a str> {
    let i = words.iter().position(|w| *w == word)?;
    words.get(i + 1).copied()
}

/// The two addresses, after the words `first` and `second`.
fn ends<'a>(words: &[&'a str], first: &str, second: &str) -> Option<(End<'a>, End<'a>)> {
    let i = words.iter().position(|w| *w == first)?;
    let j = i + 1 + words[i + 1..].iter().position(|w| *w == second)?;
    Some((end_at(words, i + 1)?, end_at(words, j + 1)?))
}

/// The address at `words[i]` and the user among the parenthesised words
/// after it (a mapped address holds a `/`, a user does not).
fn end_at<'a>(words: &[&'a str], i: usize) -> Option<End<'a>> {
    let (_, addr) = words.get(i)?.split_once(':')?;
    let (ip, p) = addr.rsplit_once('/')?;
    let user = words[i + 1..]
        .iter()
        .take_while(|w| w.starts_with('('))
        .find(|w| !w.contains('/'))
        .map(|w| w.trim_start_matches('(').trim_end_matches(')'));
    Some(End {
        ip,
        port: port(p),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_763_715_600_000;

    fn read<'a>(d: &mut Directions, line: &'a str) -> Record<'a> {
        d.read(line, line.find("%ASA-").unwrap()).unwrap()
    }

    // Built from Cisco's ASA syslog message guide (302013 to 302016, 106023).
    const OUT_BUILT: &str = "<166>Nov 21 2025 09:00:00 fw01 : %ASA-6-302013: Built outbound TCP connection 1001 for outside:203.0.113.9/445 (203.0.113.9/445) to inside:10.0.0.5/51234 (198.51.100.1/51234) (CORP\\alice)";
    const OUT_TEARDOWN: &str = "<166>Nov 21 2025 09:00:05 fw01 : %ASA-6-302014: Teardown TCP connection 1001 for outside:203.0.113.9/445 to inside:10.0.0.5/51234 (CORP\\alice) duration 0:00:05 bytes 2097152 TCP FINs";
    const IN_BUILT: &str = "<166>Nov 21 2025 09:00:00 fw01 : %ASA-6-302013: Built inbound TCP connection 2002 for outside:198.51.100.7/445 (198.51.100.7/445) to inside:10.0.0.8/40000 (203.0.113.20/40000)";

    #[test]
    fn outbound_puts_the_server_first_and_the_teardown_counts() {
        let mut d = Directions::default();
        let b = read(&mut d, OUT_BUILT);
        assert_eq!(b.destination.as_deref(), Some("203.0.113.9"));
        assert_eq!(b.port, Some(445));
        assert_eq!(b.details.source.as_deref(), Some("10.0.0.5"));
        assert_eq!(b.details.user.as_deref(), Some("CORP\\alice"));
        assert_eq!(b.when.resolve(), Some(T));
        assert!(!b.closing && b.details.permitted);
        let t = read(&mut d, OUT_TEARDOWN);
        assert_eq!(
            (t.destination.as_deref(), t.port),
            (Some("203.0.113.9"), Some(445))
        );
        assert_eq!(t.details.source.as_deref(), Some("10.0.0.5"));
        assert_eq!(t.bytes_total, Some(2_097_152));
        assert_eq!((t.details.bytes_out, t.details.bytes_in), (None, None));
        assert!(t.closing && t.details.permitted);
        assert_eq!(t.when.resolve(), Some(T + 5000));
    }

    #[test]
    fn inbound_puts_the_initiator_first_even_from_port_445() {
        let mut d = Directions::default();
        let b = read(&mut d, IN_BUILT);
        // The outside host connects from its port 445 to the inside host's
        // port 40000: not an outbound SMB connection.
        assert_eq!(b.details.source.as_deref(), Some("198.51.100.7"));
        assert_eq!(
            (b.destination.as_deref(), b.port),
            (Some("10.0.0.8"), Some(40000))
        );
        let td = "<166>Nov 21 2025 09:01:00 fw01 : %ASA-6-302014: Teardown TCP connection 2002 for outside:198.51.100.7/445 to inside:10.0.0.8/40000 duration 0:01:00 bytes 445 TCP FINs";
        let t = read(&mut d, td);
        assert_eq!(
            t.port,
            Some(40000),
            "the built's direction, not the lower port"
        );
        assert_eq!(t.bytes_total, Some(445));
    }

    #[test]
    fn a_teardown_without_its_built_takes_the_lower_port_as_the_server() {
        let mut d = Directions::default();
        let unseen = OUT_TEARDOWN.replace("1001", "77");
        let t = read(&mut d, &unseen);
        assert_eq!(
            (t.destination.as_deref(), t.port),
            (Some("203.0.113.9"), Some(445))
        );
        let udp = "Nov 21 2025 09:00:00: %ASA-6-302016: Teardown UDP connection 9 for inside:10.0.0.5/50000 to outside:203.0.113.9/69 duration 0:00:01 bytes 1200";
        let t = read(&mut d, udp);
        assert_eq!(
            (t.destination.as_deref(), t.port),
            (Some("203.0.113.9"), Some(69))
        );
    }

    #[test]
    fn a_deny_is_not_permitted() {
        let mut d = Directions::default();
        let deny = "<164>Nov 21 2025 09:00:00 fw01 : %ASA-4-106023: Deny tcp src inside:10.0.0.5/51234 dst outside:203.0.113.9/445 by access-group \"inside_in\" [0x0, 0x0]";
        let r = read(&mut d, deny);
        assert_eq!(r.details.source.as_deref(), Some("10.0.0.5"));
        assert_eq!(
            (r.destination.as_deref(), r.port),
            (Some("203.0.113.9"), Some(445))
        );
        assert!(!r.details.permitted);
        let other = "%ASA-6-305011: Built dynamic TCP translation from inside:10.0.0.5/1 to outside:1.2.3.4/2";
        assert!(d.read(other, 0).is_none());
    }

    #[test]
    fn the_direction_map_is_bounded() {
        let mut d = Directions::default();
        for c in 0..(MAX_OPEN as u64 + 10) {
            d.remember(c, true);
        }
        assert_eq!(d.outbound.len(), MAX_OPEN);
        assert_eq!(d.forget(0), None, "the oldest went first");
        assert_eq!(d.forget(MAX_OPEN as u64), Some(true));
    }
}

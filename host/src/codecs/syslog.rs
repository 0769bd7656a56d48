//! Syslog messages (RFC 5424 and RFC 3164) into events, and TCP framing
//! (RFC 6587: octet counting, or one message per line; a NUL also ends a
//! message, as Python's `SysLogHandler` sends them).
//!
//! The event is the message body when that is a JSON object (newlines
//! outside strings turned into spaces). Any other body becomes
//! `{"message":…,"syslog":{…header…}}`, so nothing is lost and rules can
//! still read it.

use serde::Serialize;

use super::json_text::{flatten_into, is_json_object};

/// The parts of a message that are kept when the body is not JSON.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Header<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub procid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_data: Option<&'a str>,
}

/// Splits a message into its header and body. Never fails: what cannot
/// be read as a header is body. Trailing NUL, CR and LF bytes are not part
/// of the message (Python's `SysLogHandler` ends each datagram with a NUL).
pub fn parse(msg: &[u8]) -> (Header<'_>, &[u8]) {
    let end = msg
        .iter()
        .rposition(|c| !matches!(c, b'\0' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    let msg = &msg[..end];
    let mut h = Header::default();
    let Some((pri, rest)) = pri(msg) else {
        return (h, msg);
    };
    h.facility = Some(pri / 8);
    h.severity = Some(pri % 8);
    if let Some(rest) = rest.strip_prefix(b"1 ") {
        return rfc5424(h, rest);
    }
    rfc3164(h, rest)
}

fn pri(msg: &[u8]) -> Option<(u8, &[u8])> {
    let rest = msg.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&c| c == b'>')?;
    let n: u16 = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    (end > 0 && n <= 191).then_some((n as u8, &rest[end + 1..]))
}

fn word(s: &[u8]) -> Option<(&str, &[u8])> {
    let end = s.iter().position(|&c| c == b' ')?;
    let w = std::str::from_utf8(&s[..end]).ok()?;
    Some((w, &s[end + 1..]))
}

fn nil(w: &str) -> Option<&str> {
    (w != "-").then_some(w)
}

fn rfc5424<'a>(mut h: Header<'a>, s: &'a [u8]) -> (Header<'a>, &'a [u8]) {
    let Some((ts, s)) = word(s) else {
        return (h, s);
    };
    let Some((host, s)) = word(s) else {
        return (h, s);
    };
    let Some((app, s)) = word(s) else {
        return (h, s);
    };
    let Some((procid, s)) = word(s) else {
        return (h, s);
    };
    let Some((msgid, s)) = word(s) else {
        return (h, s);
    };
    h.timestamp = nil(ts);
    h.hostname = nil(host);
    h.app_name = nil(app);
    h.procid = nil(procid);
    h.msgid = nil(msgid);
    // STRUCTURED-DATA: "-" or [..][..], with `\]` and `"` quoting inside.
    let sd_end = if s.first() == Some(&b'-') {
        1
    } else {
        let mut i = 0;
        while s.get(i) == Some(&b'[') {
            let mut quoted = false;
            i += 1;
            while i < s.len() {
                match s[i] {
                    b'\\' => i += 1,
                    b'"' => quoted = !quoted,
                    b']' if !quoted => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        }
        i.min(s.len())
    };
    if sd_end > 1 || s.first() != Some(&b'-') {
        h.structured_data = std::str::from_utf8(&s[..sd_end])
            .ok()
            .filter(|v| !v.is_empty());
    }
    let body = &s[sd_end..];
    let body = body.strip_prefix(b" ").unwrap_or(body);
    let body = body.strip_prefix("\u{feff}".as_bytes()).unwrap_or(body);
    (h, body)
}

fn rfc3164<'a>(mut h: Header<'a>, s: &'a [u8]) -> (Header<'a>, &'a [u8]) {
    // "Mmm dd hh:mm:ss HOSTNAME TAG: MSG"; each part is optional in practice.
    let mut s = s;
    if s.len() > 16
        && s[3] == b' '
        && s[6] == b' '
        && s[9] == b':'
        && s[12] == b':'
        && s[15] == b' '
    {
        h.timestamp = std::str::from_utf8(&s[..15]).ok();
        s = &s[16..];
        if s.first() != Some(&b'{')
            && let Some((host, rest)) = word(s)
        {
            h.hostname = Some(host);
            s = rest;
        }
    }
    if s.first() == Some(&b'{') {
        return (h, s);
    }
    // TAG (up to 32 characters, maybe with [pid]) then ": ". A body that
    // starts with a format's own marker is no tag: `CEF:0|...`,
    // `LEEF:2.0|...` (no space after the colon), Cisco's
    // `%ASA-6-302013: ...` (a `%`, which no program name has).
    let tag_end = s
        .iter()
        .take(48)
        .position(|&c| c == b':' || c == b' ' || c == b'{');
    if let Some(i) = tag_end
        && s[i] == b':'
        && matches!(s.get(i + 1), None | Some(b' '))
        && !s[..i].contains(&b'%')
    {
        let tag = std::str::from_utf8(&s[..i]).ok();
        let (app, pid) = match tag.and_then(|t| t.strip_suffix(']')?.split_once('[')) {
            Some((a, p)) => (Some(a), Some(p)),
            None => (tag, None),
        };
        h.app_name = app.filter(|a| !a.is_empty());
        h.procid = pid;
        let body = &s[i + 1..];
        return (h, body.strip_prefix(b" ").unwrap_or(body));
    }
    (h, s)
}

/// One message as an event line (appended to `out`, no newline).
pub fn to_event<'a>(msg: &'a [u8], out: &mut Vec<u8>) -> Header<'a> {
    let (h, body) = parse(msg);
    if is_json_object(body) {
        flatten_into(body, out);
        return h;
    }
    #[derive(Serialize)]
    struct Wrapped<'a> {
        message: std::borrow::Cow<'a, str>,
        syslog: Header<'a>,
    }
    let w = Wrapped {
        message: String::from_utf8_lossy(body),
        syslog: h,
    };
    let _ = serde_json::to_writer(&mut *out, &w);
    w.syslog
}

/// The header's host and time as a line's envelope metadata (the HEC
/// envelope a `splunk_hec` sink writes: `v` and a JSON object), so a JSON
/// body that is the event does not lose them. An RFC 3164 timestamp has no
/// year: it is left out.
pub fn envelope(h: &Header<'_>) -> Option<Vec<u8>> {
    let time = h.timestamp.and_then(crate::codecs::timestamp::from_text);
    if h.hostname.is_none() && time.is_none() {
        return None;
    }
    let mut m = b"v{".to_vec();
    if let Some(host) = h.hostname {
        m.extend_from_slice(b"\"host\":");
        let _ = serde_json::to_writer(&mut m, host);
    }
    if let Some(t) = time {
        if h.hostname.is_some() {
            m.push(b',');
        }
        m.extend_from_slice(b"\"time\":");
        crate::codecs::timestamp::write_seconds(&mut m, t);
    }
    m.push(b'}');
    Some(m)
}

/// Cuts a TCP byte stream into messages: octet counting (`LEN SP MSG`)
/// when a frame starts with a digit, otherwise up to the next LF or NUL
/// (rsyslog's `AddtlFrameDelimiter="0"`; Python's `SysLogHandler` ends each
/// message with a NUL and no LF).
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
}

/// A frame that cannot be taken.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameTooLong(pub usize);

impl Framer {
    pub fn new(max_message_bytes: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            max: max_message_bytes,
        }
    }

    /// Bytes held of a frame not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Adds bytes; calls `each` with every complete message.
    pub fn push(&mut self, data: &[u8], mut each: impl FnMut(&[u8])) -> Result<(), FrameTooLong> {
        self.buf.extend_from_slice(data);
        let mut start = 0;
        let res = loop {
            let rest = &self.buf[start..];
            if rest.is_empty() {
                break Ok(());
            }
            if rest[0].is_ascii_digit() {
                let Some(sp) = rest.iter().take(11).position(|&c| c == b' ') else {
                    if rest.len() > 10 || !rest.iter().all(u8::is_ascii_digit) {
                        break Err(FrameTooLong(rest.len()));
                    }
                    break Ok(());
                };
                let len: usize = match std::str::from_utf8(&rest[..sp])
                    .ok()
                    .and_then(|n| n.parse().ok())
                {
                    Some(n) => n,
                    None => break Err(FrameTooLong(0)),
                };
                if len > self.max {
                    break Err(FrameTooLong(len));
                }
                if rest.len() < sp + 1 + len {
                    break Ok(());
                }
                each(&rest[sp + 1..sp + 1 + len]);
                start += sp + 1 + len;
            } else {
                match memchr::memchr2(b'\n', b'\0', rest) {
                    Some(i) => {
                        if i > 0 {
                            each(&rest[..i]);
                        }
                        start += i + 1;
                    }
                    None if rest.len() > self.max => break Err(FrameTooLong(rest.len())),
                    None => break Ok(()),
                }
            }
        };
        self.buf.drain(..start);
        res
    }

    /// At the end of the connection: what is left is a last message.
    pub fn finish(&mut self, mut each: impl FnMut(&[u8])) {
        if !self.buf.iter().all(u8::is_ascii_whitespace) {
            each(&self.buf);
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(msg: &str) -> String {
        let mut out = Vec::new();
        to_event(msg.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc5424_with_json_body_is_the_event() {
        assert_eq!(
            ev(
                "<134>1 2026-11-22T10:00:00.1Z fw01 t1071 - - [ex@32473 a=\"x]y\"] \u{feff}{\"dest_port\":21}\n"
            ),
            r#"{"dest_port":21}"#
        );
        assert_eq!(ev(r#"<13>1 - - - - - - {"a":1}"#), r#"{"a":1}"#);
    }

    #[test]
    fn rfc3164_forms() {
        // rsyslog's RSYSLOG_TraditionalForwardFormat.
        assert_eq!(ev(r#"<13>Nov 22 10:00:00 vm t1071: {"a":1}"#), r#"{"a":1}"#);
        assert_eq!(
            ev(r#"<13>Nov  2 10:00:00 vm t1071[42]: {"a":1}"#),
            r#"{"a":1}"#
        );
        assert_eq!(ev(r#"<13>Nov 22 10:00:00 vm {"a":1}"#), r#"{"a":1}"#);
        assert_eq!(ev(r#"<13>{"a":1}"#), r#"{"a":1}"#);
        assert_eq!(
            ev("<13>Nov  2 10:00:00 vm sshd[42]: Accepted key"),
            r#"{"message":"Accepted key","syslog":{"facility":1,"severity":5,"timestamp":"Nov  2 10:00:00","hostname":"vm","app_name":"sshd","procid":"42"}}"#
        );
    }

    #[test]
    fn a_format_marker_is_not_taken_for_a_tag() {
        assert_eq!(
            ev("<134>Nov 21 09:00:00 fw01 CEF:0|Acme|FW|1.0|1|n|3|src=10.0.0.5"),
            r#"{"message":"CEF:0|Acme|FW|1.0|1|n|3|src=10.0.0.5","syslog":{"facility":16,"severity":6,"timestamp":"Nov 21 09:00:00","hostname":"fw01"}}"#
        );
        assert!(
            ev("<13>Nov 21 09:00:00 fw01 LEEF:2.0|A|B|1|2|^|src=1")
                .contains(r#""message":"LEEF:2.0|"#)
        );
        assert!(
            ev("<166>Nov 21 09:00:00 fw01 %ASA-6-302014: Teardown TCP")
                .contains(r#""message":"%ASA-6-302014: Teardown TCP""#)
        );
        assert!(ev("<13>Nov 21 09:00:00 vm sshd[42]: Accepted").contains(r#""app_name":"sshd""#));
    }

    #[test]
    fn anything_else_is_wrapped() {
        assert_eq!(ev("hello"), r#"{"message":"hello","syslog":{}}"#);
        assert_eq!(ev("<999>x"), r#"{"message":"<999>x","syslog":{}}"#);
        assert_eq!(
            ev("<14>1 2026-11-22T10:00:00Z h app 7 ID47 - {not json"),
            r#"{"message":"{not json","syslog":{"facility":1,"severity":6,"timestamp":"2026-11-22T10:00:00Z","hostname":"h","app_name":"app","procid":"7","msgid":"ID47"}}"#
        );
        assert_eq!(
            ev("<14>1 x"),
            r#"{"message":"x","syslog":{"facility":1,"severity":6}}"#
        );
    }

    #[test]
    fn framing_mixes_octet_counting_and_lines() {
        let mut f = Framer::new(100);
        let mut got = Vec::new();
        f.push(b"5 hello3 ab", |m| got.push(m.to_vec())).unwrap();
        f.push(b"cline one\n\nline", |m| got.push(m.to_vec()))
            .unwrap();
        f.finish(|m| got.push(m.to_vec()));
        assert_eq!(got, [&b"hello"[..], b"abc", b"line one", b"line"]);
        let mut f = Framer::new(10);
        assert_eq!(f.push(b"99 x", |_| {}), Err(FrameTooLong(99)));
    }

    /// Python's `SysLogHandler` over TCP: each message ends with a NUL and
    /// no LF. Before NUL ended a frame, they all merged into one event.
    #[test]
    fn a_nul_ends_a_frame_like_lf() {
        let mut f = Framer::new(100);
        let mut got = Vec::new();
        f.push(b"<14>{\"a\":1}\0<14>{\"b\"", |m| got.push(m.to_vec()))
            .unwrap();
        f.push(b":2}\0<14>x\0\nline\n8 <14>a\0b\0", |m| {
            got.push(m.to_vec())
        })
        .unwrap();
        f.finish(|m| got.push(m.to_vec()));
        assert_eq!(
            got,
            [
                &b"<14>{\"a\":1}"[..],
                b"<14>{\"b\":2}",
                b"<14>x",
                b"line",
                // An octet-counted frame keeps its NULs: its length says where it ends.
                b"<14>a\0b\0",
            ]
        );
        let mut f = Framer::new(4);
        assert_eq!(f.push(b"abcdef", |_| {}), Err(FrameTooLong(6)));
        assert_eq!(Framer::new(4).push(b"abc\0def\0", |_| {}), Ok(()));
    }

    /// A UDP datagram from `SysLogHandler` ends with a NUL: the JSON body
    /// is still the event.
    #[test]
    fn trailing_nul_cr_and_lf_are_not_part_of_the_message() {
        assert_eq!(ev("<14>t1071: {\"c\":3}\0"), r#"{"c":3}"#);
        assert_eq!(ev("<14>{\"c\":3}\0"), r#"{"c":3}"#);
        assert_eq!(ev("<14>{\"c\":3}\r\n\0"), r#"{"c":3}"#);
        assert_eq!(
            ev("<14>1 - h app - - - not json\0\n"),
            r#"{"message":"not json","syslog":{"facility":1,"severity":6,"hostname":"h","app_name":"app"}}"#
        );
        assert_eq!(ev("\0"), r#"{"message":"","syslog":{}}"#);
    }
}

//! Text a plugin made, made safe to log: control characters (CR, LF, ESC,
//! NUL, DEL, C1) and the Unicode line separators and bidi overrides become
//! visible escapes, so a plugin cannot start a forged log line or drive a
//! terminal; and the text is cut at a bound, so it cannot flood the log.

/// Most bytes of plugin text kept in one log line or error message.
pub const MAX_PRINTED: usize = 4096;

/// `text` (any bytes: invalid UTF-8 becomes U+FFFD) with its controls
/// escaped, cut at [`MAX_PRINTED`] bytes of input ("…" marks a cut).
pub fn printable(text: &[u8]) -> String {
    let cut = text.len() > MAX_PRINTED;
    let lossy = String::from_utf8_lossy(&text[..text.len().min(MAX_PRINTED)]);
    let mut out = String::with_capacity(lossy.len());
    for c in lossy.chars() {
        if must_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push('…');
    }
    out
}

/// [`printable`] for text already in a `str`.
pub fn printable_str(text: &str) -> String {
    printable(text.as_bytes())
}

fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_is_bounded() {
        let forged = "ok\n2026-11-27T00:00:00Z  INFO summary errors=0\r\x1b[31m\0\u{202e}";
        let p = printable_str(forged);
        assert_eq!(
            p,
            "ok\\n2026-11-27T00:00:00Z  INFO summary errors=0\\r\\u{1b}[31m\\u{0}\\u{202e}"
        );
        assert!(!p.chars().any(char::is_control));
        assert_eq!(printable(b"caf\xc3\xa9 \xff"), "café \u{fffd}");
        let long = printable(&[b'a'; MAX_PRINTED + 10]);
        assert_eq!(long.len(), MAX_PRINTED + '…'.len_utf8());
    }
}

//! JSON text as the codecs meet it: whether a message is one JSON object,
//! and putting such text on one line.

/// Whether `text` is one JSON object (and nothing else).
pub fn is_json_object(text: &[u8]) -> bool {
    text.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

/// Copies JSON text, turning CR and LF into spaces. In valid JSON they can
/// only be whitespace between tokens (inside strings they are escaped), so
/// the value is the same and fits on one line.
pub fn flatten_into(text: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(text);
    // Most text has neither; the copy is then all there is to do.
    let copy = &mut out[start..];
    let mut at = 0;
    while let Some(k) = memchr::memchr2(b'\n', b'\r', &copy[at..]) {
        copy[at + k] = b' ';
        at += k + 1;
    }
}

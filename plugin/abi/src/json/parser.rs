//! The validating reader under everything else in `json`: a cursor over
//! bytes that checks and skips strings, numbers, literals and nested values
//! (UTF-8 checked inside strings as they are read), without building
//! anything. The scanner and the value readers drive it.

use super::flat::number_end;
use super::plain::plain_end;
use super::{MAX_DEPTH, ScanError, Span};

/// A position in `b`; every method reads from `i` on and leaves `i` after
/// what it read.
#[derive(Clone)]
pub(super) struct Parser<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    /// Escape sequences seen so far.
    pub(super) escapes: u32,
}

impl<'a> Parser<'a> {
    /// A parser of `b` from offset `i`.
    #[inline]
    pub(super) fn at(b: &'a [u8], i: usize) -> Parser<'a> {
        Parser { b, i, escapes: 0 }
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    pub(super) fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    #[inline]
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    pub(super) fn expect(&mut self, c: u8) -> Result<(), ScanError> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// A string; returns the span between the quotes.
    #[inline]
    pub(super) fn string(&mut self) -> Result<Span, ScanError> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            // Straight to the next byte that is not plain ASCII.
            self.i = plain_end(self.b, self.i);
            if self.peek() == Some(b'"') {
                self.i += 1;
                return Ok(Span::of(start, self.i - 1));
            }
            self.string_special()?;
        }
    }

    /// The byte at `i` inside a string is not plain ASCII and not its
    /// closing quote: checks and passes an escape or a UTF-8 sequence.
    /// Out of line, so that the common string (plain, then a quote) keeps
    /// a small, inlined loop.
    #[cold]
    #[inline(never)]
    fn string_special(&mut self) -> Result<(), ScanError> {
        match self.next() {
            Some(lead @ 0x80..) => {
                // One UTF-8 sequence; std decides overlongs, surrogates
                // and the upper bound.
                let len = match lead {
                    0xC2..=0xDF => 2,
                    0xE0..=0xEF => 3,
                    0xF0..=0xF4 => 4,
                    _ => return Err(ScanError::Malformed),
                };
                let at = self.i - 1;
                let seq = self.b.get(at..at + len).ok_or(ScanError::Malformed)?;
                if core::str::from_utf8(seq).is_err() {
                    return Err(ScanError::Malformed);
                }
                self.i = at + len;
            }
            Some(b'\\') => {
                self.escapes += 1;
                match self.next() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                    Some(b'u') => {
                        let h = self.b.get(self.i..self.i + 4).ok_or(ScanError::Malformed)?;
                        if !h.iter().all(u8::is_ascii_hexdigit) {
                            return Err(ScanError::Malformed);
                        }
                        self.i += 4;
                    }
                    _ => return Err(ScanError::Malformed),
                }
            }
            _ => return Err(ScanError::Malformed),
        }
        Ok(())
    }

    fn number(&mut self) -> Result<(), ScanError> {
        self.i = number_end(self.b, self.i).ok_or(ScanError::Malformed)?;
        Ok(())
    }

    fn literal(&mut self, lit: &[u8]) -> Result<(), ScanError> {
        if self.b.get(self.i..self.i + lit.len()) == Some(lit) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(ScanError::Malformed)
        }
    }

    /// One object member, from its key's opening quote: the key's span
    /// between its quotes and the value's span (the value validated, read
    /// `depth` levels down).
    pub(super) fn member(&mut self, depth: usize) -> Result<(Span, Span), ScanError> {
        let k = self.string()?;
        self.ws();
        self.expect(b':')?;
        self.ws();
        let vs = self.i;
        self.value(depth)?;
        Ok((k, Span::of(vs, self.i)))
    }

    /// Skips one value, validating it.
    pub(super) fn value(&mut self, depth: usize) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'{') => {
                if depth >= MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.member(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(()),
                        _ => return Err(ScanError::Malformed),
                    }
                }
            }
            Some(b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(ScanError::TooDeep);
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next() {
                        Some(b',') => {}
                        Some(b']') => return Ok(()),
                        _ => return Err(ScanError::Malformed),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(ScanError::Malformed),
        }
    }
}

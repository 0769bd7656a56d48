//! Raw formats (spec §6): lines that are not JSON objects, as firewalls and
//! sensors write them. Each reader turns a line into a [`Record`], the same
//! neutral reading a JSON preset gives (destination, port, the
//! [`Details`]), plus what only raw formats say: whether this record is the
//! one that counts a connection (`closing`), bytes given only as a total,
//! and how the line takes its labels ([`Splice`]). The rule then judges and
//! counts a record exactly as it does a JSON event.
//!
//! A line is a Zeek header when it starts with `#`; otherwise its format
//! is the one whose marker comes first in its first 256 bytes (after any
//! syslog header): Cisco ASA (`%ASA-` or `%FTD-`), CEF (`CEF:`), LEEF
//! (`LEEF:`), PAN-OS (`,TRAFFIC,`); without a marker, a Zeek TSV row (the
//! header's separator), then `key=value` (FortiGate when it has `dstip`,
//! otherwise the generic names). Parsing happens here,
//! in the sandbox, under the plugin's deadline and memory cap.

pub mod asa;
pub mod cef;
pub mod kv;
pub mod label;
pub mod leef;
pub mod panos;
pub mod stamp;
pub mod zeek_tsv;

use std::borrow::Cow;

use crate::config::RawFormat;
use crate::schema::Details;

pub use label::Splice;

/// The raw formats, in the order of [`Format::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    ZeekTsv,
    Asa,
    Cef,
    Leef,
    PanOs,
    Fortigate,
    Kv,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::ZeekTsv,
        Format::Asa,
        Format::Cef,
        Format::Leef,
        Format::PanOs,
        Format::Fortigate,
        Format::Kv,
    ];

    /// The name used in `raw_formats`, in the run summary and in verdicts.
    pub fn name(self) -> &'static str {
        match self {
            Format::ZeekTsv => "zeek_tsv",
            Format::Asa => "asa",
            Format::Cef => "cef",
            Format::Leef => "leef",
            Format::PanOs => "panos",
            Format::Fortigate => "fortigate",
            Format::Kv => "kv",
        }
    }
}

/// One raw line, read.
#[derive(Debug)]
pub struct Record<'a> {
    pub format: Format,
    pub destination: Option<Cow<'a, str>>,
    pub port: Option<u16>,
    /// Source, bytes, user, process and whether permitted; the time is
    /// in `when` until the rule needs it.
    pub details: Details<'a>,
    pub when: stamp::When<'a>,
    /// Both directions together, when that is all the record gives.
    pub bytes_total: Option<u64>,
    /// This record is the one that counts its connection (a format that
    /// logs a start and an end counts the end; spec §6).
    pub closing: bool,
    /// Group by user (LEEF, as `qradar`) instead of process.
    pub by_user: bool,
    pub splice: Splice,
}

/// What a raw line turned out to be. Returned by value and taken apart at
/// once, per line: boxing the record would cost an allocation a line.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Line<'a> {
    Record(Record<'a>),
    /// A Zeek header line; `Some` when it names the columns (`#fields`,
    /// `#types`), which gain the label columns.
    ZeekHeader(Option<zeek_tsv::Extend>),
    /// None of the formats turned on.
    Other,
}

/// The readers turned on, with what they remember between lines: the Zeek
/// header, and each ASA connection's direction until its teardown.
#[derive(Debug, Default)]
pub struct Readers {
    on: [bool; 7],
    zeek: zeek_tsv::Header,
    asa: asa::Directions,
}

impl Readers {
    /// The readers `formats` names (`auto`: all of them).
    pub fn new(formats: &[RawFormat]) -> Readers {
        let mut on = [false; 7];
        for f in formats {
            match format_of(*f) {
                Some(f) => on[f as usize] = true,
                None => on = [true; 7],
            }
        }
        Readers {
            on,
            ..Readers::default()
        }
    }

    pub fn any(&self) -> bool {
        self.on.iter().any(|&o| o)
    }

    fn is_on(&self, f: Format) -> bool {
        self.on[f as usize]
    }

    /// Reads `line` (without its line end) with the first reader whose
    /// marker it carries.
    pub fn read<'a>(&mut self, line: &'a [u8]) -> Line<'a> {
        let Ok(text) = std::str::from_utf8(line) else {
            return Line::Other;
        };
        if text.starts_with('#') {
            return match self.is_on(Format::ZeekTsv) {
                true => Line::ZeekHeader(self.zeek.read_header(text)),
                false => Line::Other,
            };
        }
        let found = if let Some((f, at)) = marker(line) {
            if !self.is_on(f) {
                return Line::Other;
            }
            match f {
                Format::Asa => self.asa.read(text, at),
                Format::Cef => cef::read(text, at),
                Format::Leef => leef::read(text, at),
                _ => panos::read(text, at + 1),
            }
        } else if self.is_on(Format::ZeekTsv) && self.zeek.is_row(text) {
            self.zeek.read_row(text)
        } else {
            self.when_kv(text)
        };
        found.map_or(Line::Other, Line::Record)
    }

    fn when_kv<'a>(&self, text: &'a str) -> Option<Record<'a>> {
        let pairs = kv::Pairs::parse(text)?;
        if pairs.get("dstip").is_some() {
            self.is_on(Format::Fortigate).then(|| kv::fortigate(&pairs))
        } else {
            self.is_on(Format::Kv)
                .then(|| kv::generic(&pairs))
                .flatten()
        }
    }
}

/// The format a `raw_formats` entry names; `None` for `auto` (all).
fn format_of(f: RawFormat) -> Option<Format> {
    Some(match f {
        RawFormat::Auto => return None,
        RawFormat::ZeekTsv => Format::ZeekTsv,
        RawFormat::Asa => Format::Asa,
        RawFormat::Cef => Format::Cef,
        RawFormat::Leef => Format::Leef,
        RawFormat::Panos => Format::PanOs,
        RawFormat::Fortigate => Format::Fortigate,
        RawFormat::Kv => Format::Kv,
    })
}

/// Each format's marker in a line (PAN-OS's is its log type between commas).
const MARKERS: [(&[u8], Format); 5] = [
    (b"%ASA-", Format::Asa),
    (b"%FTD-", Format::Asa),
    (b"CEF:", Format::Cef),
    (b"LEEF:", Format::Leef),
    (b",TRAFFIC,", Format::PanOs),
];

/// The format marker that comes first in the line's first 256 bytes (a
/// syslog header in front, at most), and where it starts: one pass over
/// the bytes, a marker tried only where its first byte stands.
fn marker(line: &[u8]) -> Option<(Format, usize)> {
    // The markers' first bytes as bits above `%` (`,` `C` `L` are within
    // 64 of it): one subtraction and one shift a byte, where a `match`
    // compiles to a jump table a byte in wasm.
    const FIRST: u64 = 1 | 1 << (b',' - b'%') | 1 << (b'C' - b'%') | 1 << (b'L' - b'%');
    let head = &line[..line.len().min(256)];
    head.iter().enumerate().find_map(|(i, &c)| {
        let d = c.wrapping_sub(b'%');
        if d >= 64 || FIRST >> d & 1 == 0 {
            return None;
        }
        MARKERS
            .iter()
            .find(|(m, _)| line[i..].starts_with(m))
            .map(|&(_, f)| (f, i))
    })
}

/// Whether an action word allows the connection (spec §6): a word of it is
/// allow, accept, permit or pass (or their past tense), and none is deny,
/// drop, block, reject or reset (any case; `TRAFFIC_ALLOW` allows,
/// `allow-then-drop` does not).
pub fn allows(text: &str) -> bool {
    const YES: &[&str] = &[
        "allow",
        "allowed",
        "accept",
        "accepted",
        "permit",
        "permitted",
        "pass",
        "passed",
    ];
    const NO: &[&str] = &[
        "deny", "denied", "drop", "dropped", "block", "blocked", "reject", "rejected", "reset",
    ];
    let mut yes = false;
    for w in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        if NO.iter().any(|n| w.eq_ignore_ascii_case(n)) {
            return false;
        }
        yes |= YES.iter().any(|y| w.eq_ignore_ascii_case(y));
    }
    yes
}

/// A whole number of bytes or a port, surrounding white space trimmed.
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// A port: a number of at most 65535.
pub fn port(text: &str) -> Option<u16> {
    text.trim().parse().ok()
}

/// A value that is not empty once trimmed.
pub fn present(text: &str) -> Option<Cow<'_, str>> {
    let t = text.trim();
    (!t.is_empty()).then_some(Cow::Borrowed(t))
}

/// Asserts a record's destination, port and source (the unit tests of
/// every reader).
#[cfg(test)]
pub fn assert_target(r: &Record<'_>, dest: &str, port: u16, source: &str) {
    assert_eq!(r.destination.as_deref(), Some(dest), "{r:?}");
    assert_eq!(r.port, Some(port), "{r:?}");
    assert_eq!(r.details.source.as_deref(), Some(source), "{r:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marker search finds what trying every marker at every offset of
    /// the first 256 bytes finds, on lines with markers, their first bytes
    /// and bytes around them (every byte value) anywhere.
    #[test]
    fn markers_are_found_where_they_first_stand() {
        let reference = |line: &[u8]| {
            (0..line.len().min(256)).find_map(|i| {
                let found = MARKERS.iter().find(|(m, _)| line[i..].starts_with(m));
                found.map(|&(_, f)| (f, i))
            })
        };
        let pieces: [&[u8]; 12] = [
            b"%ASA-",
            b"%FTD-",
            b"CEF:",
            b"LEEF:",
            b",TRAFFIC,",
            b"%",
            b"C",
            b"L",
            b",",
            b"x",
            b" ",
            b"\xff",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in 0..20_000u32 {
            let mut line = Vec::new();
            while line.len() < 300 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                match seed % 16 {
                    0 => line.push((seed >> 8) as u8),
                    k if k < 4 => line.extend_from_slice(pieces[(seed >> 20) as usize % 12]),
                    _ => line.extend(core::iter::repeat_n(b'a', (seed >> 30) as usize % 40)),
                }
                if n.is_multiple_of(3) && seed.is_multiple_of(5) {
                    break;
                }
            }
            assert_eq!(
                marker(&line),
                reference(&line),
                "{:?}",
                String::from_utf8_lossy(&line)
            );
        }
        for c in 0..=255u8 {
            let line = [b"aaaa".as_slice(), &[c], b"ASA-x"].concat();
            assert_eq!(marker(&line), reference(&line), "{c}");
        }
    }

    #[test]
    fn action_words() {
        for yes in ["allow", "Accept", "permitted", "pass", "TRAFFIC_ALLOW"] {
            assert!(allows(yes), "{yes}");
        }
        for no in [
            "deny",
            "drop",
            "block",
            "allow-then-drop",
            "",
            "close",
            "reset-both",
        ] {
            assert!(!allows(no), "{no}");
        }
    }

    #[test]
    fn formats_turned_off_are_not_read() {
        let cef = b"CEF:0|V|P|1|100|conn|3|src=10.0.0.5 dst=203.0.113.9 dpt=445 act=allow";
        let mut only_leef = Readers::new(&[RawFormat::Leef]);
        assert!(matches!(only_leef.read(cef), Line::Other));
        let mut auto = Readers::new(&[RawFormat::Auto]);
        assert!(matches!(auto.read(cef), Line::Record(r) if r.format == Format::Cef));
        assert!(!Readers::new(&[]).any());
    }
}

//! Zeek's TSV logs, as Zeek's ASCII writer writes them: header lines
//! (`#separator \x09`, `#set_separator`, `#empty_field (empty)`,
//! `#unset_field -`, `#path conn`, `#open`, `#fields`, `#types`, `#close`),
//! then one row per record, its columns in the `#fields` order. The
//! reader remembers the last header: separator, path, field names, the
//! unset (`-`) and empty (`(empty)`) markers, which both read as missing.
//!
//! | reading | column (by its `#fields` name) |
//! |---|---|
//! | source, destination, port | `id.orig_h`, `id.resp_h`, `id.resp_p` |
//! | bytes sent / received | `orig_bytes` / `resp_bytes` |
//! | time | `ts` (epoch seconds; the connection's start, spec §6) |
//! | permitted | a conn.log row (`#path conn`; without `#path`, the fields have `conn_state`) whose `conn_state` is not `S0` or `REJ`; rows of other logs (smb_mapping, ftp, dce_rpc: same `id.*` columns, one row per command or file) are labelled, never counted |
//!
//! Without a header seen (a file cut after it; with `workers > 1`, a batch
//! whose header another worker read) a row is read in the default column
//! order of conn.log (`ts uid id.orig_h id.orig_p id.resp_h id.resp_p
//! proto service duration orig_bytes resp_bytes conn_state ...`), and is
//! taken as a conn row only when it has at least 12 columns and column 12
//! is a conn state (`SF`, `S0`, `OTH`, ...).
//!
//! Grouped like `cim`. Every row gets four more columns, the label
//! (`raw::label`), and the `#fields` and `#types` lines gain their names
//! and types (`string bool bool string`), so the file stays a Zeek log.

use super::label::Names;
use std::borrow::Cow;

use super::stamp::When;
use super::{Format, Record, Splice, number, port, present};
use crate::schema::Details;

/// A header line that names the columns, and the separator it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    Fields(u8),
    Types(u8),
}

/// Zeek's conn states.
const CONN_STATES: &[&str] = &[
    "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
];

/// Where the columns the rule reads are.
#[derive(Debug, Clone, Copy)]
struct Cols {
    ts: Option<usize>,
    orig_h: Option<usize>,
    resp_h: Option<usize>,
    resp_p: Option<usize>,
    orig_bytes: Option<usize>,
    resp_bytes: Option<usize>,
    conn_state: Option<usize>,
}

/// conn.log's default order.
const DEFAULT_COLS: Cols = Cols {
    ts: Some(0),
    orig_h: Some(2),
    resp_h: Some(4),
    resp_p: Some(5),
    orig_bytes: Some(9),
    resp_bytes: Some(10),
    conn_state: Some(11),
};

/// The last header read.
#[derive(Debug)]
pub struct Header {
    sep: u8,
    path: Option<String>,
    cols: Cols,
    /// A `#fields` line was read.
    seen: bool,
    unset: String,
    empty: String,
}

impl Default for Header {
    fn default() -> Header {
        Header {
            sep: b'\t',
            path: None,
            cols: DEFAULT_COLS,
            seen: false,
            unset: "-".into(),
            empty: "(empty)".into(),
        }
    }
}

impl Header {
    /// Reads a `#` line; `Some` when it is `#fields` or `#types`.
    pub fn read_header(&mut self, line: &str) -> Option<Extend> {
        if let Some(v) = line.strip_prefix("#separator ") {
            // A new log starts.
            *self = Header {
                sep: unescape_byte(v.trim()).unwrap_or(b'\t'),
                ..Header::default()
            };
            return None;
        }
        let sep = char::from(self.sep);
        let (directive, value) = line.split_once(sep)?;
        match directive {
            "#fields" => {
                let names: Vec<&str> = value.split(sep).collect();
                let at = |n: &str| names.iter().position(|x| *x == n);
                self.cols = Cols {
                    ts: at("ts"),
                    orig_h: at("id.orig_h"),
                    resp_h: at("id.resp_h"),
                    resp_p: at("id.resp_p"),
                    orig_bytes: at("orig_bytes"),
                    resp_bytes: at("resp_bytes"),
                    conn_state: at("conn_state"),
                };
                self.seen = true;
                return Some(Extend::Fields(self.sep));
            }
            "#types" => return Some(Extend::Types(self.sep)),
            "#path" => self.path = Some(value.to_string()),
            "#unset_field" => self.unset = value.to_string(),
            "#empty_field" => self.empty = value.to_string(),
            _ => {}
        }
        None
    }

    /// Whether `line` looks like a row: at least six columns, and without a
    /// header a numeric first column (`ts`).
    pub fn is_row(&self, line: &str) -> bool {
        let sep = self.sep;
        if line.bytes().filter(|&c| c == sep).take(5).count() < 5 {
            return false;
        }
        self.seen || {
            let ts = line.split(char::from(sep)).next().unwrap_or("");
            !ts.is_empty() && ts.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        }
    }

    /// Reads a row.
    pub fn read_row<'a>(&self, line: &'a str) -> Option<Record<'a>> {
        let cols: Vec<&str> = line.split(char::from(self.sep)).collect();
        let get = |i: Option<usize>| {
            let v = *cols.get(i?)?;
            (v != self.unset && v != self.empty).then_some(v)
        };
        let state = get(self.cols.conn_state);
        let conn = if self.seen {
            match &self.path {
                Some(p) => p == "conn",
                None => self.cols.conn_state.is_some(),
            }
        } else {
            cols.len() >= 12 && CONN_STATES.contains(&cols[11])
        };
        Some(Record {
            format: Format::ZeekTsv,
            destination: get(self.cols.resp_h).and_then(present),
            port: get(self.cols.resp_p).and_then(port),
            details: Details {
                source: get(self.cols.orig_h).and_then(present),
                bytes_out: get(self.cols.orig_bytes).and_then(number),
                bytes_in: get(self.cols.resp_bytes).and_then(number),
                user: None,
                process: None,
                time_ms: None,
                permitted: conn && !matches!(state, Some("S0" | "REJ")),
            },
            when: get(self.cols.ts).map_or(When::Unknown, |t| When::Text(Cow::Borrowed(t))),
            bytes_total: None,
            closing: true,
            by_user: false,
            splice: Splice::Columns(self.sep),
        })
    }
}

/// What a `#fields` or `#types` line gains: the label columns' names, or
/// their types.
pub fn write_extension(b: &mut Vec<u8>, x: Extend, names: &Names) {
    let (sep, items): (u8, [&str; 4]) = match x {
        Extend::Fields(sep) => (sep, names.columns().each_ref().map(String::as_str)),
        Extend::Types(sep) => (sep, ["string", "bool", "bool", "string"]),
    };
    for i in items {
        b.push(sep);
        b.extend_from_slice(i.as_bytes());
    }
}

/// `\x09` (Zeek writes its separator escaped) or a character: an ASCII
/// one that is not a line end (the label columns are written with it).
fn unescape_byte(v: &str) -> Option<u8> {
    let b = match v.strip_prefix("\\x") {
        Some(h) => u8::from_str_radix(h, 16).ok()?,
        None => *v.as_bytes().first()?,
    };
    (b.is_ascii() && b != b'\n' && b != b'\r').then_some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONN_HEADER: &[&str] = &[
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2025-11-21-09-00-00",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents",
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tbool\tbool\tcount\tstring\tcount\tcount\tcount\tcount\tset[string]",
    ];
    const ROW: &str = "1763715600.250000\tCabc\t10.0.0.5\t51234\t203.0.113.9\t445\ttcp\tsmb\t1.5\t2097152\t(empty)\tSF\tT\tF\t0\tShADadfF\t10\t500\t8\t400\t-";

    fn header(lines: &[&str]) -> Header {
        let mut h = Header::default();
        for l in lines {
            h.read_header(l);
        }
        h
    }

    #[test]
    fn a_conn_row_under_its_header() {
        let h = header(CONN_HEADER);
        assert!(h.is_row(ROW));
        let r = h.read_row(ROW).unwrap();
        assert_eq!(
            (r.destination.as_deref(), r.port),
            (Some("203.0.113.9"), Some(445))
        );
        assert_eq!(r.details.source.as_deref(), Some("10.0.0.5"));
        assert_eq!(
            (r.details.bytes_out, r.details.bytes_in),
            (Some(2_097_152), None)
        );
        assert_eq!(r.when.resolve(), Some(1_763_715_600_250));
        assert!(r.details.permitted);
        let s0_row = ROW.replace("\tSF\t", "\tS0\t");
        let s0 = h.read_row(&s0_row).unwrap();
        assert!(!s0.details.permitted);
        let unset_row = ROW.replace("\t203.0.113.9\t", "\t-\t");
        let unset = h.read_row(&unset_row).unwrap();
        assert!(unset.destination.is_none());
    }

    #[test]
    fn smb_mapping_rows_are_not_connections() {
        let mut h = header(CONN_HEADER);
        assert_eq!(h.read_header("#separator \\x09"), None);
        for l in [
            "#path\tsmb_mapping",
            "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tpath\tservice\tnative_file_system\tshare_type",
        ] {
            h.read_header(l);
        }
        let row = "1692161687.379241\tCFk0K7CmGGGMIgep9\t10.0.0.5\t51132\t203.0.113.9\t445\t-\t-\t-\tPIPE";
        let r = h.read_row(row).unwrap();
        assert_eq!(r.port, Some(445));
        assert!(!r.details.permitted);
        // Without any header: conn.log's order, and only a conn state
        // makes a conn row.
        let none = Header::default();
        assert!(!none.read_row(row).unwrap().details.permitted);
        assert!(none.read_row(ROW).unwrap().details.permitted);
    }

    #[test]
    fn header_lines_that_name_columns() {
        let mut h = Header::default();
        assert_eq!(h.read_header(CONN_HEADER[6]), Some(Extend::Fields(b'\t')));
        assert_eq!(h.read_header(CONN_HEADER[7]), Some(Extend::Types(b'\t')));
        assert_eq!(h.read_header("#close\t2025-11-21-10-00-00"), None);
        assert_eq!(h.read_header("### BTest baseline data"), None);
        assert_eq!(unescape_byte("\\x0a"), None, "a line end cannot separate");
        assert_eq!(unescape_byte("\\x2c"), Some(b','));
        let mut b = Vec::new();
        write_extension(&mut b, Extend::Fields(b'\t'), &Names::new("t1071"));
        write_extension(&mut b, Extend::Types(b'\t'), &Names::new("t1071"));
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "\tt1071_protocol\tt1071_external\tt1071_counted\tt1071_allowlisted\tstring\tbool\tbool\tstring"
        );
    }
}

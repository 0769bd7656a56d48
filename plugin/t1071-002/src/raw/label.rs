//! The label in a raw line's own syntax (spec §2 Enrichment, §6): the same
//! members as the JSON label object (`protocol` when the port is watched,
//! `external` when the destination is an address, `counted`, `allowlisted`
//! when an entry matched), appended at the end of the line, whose bytes
//! stay as they were.
//!
//! | splice | lines | form |
//! |---|---|---|
//! | `Pairs` | syslog `key=value`, FortiGate, Cisco ASA | ` t1071_protocol=SMB t1071_external=true t1071_counted=true` (a value with a space, `"` or `=` in `"…"`, `\` escaping) |
//! | `Csv` | PAN-OS | `,t1071_protocol=SMB,t1071_external=true,…`: more CSV fields after the last (a field with `,` or `"` quoted as CSV does) |
//! | `Cef` | CEF | ` t1071Protocol=SMB t1071External=true …`: extension keys, values escaped as CEF says (`\\`, `\=`, `\n`) |
//! | `Leef` | LEEF | `t1071Protocol=SMB` attributes after the line's delimiter (tab, or LEEF 2.0's own) |
//! | `Columns` | Zeek TSV | four more columns `t1071_protocol`, `t1071_external`, `t1071_counted`, `t1071_allowlisted` (`-` unset, `T`/`F`); the `#fields` and `#types` headers gain them |
//!
//! The names come from `enrich_key`: `<key>_<member>` for pairs, CSV and
//! Zeek (characters other than letters, digits, `_`, `.`, `-` become `_`),
//! `<key><Member>` for CEF and LEEF (letters and digits of the key only,
//! as CEF keys are).

/// How a record's line takes its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splice {
    Pairs,
    Csv,
    Cef,
    Leef(u8),
    Columns(u8),
}

/// What the rule concluded, as the label says it.
#[derive(Debug, Clone, Copy)]
pub struct Label<'a> {
    pub protocol: Option<&'a str>,
    pub external: Option<bool>,
    pub counted: bool,
    pub allowlisted: Option<&'a str>,
}

const MEMBERS: [&str; 4] = ["protocol", "external", "counted", "allowlisted"];

/// The label's names, from `enrich_key`.
#[derive(Debug, Clone)]
pub struct Names {
    snake: [String; 4],
    camel: [String; 4],
}

impl Names {
    pub fn new(key: &str) -> Names {
        let snake_key: String = key
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '.' | '-' => c,
                _ => '_',
            })
            .collect();
        let camel_key: String = key.chars().filter(char::is_ascii_alphanumeric).collect();
        Names {
            snake: MEMBERS.map(|m| format!("{snake_key}_{m}")),
            camel: MEMBERS.map(|m| {
                let (first, rest) = m.split_at(1);
                format!("{camel_key}{}{rest}", first.to_ascii_uppercase())
            }),
        }
    }

    /// The Zeek column names (the `#fields` header's additions).
    pub fn columns(&self) -> &[String; 4] {
        &self.snake
    }
}

/// Writes the splice for `label` (`None`: a Zeek row the rule could not
/// read, which still gets its columns, unset). `bare`: the line ends where
/// its attributes would start (a CEF or LEEF line without any), so no
/// separator goes first.
pub fn write(
    b: &mut Vec<u8>,
    splice: Splice,
    names: &Names,
    label: Option<&Label<'_>>,
    bare: bool,
) {
    if let Splice::Columns(sep) = splice {
        return write_columns(b, sep, label);
    }
    let Some(l) = label else { return };
    let external = l.external.map(|e| if e { "true" } else { "false" });
    let counted = Some(if l.counted { "true" } else { "false" });
    let values = [l.protocol, external, counted, l.allowlisted];
    let mut first = true;
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else { continue };
        let (sep, name) = match splice {
            Splice::Pairs => (b' ', &names.snake[i]),
            Splice::Csv => (b',', &names.snake[i]),
            Splice::Cef => (b' ', &names.camel[i]),
            Splice::Leef(d) => (d, &names.camel[i]),
            Splice::Columns(_) => unreachable!("written above"),
        };
        if !(first && bare) {
            b.push(sep);
        }
        first = false;
        match splice {
            Splice::Pairs => pair(b, name, v),
            Splice::Csv => csv_field(b, name, v),
            Splice::Cef => cef_pair(b, name, v),
            _ => plain_pair(b, name, v, sep),
        }
    }
}

fn pair(b: &mut Vec<u8>, name: &str, v: &str) {
    b.extend_from_slice(name.as_bytes());
    b.push(b'=');
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        b.extend_from_slice(v.as_bytes());
        return;
    }
    b.push(b'"');
    for c in v.bytes() {
        match c {
            b'"' | b'\\' => b.extend_from_slice(&[b'\\', c]),
            b'\n' | b'\r' => b.push(b' '),
            _ => b.push(c),
        }
    }
    b.push(b'"');
}

fn csv_field(b: &mut Vec<u8>, name: &str, v: &str) {
    let quote = v.contains([',', '"']);
    if quote {
        b.push(b'"');
    }
    b.extend_from_slice(name.as_bytes());
    b.push(b'=');
    for c in v.bytes() {
        match c {
            b'"' => b.extend_from_slice(b"\"\""),
            b'\n' | b'\r' => b.push(b' '),
            _ => b.push(c),
        }
    }
    if quote {
        b.push(b'"');
    }
}

fn cef_pair(b: &mut Vec<u8>, name: &str, v: &str) {
    b.extend_from_slice(name.as_bytes());
    b.push(b'=');
    for c in v.bytes() {
        match c {
            b'\\' => b.extend_from_slice(b"\\\\"),
            b'=' => b.extend_from_slice(b"\\="),
            b'\n' => b.extend_from_slice(b"\\n"),
            b'\r' => b.extend_from_slice(b"\\r"),
            _ => b.push(c),
        }
    }
}

/// `name=value`, where the value cannot hold `sep` or a line end.
fn plain_pair(b: &mut Vec<u8>, name: &str, v: &str, sep: u8) {
    b.extend_from_slice(name.as_bytes());
    b.push(b'=');
    b.extend(v.bytes().map(|c| {
        if c == sep || c == b'\n' || c == b'\r' {
            b' '
        } else {
            c
        }
    }));
}

fn write_columns(b: &mut Vec<u8>, sep: u8, label: Option<&Label<'_>>) {
    let flag = |v: Option<bool>| match v {
        Some(true) => "T",
        Some(false) => "F",
        None => "-",
    };
    let values = match label {
        Some(l) => [
            l.protocol.unwrap_or("-"),
            flag(l.external),
            flag(Some(l.counted)),
            l.allowlisted.unwrap_or("-"),
        ],
        None => ["-"; 4],
    };
    for v in values {
        b.push(sep);
        if v.is_empty() {
            b.extend_from_slice(b"(empty)");
        }
        b.extend(v.bytes().map(|c| {
            if c == sep || c == b'\n' || c == b'\r' {
                b' '
            } else {
                c
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> Label<'static> {
        Label {
            protocol: Some("SMB"),
            external: Some(true),
            counted: false,
            allowlisted: Some("backup, \"nightly\" = ok"),
        }
    }

    fn written(splice: Splice, bare: bool) -> String {
        let mut b = Vec::new();
        write(&mut b, splice, &Names::new("t1071"), Some(&label()), bare);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn each_form() {
        assert_eq!(
            written(Splice::Pairs, false),
            r#" t1071_protocol=SMB t1071_external=true t1071_counted=false t1071_allowlisted="backup, \"nightly\" = ok""#
        );
        assert_eq!(
            written(Splice::Csv, false),
            r#",t1071_protocol=SMB,t1071_external=true,t1071_counted=false,"t1071_allowlisted=backup, ""nightly"" = ok""#
        );
        assert_eq!(
            written(Splice::Cef, true),
            r#"t1071Protocol=SMB t1071External=true t1071Counted=false t1071Allowlisted=backup, "nightly" \= ok"#
        );
        assert_eq!(
            written(Splice::Leef(b'^'), false),
            r#"^t1071Protocol=SMB^t1071External=true^t1071Counted=false^t1071Allowlisted=backup, "nightly" = ok"#
        );
        assert_eq!(
            written(Splice::Columns(b'\t'), false),
            "\tSMB\tT\tF\tbackup, \"nightly\" = ok"
        );
        let mut b = Vec::new();
        write(
            &mut b,
            Splice::Columns(b'\t'),
            &Names::new("t1071"),
            None,
            false,
        );
        assert_eq!(b, b"\t-\t-\t-\t-");
    }

    #[test]
    fn names_follow_the_enrich_key() {
        let n = Names::new("my key");
        assert_eq!(n.snake[0], "my_key_protocol");
        assert_eq!(n.camel[2], "mykeyCounted");
    }
}

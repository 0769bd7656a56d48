//! The manifest: what a module says about itself, for operators and
//! tools, without running it. Optional: a module without one runs as
//! before (the calls of the contract do not change), but has no
//! configuration checked against a schema and nothing to show in
//! `rulebox inspect`.
//!
//! # Format
//!
//! One wasm custom section named [`SECTION`] holding one UTF-8 JSON object
//! (whitespace around it and between its tokens is allowed, so a
//! pretty-printed file's bytes will do) of at most [`MAX_MANIFEST_BYTES`]
//! bytes:
//!
//! ```text
//! {
//!   "manifest_version": 1,             this format (MANIFEST_VERSION); required
//!   "name": "t1071-002",               required, non-empty
//!   "version": "0.1.0",                required, non-empty
//!   "description": "...",              optional, as are all below
//!   "author": "...",
//!   "techniques": ["T1071.002"],       MITRE ATT&CK technique ids
//!   "outputs": ["alerts"],             the named outputs it may declare
//!   "abi_version": 1,                  the ABI_VERSION it was built for
//!   "config_schema": { ... }           a JSON Schema of its configuration
//! }
//! ```
//!
//! `config_schema` is read by the host as a subset of JSON Schema (draft
//! 2020-12): `type` (a name or a list of `object`, `array`, `string`,
//! `integer`, `number`, `boolean`, `null`), `properties`, `required`,
//! `additionalProperties` (`false` or a schema), `enum`, `items`,
//! `minimum`, `maximum`, `minItems`, `maxItems`, `minLength`,
//! `maxLength`; other keywords (`description`, `default`, `$schema`, ...)
//! are annotations and not checked. The host checks the
//! `[transforms.<id>.config]` table against it before `rulebox_init`, in
//! `rulebox validate` as at `rulebox run`. A manifest that is not valid
//! JSON, lacks a required member, has another `manifest_version`, or a
//! schema the host cannot read, gets the module refused; so do two
//! sections of that name (a linker joins them into one, which is then not
//! one JSON object).
//!
//! The SDK writes the section from a [`Manifest`], at compile time
//! (`export_rule!(MyRule, manifest = ...)`): its `const fn`s produce the
//! JSON bytes, escaped, with [`ABI_VERSION`](crate::ABI_VERSION) filled in.

/// The custom section's name.
pub const SECTION: &str = "rulebox.manifest";

/// The version of the manifest format this crate writes and the host reads.
pub const MANIFEST_VERSION: u32 = 1;

/// Largest manifest section the host reads; a larger one is refused.
pub const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// What a rule declares about itself, written as the manifest's JSON at
/// compile time. Every text is escaped as JSON; `config_schema` is copied
/// as is and must be a JSON object (an `include_str!` of a schema file).
#[derive(Debug, Clone, Copy)]
pub struct Manifest<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub description: &'a str,
    pub author: &'a str,
    pub techniques: &'a [&'a str],
    pub outputs: &'a [&'a str],
    pub config_schema: Option<&'a str>,
}

impl Manifest<'_> {
    /// The length of [`Manifest::to_json`]'s bytes.
    pub const fn json_len(&self) -> usize {
        self.write(&mut Writer {
            out: &mut [],
            at: 0,
        })
    }

    /// The manifest as JSON, in exactly `N` = [`Manifest::json_len`] bytes
    /// (a shorter `N` cuts it; a longer one pads it with spaces).
    pub const fn to_json<const N: usize>(&self) -> [u8; N] {
        let mut out = [b' '; N];
        self.write(&mut Writer {
            out: &mut out,
            at: 0,
        });
        out
    }

    const fn write(&self, w: &mut Writer<'_>) -> usize {
        w.raw("{\"manifest_version\":");
        w.number(MANIFEST_VERSION);
        w.raw(",\"name\":");
        w.string(self.name);
        w.raw(",\"version\":");
        w.string(self.version);
        w.raw(",\"description\":");
        w.string(self.description);
        w.raw(",\"author\":");
        w.string(self.author);
        w.raw(",\"techniques\":");
        w.strings(self.techniques);
        w.raw(",\"outputs\":");
        w.strings(self.outputs);
        w.raw(",\"abi_version\":");
        w.number(crate::ABI_VERSION);
        if let Some(schema) = self.config_schema {
            w.raw(",\"config_schema\":");
            w.raw(schema);
        }
        w.raw("}");
        w.at
    }
}

/// Bytes written into `out` (as many as fit), counted in `at`.
struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    const fn byte(&mut self, b: u8) {
        if self.at < self.out.len() {
            self.out[self.at] = b;
        }
        self.at += 1;
    }

    const fn raw(&mut self, s: &str) {
        let s = s.as_bytes();
        let mut i = 0;
        while i < s.len() {
            self.byte(s[i]);
            i += 1;
        }
    }

    const fn number(&mut self, n: u32) {
        let mut div = 1_000_000_000;
        let mut started = false;
        while div > 0 {
            let d = (n / div % 10) as u8;
            if d != 0 || started || div == 1 {
                self.byte(b'0' + d);
                started = true;
            }
            div /= 10;
        }
    }

    const fn string(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let s = s.as_bytes();
        self.byte(b'"');
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if c == b'"' || c == b'\\' {
                self.byte(b'\\');
                self.byte(c);
            } else if c < 0x20 {
                self.raw("\\u00");
                self.byte(HEX[(c >> 4) as usize]);
                self.byte(HEX[(c & 15) as usize]);
            } else {
                self.byte(c);
            }
            i += 1;
        }
        self.byte(b'"');
    }

    const fn strings(&mut self, list: &[&str]) {
        self.byte(b'[');
        let mut i = 0;
        while i < list.len() {
            if i > 0 {
                self.byte(b',');
            }
            self.string(list[i]);
            i += 1;
        }
        self.byte(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Manifest<'static> = Manifest {
        name: "r\"x",
        version: "1.0.0",
        description: "line\none \\ two",
        author: "",
        techniques: &["T1", "T2"],
        outputs: &[],
        config_schema: Some(r#"{"type":"object"}"#),
    };
    const LEN: usize = M.json_len();
    static BYTES: [u8; LEN] = M.to_json::<LEN>();

    #[test]
    fn the_manifest_is_json_written_at_compile_time() {
        let v: serde_json::Value = serde_json::from_slice(&BYTES).unwrap();
        assert_eq!(v["manifest_version"], MANIFEST_VERSION);
        assert_eq!(v["name"], "r\"x");
        assert_eq!(v["description"], "line\none \\ two");
        assert_eq!(v["techniques"], serde_json::json!(["T1", "T2"]));
        assert_eq!(v["outputs"], serde_json::json!([]));
        assert_eq!(v["abi_version"], crate::ABI_VERSION);
        assert_eq!(v["config_schema"]["type"], "object");
        let without = Manifest {
            config_schema: None,
            ..M
        };
        let n = without.json_len();
        let v: serde_json::Value = serde_json::from_slice(&without.to_json::<512>()[..n]).unwrap();
        assert!(v.get("config_schema").is_none());
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        let mut out = [0u8; 10];
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (10, "10"),
            (4_294_967_295, "4294967295"),
        ] {
            let mut w = Writer {
                out: &mut out,
                at: 0,
            };
            w.number(n);
            let at = w.at;
            assert_eq!(&out[..at], want.as_bytes());
        }
    }
}

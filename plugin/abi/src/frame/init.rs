//! The init frame: the answer to `rulebox_init` ([`InitFrame`]), with the
//! plugin's named outputs, whether several instances may share its input
//! ([`INIT_PARALLEL`]), and how it reads events — as bytes, or as objects
//! scanned by the host, with the keys and path plan it declares
//! ([`ObjectReads`]) and the limits that bound the host's work for them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{FrameError, Status, read_u32};

/// Init-frame flag: give this plugin scanned events (an objects index)
/// through [`crate::export::PROCESS_OBJECTS`].
pub const INIT_READS_OBJECTS: u32 = 1;

/// Init-frame flag (with [`INIT_READS_OBJECTS`]): the objects index need
/// only list the members with the top-level keys that follow the flags.
pub const INIT_OBJECT_KEYS: u32 = 2;

/// Init-frame flag (with [`INIT_READS_OBJECTS`]): resolve the path plan
/// that follows (after the keys, if any) for every event.
pub const INIT_OBJECT_PATHS: u32 = 4;

/// Init-frame flag: the plugin's answers for a batch do not depend on any
/// other batch (it keeps no state across batches that changes them), so
/// the host may run several instances of it side by side on one input
/// (`workers > 1`), each seeing some of the batches. Without it, a plugin
/// that exports [`crate::export::SNAPSHOT`] and [`crate::export::RESTORE`]
/// (the contract's sign that it keeps state) runs as one instance; one
/// without those exports is taken to keep no state, as before this flag
/// existed. Independent of [`INIT_READS_OBJECTS`].
pub const INIT_PARALLEL: u32 = 8;

/// How a plugin reads its events (declared in its init frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads<'a> {
    /// The event bytes (`rulebox_process`).
    Bytes,
    /// Events scanned by the host, with an objects index
    /// ([`INIT_READS_OBJECTS`]).
    Objects(ObjectReads<'a>),
}

/// At most this many declared keys ([`INIT_OBJECT_KEYS`]).
pub const MAX_OBJECT_KEYS: usize = 4096;
/// At most this many paths in a plan, `when` paths included
/// ([`INIT_OBJECT_PATHS`]): the host resolves them outside the plugin's
/// deadline, so their number and depth are bounded.
pub const MAX_PLAN_PATHS: usize = 512;
/// At most this many dots in a plan's path (a lookup tries every split).
pub const MAX_PATH_DOTS: usize = 4;
/// At most this many groups in a plan (each costs the host a lookup of its
/// `when` paths per event, and memory, even when empty).
pub const MAX_PLAN_GROUPS: usize = 64;
/// At most this many outputs a plugin declares.
pub const MAX_OUTPUTS: usize = 64;
/// Longest output name, bytes.
pub const MAX_OUTPUT_NAME: usize = 64;
/// Longest declared key or plan path, bytes.
pub const MAX_DECLARED_BYTES: usize = 256;

/// What a plugin that reads objects asks the host for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectReads<'a> {
    /// Only the members with these top-level keys ([`INIT_OBJECT_KEYS`]);
    /// `None`: every member.
    pub keys: Option<Vec<&'a str>>,
    /// A path plan to resolve ([`INIT_OBJECT_PATHS`]): per group, its
    /// `when` paths and its paths.
    pub groups: Option<Vec<(Vec<&'a str>, Vec<&'a str>)>>,
}

impl ObjectReads<'_> {
    /// Whether the request stays within [`MAX_OBJECT_KEYS`],
    /// [`MAX_PLAN_PATHS`] and [`MAX_PATH_DOTS`]; the error says how not.
    pub fn check(&self) -> Result<(), String> {
        let keys = self.keys.as_ref().map_or(0, Vec::len);
        if keys > MAX_OBJECT_KEYS {
            return Err(format!("{keys} declared keys (at most {MAX_OBJECT_KEYS})"));
        }
        let paths = || {
            self.groups
                .iter()
                .flatten()
                .flat_map(|(w, p)| w.iter().chain(p))
        };
        let n = paths().count();
        if n > MAX_PLAN_PATHS {
            return Err(format!("{n} paths in the plan (at most {MAX_PLAN_PATHS})"));
        }
        match paths().find(|p| p.matches('.').count() > MAX_PATH_DOTS) {
            Some(p) => Err(format!(
                "plan path {p:?} has more than {MAX_PATH_DOTS} dots"
            )),
            None => Ok(()),
        }
    }
}

/// The answer to `rulebox_init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitFrame<'a> {
    Ok {
        /// The plugin's declared outputs, in id order (id 1 is the first).
        outputs: Vec<&'a str>,
        /// How it reads events.
        reads: Reads<'a>,
        /// [`INIT_PARALLEL`]: several instances may share its input.
        parallel: bool,
    },
    Error(&'a str),
}

impl<'a> InitFrame<'a> {
    /// Reads an init frame (the host's side), checking every length.
    pub fn parse(bytes: &'a [u8]) -> Result<InitFrame<'a>, FrameError> {
        let status = read_u32(bytes, 0)?;
        let n = read_u32(bytes, 4)? as usize;
        let text = |at: usize, len: usize| -> Result<&'a str, FrameError> {
            let end = at.checked_add(len).ok_or(FrameError::Truncated {
                need: usize::MAX,
                have: bytes.len(),
            })?;
            let s = bytes.get(at..end).ok_or(FrameError::Truncated {
                need: end,
                have: bytes.len(),
            })?;
            core::str::from_utf8(s).map_err(|_| FrameError::NotUtf8)
        };
        // `n` length-prefixed strings from `at` (at most `cap.0` of at most
        // `cap.1` bytes each: checked before anything is kept); returns
        // them and the end.
        let strings = |mut at: usize,
                       n: usize,
                       what: &'static str,
                       cap: (usize, usize)|
         -> Result<(Vec<&'a str>, usize), FrameError> {
            if n > cap.0 {
                return Err(FrameError::TooMany {
                    what,
                    n,
                    max: cap.0,
                });
            }
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let len = read_u32(bytes, at)? as usize;
                if len > cap.1 {
                    return Err(FrameError::TooLong {
                        what,
                        len,
                        max: cap.1,
                    });
                }
                out.push(text(at + 4, len)?);
                at = at + 4 + len;
            }
            Ok((out, at))
        };
        match status {
            0 => {
                let (names, at) = strings(8, n, "outputs", (MAX_OUTPUTS, MAX_OUTPUT_NAME))?;
                let flags = if bytes.len() > at {
                    read_u32(bytes, at)?
                } else {
                    0
                };
                let parallel = flags & INIT_PARALLEL != 0;
                if flags & INIT_READS_OBJECTS == 0 {
                    return Ok(InitFrame::Ok {
                        outputs: names,
                        reads: Reads::Bytes,
                        parallel,
                    });
                }
                let mut at = at + 4;
                let list = |at: &mut usize, what, max_n| -> Result<Vec<&'a str>, FrameError> {
                    let n = read_u32(bytes, *at)? as usize;
                    let (items, end) = strings(*at + 4, n, what, (max_n, MAX_DECLARED_BYTES))?;
                    *at = end;
                    Ok(items)
                };
                let mut reads = ObjectReads::default();
                if flags & INIT_OBJECT_KEYS != 0 {
                    reads.keys = Some(list(&mut at, "keys", MAX_OBJECT_KEYS)?);
                }
                if flags & INIT_OBJECT_PATHS != 0 {
                    let g = read_u32(bytes, at)? as usize;
                    at += 4;
                    if g > MAX_PLAN_GROUPS {
                        let (what, max) = ("plan groups", MAX_PLAN_GROUPS);
                        return Err(FrameError::TooMany { what, n: g, max });
                    }
                    let mut groups = Vec::with_capacity(g);
                    // Paths left of the plan's budget, across its groups.
                    let mut left = MAX_PLAN_PATHS;
                    for _ in 0..g {
                        let when = list(&mut at, "plan paths", left)?;
                        left -= when.len();
                        let paths = list(&mut at, "plan paths", left)?;
                        left -= paths.len();
                        groups.push((when, paths));
                    }
                    reads.groups = Some(groups);
                }
                Ok(InitFrame::Ok {
                    outputs: names,
                    reads: Reads::Objects(reads),
                    parallel,
                })
            }
            1 => Ok(InitFrame::Error(text(8, n)?)),
            s => Err(FrameError::BadStatus(s)),
        }
    }

    /// Encodes this answer (the guest's side).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        let strings = |out: &mut Vec<u8>, items: &[&str]| {
            out.extend_from_slice(&(items.len() as u32).to_le_bytes());
            for s in items {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        };
        match self {
            InitFrame::Ok {
                outputs,
                reads,
                parallel,
            } => {
                out.extend_from_slice(&(Status::Ok as u32).to_le_bytes());
                strings(out, outputs);
                let parallel = if *parallel { INIT_PARALLEL } else { 0 };
                let flags = parallel
                    | match reads {
                        Reads::Bytes => 0,
                        Reads::Objects(o) => {
                            INIT_READS_OBJECTS
                                | if o.keys.is_some() {
                                    INIT_OBJECT_KEYS
                                } else {
                                    0
                                }
                                | if o.groups.is_some() {
                                    INIT_OBJECT_PATHS
                                } else {
                                    0
                                }
                        }
                    };
                out.extend_from_slice(&flags.to_le_bytes());
                if let Reads::Objects(o) = reads {
                    if let Some(keys) = &o.keys {
                        strings(out, keys);
                    }
                    if let Some(groups) = &o.groups {
                        out.extend_from_slice(&(groups.len() as u32).to_le_bytes());
                        for (when, paths) in groups {
                            strings(out, when);
                            strings(out, paths);
                        }
                    }
                }
            }
            InitFrame::Error(msg) => {
                out.extend_from_slice(&(Status::Error as u32).to_le_bytes());
                out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
                out.extend_from_slice(msg.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<'a>(outputs: Vec<&'a str>, reads: Reads<'a>) -> InitFrame<'a> {
        InitFrame::Ok {
            outputs,
            reads,
            parallel: false,
        }
    }

    #[test]
    fn init_frame_round_trips() {
        let mut out = Vec::new();
        let keys = |k: Option<Vec<&'static str>>| {
            Reads::Objects(ObjectReads {
                keys: k,
                groups: None,
            })
        };
        for reads in [
            Reads::Bytes,
            keys(None),
            keys(Some(vec![])),
            keys(Some(vec!["dest_ip", "destination", "é.x"])),
            Reads::Objects(ObjectReads {
                keys: Some(vec!["t1071"]),
                groups: Some(vec![
                    (vec!["id.resp_h"], vec!["id.resp_h", "id.resp_p"]),
                    (vec![], vec![]),
                    (vec![], vec!["dest_ip"]),
                ]),
            }),
            Reads::Objects(ObjectReads {
                keys: None,
                groups: Some(vec![]),
            }),
        ] {
            for parallel in [false, true] {
                let frame = InitFrame::Ok {
                    outputs: vec!["alerts", "dead"],
                    reads: reads.clone(),
                    parallel,
                };
                frame.encode(&mut out);
                assert_eq!(InitFrame::parse(&out).unwrap(), frame);
            }
        }
        // Keys announced but cut short.
        ok(vec!["a"], keys(Some(vec!["key"]))).encode(&mut out);
        assert!(InitFrame::parse(&out[..out.len() - 1]).is_err());
        assert!(InitFrame::parse(&out[..out.len() - 11]).is_err());
        // A group cut short.
        let g = Reads::Objects(ObjectReads {
            keys: None,
            groups: Some(vec![(vec!["w"], vec!["p", "q"])]),
        });
        ok(vec!["a"], g).encode(&mut out);
        for cut in 1..20 {
            assert!(InitFrame::parse(&out[..out.len() - cut]).is_err(), "{cut}");
        }
        // A frame that ends after the names (no flags word) reads raw
        // events and does not declare INIT_PARALLEL.
        let mut b = Vec::new();
        for v in [0u32, 1, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(b'x');
        assert_eq!(InitFrame::parse(&b).unwrap(), ok(vec!["x"], Reads::Bytes));
        // INIT_PARALLEL alone, and beside the objects flags.
        for flags in [INIT_PARALLEL, INIT_PARALLEL | INIT_READS_OBJECTS] {
            let mut with = b.clone();
            with.extend_from_slice(&flags.to_le_bytes());
            let InitFrame::Ok { parallel, .. } = InitFrame::parse(&with).unwrap() else {
                panic!("not ok")
            };
            assert!(parallel, "{flags}");
        }
        InitFrame::Error("bad cidr").encode(&mut out);
        assert_eq!(
            InitFrame::parse(&out).unwrap(),
            InitFrame::Error("bad cidr")
        );
        // A name length pointing past the end.
        let mut b = Vec::new();
        for v in [0u32, 1, 99] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        assert!(InitFrame::parse(&b).is_err());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    fn frame(names: &[&str], reads: Reads<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let (outputs, parallel) = (names.to_vec(), false);
        InitFrame::Ok {
            outputs,
            reads,
            parallel,
        }
        .encode(&mut out);
        out
    }

    fn too_many(f: &[u8]) -> (&'static str, usize) {
        match InitFrame::parse(f) {
            Err(FrameError::TooMany { what, n, .. }) => (what, n),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn declarations_over_the_limits_are_refused_while_read() {
        let names: Vec<String> = (0..=MAX_OUTPUTS).map(|i| format!("o{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(too_many(&frame(&names, Reads::Bytes)), ("outputs", 65));
        let empty = || (Vec::new(), Vec::new());
        let groups = (0..=MAX_PLAN_GROUPS).map(|_| empty()).collect();
        let reads = ObjectReads {
            keys: None,
            groups: Some(groups),
        };
        assert_eq!(
            too_many(&frame(&[], Reads::Objects(reads))),
            ("plan groups", 65)
        );
        // 40 groups of 13 paths: 520 paths in all, over the plan's 512.
        let group = || (vec!["a"], vec!["b"; 12]);
        let reads = ObjectReads {
            keys: None,
            groups: Some((0..40).map(|_| group()).collect()),
        };
        assert_eq!(too_many(&frame(&[], Reads::Objects(reads))).0, "plan paths");
        let long = "k".repeat(MAX_DECLARED_BYTES + 1);
        let reads = ObjectReads {
            keys: Some(vec![long.as_str()]),
            groups: None,
        };
        let f = frame(&[], Reads::Objects(reads));
        let got = InitFrame::parse(&f);
        assert!(
            matches!(
                got,
                Err(FrameError::TooLong {
                    what: "keys",
                    len: 257,
                    ..
                })
            ),
            "{got:?}"
        );
        let ok = ObjectReads {
            keys: Some(vec!["a"; MAX_OBJECT_KEYS]),
            groups: Some((0..32).map(|_| group()).collect()),
        };
        assert!(InitFrame::parse(&frame(&["alerts"], Reads::Objects(ok))).is_ok());
    }
}

//! The [`Runner`]: the whole guest side of the contract as plain Rust. It
//! owns the reserved buffer, the frame writer and the scanner, builds the
//! rule from its configuration, cuts batches into events (or reads the
//! host's objects index) and answers every call with a frame. The wasm
//! exports are one-liners into it; natively it is what tests and
//! benchmarks drive.

use crate::abi::frame::index::{BadIndex, IndexReader};
use crate::abi::{EventResult, InitFrame, ObjectReads, Reads, ResultFrameWriter};
use crate::json::{self, Scanner};
use crate::{Emitter, EventOut, Rule};

/// The guest side of the contract, natively callable. The wasm exports of
/// [`export_rule!`](crate::export_rule!) forward to one of these.
#[derive(Debug)]
pub struct Runner<R> {
    rule: Option<R>,
    input: Vec<u8>,
    writer: ResultFrameWriter,
    init: Vec<u8>,
    /// Scans (or loads) events for a rule that reads objects.
    scanner: Scanner,
    /// The rule's [`Rule::object_paths`].
    plan: Option<json::PathPlan>,
}

impl<R: Rule> Default for Runner<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Rule> Runner<R> {
    pub fn new() -> Self {
        Runner {
            rule: None,
            input: Vec::new(),
            writer: ResultFrameWriter::new(),
            init: Vec::new(),
            scanner: Scanner::new(),
            plan: None,
        }
    }

    /// A buffer of at least `len` bytes for the host to write into.
    pub fn reserve(&mut self, len: usize) -> &mut [u8] {
        if self.input.len() < len {
            self.input.resize(len, 0);
        }
        &mut self.input[..len]
    }

    /// Builds the rule from the first `len` reserved bytes; returns an init frame.
    pub fn init_reserved(&mut self, len: usize) -> &[u8] {
        let config = std::mem::take(&mut self.input);
        let end = len.min(config.len());
        let r = self.init(&config[..end]).len();
        self.input = config;
        &self.init[..r]
    }

    /// Builds the rule from `config`; returns an init frame.
    pub fn init(&mut self, config: &[u8]) -> &[u8] {
        match R::new(config) {
            Ok(rule) => {
                let keys = rule.object_keys();
                self.plan = rule.object_paths();
                let reads = if R::READS_OBJECTS {
                    Reads::Objects(ObjectReads {
                        keys: keys
                            .as_ref()
                            .map(|k| k.iter().map(String::as_str).collect()),
                        groups: self.plan.as_ref().map(|p| {
                            p.groups()
                                .iter()
                                .map(|g| (g.when().collect(), g.paths().collect()))
                                .collect()
                        }),
                    })
                } else {
                    Reads::Bytes
                };
                if let Reads::Objects(o) = &reads
                    && let Err(e) = o.check()
                {
                    InitFrame::Error(&e).encode(&mut self.init);
                    return &self.init;
                }
                InitFrame::Ok {
                    outputs: rule.outputs().to_vec(),
                    reads,
                    parallel: rule.parallel(),
                }
                .encode(&mut self.init);
                self.rule = Some(rule);
            }
            Err(msg) => InitFrame::Error(&msg).encode(&mut self.init),
        }
        &self.init
    }

    /// Processes the first `len` reserved bytes as `count` events.
    pub fn process_reserved(&mut self, len: usize, count: usize, now_ms: i64) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let end = len.min(input.len());
        let ok = self.process_batch(&input[..end], count, now_ms);
        self.input = input;
        self.finish(ok)
    }

    /// Processes the reserved buffer as a batch of `batch_len` bytes followed
    /// by its objects index of `index_len` bytes (`rulebox_process_objects`).
    pub fn process_objects_reserved(
        &mut self,
        batch_len: usize,
        count: usize,
        index_len: usize,
        now_ms: i64,
    ) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let batch_end = batch_len.min(input.len());
        let index_end = batch_end.saturating_add(index_len).min(input.len());
        let res = self.process_indexed(
            &input[..batch_end],
            &input[batch_end..index_end],
            count,
            now_ms,
        );
        self.input = input;
        self.finish_indexed(res)
    }

    /// Processes a batch with the objects index the host made of it;
    /// returns a result frame.
    pub fn process_objects(
        &mut self,
        batch: &[u8],
        index: &[u8],
        count: usize,
        now_ms: i64,
    ) -> &[u8] {
        let res = self.process_indexed(batch, index, count, now_ms);
        self.finish_indexed(res)
    }

    fn finish_indexed(&mut self, res: Result<bool, BadIndex>) -> &[u8] {
        match res {
            Ok(initialised) => self.finish(initialised),
            Err(BadIndex) => self
                .writer
                .finish_error("the objects index does not match its batch"),
        }
    }

    fn process_indexed(
        &mut self,
        batch: &[u8],
        index: &[u8],
        count: usize,
        now_ms: i64,
    ) -> Result<bool, BadIndex> {
        self.writer.clear();
        let Some(rule) = self.rule.as_mut() else {
            return Ok(false);
        };
        let mut reader = IndexReader::new(index);
        for _ in 0..count {
            let (event, object) = self.scanner.load(batch, &mut reader, self.plan.as_ref())?;
            let mut out = EventOut {
                w: &mut self.writer,
                result: EventResult::default(),
            };
            rule.on_object(event, object, now_ms, &mut out);
            let result = out.result;
            self.writer.push_event(result);
        }
        Ok(true)
    }

    /// Processes a batch (events each followed by `\n`); returns a result frame.
    pub fn process(&mut self, batch: &[u8], count: usize, now_ms: i64) -> &[u8] {
        let ok = self.process_batch(batch, count, now_ms);
        self.finish(ok)
    }

    fn finish(&mut self, initialised: bool) -> &[u8] {
        if initialised {
            self.writer.finish()
        } else {
            self.writer
                .finish_error("called before a successful rulebox_init")
        }
    }

    /// False when there is no rule yet.
    fn process_batch(&mut self, batch: &[u8], count: usize, now_ms: i64) -> bool {
        self.writer.clear();
        let Some(rule) = self.rule.as_mut() else {
            return false;
        };
        let mut rest = batch;
        for _ in 0..count {
            let (event, next) = match json::find_byte(rest, b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            rest = next;
            let mut out = EventOut {
                w: &mut self.writer,
                result: EventResult::default(),
            };
            if R::READS_OBJECTS {
                let object = match &self.plan {
                    Some(plan) => self.scanner.scan_planned(event, plan),
                    None => self.scanner.scan(event),
                };
                rule.on_object(event, object, now_ms, &mut out);
            } else {
                rule.on_event(event, now_ms, &mut out);
            }
            let result = out.result;
            self.writer.push_event(result);
        }
        true
    }

    pub fn tick(&mut self, now_ms: i64) -> &[u8] {
        self.writer.clear();
        let ok = self.rule.as_mut().map(|rule| {
            rule.on_tick(
                now_ms,
                &mut Emitter {
                    w: &mut self.writer,
                },
            )
        });
        self.finish(ok.is_some())
    }

    pub fn flush(&mut self, now_ms: i64) -> &[u8] {
        self.writer.clear();
        let ok = self.rule.as_mut().map(|rule| {
            rule.on_flush(
                now_ms,
                &mut Emitter {
                    w: &mut self.writer,
                },
            )
        });
        self.finish(ok.is_some())
    }

    /// The rule's state, as a result frame whose payload is the snapshot.
    pub fn snapshot(&mut self, now_ms: i64) -> &[u8] {
        self.state_frame(|rule, out| rule.snapshot(now_ms, out))
    }

    /// The rule's state without ending anything ([`Rule::checkpoint`]), as
    /// a result frame whose payload is the state.
    pub fn checkpoint(&mut self, now_ms: i64) -> &[u8] {
        self.state_frame(|rule, out| rule.checkpoint(now_ms, out))
    }

    /// A result frame whose payload `write` fills with the rule's state.
    fn state_frame(&mut self, write: impl FnOnce(&mut R, &mut Vec<u8>)) -> &[u8] {
        self.writer.clear();
        let ok = self
            .rule
            .as_mut()
            .map(|rule| write(rule, &mut self.writer.payload));
        self.finish(ok.is_some())
    }

    /// Restores the first `len` reserved bytes.
    pub fn restore_reserved(&mut self, len: usize, now_ms: i64) -> &[u8] {
        let input = std::mem::take(&mut self.input);
        let end = len.min(input.len());
        self.restore_inner(&input[..end], now_ms);
        self.input = input;
        self.writer.frame()
    }

    /// Restores a snapshot; answers an ok or error frame.
    pub fn restore(&mut self, data: &[u8], now_ms: i64) -> &[u8] {
        self.restore_inner(data, now_ms);
        self.writer.frame()
    }

    fn restore_inner(&mut self, data: &[u8], now_ms: i64) {
        self.writer.clear();
        let res = match self.rule.as_mut() {
            None => Err("called before a successful rulebox_init".to_string()),
            Some(_) if data.is_empty() => Ok(()),
            Some(rule) => rule.restore(data, now_ms),
        };
        match res {
            Ok(()) => {
                self.writer.finish();
            }
            Err(msg) => {
                self.writer.finish_error(&msg);
            }
        }
    }

    /// The rule, once built (for native tests).
    pub fn rule(&self) -> Option<&R> {
        self.rule.as_ref()
    }
}

//! What a rule answers through: [`EventOut`] for one event (pass, edit,
//! route, drop, or why it could not be read) and [`Emitter`] for records on
//! its named outputs. Both write straight into the frame being built, so a
//! rule never touches an offset or a buffer of the contract.

#[cfg(doc)]
use crate::Rule;
use crate::abi::{Action, EventResult, Reason, ResultFrameWriter};
use crate::json::{self, Object, ScanError};

/// A declared output: 0 is the default event output, `k` the k-th entry of
/// [`Rule::outputs`].
pub type OutputId = u16;

/// Emits records (one NDJSON line each) on named outputs.
pub struct Emitter<'w> {
    pub(crate) w: &'w mut ResultFrameWriter,
}

impl Emitter<'_> {
    /// Emits one record, written by `write` (no trailing newline).
    pub fn emit_with(&mut self, output: OutputId, write: impl FnOnce(&mut Vec<u8>)) {
        let off = self.w.payload.len();
        write(&mut self.w.payload);
        let len = self.w.payload.len() - off;
        self.w
            .push_record_range(output as u32, off as u32, len as u32);
    }

    pub fn emit(&mut self, output: OutputId, line: &[u8]) {
        self.w.push_record(output as u32, line);
    }
}

/// Where `part` starts in `whole`, when it is a slice of it.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start.checked_add(part.len())? <= whole.len()).then_some(start)
}

/// A top-level key a rule sets on many events ([`EventOut::set_key`]):
/// the hash its lookup needs and its JSON text (`"key":`), made once.
#[derive(Debug, Clone)]
pub struct FieldKey {
    path: json::Path,
    member: Vec<u8>,
}

impl FieldKey {
    pub fn new(key: &str) -> FieldKey {
        let mut member = Vec::with_capacity(key.len() + 3);
        json::write_str(&mut member, key);
        member.push(b':');
        FieldKey {
            path: json::Path::new(key),
            member,
        }
    }

    pub fn as_str(&self) -> &str {
        self.path.as_str()
    }
}

/// What the rule says about one event.
pub struct EventOut<'w> {
    pub(crate) w: &'w mut ResultFrameWriter,
    pub(crate) result: EventResult,
}

impl EventOut<'_> {
    /// Records why the event could not be read; it passes on untouched and
    /// the host counts the reason.
    pub fn unreadable(&mut self, error: ScanError) {
        self.result.reason = match error {
            ScanError::NotObject => Reason::NotObject,
            ScanError::Malformed | ScanError::TooDeep => Reason::Malformed,
        };
    }

    /// Replaces event bytes `[start, end)` with what `write` writes.
    pub fn edit_with(&mut self, start: usize, end: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let off = self.w.payload.len();
        write(&mut self.w.payload);
        self.result.action = Action::Edit;
        self.result.start = start as u32;
        self.result.end = end as u32;
        self.result.payload_off = off as u32;
        self.result.payload_len = (self.w.payload.len() - off) as u32;
    }

    /// Sets top-level field `key` of the scanned object to the JSON value
    /// `write` writes: the value of an existing member is replaced in place,
    /// otherwise `"key":value` is inserted before the closing brace. The rest
    /// of the event keeps its original bytes. A rule that sets the same key
    /// on every event makes a [`FieldKey`] once and calls
    /// [`EventOut::set_key`].
    pub fn set_field(&mut self, obj: &Object<'_, '_>, key: &str, write: impl FnOnce(&mut Vec<u8>)) {
        let name = |buf: &mut Vec<u8>| {
            json::write_str(buf, key);
            buf.push(b':');
        };
        self.set(obj, obj.member(key), name, write);
    }

    /// [`EventOut::set_field`] with a key made ahead: its lookup hash and
    /// its JSON text are not made again for each event.
    pub fn set_key(
        &mut self,
        obj: &Object<'_, '_>,
        key: &FieldKey,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let name = |buf: &mut Vec<u8>| buf.extend_from_slice(&key.member);
        self.set(obj, obj.member_at(&key.path), name, write);
    }

    /// Replaces the value of `found`, a member of `obj`, or inserts `name`
    /// (`"key":`) and the value before `obj`'s closing brace.
    fn set(
        &mut self,
        obj: &Object<'_, '_>,
        found: Option<json::Member>,
        name: impl FnOnce(&mut Vec<u8>),
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        match found {
            Some(m) => self.edit_with(m.value.start as usize, m.value.end as usize, write),
            None => self.edit_with(obj.close, obj.close, |buf| {
                if !obj.is_empty() {
                    buf.push(b',');
                }
                name(buf);
                write(buf);
            }),
        }
    }

    /// Sets member `key` of `object`, a JSON object value inside `event`
    /// (the event's bytes, as the rule got them; `object` found with
    /// [`Object::get`] or [`Object::slot`], say): the value of an existing
    /// member is replaced in place, otherwise `"key":value` is inserted
    /// before the object's closing brace. The rest of the event keeps its
    /// original bytes. Nothing happens when `object` is not an object
    /// inside `event`.
    pub fn set_member(
        &mut self,
        event: &[u8],
        object: json::Value<'_>,
        key: &str,
        write: impl FnOnce(&mut Vec<u8>),
    ) {
        let Some(at) = offset_in(event, object.raw) else {
            return;
        };
        if !object.is_object() || object.raw.last() != Some(&b'}') {
            return;
        }
        match object.member(key) {
            // Inside `object`, so inside `event`.
            Some(v) => {
                let start = at + (v.raw.as_ptr() as usize - object.raw.as_ptr() as usize);
                self.edit_with(start, start + v.raw.len(), write)
            }
            None => {
                let close = at + object.raw.len() - 1;
                let comma = object.has_members();
                self.edit_with(close, close, |buf| {
                    if comma {
                        buf.push(b',');
                    }
                    json::write_str(buf, key);
                    buf.push(b':');
                    write(buf);
                })
            }
        }
    }

    /// Sends the event to another declared output instead of the default.
    pub fn route(&mut self, output: OutputId) {
        self.result.output = output;
    }

    /// Drops the event (the host counts drops).
    pub fn drop_event(&mut self) {
        self.result.action = Action::Drop;
    }

    /// Emits a record on a named output while handling this event.
    pub fn emitter(&mut self) -> Emitter<'_> {
        Emitter { w: self.w }
    }
}

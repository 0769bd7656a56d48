//! rsyslog's `mmexternal` protocol, for running rulebox as rsyslog's
//! message-modification program.
//!
//! rsyslog writes one message per line on the program's stdin and then
//! waits for exactly one line back: a JSON object of the properties to
//! change (`{}` for none). There is no correlation id, so the answers
//! must come in order, one per line, and nothing else may reach stdout or
//! stderr (rsyslog reads both from one pipe). The pipeline therefore
//! checks at build time that such a stdin source feeds a single chain of
//! transforms that keep every event ([`crate::transforms::wasm::Options::one_to_one`])
//! into the answering stdout sink.
//!
//! In: `interface.input="msg"` (the default) or `"rawmsg"` sends the text;
//! `"fulljson"` sends the whole message object, whose `msg` is the event.
//! Out: `{"msg":"<event>"}`, and/or `{"$!":<event>}` (merged into rsyslog's
//! JSON variables) when the event is a JSON object.

use serde::Deserialize;

use super::json_text::{flatten_into, is_json_object};
use crate::batch::Batch;

/// How stdin and stdout carry events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdioProtocol {
    #[default]
    Ndjson,
    Mmexternal,
}

/// What rsyslog sends (its `interface.input`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    #[default]
    Msg,
    Rawmsg,
    Fulljson,
}

/// Which properties the answer sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// `{"msg": <the event as text>}`.
    #[default]
    Msg,
    /// `{"$!": <the event>}`: the event's fields merged into `$!`.
    Vars,
    /// Both.
    MsgAndVars,
}

/// Metadata of a line whose answer must be `{}` (input that could not be
/// read; the line itself is then only carried along).
const NO_CHANGE: &[u8] = b"-";

/// Turns the lines rsyslog sent into event lines, one for one.
pub fn read_batch(input: Input, b: Batch) -> Batch {
    if input != Input::Fulljson {
        return b;
    }
    let mut out = Batch::with_capacity(b.bytes().len());
    out.acks = b.acks.clone();
    let mut line = Vec::new();
    for l in b.iter() {
        #[derive(Deserialize)]
        struct Full<'a> {
            #[serde(borrow)]
            msg: Option<std::borrow::Cow<'a, str>>,
        }
        match serde_json::from_slice::<Full<'_>>(l) {
            Ok(Full { msg: Some(m) }) => {
                line.clear();
                if is_json_object(m.as_bytes()) {
                    flatten_into(m.as_bytes(), &mut line);
                    out.push_line(&line);
                } else {
                    // Not JSON: the rule leaves it alone; keep it on one line.
                    let _ = serde_json::to_writer(&mut line, &*m);
                    out.push_line(&line);
                    out.set_last_meta(NO_CHANGE);
                }
            }
            _ => {
                tracing::warn!(line = %String::from_utf8_lossy(&l[..l.len().min(200)]), "mmexternal: not a fulljson message object; answered with no change");
                out.push_line(b"{}");
                out.set_last_meta(NO_CHANGE);
            }
        }
    }
    out
}

/// The answers for a batch of events, one line each.
pub fn write_replies(reply: Reply, b: &Batch, out: &mut Vec<u8>) {
    for (i, l) in b.iter().enumerate() {
        if b.meta(i) == NO_CHANGE {
            out.extend_from_slice(b"{}\n");
            continue;
        }
        out.push(b'{');
        let vars = reply != Reply::Msg && is_json_object(l);
        if reply != Reply::Vars || !vars {
            out.extend_from_slice(b"\"msg\":");
            let _ = serde_json::to_writer(&mut *out, &String::from_utf8_lossy(l));
            if vars {
                out.push(b',');
            }
        }
        if vars {
            out.extend_from_slice(b"\"$!\":");
            out.extend_from_slice(l);
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fulljson_takes_msg_and_answers_one_per_line() {
        let mut b = Batch::default();
        b.push_line(br#"{ "msg": "{\"a\":1}", "rawmsg": "x", "$!": {} }"#);
        b.push_line(br#"{ "msg": "plain text" }"#);
        b.push_line(b"garbage");
        let ev = read_batch(Input::Fulljson, b);
        let lines: Vec<&[u8]> = ev.iter().collect();
        assert_eq!(lines, [&br#"{"a":1}"#[..], br#""plain text""#, b"{}"]);
        let mut out = Vec::new();
        write_replies(Reply::MsgAndVars, &ev, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"msg\":\"{\\\"a\\\":1}\",\"$!\":{\"a\":1}}\n{}\n{}\n"
        );
    }

    #[test]
    fn replies_by_mode() {
        let mut b = Batch::default();
        b.push_line(br#"{"a":1}"#);
        b.push_line(b" text");
        let got = |r| {
            let mut out = Vec::new();
            write_replies(r, &b, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            got(Reply::Msg),
            "{\"msg\":\"{\\\"a\\\":1}\"}\n{\"msg\":\" text\"}\n"
        );
        assert_eq!(
            got(Reply::Vars),
            "{\"$!\":{\"a\":1}}\n{\"msg\":\" text\"}\n"
        );
        assert_eq!(read_batch(Input::Msg, b.clone()), b);
    }
}

//! The harness against small rules: routing, drops, records on ticks and
//! flushes, a snapshot round trip, TOML configuration, the objects index
//! the host builds, and frames the host would refuse.

use super::{Harness, HarnessError};
use crate::json::{Object, ScanError};
use crate::{Emitter, EventOut, Rule};

/// Counts events per `user`; routes `"x"` events to `odd`, drops `"drop"`
/// ones; a tick emits the count, the flush `{"flushed":n}`. Reads only the
/// keys `user` and `limit` when `narrow` is set.
struct Count {
    seen: u64,
    narrow: bool,
    broken: bool,
}

impl Rule for Count {
    const OUTPUTS: &'static [&'static str] = &["odd", "stats"];
    const READS_OBJECTS: bool = true;
    fn new(config: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(config).map_err(|e| e.to_string())?;
        if text.contains("\"fail\"") {
            return Err("fail is not a setting".into());
        }
        Ok(Count {
            seen: 0,
            narrow: text.contains("\"narrow\":true"),
            broken: text.contains("\"broken\":true"),
        })
    }
    fn object_keys(&self) -> Option<Vec<String>> {
        self.narrow.then(|| vec!["user".into()])
    }
    fn on_object(
        &mut self,
        event: &[u8],
        object: Result<Object<'_, '_>, ScanError>,
        _now: i64,
        out: &mut EventOut<'_>,
    ) {
        let obj = match object {
            Ok(obj) => obj,
            Err(e) => return out.unreadable(e),
        };
        self.seen += 1;
        if self.broken {
            // An edit past the event's end: the host refuses it.
            return out.edit_with(0, event.len() + 5, |b| b.push(b'x'));
        }
        match obj.get("user").and_then(|v| v.as_str()).as_deref() {
            Some("x") => out.route(1),
            Some("drop") => out.drop_event(),
            _ => {}
        }
        if obj.get("other").is_some() {
            out.set_field(&obj, "other_seen", |b| b.extend_from_slice(b"true"));
        }
    }
    fn on_tick(&mut self, now: i64, out: &mut Emitter<'_>) {
        out.emit(
            2,
            format!("{{\"seen\":{},\"now\":{now}}}", self.seen).as_bytes(),
        );
    }
    fn on_flush(&mut self, _now: i64, out: &mut Emitter<'_>) {
        out.emit(2, format!("{{\"flushed\":{}}}", self.seen).as_bytes());
    }
    fn snapshot(&mut self, _now: i64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.seen.to_le_bytes());
    }
    fn restore(&mut self, data: &[u8], _now: i64) -> Result<(), String> {
        let bytes: [u8; 8] = data.try_into().map_err(|_| "not 8 bytes".to_string())?;
        self.seen = u64::from_le_bytes(bytes);
        Ok(())
    }
}

#[test]
fn events_are_routed_dropped_and_counted_per_output() {
    let mut h = Harness::<Count>::new("{}").unwrap();
    assert_eq!(h.outputs(), ["events", "odd", "stats"]);
    let out = h.process(&[
        r#"{"user":"a"}"#,
        r#"{"user":"x"}"#,
        r#"{"user":"drop"}"#,
        "[1]",
        r#"{"other":1}"#,
    ]);
    assert_eq!(
        out.lines("events"),
        [r#"{"user":"a"}"#, "[1]", r#"{"other":1,"other_seen":true}"#]
    );
    assert_eq!(out.lines("odd"), [r#"{"user":"x"}"#]);
    assert!(out.lines("stats").is_empty());
    let events = out.events();
    assert_eq!(events.len(), 5);
    assert!(events[2].dropped && !events[2].edited);
    assert_eq!(events[3].reason, "not_object");
    assert!(events[4].edited);
    assert_eq!(h.rule().seen, 4);
}

#[test]
fn ticks_and_flushes_run_at_the_simulated_clock() {
    let mut h = Harness::<Count>::new("{}").unwrap();
    let start = Harness::<Count>::START_MS;
    assert_eq!(h.now_ms(), start);
    h.process(&[r#"{"user":"a"}"#]);
    let tick = h.advance(90);
    let want = format!("{{\"seen\":1,\"now\":{}}}", start + 90_000);
    assert_eq!(tick.lines("stats"), [want.as_str()]);
    assert_eq!(tick.records(), [("stats".to_string(), want.clone())]);
    assert!(tick.events().is_empty());
    h.set_now_ms(5);
    assert_eq!(h.tick().lines("stats"), [r#"{"seen":1,"now":5}"#]);
    assert_eq!(h.flush().json("stats")[0]["flushed"], 1);
}

#[test]
fn a_restart_keeps_the_snapshotted_state() {
    let mut h = Harness::<Count>::new("{}").unwrap();
    h.process(&[r#"{"user":"a"}"#, r#"{"user":"b"}"#]);
    h.advance(10);
    assert_eq!(h.restart(), Ok(8));
    assert_eq!(h.rule().seen, 2);
    assert_eq!(h.now_ms(), Harness::<Count>::START_MS + 10_000);
    h.process(&[r#"{"user":"c"}"#]);
    assert_eq!(h.flush().lines("stats"), [r#"{"flushed":3}"#]);
    assert_eq!(h.checkpoint(), 3u64.to_le_bytes());
    assert_eq!(h.restore(b"bad"), Err("not 8 bytes".to_string()));
    assert_eq!(h.restore(b""), Ok(()), "empty state is nothing to restore");
}

#[test]
fn run_processes_batches_ticks_between_them_and_flushes() {
    let mut h = Harness::<Count>::new("{}").unwrap();
    let out = h.run(&[&[r#"{"user":"a"}"#], &[r#"{"user":"x"}"#]], 60);
    assert_eq!(out.lines("events"), [r#"{"user":"a"}"#]);
    assert_eq!(out.lines("odd"), [r#"{"user":"x"}"#]);
    let stats = out.json("stats");
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0]["seen"], 1);
    assert_eq!(stats[1]["flushed"], 2);
}

#[test]
fn configuration_comes_as_json_or_toml_and_errors_are_the_rules() {
    let h = Harness::<Count>::from_toml("narrow = true\n[inner]\nk = 1").unwrap();
    assert!(h.rule().narrow);
    assert_eq!(
        Harness::<Count>::from_toml("fail = 1").unwrap_err(),
        HarnessError::Init("fail is not a setting".into())
    );
    let err = Harness::<Count>::from_toml("= 1").unwrap_err();
    assert!(matches!(err, HarnessError::Toml(_)), "{err:?}");
    assert!(Harness::<Count>::new(r#"{"fail":1}"#).is_err());
}

#[test]
fn a_rule_sees_only_the_keys_it_declared_as_in_the_sandbox() {
    // `narrow` declares only `user`: the host's index lists no `other`, so
    // the rule's lookup of it finds nothing, here as in the pipeline.
    let mut h = Harness::<Count>::new(r#"{"narrow":true}"#).unwrap();
    let out = h.process(&[r#"{"other":1,"user":"x"}"#]);
    assert_eq!(out.lines("odd"), [r#"{"other":1,"user":"x"}"#]);
    assert!(!out.events()[0].edited);
}

#[test]
#[should_panic(expected = "the host refuses part of the frame: Edit { event: 0, fault: Range }")]
fn an_edit_the_host_would_refuse_fails_the_test() {
    let mut h = Harness::<Count>::new(r#"{"broken":true}"#).unwrap();
    h.process(&[r#"{"user":"a"}"#]);
}

/// Reads bytes (no objects) and emits on an output it never declared.
struct Stray;

impl Rule for Stray {
    fn new(_config: &[u8]) -> Result<Self, String> {
        Ok(Stray)
    }
    fn on_event(&mut self, _event: &[u8], _now: i64, out: &mut EventOut<'_>) {
        out.emitter().emit(3, b"{}");
    }
}

#[test]
#[should_panic(expected = "process: output 3 is not declared")]
fn a_record_on_an_undeclared_output_fails_the_test() {
    Harness::<Stray>::new("{}").unwrap().process(&["{}"]);
}

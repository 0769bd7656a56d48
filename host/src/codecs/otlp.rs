//! OpenTelemetry logs (OTLP): export requests (protobuf or JSON) read into
//! events, and events written back as log records. Pure functions; the
//! HTTP side is in the `opentelemetry` source and sink.
//!
//! An event, from one log record:
//!
//! * a body that is a map (`kvlistValue`) becomes a JSON object;
//! * a body that is a string holding a JSON object becomes that object;
//! * any other string becomes a JSON string event; an absent body, an
//!   empty object; other values (numbers, booleans, arrays) the JSON value
//!   (bytes as base64 text);
//! * into an object event go the record's attributes whose keys the body
//!   lacks (the body's own keys win); the other attributes, and every
//!   attribute of an event that is not an object, stay out of it.
//!
//! What the rule does not read travels as the line's metadata
//! ([`crate::batch::Batch::meta`]): `o`, then a JSON object with the
//! resource and scope (OTLP JSON, with their schema URLs), the record
//! without its body and with only the attributes left out of the event
//! (OTLP JSON), the body's kind, and the keys that came from attributes.
//! Writing back, those keys leave the event and become attributes again
//! (with the values the event has then), the rest is the body in its
//! first shape (a map, or a string holding the JSON object), and records
//! are grouped under their resource and scope as they came. An event
//! without that metadata (an alert, an event from another source) becomes
//! a record of its own whose body is the event, under the sink's resource.

use std::collections::HashMap;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::batch::Batch;

/// How a body is encoded (its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// From a `Content-Type` header (parameters ignored).
    pub fn from_content_type(v: &[u8]) -> Option<Encoding> {
        let v = std::str::from_utf8(v).ok()?;
        let mime = v.split(';').next()?.trim();
        if mime.eq_ignore_ascii_case("application/x-protobuf") {
            Some(Encoding::Protobuf)
        } else if mime.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }
}

/// A body that is not an export request.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("not an OTLP protobuf ExportLogsServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("not an OTLP JSON ExportLogsServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
}

/// `google.rpc.Status`, the body of an OTLP error answer (no `details`).
#[derive(Clone, PartialEq, Message, Serialize)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC's codes an OTLP answer uses.
pub const INVALID_ARGUMENT: i32 = 3;
pub const UNAVAILABLE: i32 = 14;

/// A message in `enc`.
pub fn encode<M: Message + Serialize>(m: &M, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => m.encode_to_vec(),
        // Serialising these messages into memory cannot fail.
        Encoding::Json => serde_json::to_vec(m).unwrap_or_default(),
    }
}

/// Reads a whole export request into events (one per log record); a body
/// that is not one is refused whole, nothing of it in `out`.
pub fn read_request(body: &[u8], enc: Encoding, out: &mut Batch) -> Result<(), BodyError> {
    let req = match enc {
        Encoding::Protobuf => ExportLogsServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice(body)?,
    };
    let (mut line, mut meta) = (Vec::new(), Vec::new());
    for rl in &req.resource_logs {
        let resource = raw_json(&rl.resource);
        for sl in &rl.scope_logs {
            let scope = raw_json(&sl.scope);
            let head = Head {
                resource: &resource,
                resource_schema_url: rl.schema_url.clone(),
                scope: &scope,
                scope_schema_url: sl.schema_url.clone(),
            };
            for rec in &sl.log_records {
                read_record(rec, &head, &mut line, &mut meta);
                out.push_line(&line);
                out.set_last_meta(&meta);
            }
        }
    }
    Ok(())
}

/// A message as OTLP JSON, kept raw (`null` when absent).
fn raw_json<T: Serialize>(v: &Option<T>) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// Where a record came from, kept with it.
#[derive(Serialize, Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    resource: &'a RawValue,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    resource_schema_url: String,
    #[serde(borrow)]
    scope: &'a RawValue,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope_schema_url: String,
}

/// What a record's body was, to write it back in that shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BodyKind {
    /// A map: the event object.
    Map,
    /// A string holding a JSON object: the event object.
    JsonText,
    /// Absent: the event is the attributes (an object).
    Empty,
    /// Anything else: the event is its JSON value.
    Value,
}

/// A line's metadata: the record's head, the record without its body,
/// the body's kind, and the event's keys that were attributes.
#[derive(Serialize, Deserialize)]
struct Kept<'a> {
    #[serde(borrow)]
    head: Head<'a>,
    record: LogRecord,
    body: BodyKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    merged: Vec<String>,
}

/// One record's event line and metadata.
fn read_record(rec: &LogRecord, head: &Head<'_>, line: &mut Vec<u8>, meta: &mut Vec<u8>) {
    let (mut event, body) = match rec.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::KvlistValue(kv)) => (Value::Object(kvlist_to_map(kv)), BodyKind::Map),
        Some(Any::StringValue(s)) => match json_object(s) {
            Some(m) => (Value::Object(m), BodyKind::JsonText),
            None => (Value::String(s.clone()), BodyKind::Value),
        },
        None => (Value::Object(Map::new()), BodyKind::Empty),
        Some(other) => (any_to_json(other), BodyKind::Value),
    };
    let mut record = LogRecord {
        body: None,
        attributes: Vec::new(),
        ..rec.clone()
    };
    let mut merged = Vec::new();
    for kv in &rec.attributes {
        match &mut event {
            Value::Object(m) if !m.contains_key(&kv.key) => {
                m.insert(kv.key.clone(), value_to_json(kv.value.as_ref()));
                merged.push(kv.key.clone());
            }
            _ => record.attributes.push(kv.clone()),
        }
    }
    line.clear();
    // Serialising a JSON value into memory cannot fail.
    let _ = serde_json::to_writer(&mut *line, &event);
    meta.clear();
    meta.push(b'o');
    let kept = Kept {
        head: Head {
            resource: head.resource,
            resource_schema_url: head.resource_schema_url.clone(),
            scope: head.scope,
            scope_schema_url: head.scope_schema_url.clone(),
        },
        record,
        body,
        merged,
    };
    let _ = serde_json::to_writer(&mut *meta, &kept);
}

/// A string's JSON object, when it holds one.
fn json_object(s: &str) -> Option<Map<String, Value>> {
    if !s.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str(s) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn kvlist_to_map(kv: &KeyValueList) -> Map<String, Value> {
    kv.values
        .iter()
        .map(|kv| (kv.key.clone(), value_to_json(kv.value.as_ref())))
        .collect()
}

fn value_to_json(v: Option<&AnyValue>) -> Value {
    v.and_then(|v| v.value.as_ref())
        .map_or(Value::Null, any_to_json)
}

/// An OTLP value as JSON: integers and doubles as numbers (a double that
/// is not finite as null), bytes as base64 text.
pub fn any_to_json(v: &Any) -> Value {
    match v {
        Any::StringValue(s) => Value::String(s.clone()),
        Any::BoolValue(b) => Value::Bool(*b),
        Any::IntValue(i) => Value::from(*i),
        Any::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        Any::ArrayValue(a) => {
            Value::Array(a.values.iter().map(|v| value_to_json(Some(v))).collect())
        }
        Any::KvlistValue(kv) => Value::Object(kvlist_to_map(kv)),
        Any::BytesValue(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Any::StringValueStrindex(_) => Value::Null,
    }
}

/// A JSON value as an OTLP value: integers that fit `i64` as ints, other
/// numbers as doubles, objects as maps, null as an empty value.
pub fn json_to_any(v: Value) -> AnyValue {
    let value = match v {
        Value::Null => None,
        Value::Bool(b) => Some(Any::BoolValue(b)),
        Value::Number(n) => Some(match n.as_i64() {
            Some(i) => Any::IntValue(i),
            None => Any::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Value::String(s) => Some(Any::StringValue(s)),
        Value::Array(a) => Some(Any::ArrayValue(ArrayValue {
            values: a.into_iter().map(json_to_any).collect(),
        })),
        Value::Object(m) => Some(Any::KvlistValue(KeyValueList {
            values: m.into_iter().map(|(k, v)| key_value(k, v)).collect(),
        })),
    };
    AnyValue { value }
}

fn key_value(key: String, v: Value) -> KeyValue {
    KeyValue {
        key,
        value: Some(json_to_any(v)),
        ..KeyValue::default()
    }
}

/// The resource and scope of records that did not come from OTLP.
#[derive(Debug, Clone)]
pub struct Defaults {
    pub resource: Resource,
    pub scope: InstrumentationScope,
}

impl Defaults {
    /// `service.name` set to `service_name`; the scope rulebox.
    pub fn new(service_name: &str) -> Defaults {
        let resource = Resource {
            attributes: vec![key_value(
                "service.name".into(),
                Value::String(service_name.into()),
            )],
            ..Resource::default()
        };
        let scope = InstrumentationScope {
            name: "rulebox".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..InstrumentationScope::default()
        };
        Defaults { resource, scope }
    }
}

/// A batch's events as one export request, records grouped under their
/// resource and scope in the order first seen; `now_nanos` is the
/// observed time of records that did not come from OTLP.
pub fn write_request(b: &Batch, d: &Defaults, now_nanos: u64) -> ExportLogsServiceRequest {
    let mut req = ExportLogsServiceRequest::default();
    // (resource, its schema URL) -> index; (that index, scope, its
    // schema URL) -> index within it.
    let mut resources: HashMap<(String, String), usize> = HashMap::new();
    let mut scopes: HashMap<(usize, String, String), usize> = HashMap::new();
    for (i, line) in b.iter().enumerate() {
        let meta = b.meta(i);
        let kept = meta
            .strip_prefix(b"o")
            .and_then(|j| serde_json::from_slice::<Kept<'_>>(j).ok());
        let (head, record) = match kept {
            Some(k) => (
                (
                    k.head.resource.get().to_string(),
                    k.head.resource_schema_url,
                    k.head.scope.get().to_string(),
                    k.head.scope_schema_url,
                ),
                write_record(line, k.record, k.body, k.merged),
            ),
            None => (Default::default(), plain_record(line, now_nanos)),
        };
        let (res, res_url, scope, scope_url) = head;
        let r = *resources
            .entry((res.clone(), res_url.clone()))
            .or_insert_with(|| {
                req.resource_logs.push(ResourceLogs {
                    resource: resource_of(&res, d),
                    schema_url: res_url,
                    ..ResourceLogs::default()
                });
                req.resource_logs.len() - 1
            });
        let logs = &mut req.resource_logs[r].scope_logs;
        let s = *scopes
            .entry((r, scope.clone(), scope_url.clone()))
            .or_insert_with(|| {
                logs.push(ScopeLogs {
                    scope: scope_of(&scope, d),
                    schema_url: scope_url,
                    ..ScopeLogs::default()
                });
                logs.len() - 1
            });
        logs[s].log_records.push(record);
    }
    req
}

/// The kept resource (empty key: the sink's own).
fn resource_of(raw: &str, d: &Defaults) -> Option<Resource> {
    if raw.is_empty() {
        return Some(d.resource.clone());
    }
    serde_json::from_str(raw).unwrap_or_default()
}

fn scope_of(raw: &str, d: &Defaults) -> Option<InstrumentationScope> {
    if raw.is_empty() {
        return Some(d.scope.clone());
    }
    serde_json::from_str(raw).unwrap_or_default()
}

/// An event as a line reads it (text that is not JSON as a string).
fn event_of(line: &[u8]) -> Value {
    serde_json::from_slice(line)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(line).into_owned()))
}

/// An event from OTLP back in its record: the keys that were attributes
/// are attributes again, the rest is the body in its first shape.
fn write_record(line: &[u8], mut rec: LogRecord, kind: BodyKind, merged: Vec<String>) -> LogRecord {
    let mut event = event_of(line);
    if let Value::Object(m) = &mut event {
        for key in merged {
            if let Some(v) = m.remove(&key) {
                rec.attributes.push(key_value(key, v));
            }
        }
    }
    rec.body = match (kind, event) {
        (BodyKind::JsonText, Value::Object(m)) => Some(AnyValue {
            value: Some(Any::StringValue(Value::Object(m).to_string())),
        }),
        (BodyKind::Empty, Value::Object(m)) if m.is_empty() => None,
        (_, v) => Some(json_to_any(v)),
    };
    rec
}

/// An event that did not come from OTLP: a record whose body is the event.
fn plain_record(line: &[u8], now_nanos: u64) -> LogRecord {
    LogRecord {
        observed_time_unix_nano: now_nanos,
        body: Some(json_to_any(event_of(line))),
        ..LogRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(Any::StringValue(v.into())),
        })
    }

    fn attr(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: s(v),
            ..KeyValue::default()
        }
    }

    fn request(bodies: Vec<Option<AnyValue>>) -> ExportLogsServiceRequest {
        let records = bodies
            .into_iter()
            .map(|body| LogRecord {
                time_unix_nano: 1_700_000_000_000_000_123,
                severity_text: "INFO".into(),
                body,
                attributes: vec![attr("log.file.name", "a.log"), attr("dst_port", "attr")],
                ..LogRecord::default()
            })
            .collect();
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![attr("host.name", "fw1")],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "filelog".into(),
                        ..InstrumentationScope::default()
                    }),
                    log_records: records,
                    ..ScopeLogs::default()
                }],
                schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
            }],
        }
    }

    fn lines(b: &Batch) -> Vec<Value> {
        b.iter()
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    #[test]
    fn bodies_and_attributes_become_the_event_the_rule_reads() {
        let map = json_to_any(serde_json::json!({"dst_port": 53, "n": [1, 2.5, true]}));
        let req = request(vec![
            Some(map),
            s(r#"{"dst_port": 443}"#),
            s("plain text"),
            None,
        ]);
        for enc in [Encoding::Protobuf, Encoding::Json] {
            let mut b = Batch::default();
            read_request(&encode(&req, enc), enc, &mut b).unwrap();
            assert_eq!(
                lines(&b),
                vec![
                    serde_json::json!({"dst_port": 53, "n": [1, 2.5, true], "log.file.name": "a.log"}),
                    serde_json::json!({"dst_port": 443, "log.file.name": "a.log"}),
                    serde_json::json!("plain text"),
                    serde_json::json!({"dst_port": "attr", "log.file.name": "a.log"}),
                ],
                "{enc:?}"
            );
        }
    }

    #[test]
    fn records_are_written_back_as_they_came_with_the_rules_fields() {
        let map = json_to_any(serde_json::json!({"dst_port": 53}));
        let req = request(vec![Some(map), s(r#"{"dst_port":443}"#), s("plain"), None]);
        let mut b = Batch::default();
        read_request(
            &encode(&req, Encoding::Protobuf),
            Encoding::Protobuf,
            &mut b,
        )
        .unwrap();
        // The rule adds a field to the first event.
        let mut enriched = Batch::default();
        for (i, l) in b.iter().enumerate() {
            let l = if i == 0 {
                br#"{"dst_port":53,"log.file.name":"a.log","t1071":{"x":1}}"#.as_slice()
            } else {
                l
            };
            enriched.push_line(l);
            enriched.set_last_meta(b.meta(i));
        }
        let out = write_request(&enriched, &Defaults::new("rulebox"), 7);
        let rl = &out.resource_logs;
        assert_eq!(rl.len(), 1, "one resource, as sent");
        assert_eq!(rl[0].resource, req.resource_logs[0].resource);
        assert_eq!(rl[0].schema_url, req.resource_logs[0].schema_url);
        assert_eq!(
            rl[0].scope_logs[0].scope,
            req.resource_logs[0].scope_logs[0].scope
        );
        let recs = &rl[0].scope_logs[0].log_records;
        let sent = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[0].body,
            Some(json_to_any(
                serde_json::json!({"dst_port": 53, "t1071": {"x": 1}})
            ))
        );
        assert_eq!(recs[1].body, s(r#"{"dst_port":443}"#));
        assert_eq!(recs[2].body, s("plain"));
        assert_eq!(recs[3].body, None);
        for (r, sent) in recs.iter().zip(sent) {
            assert_eq!(r.time_unix_nano, sent.time_unix_nano);
            assert_eq!(r.severity_text, "INFO");
            let mut a = r.attributes.clone();
            a.sort_by(|x, y| x.key.cmp(&y.key));
            assert_eq!(a, sent.attributes.iter().rev().cloned().collect::<Vec<_>>());
        }
    }

    #[test]
    fn events_from_elsewhere_are_records_of_their_own_under_the_sinks_resource() {
        let mut b = Batch::default();
        b.push_line(br#"{"alert_id":"a1","count":4}"#);
        let out = write_request(&b, &Defaults::new("edge"), 7);
        let rl = &out.resource_logs[0];
        assert_eq!(rl.resource, Some(Defaults::new("edge").resource));
        let rec = &rl.scope_logs[0].log_records[0];
        assert_eq!(rec.observed_time_unix_nano, 7);
        assert_eq!(
            rec.body,
            Some(json_to_any(
                serde_json::json!({"alert_id": "a1", "count": 4})
            ))
        );
    }

    #[test]
    fn a_malformed_body_is_refused_and_leaves_nothing() {
        let mut b = Batch::default();
        assert!(read_request(b"\x0a\x05abc", Encoding::Protobuf, &mut b).is_err());
        assert!(read_request(br#"{"resourceLogs": 3}"#, Encoding::Json, &mut b).is_err());
        assert!(b.is_empty());
    }
}

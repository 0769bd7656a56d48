//! The peer a Vector user would write: a `remap` transform. Each line goes
//! the way Vector's JSON codec and `remap` take it (JSON → `serde_json`
//! value → VRL value → the compiled program → JSON), with the rule's
//! labelling written in VRL. Labels only: VRL has no state across events,
//! so the aggregation (Vector's `aggregate` or `reduce`) is left out.

use std::collections::BTreeMap;

use vrl::compiler::runtime::Runtime;
use vrl::compiler::state::RuntimeState;
use vrl::compiler::{Program, TargetValue, TimeZone};
use vrl::value::{Secrets, Value};

/// The rule's labelling (docs/t1071-002.md §2, `cim` preset, default
/// internal networks, no allowlist) in VRL.
pub const PROGRAM: &str = r#"
dest = strip_whitespace(to_string(.dest_ip) ?? "")
if dest == "" { dest = strip_whitespace(to_string(.dest) ?? "") }
if dest != "" {
  src = strip_whitespace(to_string(.src_ip) ?? "")
  if src == "" { src = strip_whitespace(to_string(.src) ?? "") }
  p = .dest_port
  if is_string(p) { p = strip_whitespace(to_string(p) ?? "") }
  port = to_int(p) ?? -1
  protocol = null
  if port == 20 || port == 21 || port == 990 { protocol = "FTP/FTPS" }
  if port == 139 || port == 445 { protocol = "SMB" }
  if port == 69 { protocol = "TFTP" }
  label = {}
  if protocol != null { label.protocol = protocol }
  external = false
  if is_ipv4(dest) || is_ipv6(dest) {
    # An IPv4-mapped IPv6 address is judged as the IPv4 it carries.
    if starts_with(downcase(dest), "::ffff:") { dest = ipv6_to_ipv4(dest) ?? dest }
    external = !(ip_cidr_contains(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10"], dest) ?? false)
    label.external = external
  }
  src_internal = false
  if is_ipv4(src) || is_ipv6(src) {
    if starts_with(downcase(src), "::ffff:") { src = ipv6_to_ipv4(src) ?? src }
    src_internal = ip_cidr_contains(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "::1/128", "fc00::/7", "fe80::/10"], src) ?? false
  }
  allowed = downcase(to_string(.action) ?? "") == "allowed"
  label.counted = protocol != null && external && allowed && src_internal
  .t1071 = label
}
"#;

/// Compiles [`PROGRAM`] against VRL's standard library.
pub fn compile() -> Program {
    match vrl::compiler::compile(PROGRAM, &vrl::stdlib::all()) {
        Ok(r) => r.program,
        Err(diagnostics) => panic!("the VRL program does not compile: {diagnostics:?}"),
    }
}

/// Runs the program over `input` (NDJSON), labelled lines to `out`. A line
/// that is not JSON, or on which the program fails, goes out unchanged
/// (Vector would drop or reroute it; the input has none).
pub fn run(input: &[u8], out: &mut Vec<u8>) {
    let program = compile();
    let tz = TimeZone::default();
    let mut runtime = Runtime::new(RuntimeState::default());
    for line in input.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
            out.extend_from_slice(line);
            continue;
        };
        let mut target = TargetValue {
            value: Value::from(json),
            metadata: Value::Object(BTreeMap::new()),
            secrets: Secrets::default(),
        };
        let ok = runtime.resolve(&mut target, &program, &tz).is_ok();
        runtime.clear();
        if ok {
            serde_json::to_writer(&mut *out, &target.value).expect("write to memory");
        } else {
            out.extend_from_slice(body);
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn labels_as_the_spec_example() {
        let mut out = Vec::new();
        super::run(
            br#"{"src_ip":"10.0.0.5","dest_ip":"203.0.113.9","dest_port":"21","action":"Allowed"}
{"src_ip":"10.0.0.5","dest_ip":"172.20.0.1","dest_port":445}
{"host":"x"}
"#,
            &mut out,
        );
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        assert_eq!(
            lines[0]["t1071"],
            serde_json::json!({"protocol":"FTP/FTPS","external":true,"counted":true})
        );
        assert_eq!(
            lines[1]["t1071"],
            serde_json::json!({"protocol":"SMB","external":false,"counted":false})
        );
        assert!(lines[2].get("t1071").is_none());
    }
}

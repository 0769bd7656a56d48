//! What a rule test expects against what came out: the line counts per
//! output, and each expected line's fields, every difference said in one
//! line (`alerts line 1: connection_count: expected 4, got 3`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::file::TestFile;

/// Every difference between `test`'s expectations and `got`.
pub fn check(test: &TestFile, got: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let lines = |output: &str| got.get(output).map_or(&[][..], Vec::as_slice);
    let mut failures = Vec::new();
    for (output, want) in &test.counts {
        let n = lines(output).len();
        match want.as_integer() {
            Some(w) if w == n as i64 => {}
            Some(w) => failures.push(format!("{output}: {n} lines out, expected {w}")),
            None => failures.push(format!("counts.{output}: not a number")),
        }
    }
    // Without a `line`, an expectation is about the line after the last
    // one named on its output.
    let mut next: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &test.expect {
        let at = e
            .line
            .unwrap_or_else(|| next.get(e.output.as_str()).copied().unwrap_or(1));
        next.insert(&e.output, at + 1);
        let out = lines(&e.output);
        let place = format!("{} line {at}", e.output);
        let Some(text) = at.checked_sub(1).and_then(|i| out.get(i)) else {
            failures.push(format!("{place}: no such line ({} out)", out.len()));
            continue;
        };
        let Ok(line) = serde_json::from_str::<Value>(text) else {
            failures.push(format!("{place}: not JSON: {}", cut(text)));
            continue;
        };
        let before = failures.len();
        for (path, want) in &e.fields {
            let want = serde_json::to_value(want).unwrap_or(Value::Null);
            match lookup(&line, path) {
                Some(v) if same(v, &want) => {}
                Some(v) => failures.push(format!("{place}: {path}: expected {want}, got {v}")),
                None => failures.push(format!("{place}: {path}: expected {want}, absent")),
            }
        }
        if failures.len() > before {
            failures.push(format!("  the line: {}", cut(text)));
        }
    }
    failures
}

/// The value at a dotted path: the whole path as a key first, then split
/// at each dot, left to right (as the rules read fields).
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = v.get(path) {
        return Some(found);
    }
    path.match_indices('.').find_map(|(dot, _)| {
        let head = v.get(&path[..dot])?;
        lookup(head, &path[dot + 1..])
    })
}

/// JSON equality, numbers by value (`4` and `4.0` are the same).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn cut(s: &str) -> String {
    let mut end = s.len().min(400);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &s[..end], if end < s.len() { " ..." } else { "" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_find_nested_objects_and_dotted_keys() {
        let v: Value =
            serde_json::from_str(r#"{"t1071":{"counted":true},"id.resp_p":445,"a":{"b.c":1}}"#)
                .unwrap();
        assert_eq!(lookup(&v, "t1071.counted"), Some(&Value::Bool(true)));
        assert_eq!(lookup(&v, "id.resp_p"), Some(&Value::from(445)));
        assert_eq!(lookup(&v, "a.b.c"), Some(&Value::from(1)));
        assert_eq!(lookup(&v, "a.x"), None);
        assert!(same(&Value::from(4), &serde_json::json!(4.0)));
    }
}

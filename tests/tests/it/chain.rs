//! Two rules chained in one pipeline: `configs/chain-t1071-t1048.toml`
//! runs T1071.002 and then the T1048 large outbound rule over the bundled
//! sample. Each rule's labels and alerts come out, and every event leaves
//! once, in order, as it came but for the two labels.

use rulebox_tests::{Scratch, root, rule_wasm, rulebox, stderr, t1048_wasm};
use serde_json::Value;

/// `line` without the `"<key>":{...}` member a rule added (and its comma).
fn without_label(line: &str, key: &str) -> String {
    let member = format!("\"{key}\":{{");
    let Some(at) = line.rfind(&member) else {
        return line.to_string();
    };
    let end = at + line[at..].find('}').unwrap() + 1;
    let start = if line[..at].ends_with(',') {
        at - 1
    } else {
        at
    };
    format!("{}{}", &line[..start], &line[end..])
}

/// The bundled chain, with its state under `dir` and absolute paths.
fn bundled_chain(dir: &Scratch) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("configs/chain-t1071-t1048.toml")).unwrap();
    let sample = root().join("configs/sample/events.ndjson");
    let text = text
        .replace(
            "data_dir = \"../data\"",
            &format!("data_dir = \"{}\"", dir.path("data").display()),
        )
        .replace(
            "\"sample/events.ndjson\"",
            &format!("\"{}\"", sample.display()),
        )
        .replace(
            "\"../target/wasm32-wasip1/wasm/rule_t1071_002.wasm\"",
            &format!("\"{}\"", rule_wasm().display()),
        )
        .replace(
            "\"../target/wasm32-wasip1/wasm/rule_t1048_large_outbound.wasm\"",
            &format!("\"{}\"", t1048_wasm().display()),
        );
    assert!(!text.contains("\"../"), "a relative path is left: {text}");
    dir.write("chain.toml", text)
}

#[test]
fn both_rules_label_and_alert_and_no_event_is_lost() {
    let dir = Scratch::new("chain");
    let config = bundled_chain(&dir);
    let out = rulebox(&["run", "--config", config.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let (mut events, mut t1071_alerts, mut t1048_alerts) = (Vec::new(), 0, 0);
    for line in text.lines() {
        let v: Option<Value> = serde_json::from_str(line).ok();
        match v
            .as_ref()
            .and_then(|v| v.get("alert_id"))
            .map(|_| &v.as_ref().unwrap()["rule"])
        {
            Some(r) if r == "T1071.002" => t1071_alerts += 1,
            Some(r) if r == "T1048" => t1048_alerts += 1,
            Some(r) => panic!("an alert of rule {r}"),
            None => events.push(line),
        }
    }
    let sample = std::fs::read_to_string(root().join("configs/sample/events.ndjson")).unwrap();
    let input: Vec<&str> = sample.lines().collect();
    assert_eq!(events.len(), input.len(), "every event leaves once");
    let (mut both, mut t1048_counted) = (0, 0);
    for (have, want) in events.iter().zip(&input) {
        let v: Option<Value> = serde_json::from_str(have).ok();
        if let Some(v) = v.as_ref().filter(|v| v.get("t1048").is_some()) {
            both += v.get("t1071").is_some() as usize;
            t1048_counted += (v["t1048"]["counted"] == true) as usize;
        }
        let original = without_label(&without_label(have, "t1048"), "t1071");
        assert_eq!(original, *want, "an event changed beyond its labels");
    }
    // The sample: 9 T1071.002 alerts (configs/default.toml's), and 5 keys
    // over 4 MB in two minutes at the demo threshold.
    assert_eq!(t1071_alerts, 9, "{}", stderr(&out));
    assert!(t1048_alerts >= 1, "no T1048 alert: {}", stderr(&out));
    assert!(both > 1000, "{both} events carry both labels");
    assert!(
        t1048_counted > 100,
        "{t1048_counted} events counted by T1048"
    );
}

//! Every bundled configuration loads, builds and validates, so examples
//! cannot rot.

use rulebox::topology::{self, Loaded};

use rulebox::sandbox::Runtime;
use rulebox_tests::{root, rule_wasm};

#[test]
fn every_bundled_config_validates() {
    let _ = rule_wasm(); // Fails with the build command when the plugin is missing.
    let rt = Runtime::new().unwrap();
    let mut seen = 0;
    let mut dirs = vec![root().join("configs")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "toml") {
                let loaded = Loaded::read(&p).unwrap_or_else(|e| panic!("{e}"));
                topology::build(loaded, &rt).unwrap_or_else(|e| panic!("{e}"));
                seen += 1;
            }
        }
    }
    assert!(seen >= 1, "no configs found");
}

#[test]
fn bundled_sample_is_what_the_generator_makes() {
    let want = rulebox_bench::sample(3000, 1, 1_763_683_200_000).join("\n") + "\n";
    let have = std::fs::read_to_string(root().join("configs/sample/events.ndjson")).unwrap();
    assert!(
        have == want,
        "configs/sample/events.ndjson is stale: regenerate with `target/release/gen-events --count 3000 --seed 1 > configs/sample/events.ndjson`"
    );
}

/// An mmexternal answer must come line for line: configurations that
/// could drop, reroute or add lines are refused with the reason.
#[test]
fn mmexternal_chains_that_could_break_the_answers_are_refused() {
    let rt = Runtime::new().unwrap();
    let wasm = rule_wasm();
    let cfg = |source: &str, on_error: &str, sinks: &str| {
        format!(
            r#"[sources.in]
type = "stdin"
{source}
[transforms.rule]
type = "wasm"
inputs = ["in"]
module = "{wasm}"
on_error = "{on_error}"
[sinks.alerts]
type = "file"
path = "/dev/null"
inputs = ["rule.alerts", "rule.dead_letter"]
{sinks}
"#,
            wasm = wasm.display()
        )
    };
    let answer =
        "[sinks.answers]\ntype = \"stdout\"\nprotocol = \"mmexternal\"\ninputs = [\"rule\"]\n";
    let build = |text: String| {
        let loaded = Loaded::parse(std::path::Path::new("/tmp/x.toml"), text)?;
        topology::build(loaded, &rt).map(|_| ())
    };
    let mm = "protocol = \"mmexternal\"";
    assert!(build(cfg(mm, "pass_through", answer)).is_ok());
    let e = build(cfg(mm, "dead_letter", answer)).unwrap_err();
    assert!(e.to_string().contains("must be \"pass_through\""), "{e}");
    let e = build(cfg(mm, "pass_through", "")).unwrap_err();
    assert!(e.to_string().contains("needs a stdout sink"), "{e}");
    let e = build(cfg("", "pass_through", answer)).unwrap_err();
    assert!(e.to_string().contains("there is none"), "{e}");
    let two = format!("{answer}[sinks.more]\ntype = \"stdout\"\ninputs = [\"rule\"]\n");
    let e = build(cfg(mm, "pass_through", &two)).unwrap_err();
    assert!(
        e.to_string()
            .contains("stdout belongs to the mmexternal answers"),
        "{e}"
    );
    let alerts_answer = answer.replace("[\"rule\"]", "[\"rule.alerts\"]");
    let e = build(cfg(mm, "pass_through", &alerts_answer)).unwrap_err();
    assert!(e.to_string().contains("breaks it"), "{e}");
}

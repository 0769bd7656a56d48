//! Every bundled configuration loads, builds and validates, so examples
//! cannot rot; the shippers' snippets name only what is bundled beside
//! them and send where their rulebox configuration listens; and every
//! bundled rule finds on the sample what `configs/default.toml` finds.

use std::path::{Path, PathBuf};

use rulebox::secret::Secret;
use rulebox::sinks::SinkConfig;
use rulebox::sources::SourceConfig;
use rulebox::topology::{self, Loaded};
use rulebox::transforms::TransformConfig;

use rulebox::sandbox::Runtime;
use rulebox_tests::{Scratch, root, rule_wasm, rulebox, stderr};
use serde_json::Value;

/// Every file under `configs/`, sorted.
fn bundled_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root().join("configs")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn is_toml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "toml")
}

#[test]
fn every_bundled_config_validates() {
    let _ = rule_wasm(); // Fails with the build command when the plugin is missing.
    let rt = Runtime::new().unwrap();
    let mut seen = 0;
    for p in bundled_files().into_iter().filter(|p| is_toml(p)) {
        let loaded = Loaded::read(&p).unwrap_or_else(|e| panic!("{e}"));
        topology::build(loaded, &rt).unwrap_or_else(|e| panic!("{e}"));
        seen += 1;
    }
    assert!(seen >= 1, "no configs found");
}

/// Whether `text` holds `number` as a whole number (not inside a longer one).
fn mentions_number(text: &str, number: &str) -> bool {
    text.match_indices(number).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + number.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// What a shipper's snippet must mention for its rulebox configuration to
/// be the one it talks to: the ports rulebox listens on and sends back to,
/// the HEC tokens it accepts, the http path it serves.
fn what_the_snippet_must_name(loaded: &Loaded) -> Vec<String> {
    let port = |a: &str| a.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap();
    let mut names = Vec::new();
    for s in loaded.config.sources.values() {
        match s {
            SourceConfig::SplunkHec(c) => {
                names.push(port(&c.address));
                names.extend(c.tokens.iter().filter_map(|t| match t {
                    Secret::Value(v) => Some(v.clone()),
                    _ => None,
                }));
            }
            SourceConfig::Http(c) => names.extend([port(&c.address), c.path.clone()]),
            SourceConfig::Opentelemetry(c) => names.extend([port(&c.address), c.path.clone()]),
            SourceConfig::Tcp(c) => names.push(port(&c.address)),
            SourceConfig::Syslog(c) => names.push(port(&c.address)),
            // The NATS configurations name the server beside them.
            SourceConfig::Nats(c) => names.push(port(&c.url)),
            SourceConfig::Stdin(_) | SourceConfig::File(_) => {}
        }
    }
    for s in loaded.config.sinks.values() {
        if let SinkConfig::Tcp(c) = s {
            names.push(port(&c.address));
        }
    }
    names
}

/// A snippet that names `/etc/rulebox/<file>` has that file beside it, and
/// each rulebox configuration in a shipper's folder listens where the
/// snippet sends (and sends back where it listens).
#[test]
fn shipper_snippets_name_only_what_is_bundled_beside_them() {
    let files = bundled_files();
    let shipper_dirs: std::collections::BTreeSet<&Path> = (files.iter())
        .filter(|p| !is_toml(p) && !p.ends_with("sample/events.ndjson"))
        .map(|p| p.parent().unwrap())
        .collect();
    assert!(shipper_dirs.len() >= 6, "{shipper_dirs:?}");
    for dir in shipper_dirs {
        let in_dir = || files.iter().filter(|p| p.parent() == Some(dir));
        let snippets: String = in_dir()
            .filter(|p| !is_toml(p))
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        for (at, _) in snippets.match_indices("/etc/rulebox/") {
            let rest = &snippets[at + "/etc/rulebox/".len()..];
            let name: String = (rest.chars())
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            assert!(
                dir.join(&name).is_file(),
                "{}: a snippet names /etc/rulebox/{name}, which is not bundled there",
                dir.display()
            );
        }
        for toml in in_dir().filter(|p| is_toml(p)) {
            let loaded = Loaded::read(toml).unwrap_or_else(|e| panic!("{e}"));
            for name in what_the_snippet_must_name(&loaded) {
                let said = if name.chars().all(|c| c.is_ascii_digit()) {
                    mentions_number(&snippets, &name)
                } else {
                    snippets.contains(&name)
                };
                assert!(
                    said,
                    "{}: {name:?} is in no snippet beside it",
                    toml.display()
                );
            }
        }
    }
}

/// A JSON value as an inline TOML value (JSON's strings, numbers and
/// booleans are TOML's too).
fn inline_toml(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let members: Vec<String> = (m.iter())
                .map(|(k, v)| format!("{} = {}", Value::from(k.as_str()), inline_toml(v)))
                .collect();
            format!("{{ {} }}", members.join(", "))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(inline_toml).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// The transforms of a bundled pipeline with the same plugin
/// configurations and inputs, fed the bundled sample by every source of
/// theirs; the T1071.002 transforms' alerts to `alerts.out`. A transform
/// of another rule (a chain's second rule, say) runs its own module from
/// the build folder, and its alerts are left out.
fn on_the_sample(loaded: &Loaded, dir: &Path) -> String {
    let c = &loaded.config;
    let sample = root().join("configs/sample/events.ndjson");
    let mut text = format!("data_dir = \"{}\"\n", dir.join("data").display());
    for id in c.sources.keys() {
        text += &format!(
            "[sources.{id}]\ntype = \"file\"\npath = \"{}\"\n",
            sample.display()
        );
    }
    let mut alerts = Vec::new();
    for (id, t) in &c.transforms {
        let TransformConfig::Wasm(w) = t;
        let config: Value = serde_json::from_slice(&w.plugin_config_json()).unwrap();
        let t1071 = rule_wasm();
        let module = match w.module.file_name() {
            Some(f) if f != t1071.file_name().unwrap() => {
                root().join("target/wasm32-wasip1/wasm").join(f)
            }
            _ => t1071,
        };
        if module == rule_wasm() && config["stage"] != "classify" {
            alerts.push(format!("\"{id}.alerts\""));
        }
        text += &format!(
            "[transforms.{id}]\ntype = \"wasm\"\ninputs = {}\nmodule = \"{}\"\nworkers = {}\nconfig = {}\n",
            inline_toml(&serde_json::to_value(&w.inputs).unwrap()),
            module.display(),
            w.workers,
            inline_toml(&config),
        );
    }
    text += &format!(
        "[sinks.alerts]\ntype = \"file\"\npath = \"{}\"\ninputs = [{}]\n",
        dir.join("alerts.out").display(),
        alerts.join(", ")
    );
    text
}

/// The ids of the alerts a run of `pipeline` writes, sorted.
fn alert_ids(pipeline: &str, dir: &Scratch) -> Vec<String> {
    let _ = std::fs::remove_dir_all(dir.path("data"));
    let _ = std::fs::remove_file(dir.path("alerts.out"));
    let p = dir.write("p.toml", pipeline);
    let out = rulebox(&["run", "--config", p.to_str().unwrap()], None);
    assert!(out.status.success(), "{pipeline}\n{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path("alerts.out")).unwrap_or_default();
    let mut ids: Vec<String> = (text.lines())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|a| a["status"] == "final")
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// A shipper's configuration changes how events arrive and leave, not what
/// the rule finds: every bundled rule, on the bundled sample, raises the
/// alerts `configs/default.toml` raises. (The rsyslog one once replaced the
/// internal networks with RFC 1918 only: 4 alerts instead of 9.)
#[test]
fn every_bundled_rule_alerts_like_the_default_on_the_sample() {
    let dir = Scratch::new("configs-alerts");
    let default = Loaded::read(&root().join("configs/default.toml")).unwrap();
    let want = alert_ids(&on_the_sample(&default, &dir.0), &dir);
    assert!(want.len() >= 5, "the sample raises alerts: {want:?}");
    for p in bundled_files().into_iter().filter(|p| is_toml(p)) {
        let loaded = Loaded::read(&p).unwrap_or_else(|e| panic!("{e}"));
        // The NATS stages run as processes of their own (one stage each):
        // tests/it/nats.rs checks their alerts against one process's.
        let nats = (loaded.config.sources.values()).any(|s| matches!(s, SourceConfig::Nats(_)));
        if loaded.config.transforms.is_empty() || nats {
            continue;
        }
        let have = alert_ids(&on_the_sample(&loaded, &dir.0), &dir);
        assert_eq!(
            have.len(),
            want.len(),
            "{}: {} alerts on the sample, configs/default.toml gives {}",
            p.display(),
            have.len(),
            want.len()
        );
        assert_eq!(have, want, "{}", p.display());
    }
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

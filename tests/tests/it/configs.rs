//! Every bundled configuration loads, builds and validates, so examples
//! cannot rot.

use rulebox::config::Loaded;
use rulebox::pipeline;
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
                pipeline::build(loaded, &rt).unwrap_or_else(|e| panic!("{e}"));
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

//! The benchmark suite runs end to end (tiny input: this checks the
//! harness, not the speed; figures come from `bash scripts/bench.sh`).

use rulebox_tests::{Scratch, root};

#[test]
fn the_benchmark_suite_writes_its_table() {
    let dir = Scratch::new("bench");
    let out = dir.path("results.md");
    let bin = root().join("target/release/bench-suite");
    assert!(
        bin.exists(),
        "run `bash scripts/test.sh` (it builds bench-suite)"
    );
    let res = std::process::Command::new(bin)
        .args([
            "--events",
            "3000",
            "--runs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let md = std::fs::read_to_string(&out).unwrap();
    for case in [
        "cat",
        "passthrough",
        "native-rule",
        "wasm-rule",
        "rulebox",
        "rulebox-2-workers",
        "warm-start",
    ] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {case} |")))
            .unwrap_or_else(|| panic!("no row for {case}: {md}"));
        let peak: f64 = row.split('|').nth(5).unwrap().trim().parse().unwrap();
        assert!(peak > 0.0, "{case}: peak RSS measured: {row}");
    }
    assert!(md.contains("wasm-rule / native-rule throughput"), "{md}");
    assert!(md.contains("2 workers / 1 worker"), "{md}");
}

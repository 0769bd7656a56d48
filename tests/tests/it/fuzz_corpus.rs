//! The committed fuzz corpus (`fuzz/corpus/<target>/`), replayed through
//! the same target bodies as `cargo fuzz` runs, as an ordinary test.

use rulebox_tests::fuzz::TARGETS;
use rulebox_tests::root;

#[test]
fn the_committed_fuzz_corpus_replays_cleanly() {
    for (name, target) in TARGETS {
        let dir = root().join("fuzz").join("corpus").join(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let res = std::panic::catch_unwind(|| target(&data));
            assert!(res.is_ok(), "{name}: {} breaks a guarantee", path.display());
            n += 1;
        }
        assert!(
            n >= 10,
            "{name}: only {n} corpus entries in {}",
            dir.display()
        );
    }
}

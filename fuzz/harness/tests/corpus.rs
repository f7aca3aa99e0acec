//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`) on stable Rust, so every input
//! the fuzzer ever kept, and every crash it found, is a regression test in `make test`.

use std::path::PathBuf;

#[test]
fn every_corpus_input_of_every_fuzz_target_passes() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let mut total = 0;
    for (name, body) in allocator_fuzz::TARGETS {
        let dir = root.join(name);
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "{name}: empty corpus");
        for path in entries {
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "{name}: {} fails", path.display());
            total += 1;
        }
    }
    println!("{total} corpus inputs replayed");
}

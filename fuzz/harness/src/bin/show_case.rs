//! Print the diffs a `diff_sequence` input decodes to, to read a crash:
//! `cargo run --manifest-path fuzz/Cargo.toml -p allocator-fuzz --bin show_case -- FILE`.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: show_case FILE");
        std::process::exit(2);
    };
    match std::fs::read(&path) {
        Ok(data) => allocator_fuzz::debug_case(&data),
        Err(e) => {
            eprintln!("show_case: {path}: {e}");
            std::process::exit(1);
        }
    }
}

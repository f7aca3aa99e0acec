//! `allocate`: read targets and collectors as JSON on stdin, print each target's collector.
//!
//! ```text
//! cargo run -q --release --bin allocate < allocator-cli/sample.json
//! cargo run -q --release --bin allocate -- --strategies
//! ```
//! The input and output documents are a stable contract, described in the repository README.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use allocate::run;
use allocator_core::Strategy;

const USAGE: &str = "usage: allocate < input.json   (assignments as JSON on stdout)
       allocate --strategies  (the strategy names, one per line)";

fn main() -> ExitCode {
    // As OS strings: an argument that is not UTF-8 is an unexpected argument (exit 2), not a
    // panic.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match args
        .iter()
        .map(|a| a.to_str().unwrap_or("\u{fffd}"))
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {}
        ["--strategies"] => {
            let mut out = io::stdout().lock();
            for s in Strategy::ALL {
                let _ = writeln!(out, "{s}");
            }
            return ExitCode::SUCCESS;
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("allocate: unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut raw = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut raw) {
        eprintln!("allocate: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    match run(&raw) {
        Ok(json) => {
            let mut out = io::stdout().lock();
            if out
                .write_all(json.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("allocate: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The checked-in header is what cbindgen generates now, and every export is panic-safe.
//! `UPDATE_HEADER=1 cargo test -p allocator-ffi --test header` rewrites the header.

use std::path::PathBuf;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate() -> String {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).unwrap();
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir())
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn checked_in_header_is_what_cbindgen_generates() {
    let path = crate_dir().join("../include/target_allocator.h");
    let fresh = generate();
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "include/target_allocator.h is stale: run `make header` and commit it"
    );
}

/// Every `extern "C"` function in the sources has its body inside `call(` (the panic guard), and
/// every function the header declares is one of them.
#[test]
fn every_export_is_wrapped_in_the_panic_guard() {
    let mut exports = Vec::new();
    for path in sources(&crate_dir().join("src")) {
        let src = std::fs::read_to_string(&path).unwrap();
        let mut rest = src.as_str();
        while let Some(at) = rest.find("extern \"C\" fn ") {
            let after = &rest[at + "extern \"C\" fn ".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let body_start = after.find('{').unwrap();
            let body = &after[body_start..];
            // The first statement of the body, ignoring `let` bindings of plain values.
            let first = body[1..].trim_start();
            let wrapped = first.starts_with("call(")
                || first.starts_with("let mut code = ta_result::TA_OK;\n    call(")
                || first.starts_with("let text: &'static [u8] = match std::panic::catch_unwind(");
            let static_string = name == "ta_version";
            assert!(
                wrapped || static_string,
                "{}: {name} is not wrapped in the panic guard",
                path.display()
            );
            exports.push(name);
            rest = &after[body_start..];
        }
    }
    assert!(exports.len() >= 25, "found {} exports", exports.len());
    let header =
        std::fs::read_to_string(crate_dir().join("../include/target_allocator.h")).unwrap();
    let mut declared = Vec::new();
    for line in header.lines() {
        // Declarations start at column 0 with a return type; comments and fields are indented.
        if line.starts_with(' ') || line.starts_with('*') || line.starts_with('/') {
            continue;
        }
        if let Some((head, _)) = line.split_once('(') {
            let name = head
                .rsplit(' ')
                .next()
                .unwrap_or("")
                .trim_start_matches('*');
            if name.starts_with("ta_") {
                declared.push(name.to_owned());
            }
        }
    }
    declared.sort();
    exports.sort();
    assert_eq!(
        declared, exports,
        "the header declares exactly the wrapped exports"
    );
}

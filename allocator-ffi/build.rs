//! The shared library's SONAME, so that programs linked against `libtarget_allocator.so` record
//! the ABI they were built for and a package can install several side by side. While the version
//! is 0.x every minor release may break the ABI, so the name carries major and minor
//! (`libtarget_allocator.so.0.1`), as cargo-c names 0.x libraries; from 1.0 the major alone.
fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // ELF platforms only: macOS uses an install name and Windows an import library instead.
    if !matches!(
        target_os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "illumos"
            | "solaris"
    ) {
        return;
    }
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    let minor = env!("CARGO_PKG_VERSION_MINOR");
    let abi = if major == "0" {
        format!("{major}.{minor}")
    } else {
        major.to_owned()
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libtarget_allocator.so.{abi}");
    println!("cargo:rerun-if-changed=build.rs");
}

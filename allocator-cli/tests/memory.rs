//! Peak memory of `allocate` relative to its input: the targets are read into columns as they
//! are parsed, so the peak stays near twice the input (it was 6.6× on a 114 MB input: every
//! label kept as a `String`, the target list copied, a hash string per target).

use std::io::Write;
use std::process::{Command, Stdio};

/// ~20 MB: 100,000 targets with five labels each over 50 jobs and 30 namespaces.
fn input() -> String {
    let mut s = String::from("{\"strategy\":\"consistent-hashing\",\"collectors\":[");
    s.push_str(
        &(0..20)
            .map(|i| format!("{{\"name\":\"c{i}\"}}"))
            .collect::<Vec<_>>()
            .join(","),
    );
    s.push_str("],\"targets\":[");
    for i in 0..100_000u32 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            "{{\"job\":\"job-{}\",\"labels\":{{\"__address__\":\"10.{}.{}.{}:9100\",\"__meta_kubernetes_pod_name\":\"pod-{i:08}\",\"__meta_kubernetes_namespace\":\"ns-{}\",\"team\":\"team-{}\",\"app\":\"application-{}\"}},\"weight\":{}}}",
            i % 50, i >> 16, (i >> 8) & 255, i & 255, i % 30, i % 17, i % 101, 1 + i % 7
        ));
    }
    s.push_str("]}");
    s
}

#[test]
fn peak_memory_stays_near_twice_the_input() {
    let input = input();
    let mut child = Command::new(env!("CARGO_BIN_EXE_allocate"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SAFETY: getrusage fills the zeroed struct it is given.
    let peak_kib = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut u), 0);
        u.ru_maxrss as u64
    };
    let input_kib = input.len() as u64 / 1024;
    // The largest child of this test process; the other tests' children are tiny.
    assert!(
        peak_kib < input_kib * 3,
        "peak {peak_kib} KiB for a {input_kib} KiB input"
    );
}

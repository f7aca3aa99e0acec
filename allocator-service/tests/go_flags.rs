//! The binary started as the Operator starts the Go allocator: with the Go allocator's flags
//! (a TargetAllocator's `spec.args` become `--name=value`), its environment variables, its
//! default configuration path, and the configuration the Operator generates (no `discovery`
//! key: the Go allocator always discovers in the cluster).

mod proc;

use std::process::Command;
use std::time::Duration;

use proc::{get, scratch, start};

const WITH_SECRET: &str = r#"
collectors: [c0]
config:
  scrape_configs:
    - job_name: app
      basic_auth: {username: u, password: p4ssw0rd}
      static_configs:
        - targets: ["10.0.0.1:80"]
"#;

fn scrape_configs(args: &[&str]) -> String {
    let dir = scratch("go-flags");
    std::fs::write(dir.join("config.yaml"), WITH_SECRET).unwrap();
    let mut p = start(&dir, args, None);
    let a = get(p.addr, "/scrape_configs", Duration::from_secs(10)).unwrap();
    p.child.kill().unwrap();
    let _ = p.child.wait();
    assert_eq!(a.status, 200);
    String::from_utf8(a.body).unwrap()
}

#[test]
fn the_go_allocators_flags_are_taken() {
    // Without the flag, a secret is not served over plain HTTP ...
    assert!(scrape_configs(&[]).contains("<secret>"));
    // ... with it (and the log flags the Operator may pass beside it), it is, as in Go.
    let body = scrape_configs(&[
        "--allow-insecure-auth-secrets",
        "--zap-log-level=debug",
        "--zap-encoder",
        "json",
        "--zap-devel=false",
        "--enable-prometheus-cr-watcher=false",
    ]);
    assert!(body.contains("p4ssw0rd"), "{body}");
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_target-allocator"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_refused_and_the_default_file_is_the_go_allocators() {
    let (code, err) = run(&["--no-such-flag"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, err) = run(&["--enable-https-server=yes"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a boolean"), "{err}");
    // No --config-file: the Go allocator's default path (the Operator mounts it there; its
    // `spec.args` replace the image's command line).
    let (code, err) = run(&["--zap-log-level=info"], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/conf/targetallocator.yaml"), "{err}");
}

#[test]
fn the_operators_generated_configuration_discovers_in_the_cluster() {
    // What the Operator writes: a collector selector, Operator resources, no `discovery` key
    // (the namespace comes from OTELCOL_NAMESPACE). Outside a cluster, the allocator must say it
    // cannot reach one, not load as file discovery with no collectors (or refuse
    // `prometheus_cr` for want of a `discovery` key).
    let dir = scratch("operator-config");
    let config = dir.join("targetallocator.yaml");
    let kubeconfig = dir.join("no-such-kubeconfig");
    // Started on `text` in a process with the Operator's environment and no cluster: it must
    // fail for want of Kubernetes credentials, the cluster being what it discovers in.
    let reaches_for_the_cluster = |text: &str| {
        std::fs::write(&config, text).unwrap();
        let (code, err) = run(
            &["--config-file", config.to_str().unwrap()],
            &[
                ("OTELCOL_NAMESPACE", "observability"),
                ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ],
        );
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("kubernetes credentials"), "{err}");
    };
    reaches_for_the_cluster(
        "allocation_strategy: consistent-hashing\n\
         collector_selector:\n  matchLabels:\n    app.kubernetes.io/component: opentelemetry-collector\n\
         filter_strategy: relabel-config\n\
         prometheus_cr:\n  enabled: true\n  scrape_interval: 30s\n  service_monitor_selector: {}\n\
         config:\n  scrape_configs: []\n",
    );
    // The same selector with prometheus_cr off: still the cluster (the review found it loaded
    // as file discovery, ready, with no collectors).
    reaches_for_the_cluster(
        "collector_selector:\n  matchLabels:\n    app: c\n\
         config:\n  scrape_configs:\n    - job_name: j\n      static_configs: [{targets: ['a:1']}]\n",
    );
}

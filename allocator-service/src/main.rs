//! `target-allocator [--config-file FILE] [--listen-addr HOST:PORT] [--shutdown-grace DUR]
//! [--header-read-timeout DUR] [--write-stall-timeout DUR] [--max-connections N]`, and the Go
//! allocator's flags (`allocator_service::flags`).

use std::path::PathBuf;
use std::process::ExitCode;

use allocator_service::flags::{self, Takes};

fn usage() -> ExitCode {
    eprintln!(
        "usage: target-allocator [--config-file FILE (/conf/targetallocator.yaml)] \
         [--listen-addr HOST:PORT] [--shutdown-grace DUR (10s)] \
         [--header-read-timeout DUR (90s)] [--write-stall-timeout DUR (15s)] \
         [--max-connections N (1024, capped by ulimit -n)]\n\
         the Go allocator's flags are taken too: --enable-prometheus-cr-watcher, \
         --kubeconfig-path, --enable-https-server, --listen-addr-https, --https-ca-file, \
         --https-tls-cert-file, --https-tls-key-file, --allow-insecure-auth-secrets, \
         --zap-log-level (the log level unless RUST_LOG is set), --zap-devel, --zap-encoder, \
         --zap-stacktrace-level, --zap-time-encoding (accepted, no effect)"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut file, mut listen) = (None, None);
    let mut go_flags = flags::Overrides::default();
    let mut log_level = "info";
    let mut limits = allocator_service::server::Limits::default();
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        if let Some(takes) = flag.strip_prefix("--").and_then(flags::go_flag) {
            let name = &flag[2..];
            // pflag: a boolean flag alone means true (its value only inline); others take
            // the next argument when not inline.
            let v = match takes {
                Takes::Bool => inline.unwrap_or_else(|| "true".into()),
                Takes::Value => match inline.or_else(|| args.next()) {
                    Some(v) => v,
                    None => {
                        eprintln!("target-allocator: {flag}: needs a value");
                        return usage();
                    }
                },
            };
            if let Err(e) = go_flags.set(name, &v) {
                eprintln!("target-allocator: {e}");
                return usage();
            }
            if name == "zap-log-level" {
                log_level = flags::zap_level(&v).unwrap_or("info");
            }
            continue;
        }
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--config-file" => file = value().map(PathBuf::from),
            "--listen-addr" => listen = value(),
            "--shutdown-grace" | "--header-read-timeout" | "--write-stall-timeout" => {
                let v = value().unwrap_or_default();
                let d = match allocator_service::config::duration(&v) {
                    Ok(d) if !d.is_zero() => d,
                    Ok(_) => {
                        eprintln!("target-allocator: {flag}: must be more than 0");
                        return usage();
                    }
                    Err(e) => {
                        eprintln!("target-allocator: {flag}: {e}");
                        return usage();
                    }
                };
                match flag.as_str() {
                    "--shutdown-grace" => limits.shutdown_grace = d,
                    "--header-read-timeout" => limits.header_read_timeout = d,
                    _ => limits.write_stall_timeout = d,
                }
            }
            "--max-connections" => match value().and_then(|v| v.parse::<usize>().ok()) {
                Some(n) if n > 0 => {
                    limits.max_connections = allocator_service::server::descriptor_budget(n)
                }
                _ => {
                    eprintln!("target-allocator: --max-connections: expected a positive integer");
                    return usage();
                }
            },
            "-h" | "--help" => return usage(),
            other => {
                eprintln!("target-allocator: unknown argument {other:?}");
                return usage();
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level)),
        )
        .init();
    // The Go allocator's default, where the Operator mounts the generated configuration (its
    // `spec.args` replace the image's command line, so they may not name the file).
    let file = file.unwrap_or_else(|| PathBuf::from(flags::DEFAULT_CONFIG_FILE));
    let cfg = match allocator_service::load_with(&file, &go_flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("target-allocator: {e}");
            return ExitCode::from(1);
        }
    };
    let addr = listen
        .or_else(|| cfg.listen_addr().map(str::to_owned))
        .unwrap_or_else(|| ":8080".into());
    // Go's ":8080" means every interface.
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr
    };
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("target-allocator: cannot listen on {addr}: {e}");
                return ExitCode::from(1);
            }
        };
        let tls = match cfg.https() {
            Some((https_addr, files)) => {
                let https_addr = allocator_service::bind_addr(&https_addr);
                let tcp = match tokio::net::TcpListener::bind(&https_addr).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("target-allocator: cannot listen on {https_addr}: {e}");
                        return ExitCode::from(1);
                    }
                };
                match allocator_service::tls::TlsListener::new(tcp, files) {
                    Ok(l) => {
                        tracing::info!(addr = %https_addr, "serving https (client certificates required)");
                        Some(l)
                    }
                    Err(e) => {
                        eprintln!("target-allocator: https: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            None => None,
        };
        let kube = if cfg.kubernetes || cfg.replication.is_some() {
            match allocator_service::k8s::client(&cfg).await {
                Ok(c) => Some(c),
                Err(e) => {
                    eprintln!("target-allocator: {e}");
                    return ExitCode::from(1);
                }
            }
        } else {
            None
        };
        tracing::info!(%addr, max_connections = limits.max_connections, "serving");
        let shutdown = async {
            let ctrl_c = tokio::signal::ctrl_c();
            #[cfg(unix)]
            {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
            }
            #[cfg(not(unix))]
            let _ = ctrl_c.await;
            tracing::info!("shutting down");
        };
        match allocator_service::serve_with(cfg, listener, tls, kube, shutdown, limits).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("target-allocator: {e}");
                ExitCode::from(1)
            }
        }
    })
}

//! `target-allocator --config-file FILE [--listen-addr HOST:PORT]`

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: target-allocator --config-file FILE [--listen-addr HOST:PORT]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let (mut file, mut listen) = (None, None);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (a.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "--config-file" => file = value().map(PathBuf::from),
            "--listen-addr" => listen = value(),
            "-h" | "--help" => return usage(),
            other => {
                eprintln!("target-allocator: unknown argument {other:?}");
                return usage();
            }
        }
    }
    let Some(file) = file else { return usage() };
    let cfg = match allocator_service::load(&file) {
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
        let kube = if cfg.kubernetes {
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
        tracing::info!(%addr, "serving");
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
        match allocator_service::serve(cfg, listener, tls, kube, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("target-allocator: {e}");
                ExitCode::from(1)
            }
        }
    })
}

//! The HTTPS listener for the mTLS setup between allocator and collectors: TLS 1.2 or 1.3 with a
//! required, verified client certificate (from `https.ca_file_path`), certificate and key
//! reloaded when their files change. Handshakes run in their own tasks, so a slow or failing
//! client never holds up the others.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The three files of the TLS setup.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    fn modified(&self) -> Vec<Option<SystemTime>> {
        [&self.ca, &self.cert, &self.key]
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// Build the server configuration; errors name the file at fault.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        // As Go's `CertPool.AppendCertsFromPEM`, which the Go allocator's CA reloader uses: a
        // block that does not parse as a certificate is skipped; only a file without any
        // certificate is refused.
        let (added, skipped) = roots.add_parsable_certificates(read_certs(&self.ca)?);
        if added == 0 {
            return Err(format!(
                "{}: no CA certificate parses ({skipped} PEM certificate blocks)",
                self.ca.display()
            ));
        }
        if skipped > 0 {
            tracing::warn!(
                file = %self.ca.display(),
                skipped,
                "CA bundle: certificate blocks that do not parse are skipped, as the Go allocator skips them"
            );
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("{}: {e}", self.ca.display()))?;
        let certs = read_certs(&self.cert)?;
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| format!("{} / {}: {e}", self.cert.display(), self.key.display()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The PEM certificates of a file (at least one); errors name the file.
pub(crate) fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    certs_of_pem(&pem).map_err(|e| format!("{}: {e}", p.display()))
}

/// The certificates of PEM text (at least one).
pub(crate) fn certs_of_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

/// A listener that yields established TLS streams (for `axum::serve`).
pub struct TlsListener {
    local: SocketAddr,
    streams: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Check the files now (a bad setup fails start-up), then accept in the background.
    pub fn new(tcp: TcpListener, files: TlsFiles) -> Result<TlsListener, String> {
        let config = files.server_config()?;
        let local = tcp.local_addr().map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(tcp, files, config, tx));
        Ok(TlsListener { local, streams: rx })
    }
}

async fn accept_loop(
    tcp: TcpListener,
    files: TlsFiles,
    mut config: Arc<ServerConfig>,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let mut seen = files.modified();
    loop {
        let (stream, addr) = match tcp.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "https accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let now = files.modified();
        if now != seen {
            seen = now;
            match files.server_config() {
                Ok(c) => {
                    config = c;
                    tracing::info!("https certificates reloaded");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "https certificates unreadable; keeping the previous ones")
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        let acceptor = TlsAcceptor::from(config.clone());
        let tx = tx.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = tx.send((tls, addr)).await;
                }
                Ok(Err(e)) => tracing::info!(%addr, error = %e, "https handshake refused"),
                Err(_) => tracing::info!(%addr, "https handshake timed out"),
            }
        });
    }
}

impl crate::server::Incoming for TlsListener {
    type Io = TlsStream<TcpStream>;

    async fn next(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        match self.streams.recv().await {
            Some(x) => Ok(x),
            // The accept loop only ends when this listener is gone; wait for shutdown.
            None => std::future::pending().await,
        }
    }
}

impl TlsListener {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

//! The HTTPS listener: a client with a certificate from the configured CA is served (and sees
//! secrets); a client without one, or with one from another CA, is refused; plain HTTP shows
//! `<secret>`. Certificates are generated here with rcgen.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn leaf(ca: &Ca, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn client(ca: &Ca, identity: Option<&(String, String)>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn get_tls(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
    path: &str,
) -> std::io::Result<String> {
    get_tls_with(addr, connector, path, "").await
}

/// [`get_tls`] with extra request header lines (each ending in CRLF).
async fn get_tls_with(
    addr: std::net::SocketAddr,
    connector: &TlsConnector,
    path: &str,
    headers: &str,
) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut s = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_clients_with_a_certificate_of_the_configured_ca_are_served_and_see_secrets() {
    let dir = std::env::temp_dir().join(format!("ta-https-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = ca("allocator ca");
    let other = ca("someone else");
    let (server_cert, server_key) =
        leaf(&good, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let collector = leaf(
        &good,
        &["otel-collector-0"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let rogue = leaf(&other, &["intruder"], ExtendedKeyUsagePurpose::ClientAuth);
    std::fs::write(dir.join("ca.pem"), good.cert.pem()).unwrap();
    std::fs::write(dir.join("tls.crt"), &server_cert).unwrap();
    std::fs::write(dir.join("tls.key"), &server_key).unwrap();
    let yaml = r#"
https: {enabled: true, ca_file_path: ca.pem, tls_cert_file_path: tls.crt, tls_key_file_path: tls.key}
collectors: [otel-collector-0]
config:
  scrape_configs:
    - job_name: secured
      basic_auth: {username: scraper, password: hunter2}
      static_configs: [{targets: ["10.0.0.1:9100"]}]
"#;
    std::fs::write(dir.join("config.yaml"), yaml).unwrap();
    let cfg = allocator_service::load(&dir.join("config.yaml")).unwrap();
    let (_, files) = cfg.https().expect("https enabled");
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = plain.local_addr().unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tcp.local_addr().unwrap();
    let tls = allocator_service::tls::TlsListener::new(tcp, files).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(allocator_service::serve(
        cfg,
        plain,
        Some(tls),
        None,
        async {
            let _ = rx.await;
        },
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;

    let served = get_tls(
        tls_addr,
        &client(&good, Some(&collector)),
        "/scrape_configs",
    )
    .await
    .unwrap();
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert!(
        served.contains("hunter2"),
        "secrets are shown over TLS: {served}"
    );
    // The HTML page is redacted even over TLS, as the Go allocator's page is.
    let page = get_tls_with(
        tls_addr,
        &client(&good, Some(&collector)),
        "/scrape_configs",
        "Accept: text/html\r\n",
    )
    .await
    .unwrap();
    assert!(page.contains("text/html"), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("x-content-type-options: nosniff"),
        "{page}"
    );
    assert!(
        page.contains("&lt;secret&gt;") && !page.contains("hunter2"),
        "{page}"
    );
    let jobs = get_tls(tls_addr, &client(&good, Some(&collector)), "/jobs")
        .await
        .unwrap();
    assert!(jobs.contains("/jobs/secured/targets"), "{jobs}");

    // No client certificate, or one from another CA: no HTTP answer.
    for (what, connector) in [
        ("none", client(&good, None)),
        ("rogue", client(&good, Some(&rogue))),
    ] {
        // A refused handshake is an error here, or (TLS 1.3) a closed stream without an answer.
        if let Ok(text) = get_tls(tls_addr, &connector, "/jobs").await {
            assert!(!text.contains("HTTP/1.1 200"), "{what}: served {text}");
        }
    }

    // Plain HTTP hides the secret.
    let plain = common::get(plain_addr, "/scrape_configs").await.body;
    assert!(
        plain.contains("<secret>") && !plain.contains("hunter2"),
        "{plain}"
    );

    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn a_missing_certificate_file_is_an_error_naming_it() {
    let files = allocator_service::tls::TlsFiles {
        ca: "/nonexistent/ca.pem".into(),
        cert: "/nonexistent/tls.crt".into(),
        key: "/nonexistent/tls.key".into(),
    };
    let err = files.server_config().unwrap_err();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
}

/// A CA bundle with a certificate block that does not parse: the others are used, as Go's
/// `AppendCertsFromPEM` (the Go allocator's CA reloader) skips such a block; a bundle of only
/// such blocks is refused, naming the file.
#[test]
fn a_ca_bundle_keeps_the_certificates_that_parse() {
    let dir = std::env::temp_dir().join(format!("ta-https-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let good = ca("allocator ca");
    let (cert, key) = leaf(&good, &["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.join("tls.crt"), &cert).unwrap();
    std::fs::write(dir.join("tls.key"), &key).unwrap();
    // "garbage!" in base64: a CERTIFICATE block whose DER is not a certificate.
    let bad = "-----BEGIN CERTIFICATE-----\nZ2FyYmFnZSE=\n-----END CERTIFICATE-----\n";
    let files = allocator_service::tls::TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    };
    std::fs::write(&files.ca, format!("{}{bad}", good.cert.pem())).unwrap();
    files.server_config().expect("the parsable CA is used");
    std::fs::write(&files.ca, bad).unwrap();
    let err = files.server_config().unwrap_err();
    assert!(
        err.contains("ca.pem") && err.contains("no CA certificate"),
        "{err}"
    );
}

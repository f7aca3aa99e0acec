//! The scrape settings of a generated job that a collector needs to scrape its targets but that
//! do not change them: TLS, authorization, basic auth, OAuth2, `honor_labels`,
//! `honor_timestamps`, HTTP/2, redirects and metric relabelings. The resources name Secrets and
//! ConfigMaps for the credentials; they are read here and written inline, as prometheus-operator's
//! generator does with `WithInlineTLSConfig` (what the Go allocator calls), and served on
//! `/scrape_configs` in Prometheus' spelling (secrets redacted there unless shown on purpose).
//!
//! A resource whose credentials cannot be read (a missing Secret, ConfigMap or key, or TLS
//! material that is not PEM) is rejected as a whole, as the operator's resource selector rejects
//! it: a job without its credentials would be scraped wrongly, not just incompletely.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::relabel::RuleSpec;

/// Where credentials are read from: the cluster's Secrets and ConfigMaps.
pub trait Assets {
    /// The value of `key` in Secret `namespace/name` (decoded), if both exist.
    fn secret(&self, namespace: &str, name: &str, key: &str) -> Option<String>;
    /// The value of `key` in ConfigMap `namespace/name`, if both exist.
    fn config_map(&self, namespace: &str, name: &str, key: &str) -> Option<String>;
    /// Why the `kind` (`Secret` or `ConfigMap`) `namespace/name` cannot be read now, when
    /// something else than its absence stands in the way (a read by name that failed or has not
    /// answered yet): named in the refusal instead of "not found".
    fn why_unreadable(&self, _kind: &str, _namespace: &str, _name: &str) -> Option<String> {
        None
    }
}

/// A job's scrape settings as the resource (and its scrape class) spell them.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The resource's namespace: where the Secrets and ConfigMaps it names live.
    pub namespace: String,
    pub honor_labels: Option<bool>,
    pub honor_timestamps: Option<bool>,
    pub enable_http2: Option<bool>,
    pub follow_redirects: Option<bool>,
    /// `tlsConfig` (the resource's, else its scrape class's).
    pub tls_config: Option<Value>,
    /// The resource's own `authorization`.
    pub authorization: Option<Value>,
    /// The scrape class's `authorization`, used when the resource has none. prometheus-operator
    /// v0.92 writes only its type (its credentials are not loaded; the corpus case
    /// `03-client-settings` shows it with the Secret present in both namespaces).
    pub class_authorization: Option<Value>,
    /// ServiceMonitor's deprecated `bearerTokenSecret`: a Bearer authorization.
    pub bearer_token_secret: Option<Value>,
    pub basic_auth: Option<Value>,
    pub oauth2: Option<Value>,
    /// The scrape class's metric relabelings, then the resource's.
    pub metric_relabelings: Vec<RuleSpec>,
    /// Fields the generator copies into the job as they are, already in Prometheus' spelling:
    /// scrape limits and protocols, histogram settings, `track_timestamps_staleness`,
    /// `enable_compression`, proxy URL and exclusions.
    pub plain: Map<String, Value>,
    /// `proxyConnectHeader`: header name → Secret key references.
    pub proxy_connect_header: Option<Value>,
    /// ServiceMonitor's deprecated `bearerTokenFile`: a Bearer token the scraper reads.
    pub bearer_token_file: Option<String>,
}

/// `{name, key}` of a Secret or ConfigMap.
#[derive(Deserialize)]
struct KeyRef {
    name: String,
    key: String,
}

/// `{secret: {name, key}}` or `{configMap: {name, key}}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretOrConfigMap {
    secret: Option<KeyRef>,
    config_map: Option<KeyRef>,
}

/// Reads what the settings name from `assets`.
struct Reader<'a> {
    ns: &'a str,
    assets: &'a dyn Assets,
}

impl Reader<'_> {
    /// The refusal of a `kind` object that did not give `key`.
    fn missing(&self, what: &str, kind: &str, name: &str, key: &str) -> String {
        match self.assets.why_unreadable(kind, self.ns, name) {
            Some(why) => format!("{what}: {kind} {}/{name} cannot be read: {why}", self.ns),
            None => format!("{what}: key {key} of {kind} {}/{name} not found", self.ns),
        }
    }

    fn secret(&self, what: &str, r: &Value) -> Result<String, String> {
        let r: KeyRef = serde_json::from_value(r.clone())
            .map_err(|e| format!("{what}: not a Secret key reference: {e}"))?;
        self.assets
            .secret(self.ns, &r.name, &r.key)
            .ok_or_else(|| self.missing(what, "Secret", &r.name, &r.key))
    }

    fn secret_or_config_map(&self, what: &str, r: &Value) -> Result<Option<String>, String> {
        let r: SecretOrConfigMap = serde_json::from_value(r.clone())
            .map_err(|e| format!("{what}: not a Secret or ConfigMap reference: {e}"))?;
        match (r.secret, r.config_map) {
            (Some(s), _) => self
                .assets
                .secret(self.ns, &s.name, &s.key)
                .map(Some)
                .ok_or_else(|| self.missing(what, "Secret", &s.name, &s.key)),
            (None, Some(c)) => self
                .assets
                .config_map(self.ns, &c.name, &c.key)
                .map(Some)
                .ok_or_else(|| self.missing(what, "ConfigMap", &c.name, &c.key)),
            (None, None) => Ok(None),
        }
    }
}

/// The generator refuses TLS material that does not decode as PEM.
fn pem(what: &str, text: String) -> Result<String, String> {
    let t = text.trim_start();
    if t.starts_with("-----BEGIN ") && t.contains("-----END ") {
        Ok(text)
    } else {
        Err(format!("{what}: not PEM"))
    }
}

/// A CA as the operator's asset store checks it (`addTLSAssets`): its first PEM block must be
/// a certificate that parses (the resource is rejected otherwise, and the collector would fail
/// to build the scrape pool). Parsed as a trust anchor, which accepts what a CA file holds
/// (version 1 certificates included) and refuses malformed DER.
fn ca_certificate(what: &str, text: String) -> Result<String, String> {
    use rustls_pki_types::pem::{self, SectionKind};
    // As Go's `pem.Decode`: text before the first block is skipped.
    match pem::from_buf(&mut text.as_bytes()) {
        Ok(Some((SectionKind::Certificate, der))) => {
            let der = rustls_pki_types::CertificateDer::from(der);
            tokio_rustls::rustls::RootCertStore::empty()
                .add(der)
                .map_err(|e| format!("{what}: failed to parse certificate: {e}"))?;
            Ok(text)
        }
        Ok(Some(_)) => Err(format!("{what}: the first PEM block is not a certificate")),
        Ok(None) | Err(_) => Err(format!("{what}: failed to decode PEM block")),
    }
}

/// A client certificate and key as the operator's asset store checks them (`addTLSAssets` runs
/// `tls.X509KeyPair` and rejects the resource on error): the certificate input must hold a
/// certificate, the key input a private key, and the key must be the first certificate's.
///
/// The key is loaded by rustls' ring provider, which gives its public key to compare with the
/// certificate's. A key type the provider does not load (RSA under 2048 bits, P-521) gets no
/// more than the PEM check, since refusing it would refuse what the Go allocator serves: a
/// mismatched pair of those types is served here and refused by the operator.
fn key_pair(cert: &str, key: &str) -> Result<(), String> {
    use rustls_pki_types::pem::{self, SectionKind};
    use tokio_rustls::rustls;
    // Go's `pem.Decode` loop: blocks of other types are skipped.
    let sections = |text: &str| {
        let mut rd = text.as_bytes();
        std::iter::from_fn(move || pem::from_buf(&mut rd).ok().flatten()).collect::<Vec<_>>()
    };
    let cert_sections = sections(cert);
    let Some(leaf) = cert_sections
        .iter()
        .find(|(kind, _)| *kind == SectionKind::Certificate)
    else {
        let switched = cert_sections.iter().any(|(kind, _)| {
            matches!(
                kind,
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
            )
        });
        return Err(if switched {
            "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched"
        } else {
            "tls: failed to find certificate PEM data in certificate input"
        }
        .into());
    };
    let key_der = sections(key)
        .into_iter()
        .find_map(|(kind, der)| match kind {
            SectionKind::PrivateKey => Some(rustls_pki_types::PrivateKeyDer::Pkcs8(der.into())),
            SectionKind::RsaPrivateKey => Some(rustls_pki_types::PrivateKeyDer::Pkcs1(der.into())),
            SectionKind::EcPrivateKey => Some(rustls_pki_types::PrivateKeyDer::Sec1(der.into())),
            _ => None,
        });
    let Some(key_der) = key_der else {
        return Err(if sections(key)
            .iter()
            .any(|(kind, _)| *kind == SectionKind::Certificate)
        {
            "tls: found a certificate rather than a key in the PEM for the private key"
        } else {
            "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input"
        }
        .into());
    };
    let provider = rustls::crypto::ring::default_provider();
    let Ok(signing) = provider.key_provider.load_private_key(key_der) else {
        return Ok(());
    };
    // The certificate's SubjectPublicKeyInfo read from its DER directly, not through webpki,
    // which refuses version 1 certificates (`openssl x509 -req` makes them; Go takes them).
    let (Some(key_spki), Some(cert_spki)) = (signing.public_key(), certificate_spki(&leaf.1))
    else {
        return Ok(());
    };
    if key_spki.as_ref() == cert_spki {
        Ok(())
    } else {
        Err("tls: private key does not match public key".into())
    }
}

/// A DER element: its tag, its contents, the whole element, and what follows it.
struct Der<'a> {
    tag: u8,
    contents: &'a [u8],
    element: &'a [u8],
    rest: &'a [u8],
}

/// The DER element at the start of `d` (`None` when malformed or longer than the input).
fn der_element(d: &[u8]) -> Option<Der<'_>> {
    let tag = *d.first()?;
    let first = *d.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in d.get(2..2 + n)? {
            len = len.checked_mul(256)?.checked_add(usize::from(*b))?;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    Some(Der {
        tag,
        contents: d.get(header..end)?,
        element: d.get(..end)?,
        rest: d.get(end..)?,
    })
}

/// The `subjectPublicKeyInfo` element of an X.509 certificate: the seventh field of its
/// `tbsCertificate` (the sixth in a version 1 certificate, which has no version field).
fn certificate_spki(cert: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xa0;
    let sequence = |d| der_element(d).filter(|e| e.tag == SEQUENCE);
    let mut tbs = sequence(sequence(cert)?.contents)?.contents;
    if tbs.first() == Some(&VERSION) {
        tbs = der_element(tbs)?.rest;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        tbs = der_element(tbs)?.rest;
    }
    sequence(tbs).map(|e| e.element)
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn tls_config(r: &Reader<'_>, t: &Value) -> Result<Value, String> {
    let mut out = Map::new();
    for (cr, prom) in [("ca", "ca"), ("cert", "cert")] {
        if let Some(v) = t.get(cr) {
            let what = format!("tlsConfig.{cr}");
            if let Some(text) = r.secret_or_config_map(&what, v)? {
                let text = match cr {
                    "ca" => ca_certificate(&what, text)?,
                    _ => pem(&what, text)?,
                };
                out.insert(prom.into(), json!(text));
            }
        }
    }
    if let Some(k) = t.get("keySecret") {
        out.insert(
            "key".into(),
            json!(pem(
                "tlsConfig.keySecret",
                r.secret("tlsConfig.keySecret", k)?
            )?),
        );
    }
    if let (Some(Value::String(c)), Some(Value::String(k))) = (out.get("cert"), out.get("key")) {
        key_pair(c, k).map_err(|e| format!("tlsConfig.cert and tlsConfig.keySecret: {e}"))?;
    }
    for (cr, prom) in [
        ("caFile", "ca_file"),
        ("certFile", "cert_file"),
        ("keyFile", "key_file"),
        ("serverName", "server_name"),
        ("minVersion", "min_version"),
        ("maxVersion", "max_version"),
    ] {
        if let Some(s) = str_field(t, cr) {
            out.insert(prom.into(), json!(s));
        }
    }
    // Prometheus writes this field even when false.
    let skip = t
        .get("insecureSkipVerify")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    out.insert("insecure_skip_verify".into(), json!(skip));
    Ok(Value::Object(out))
}

/// A resource's own `authorization` (the operator's `SafeAuthorization`), which the operator
/// refuses without credentials or of type `basic`.
fn authorization(r: &Reader<'_>, a: &Value) -> Result<Value, String> {
    let kind = str_field(a, "type").map_or("Bearer", str::trim);
    if kind.eq_ignore_ascii_case("basic") {
        return Err(
            "authorization: type cannot be \"basic\", use basicAuth instead (the operator refuses it)"
                .into(),
        );
    }
    let Some(c) = a.get("credentials") else {
        return Err("authorization: credentials are required (the operator refuses it)".into());
    };
    Ok(json!({
        "type": kind,
        "credentials": r.secret("authorization.credentials", c)?,
    }))
}

/// A scrape class's `authorization`: its type and `credentialsFile`. prometheus-operator v0.92
/// does not load the Secret a class's `credentials` name (corpus case `03-client-settings`), so
/// they are left out as it leaves them out.
fn class_authorization(a: &Value) -> Value {
    let mut out = Map::new();
    out.insert(
        "type".into(),
        json!(str_field(a, "type").map_or("Bearer", str::trim)),
    );
    if let Some(f) = str_field(a, "credentialsFile") {
        out.insert("credentials_file".into(), json!(f));
    }
    Value::Object(out)
}

/// Both fields are Secret key references the operator reads (a missing one fails as a Secret
/// that cannot be read).
fn basic_auth(r: &Reader<'_>, b: &Value) -> Result<Value, String> {
    let mut out = Map::new();
    for field in ["username", "password"] {
        let v = b
            .get(field)
            .ok_or_else(|| format!("basicAuth.{field}: a Secret key reference is required"))?;
        out.insert(
            field.into(),
            json!(r.secret(&format!("basicAuth.{field}"), v)?),
        );
    }
    Ok(Value::Object(out))
}

fn oauth2(r: &Reader<'_>, o: &Value) -> Result<Value, String> {
    let mut out = Map::new();
    if let Some(id) = o.get("clientId") {
        if let Some(id) = r.secret_or_config_map("oauth2.clientId", id)? {
            out.insert("client_id".into(), json!(id));
        }
    }
    let secret = o
        .get("clientSecret")
        .ok_or("oauth2.clientSecret: a Secret key reference is required")?;
    out.insert(
        "client_secret".into(),
        json!(r.secret("oauth2.clientSecret", secret)?),
    );
    match str_field(o, "tokenUrl") {
        Some(u) => out.insert("token_url".into(), json!(u)),
        None => return Err("oauth2: tokenUrl is required (the operator refuses it)".into()),
    };
    if let Some(s) = o
        .get("scopes")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.insert("scopes".into(), s.clone());
    }
    if let Some(p) = o
        .get("endpointParams")
        .filter(|p| p.as_object().is_some_and(|m| !m.is_empty()))
    {
        out.insert("endpoint_params".into(), p.clone());
    }
    // Its own proxy and TLS settings (for the token endpoint).
    for (cr, prom) in [
        ("proxyUrl", "proxy_url"),
        ("noProxy", "no_proxy"),
        ("proxyFromEnvironment", "proxy_from_environment"),
    ] {
        if let Some(v) = o.get(cr).filter(|v| !v.is_null()) {
            out.insert(prom.into(), v.clone());
        }
    }
    if let Some(h) = o.get("proxyConnectHeader") {
        out.insert("proxy_connect_header".into(), proxy_connect_header(r, h)?);
    }
    if let Some(t) = o.get("tlsConfig") {
        out.insert("tls_config".into(), tls_config(r, t)?);
    }
    Ok(Value::Object(out))
}

/// `proxyConnectHeader` (header → Secret key references) with the values read.
fn proxy_connect_header(r: &Reader<'_>, h: &Value) -> Result<Value, String> {
    let headers = h
        .as_object()
        .ok_or("proxyConnectHeader: not a map of header names to Secret key references")?;
    let mut out = Map::new();
    for (name, refs) in headers {
        let refs = refs
            .as_array()
            .ok_or_else(|| format!("proxyConnectHeader.{name}: not a list"))?;
        let values: Result<Vec<Value>, String> = refs
            .iter()
            .map(|x| {
                r.secret(&format!("proxyConnectHeader.{name}"), x)
                    .map(Value::from)
            })
            .collect();
        out.insert(name.clone(), Value::Array(values?));
    }
    Ok(Value::Object(out))
}

/// The settings in Prometheus' spelling, credentials read from `assets`: the fields a loaded
/// scrape config has (defaults filled: `honor_timestamps`, `enable_http2` and
/// `follow_redirects` are true unless set false), to be merged into the job's
/// `/scrape_configs` entry.
pub fn render(s: &Settings, assets: &dyn Assets) -> Result<Map<String, Value>, String> {
    let r = Reader {
        ns: &s.namespace,
        assets,
    };
    let mut out = Map::new();
    if s.honor_labels == Some(true) {
        out.insert("honor_labels".into(), json!(true));
    }
    out.insert(
        "honor_timestamps".into(),
        json!(s.honor_timestamps.unwrap_or(true)),
    );
    out.insert("enable_http2".into(), json!(s.enable_http2.unwrap_or(true)));
    out.insert(
        "follow_redirects".into(),
        json!(s.follow_redirects.unwrap_or(true)),
    );
    if let Some(t) = &s.tls_config {
        out.insert("tls_config".into(), tls_config(&r, t)?);
    }
    // The operator refuses a resource that sets more than one way to authenticate.
    let own: Vec<&str> = [
        ("authorization", s.authorization.is_some()),
        ("basicAuth", s.basic_auth.is_some()),
        ("oauth2", s.oauth2.is_some()),
        ("bearerTokenSecret", s.bearer_token_secret.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if own.len() > 1 {
        return Err(format!(
            "{} cannot be configured at the same time (the operator refuses it)",
            own.join(" and ")
        ));
    }
    let auth = match (
        &s.authorization,
        &s.bearer_token_secret,
        &s.class_authorization,
    ) {
        (Some(a), _, _) => Some(authorization(&r, a)?),
        (None, Some(b), _) => Some(json!({
            "type": "Bearer",
            "credentials": r.secret("bearerTokenSecret", b)?,
        })),
        (None, None, Some(a)) => Some(class_authorization(a)),
        // Prometheus' loader turns `bearer_token_file` into this.
        (None, None, None) => s
            .bearer_token_file
            .as_ref()
            .map(|f| json!({"type": "Bearer", "credentials_file": f})),
    };
    if let Some(a) = auth {
        out.insert("authorization".into(), a);
    }
    if let Some(b) = &s.basic_auth {
        out.insert("basic_auth".into(), basic_auth(&r, b)?);
    }
    if let Some(o) = &s.oauth2 {
        out.insert("oauth2".into(), oauth2(&r, o)?);
    }
    // Prometheus refuses to load a job with more than one (the operator's output for a class's
    // authorization with a resource's basic auth or OAuth2 does not load): refused here, as
    // serving it would make every collector refuse the whole configuration.
    let ways: Vec<&str> = ["authorization", "basic_auth", "oauth2"]
        .into_iter()
        .filter(|k| out.contains_key(*k))
        .collect();
    if ways.len() > 1 {
        return Err(format!(
            "at most one of basic_auth, oauth2 & authorization may be set; this job has {} (its scrape class's authorization counts)",
            ways.join(" and ")
        ));
    }
    out.extend(s.plain.clone());
    if let Some(h) = &s.proxy_connect_header {
        out.insert("proxy_connect_header".into(), proxy_connect_header(&r, h)?);
    }
    if !s.metric_relabelings.is_empty() {
        out.insert(
            "metric_relabel_configs".into(),
            crate::state::rules_json(&s.metric_relabelings),
        );
    }
    Ok(out)
}

/// A ScrapeConfig's `httpSDConfigs` entry as a Prometheus `http_sd_configs` entry, credentials
/// read from the resource's namespace and written inline (what
/// [`crate::discovery::http_sd::Endpoint::parse`] reads). Proxies and OAuth2 are refused.
pub fn http_sd_entry(
    namespace: &str,
    h: &super::monitors::CrHttpSd,
    assets: &dyn Assets,
) -> Result<serde_yaml::Value, String> {
    if h.oauth2.is_some() {
        return Err("httpSDConfigs: oauth2 is not supported by this allocator".into());
    }
    if h.proxy_url.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err("httpSDConfigs: proxyUrl is not supported by this allocator".into());
    }
    let r = Reader {
        ns: namespace,
        assets,
    };
    let mut out = Map::new();
    out.insert("url".into(), json!(h.url));
    if let Some(i) = &h.refresh_interval {
        out.insert("refresh_interval".into(), json!(i));
    }
    if let Some(a) = &h.authorization {
        out.insert("authorization".into(), authorization(&r, a)?);
    }
    if let Some(b) = &h.basic_auth {
        out.insert("basic_auth".into(), basic_auth(&r, b)?);
    }
    if let Some(t) = &h.tls_config {
        out.insert("tls_config".into(), tls_config(&r, t)?);
    }
    serde_yaml::to_value(Value::Object(out)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CA check of the operator's asset store: a certificate (here one rcgen made) passes;
    /// PEM armour around bytes that are no certificate, or a key first, rejects the resource.
    #[test]
    fn a_ca_must_be_a_certificate_that_parses() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ca.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let good = format!("# the cluster CA\n{}", cert.pem());
        assert_eq!(ca_certificate("tlsConfig.ca", good.clone()), Ok(good));
        let fake = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
        let e = ca_certificate("tlsConfig.ca", fake.into()).unwrap_err();
        assert!(e.starts_with("tlsConfig.ca: "), "{e}");
        let e = ca_certificate("tlsConfig.ca", key.serialize_pem()).unwrap_err();
        assert_eq!(e, "tlsConfig.ca: the first PEM block is not a certificate");
        assert_eq!(
            ca_certificate("tlsConfig.ca", "not pem".into()).unwrap_err(),
            "tlsConfig.ca: failed to decode PEM block"
        );
    }

    /// `tls.X509KeyPair`'s refusals the operator makes: a key that is not the certificate's, and
    /// the inputs switched. The corpus case `08-rejected` holds the operator's own verdicts,
    /// including the key types checked only as PEM here.
    #[test]
    fn a_client_key_must_be_the_certificates() {
        let key = rcgen::KeyPair::generate().unwrap();
        let other = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem();
        assert_eq!(key_pair(&cert, &key.serialize_pem()), Ok(()));
        assert_eq!(
            key_pair(&cert, &other.serialize_pem()).unwrap_err(),
            "tls: private key does not match public key"
        );
        let e = key_pair(&key.serialize_pem(), &cert).unwrap_err();
        assert!(e.contains("PEM inputs may have been switched"), "{e}");
    }

    struct Fixed;
    impl Assets for Fixed {
        fn secret(&self, ns: &str, name: &str, key: &str) -> Option<String> {
            (ns == "shop" && name == "s" && key == "k").then(|| "v".to_owned())
        }
        fn config_map(&self, _: &str, _: &str, _: &str) -> Option<String> {
            None
        }
    }

    fn settings(auth: Value) -> Settings {
        Settings {
            namespace: "shop".into(),
            authorization: Some(auth),
            ..Settings::default()
        }
    }

    #[test]
    fn a_missing_secret_or_key_names_what_is_missing() {
        let e = render(
            &settings(json!({"credentials": {"name": "s", "key": "nope"}})),
            &Fixed,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "authorization.credentials: key nope of Secret shop/s not found"
        );
        let ok = render(
            &settings(json!({"credentials": {"name": "s", "key": "k"}})),
            &Fixed,
        )
        .unwrap();
        assert_eq!(
            ok["authorization"],
            json!({"type": "Bearer", "credentials": "v"})
        );
    }

    /// A Secret read by name whose read failed: the refusal names it and the API server's
    /// answer, not "not found".
    #[test]
    fn an_unreadable_secret_is_named_with_why() {
        struct Denied;
        impl Assets for Denied {
            fn secret(&self, _: &str, _: &str, _: &str) -> Option<String> {
                None
            }
            fn config_map(&self, _: &str, _: &str, _: &str) -> Option<String> {
                None
            }
            fn why_unreadable(&self, kind: &str, ns: &str, name: &str) -> Option<String> {
                (kind == "Secret" && ns == "shop" && name == "s").then(|| "GET answered 403".into())
            }
        }
        let e = render(
            &settings(json!({"credentials": {"name": "s", "key": "k"}})),
            &Denied,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "authorization.credentials: Secret shop/s cannot be read: GET answered 403"
        );
        let e = render(
            &settings(json!({"credentials": {"name": "other", "key": "k"}})),
            &Denied,
        )
        .unwrap_err();
        assert_eq!(
            e,
            "authorization.credentials: key k of Secret shop/other not found"
        );
    }

    #[test]
    fn refuses_what_the_operator_or_prometheus_refuses() {
        // An authorization without credentials (the operator's validation).
        let e = render(&settings(json!({"type": "Custom"})), &Fixed).unwrap_err();
        assert!(e.contains("credentials are required"), "{e}");
        // Two ways to authenticate on the resource itself.
        let both = Settings {
            basic_auth: Some(json!({"username": {"name": "s", "key": "k"}})),
            ..settings(json!({"credentials": {"name": "s", "key": "k"}}))
        };
        let e = render(&both, &Fixed).unwrap_err();
        assert!(e.starts_with("authorization and basicAuth"), "{e}");
        // A scrape class's authorization with the resource's OAuth2: the generator writes both,
        // which Prometheus does not load.
        let class_and_oauth2 = Settings {
            namespace: "shop".into(),
            class_authorization: Some(json!({"credentialsFile": "/t"})),
            oauth2: Some(json!({
                "clientId": {"secret": {"name": "s", "key": "k"}},
                "clientSecret": {"name": "s", "key": "k"},
                "tokenUrl": "https://t"
            })),
            ..Settings::default()
        };
        let e = render(&class_and_oauth2, &Fixed).unwrap_err();
        assert!(e.contains("authorization and oauth2"), "{e}");
    }

    #[test]
    fn tls_material_that_is_not_pem_is_refused() {
        let s = Settings {
            namespace: "shop".into(),
            tls_config: Some(json!({"ca": {"secret": {"name": "s", "key": "k"}}})),
            ..Settings::default()
        };
        assert_eq!(
            render(&s, &Fixed).unwrap_err(),
            "tlsConfig.ca: failed to decode PEM block"
        );
    }
}

//! The Go allocator's command-line flags and environment variables, applied over the
//! configuration file as it applies them: the file first, then the environment, then each flag
//! given on the command line. The Operator passes a TargetAllocator's `spec.args` as
//! `--name=value`, so a flag the Go allocator takes must not stop this one from starting.

use std::path::PathBuf;

use crate::config::{File, Https};

/// The Go allocator's default `--config-file`, where the Operator mounts the generated
/// configuration.
pub const DEFAULT_CONFIG_FILE: &str = "/conf/targetallocator.yaml";

/// What the Go allocator's flags set; `None` where a flag was not given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Overrides {
    /// `--enable-prometheus-cr-watcher`.
    pub prometheus_cr: Option<bool>,
    /// `--kubeconfig-path`.
    pub kubeconfig: Option<PathBuf>,
    /// `--enable-https-server`.
    pub https_enabled: Option<bool>,
    /// `--listen-addr-https`.
    pub https_listen_addr: Option<String>,
    /// `--https-ca-file`.
    pub https_ca_file: Option<String>,
    /// `--https-tls-cert-file`.
    pub https_cert_file: Option<String>,
    /// `--https-tls-key-file`.
    pub https_key_file: Option<String>,
    /// `--allow-insecure-auth-secrets`.
    pub allow_insecure_auth_secrets: Option<bool>,
}

/// Which kind of value a flag takes.
pub enum Takes {
    /// A boolean: `--flag` alone means true, `--flag=false` turns it off.
    Bool,
    /// A value, inline (`--flag=v`) or as the next argument.
    Value,
}

/// The Go allocator's own flags (and controller-runtime's zap logging flags, which it registers
/// too), by name without the dashes: what each takes. `None`: not one of them.
pub fn go_flag(name: &str) -> Option<Takes> {
    Some(match name {
        "enable-prometheus-cr-watcher"
        | "enable-https-server"
        | "allow-insecure-auth-secrets"
        | "zap-devel" => Takes::Bool,
        "kubeconfig-path"
        | "listen-addr-https"
        | "https-ca-file"
        | "https-tls-cert-file"
        | "https-tls-key-file"
        | "zap-encoder"
        | "zap-log-level"
        | "zap-stacktrace-level"
        | "zap-time-encoding" => Takes::Value,
        _ => return None,
    })
}

/// A boolean as Go's `strconv.ParseBool` reads it (pflag's boolean flags use it).
pub fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The `tracing` level of a `--zap-log-level` value: zap's level names, or a verbosity (an
/// integer above 0, more detailed than debug).
pub fn zap_level(v: &str) -> Result<&'static str, String> {
    match v {
        "debug" => Ok("debug"),
        "info" => Ok("info"),
        "warn" => Ok("warn"),
        "error" | "dpanic" | "panic" | "fatal" => Ok("error"),
        _ => match v.parse::<u8>() {
            Ok(n) if n > 0 => Ok(if n == 1 { "debug" } else { "trace" }),
            _ => Err(format!(
                "{v:?}: expected debug, info, warn, error, dpanic, panic, fatal or an integer above 0"
            )),
        },
    }
}

impl Overrides {
    /// Record flag `name` (one [`go_flag`] accepts) with its value; the zap flags other than
    /// the level only shape the Go allocator's log lines and are accepted as they are.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let flag = |v: &str| go_bool(v).ok_or_else(|| format!("--{name}: {v:?} is not a boolean"));
        match name {
            "enable-prometheus-cr-watcher" => self.prometheus_cr = Some(flag(value)?),
            "enable-https-server" => self.https_enabled = Some(flag(value)?),
            "allow-insecure-auth-secrets" => self.allow_insecure_auth_secrets = Some(flag(value)?),
            "kubeconfig-path" => self.kubeconfig = Some(PathBuf::from(value)),
            "listen-addr-https" => self.https_listen_addr = Some(value.to_owned()),
            "https-ca-file" => self.https_ca_file = Some(value.to_owned()),
            "https-tls-cert-file" => self.https_cert_file = Some(value.to_owned()),
            "https-tls-key-file" => self.https_key_file = Some(value.to_owned()),
            "zap-log-level" => {
                zap_level(value).map_err(|e| format!("--{name}: {e}"))?;
            }
            "zap-devel" => {
                flag(value)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Apply the environment and then these flags over `file`, in the Go allocator's order.
    pub fn apply(&self, file: &mut File) {
        // Go: `ALLOW_INSECURE_AUTH_SECRETS` set to exactly "true" turns it on; any other value
        // leaves the file's setting.
        if std::env::var("ALLOW_INSECURE_AUTH_SECRETS").is_ok_and(|v| v == "true") {
            file.allow_insecure_auth_secrets = true;
        }
        if let Some(v) = self.allow_insecure_auth_secrets {
            file.allow_insecure_auth_secrets = v;
        }
        if let Some(v) = self.prometheus_cr {
            file.prometheus_cr
                .get_or_insert_with(Default::default)
                .enabled = v;
        }
        if let Some(p) = &self.kubeconfig {
            file.kube_config_file_path = Some(p.clone());
        }
        let https_flags = [
            &self.https_listen_addr,
            &self.https_ca_file,
            &self.https_cert_file,
            &self.https_key_file,
        ];
        if self.https_enabled.is_none() && https_flags.iter().all(|f| f.is_none()) {
            return;
        }
        let https = file.https.get_or_insert_with(Https::default);
        if let Some(v) = self.https_enabled {
            https.enabled = v;
        }
        for (flag, field) in https_flags.into_iter().zip([
            &mut https.listen_addr,
            &mut https.ca_file_path,
            &mut https.tls_cert_file_path,
            &mut https.tls_key_file_path,
        ]) {
            if let Some(v) = flag {
                *field = Some(v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_and_levels_read_as_go_reads_them() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(go_bool(v), Some(true), "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(go_bool(v), Some(false), "{v}");
        }
        for v in ["yes", "on", "", "tRUE", "2"] {
            assert_eq!(go_bool(v), None, "{v}");
        }
        assert_eq!(zap_level("debug"), Ok("debug"));
        assert_eq!(zap_level("panic"), Ok("error"));
        assert_eq!(zap_level("1"), Ok("debug"));
        assert_eq!(zap_level("5"), Ok("trace"));
        assert!(zap_level("0").is_err());
        assert!(zap_level("verbose").is_err());
    }

    #[test]
    fn flags_override_the_file_and_only_what_they_name() {
        let text = "collector_namespace: ns\nprometheus_cr:\n  enabled: false\n\
                    https:\n  enabled: true\n  listen_addr: ':9443'\n  ca_file_path: /a/ca.crt\n\
                    config:\n  scrape_configs: []\n";
        let mut file: File = serde_yaml::from_str(text).unwrap();
        let mut o = Overrides::default();
        o.set("enable-prometheus-cr-watcher", "true").unwrap();
        o.set("https-tls-cert-file", "/b/tls.crt").unwrap();
        o.set("allow-insecure-auth-secrets", "true").unwrap();
        o.set("kubeconfig-path", "/k/config").unwrap();
        o.set("zap-encoder", "json").unwrap();
        o.apply(&mut file);
        assert!(file.prometheus_cr.as_ref().unwrap().enabled);
        assert!(file.allow_insecure_auth_secrets);
        assert_eq!(file.kube_config_file_path, Some(PathBuf::from("/k/config")));
        let https = file.https.as_ref().unwrap();
        assert!(https.enabled);
        assert_eq!(https.listen_addr.as_deref(), Some(":9443"));
        assert_eq!(https.ca_file_path.as_deref(), Some("/a/ca.crt"));
        assert_eq!(https.tls_cert_file_path.as_deref(), Some("/b/tls.crt"));

        // A flag set to false turns off what the file turned on.
        let mut o = Overrides::default();
        o.set("enable-https-server", "false").unwrap();
        o.apply(&mut file);
        assert!(!file.https.as_ref().unwrap().enabled);

        let mut o = Overrides::default();
        assert!(o.set("enable-https-server", "yes").is_err());
        assert!(o.set("zap-log-level", "loud").is_err());
    }
}

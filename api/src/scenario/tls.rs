//! The TLS block every TCP-based kind shares.

use serde::{Deserialize, Serialize};

/// TLS client settings (rustls; certificates are verified against the Mozilla root store).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Accept any certificate, unverified. Only for test targets with self-signed
    /// certificates: it removes all protection against impostors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
    /// The name sent (SNI) and verified. Default: the host of the URL or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The certificate authorities to trust instead of the Mozilla roots (a private CA, or a
    /// test target's own certificate): PEM text, or a PEM file relative to the LoadTest
    /// file (files only where the runner can read them: `stampede run` and `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// A client certificate chain for mutual TLS, PEM text or file as for `ca`; with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// The private key of `cert` (PKCS#8, PKCS#1 or SEC1 PEM), text or file as for `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Tls {
    /// Whether `value` (of `ca`, `cert` or `key`) is PEM text rather than a file name.
    pub fn is_inline_pem(value: &str) -> bool {
        value.trim_start().starts_with("-----BEGIN ")
    }

    /// The fields that name files, with their field names: what a runner pod cannot read.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)]
            .into_iter()
            .filter_map(|(f, v)| v.as_deref().map(|v| (f, v)))
            .filter(|(_, v)| !Tls::is_inline_pem(v))
            .collect()
    }
}

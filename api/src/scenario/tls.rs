//! The TLS block every TCP-based kind shares.

use serde::{Deserialize, Serialize};

use crate::scenario::value_from::ValueFrom;

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
    /// `ca` as PEM text from a Secret's key (in a cluster) or an environment variable of the
    /// runner, instead of `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_from: Option<ValueFrom>,
    /// A client certificate chain for mutual TLS, PEM text or file as for `ca`; with `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<String>,
    /// `cert` as PEM text from a Secret's key or an environment variable, instead of `cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_from: Option<ValueFrom>,
    /// The private key of `cert` (PKCS#8, PKCS#1 or SEC1 PEM), text or file as for `ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `key` as PEM text from a Secret's key or an environment variable, instead of `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_from: Option<ValueFrom>,
}

/// One of the PEM settings of the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PemField {
    Ca,
    Cert,
    Key,
}

impl PemField {
    pub const ALL: [PemField; 3] = [PemField::Ca, PemField::Cert, PemField::Key];

    /// The field that holds the PEM text or file: `ca`, `cert`, `key`.
    pub fn name(self) -> &'static str {
        match self {
            PemField::Ca => "ca",
            PemField::Cert => "cert",
            PemField::Key => "key",
        }
    }

    /// The field that says where the PEM text comes from: `caFrom`, `certFrom`, `keyFrom`.
    pub fn from_name(self) -> &'static str {
        match self {
            PemField::Ca => "caFrom",
            PemField::Cert => "certFrom",
            PemField::Key => "keyFrom",
        }
    }
}

/// Where one PEM setting comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pem<'a> {
    /// The PEM text itself, written in the LoadTest.
    Text(&'a str),
    /// A PEM file, relative to the LoadTest file.
    File(&'a str),
    /// PEM text the runner reads from its environment.
    From(&'a ValueFrom),
}

impl Tls {
    /// Whether `value` (of `ca`, `cert` or `key`) is PEM text rather than a file name.
    pub fn is_inline_pem(value: &str) -> bool {
        value.trim_start().starts_with("-----BEGIN ")
    }

    /// What is written for `field`: the text or file (`ca`) and the `…From` (`caFrom`).
    pub fn sources(&self, field: PemField) -> (Option<&str>, Option<&ValueFrom>) {
        let (given, from) = match field {
            PemField::Ca => (&self.ca, &self.ca_from),
            PemField::Cert => (&self.cert, &self.cert_from),
            PemField::Key => (&self.key, &self.key_from),
        };
        (given.as_deref(), from.as_ref())
    }

    /// Where `field` comes from, with the name of the field that says so (`ca` or `caFrom`);
    /// `None` when neither is set. Validation refuses both: then the `…From` wins.
    pub fn pem(&self, field: PemField) -> Option<(&'static str, Pem<'_>)> {
        match self.sources(field) {
            (_, Some(v)) => Some((field.from_name(), Pem::From(v))),
            (Some(t), None) if Tls::is_inline_pem(t) => Some((field.name(), Pem::Text(t))),
            (Some(f), None) => Some((field.name(), Pem::File(f))),
            (None, None) => None,
        }
    }

    /// The fields that name files, with their field names: what a runner pod cannot read.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        PemField::ALL
            .into_iter()
            .filter_map(|f| match self.pem(f)? {
                (name, Pem::File(file)) => Some((name, file)),
                _ => None,
            })
            .collect()
    }

    /// The `…From` fields that are set, with their field names (`caFrom` …).
    pub fn value_froms(&self) -> Vec<(&'static str, &ValueFrom)> {
        PemField::ALL
            .into_iter()
            .filter_map(|f| match self.pem(f)? {
                (name, Pem::From(v)) => Some((name, v)),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::fields::{Errors, check_tls};

    /// The errors of a `tls` block written in YAML, as `path: message`.
    fn errors(yaml: &str) -> Vec<String> {
        let tls: Tls = serde_norway::from_str(yaml).unwrap();
        let mut errs = Errors::default();
        check_tls("tls", &tls, &mut errs);
        errs.0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_pem_setting_and_its_from_are_refused_together_naming_both() {
        let errs = errors("{ ca: ca.pem, caFrom: { env: CA } }");
        assert_eq!(errs, ["tls.caFrom: set either ca or caFrom, not both"]);
        let errs = errors("{ key: k.pem, keyFrom: { env: K }, cert: c.pem }");
        assert_eq!(errs, ["tls.keyFrom: set either key or keyFrom, not both"]);
    }

    #[test]
    fn a_from_takes_exactly_one_of_secret_key_ref_and_env() {
        assert!(errors("caFrom: { secretKeyRef: { name: ledger-tls, key: ca.crt } }").is_empty());
        assert!(errors("caFrom: { env: LEDGER_CA }").is_empty());
        assert_eq!(
            errors("caFrom: { env: CA, secretKeyRef: { name: s, key: k } }"),
            ["tls.caFrom: set exactly one of secretKeyRef and env"]
        );
        assert_eq!(
            errors("certFrom: {}\nkey: k.pem"),
            ["tls.certFrom: set exactly one of secretKeyRef and env"]
        );
        let errs = errors("caFrom: { secretKeyRef: { name: Bad_Name, key: ca.crt } }");
        assert!(
            errs.len() == 1 && errs[0].starts_with("tls.caFrom.secretKeyRef.name: "),
            "{errs:?}"
        );
    }

    #[test]
    fn a_client_certificate_and_its_key_pair_up_whichever_way_each_is_given() {
        assert!(errors("{ certFrom: { env: C }, key: k.pem }").is_empty());
        assert!(
            errors("{ cert: c.pem, keyFrom: { secretKeyRef: { name: s, key: k } } }").is_empty()
        );
        assert_eq!(
            errors("certFrom: { env: C }"),
            [
                "tls.key: required with certFrom: mutual TLS needs the certificate's private key (key or keyFrom)"
            ]
        );
        assert_eq!(
            errors("keyFrom: { env: K }"),
            [
                "tls.cert: required with keyFrom: mutual TLS needs the certificate the key belongs to (cert or certFrom)"
            ]
        );
        let errs = errors("{ caFrom: { env: CA }, insecureSkipVerify: true }");
        assert!(
            errs.len() == 1
                && errs[0].starts_with("tls.caFrom: set either caFrom or insecureSkipVerify"),
            "{errs:?}"
        );
    }

    #[test]
    fn only_file_names_count_as_files_and_froms_are_listed_by_field() {
        let tls: Tls = serde_norway::from_str(
            "{ ca: ca.pem, certFrom: { env: C }, key: \"-----BEGIN PRIVATE KEY-----\\nx\\n\" }",
        )
        .unwrap();
        assert_eq!(tls.files(), [("ca", "ca.pem")]);
        let froms: Vec<&str> = tls.value_froms().into_iter().map(|(f, _)| f).collect();
        assert_eq!(froms, ["certFrom"]);
        assert!(matches!(
            tls.pem(PemField::Key),
            Some(("key", Pem::Text(_)))
        ));
    }
}

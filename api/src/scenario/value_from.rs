//! `…From: { secretKeyRef: { name, key } }` or `…From: { env: NAME }`: a value a runner takes
//! from its environment instead of the LoadTest, for fields that hold secrets (the TLS block's
//! `caFrom`, `certFrom`, `keyFrom`; database passwords next). Pure: the type, its rules, and
//! the variable a Secret's key travels in. Reading variables is the runner's job (one place
//! there); handing Secrets to runner pods is the operator's.
//!
//! In a cluster the operator does not read the Secret: it gives every runner pod a variable
//! (`valueFrom.secretKeyRef`) named by `secret_variable`, and the runner reads that variable.
//! Both sides call the one function, so they cannot disagree on the name.

use serde::{Deserialize, Serialize};

/// Where a value comes from: set exactly one of `secretKeyRef` and `env`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "kube",
    schemars(extend("x-kubernetes-validations" = [{
        "rule": "has(self.secretKeyRef) != has(self.env)",
        "message": "set exactly one of secretKeyRef and env"
    }]))
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueFrom {
    /// A key of a Secret in the LoadTest's namespace (in a cluster only). The operator does
    /// not read the Secret: each runner pod gets the key as an environment variable, so a
    /// missing Secret or key keeps the runner pods from starting (`kubectl describe pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// An environment variable of the runner: in a cluster one of `spec.runner.env` (or of
    /// the runner image); for `stampede run` and `stampede-operator local`, of the shell
    /// that starts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

/// A key of a Secret in the LoadTest's namespace.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key in the Secret's `data`.
    pub key: String,
}

impl ValueFrom {
    /// The environment variable a runner reads this value from: `env` itself, or the one the
    /// operator fills from `secretKeyRef`. `None` when neither (or both) is set, which
    /// validation refuses.
    pub fn variable(&self) -> Option<String> {
        match (&self.secret_key_ref, &self.env) {
            (Some(s), None) => Some(secret_variable(&s.name, &s.key)),
            (None, Some(e)) => Some(e.clone()),
            _ => None,
        }
    }

    /// What is wrong with it, each with the field it concerns relative to this block (`""`
    /// for the block itself, `secretKeyRef.name`, `env` …). The caller knows the block's path.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.secret_key_ref, &self.env) {
            (Some(_), Some(_)) | (None, None) => {
                out.push(("", "set exactly one of secretKeyRef and env".to_string()));
            }
            _ => {}
        }
        if let Some(s) = &self.secret_key_ref {
            if !is_secret_name(&s.name) {
                out.push((
                    "secretKeyRef.name",
                    format!(
                        "{:?} is not a Secret name (lower-case letters, digits, '-' and '.', at most 253)",
                        s.name
                    ),
                ));
            }
            if !is_secret_key(&s.key) {
                out.push((
                    "secretKeyRef.key",
                    format!(
                        "{:?} is not a Secret key (letters, digits, '-', '_' and '.', at most 253)",
                        s.key
                    ),
                ));
            }
        }
        if let Some(e) = &self.env {
            if !is_env_name(e) {
                out.push((
                    "env",
                    format!(
                        "{e:?} is not an environment variable name (letters, digits and '_', not starting with a digit)"
                    ),
                ));
            } else if e.starts_with("STAMPEDE_") {
                // The operator's own variables (the runner token among them) are not values a
                // scenario may read; a Secret's key is reached through `secretKeyRef`.
                out.push((
                    "env",
                    format!("{e:?}: names starting with STAMPEDE_ are the operator's; use secretKeyRef for a Secret"),
                ));
            }
        }
        out
    }
}

/// The variable through which runner pods receive key `key` of Secret `name`: the operator
/// sets it on every runner pod (`valueFrom.secretKeyRef`), the runner reads it. Readable
/// (`STAMPEDE_SECRET_LEDGER_TLS_CA_CRT_D9CBD60C` for `ledger-tls`, `ca.crt`) and distinct for
/// every (name, key): the readable part merges names that differ only in punctuation or case
/// (`a-b`, `c` and `a.b`, `c`), so it ends with a 32-bit hash of the exact pair; two keys of
/// one test would need the same readable part and the same hash to meet. A fixed hash
/// (FNV-1a), never the standard library's, whose algorithm may change between the
/// operator's build and the runner's.
pub fn secret_variable(name: &str, key: &str) -> String {
    let readable: String = format!("{name}_{key}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    // A NUL between the two: no Secret name contains one, so ("ab", "c") and ("a", "bc")
    // hash differently.
    for b in name.bytes().chain([0]).chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!(
        "STAMPEDE_SECRET_{readable}_{:08X}",
        (hash >> 32) ^ (hash & 0xffff_ffff)
    )
}

/// A DNS subdomain, as Kubernetes names Secrets.
fn is_secret_name(n: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    n.len() <= 253
        && edge(n.chars().next())
        && edge(n.chars().last())
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A key of a Secret's `data`, as Kubernetes allows it.
fn is_secret_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A name a shell and a Pod's `env` both accept.
fn is_env_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> ValueFrom {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn exactly_one_of_secret_key_ref_and_env_is_accepted() {
        let secret = parse("secretKeyRef: { name: ledger-tls, key: ca.crt }");
        assert!(secret.problems().is_empty(), "{:?}", secret.problems());
        let env = parse("env: LEDGER_CA");
        assert!(env.problems().is_empty(), "{:?}", env.problems());
        for both_or_none in [
            parse("{ secretKeyRef: { name: s, key: k }, env: X }"),
            parse("{}"),
        ] {
            assert_eq!(
                both_or_none.problems(),
                [("", "set exactly one of secretKeyRef and env".to_string())]
            );
            assert_eq!(both_or_none.variable(), None);
        }
    }

    #[test]
    fn unknown_fields_and_a_missing_key_are_refused_when_parsed() {
        assert!(
            serde_norway::from_str::<ValueFrom>("configMapKeyRef: { name: a, key: b }").is_err()
        );
        assert!(serde_norway::from_str::<ValueFrom>("secretKeyRef: { name: a }").is_err());
    }

    #[test]
    fn names_kubernetes_or_a_shell_would_refuse_are_reported_at_their_field() {
        let fields = |yaml: &str| -> Vec<&'static str> {
            parse(yaml).problems().into_iter().map(|(f, _)| f).collect()
        };
        assert_eq!(
            fields("secretKeyRef: { name: Ledger_TLS, key: \"ca crt\" }"),
            ["secretKeyRef.name", "secretKeyRef.key"]
        );
        assert_eq!(fields("secretKeyRef: { name: -x, key: \"\" }").len(), 2);
        assert_eq!(fields("env: 1CA"), ["env"]);
        assert_eq!(fields("env: CA-PEM"), ["env"]);
        let token = parse("env: STAMPEDE_TOKEN").problems();
        assert!(token[0].1.contains("use secretKeyRef"), "{token:?}");
    }

    #[test]
    fn the_variable_of_a_secret_key_is_readable_stable_and_distinct_per_pair() {
        let v = secret_variable("ledger-tls", "ca.crt");
        assert!(v.starts_with("STAMPEDE_SECRET_LEDGER_TLS_CA_CRT_"), "{v}");
        assert!(is_env_name(&v), "{v}");
        // Fixed for good: an operator and a runner of different builds must agree on it.
        assert_eq!(v, secret_variable("ledger-tls", "ca.crt"));
        assert_eq!(v, "STAMPEDE_SECRET_LEDGER_TLS_CA_CRT_D9CBD60C");
        // Pairs whose readable parts are the same still differ.
        let same_readable = [
            ("a-b", "c"),
            ("a.b", "c"),
            ("a", "b-c"),
            ("a", "b.c"),
            ("a", "B_c"),
            ("a-b-c", ""),
        ];
        let names: std::collections::BTreeSet<String> = same_readable
            .iter()
            .map(|(n, k)| secret_variable(n, k))
            .collect();
        assert_eq!(names.len(), same_readable.len(), "{names:?}");
        let v = parse("secretKeyRef: { name: ledger-tls, key: ca.crt }").variable();
        assert_eq!(
            v.as_deref(),
            Some("STAMPEDE_SECRET_LEDGER_TLS_CA_CRT_D9CBD60C")
        );
        assert_eq!(
            parse("env: LEDGER_CA").variable().as_deref(),
            Some("LEDGER_CA")
        );
    }
}

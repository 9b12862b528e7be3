//! The values a scenario reads from the runner's environment instead of its file: every
//! `…From` (`caFrom: { env: LEDGER_CA }`, or `{ secretKeyRef }`, which a runner pod receives
//! as the variable the operator sets). The one place the runner reads variables a LoadTest
//! names: a test's values are read here when it loads and handed on from there.

use std::collections::BTreeMap;
use std::ffi::OsString;

use stampede_api::scenario::ValueFrom;
use stampede_api::{FieldError, LoadTestSpec};

/// The values of a test's `…From` fields, by variable.
#[derive(Clone, Default)]
pub struct Values(BTreeMap<String, String>);

/// Names only: the values are certificates' keys and passwords.
impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Values {
    /// Every `…From` of `spec`, read from this process's environment; each one that cannot
    /// be read is an error naming its field and its variable.
    pub fn read(spec: &LoadTestSpec) -> Result<Values, Vec<FieldError>> {
        Values::read_with(spec, |name| std::env::var_os(name))
    }

    fn read_with(
        spec: &LoadTestSpec,
        lookup: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Values, Vec<FieldError>> {
        let mut values = BTreeMap::new();
        let mut errs = Vec::new();
        for (path, v) in spec.scenario.connection.value_froms() {
            let path = format!("spec.scenario.connection.{path}");
            // Neither or both of secretKeyRef and env: validation has refused it already.
            let Some(variable) = v.variable() else {
                continue;
            };
            match lookup(&variable).map(OsString::into_string) {
                Some(Ok(value)) => {
                    values.insert(variable, value);
                }
                Some(Err(_)) => errs.push(FieldError::new(
                    source_path(&path, v),
                    format!("the variable {variable} is not UTF-8 text"),
                )),
                None => errs.push(missing(&path, v, &variable)),
            }
        }
        if errs.is_empty() {
            Ok(Values(values))
        } else {
            Err(errs)
        }
    }

    /// The value of `v`, as read when the test loaded.
    pub fn get(&self, v: &ValueFrom) -> Option<&str> {
        self.0.get(&v.variable()?).map(String::as_str)
    }
}

/// The path of the source `v` names under the `…From` at `path`.
fn source_path(path: &str, v: &ValueFrom) -> String {
    if v.secret_key_ref.is_some() {
        format!("{path}.secretKeyRef")
    } else {
        format!("{path}.env")
    }
}

/// Why a variable that is not set cannot stand in for the `…From` at `path`. A Secret's
/// variable is set only on runner pods, by the operator: anywhere else the field needs
/// another source, which the message names. Were it set here by hand, it would be used.
fn missing(path: &str, v: &ValueFrom, variable: &str) -> FieldError {
    let from = path.rsplit('.').next().unwrap_or(path);
    let given = from.strip_suffix("From").unwrap_or(from);
    let message = match &v.secret_key_ref {
        Some(s) => format!(
            "needs a cluster, where the operator gives runner pods key {:?} of Secret {:?} as the variable {variable}, which is not set here; use {from}.env or {given} (PEM text or a file) here",
            s.key, s.name
        ),
        None => format!(
            "the variable {variable} is not set in the runner's environment (in a cluster: spec.runner.env; for stampede run and stampede-operator local: the shell that starts it)"
        ),
    };
    FieldError::new(source_path(path, v), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tls: &str) -> LoadTestSpec {
        let yaml = format!(
            "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\nmetadata: {{ name: t }}\nspec:\n  connections: 1\n  duration: 1s\n  scenario:\n    connection: {{ tcp: {{ address: \"ledger:7443\", tls: {tls} }} }}\n    steps:\n      - {{ send: {{ text: \"x\" }}, expect: {{ delimiter: \"\\n\" }} }}\n"
        );
        stampede_api::parse(&yaml).unwrap().spec
    }

    fn read(tls: &str, env: &[(&str, &str)]) -> Result<Values, Vec<String>> {
        let env: BTreeMap<String, OsString> = env
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        Values::read_with(&spec(tls), |name| env.get(name).cloned())
            .map_err(|errs| errs.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn an_env_source_reads_its_variable_and_a_secret_reads_the_operators() {
        let secret = stampede_api::scenario::value_from::secret_variable("ledger-tls", "tls.key");
        let values = read(
            "{ caFrom: { env: LEDGER_CA }, certFrom: { env: LEDGER_CERT }, keyFrom: { secretKeyRef: { name: ledger-tls, key: tls.key } } }",
            &[
                ("LEDGER_CA", "ca pem"),
                ("LEDGER_CERT", "cert pem"),
                (&secret, "key pem"),
            ],
        )
        .unwrap();
        let tls = spec("{ caFrom: { env: LEDGER_CA }, keyFrom: { secretKeyRef: { name: ledger-tls, key: tls.key } } }")
            .scenario
            .connection
            .tcp
            .unwrap()
            .tls
            .unwrap();
        assert_eq!(values.get(tls.ca_from.as_ref().unwrap()), Some("ca pem"));
        assert_eq!(values.get(tls.key_from.as_ref().unwrap()), Some("key pem"));
        let shown = format!("{values:?}");
        assert!(
            !shown.contains("pem") && shown.contains("LEDGER_CA"),
            "{shown}"
        );
    }

    #[test]
    fn a_variable_that_is_not_set_is_refused_naming_the_field_and_the_variable() {
        let errs = read("{ caFrom: { env: LEDGER_CA } }", &[]).unwrap_err();
        assert_eq!(
            errs,
            [
                "spec.scenario.connection.tcp.tls.caFrom.env: the variable LEDGER_CA is not set in the runner's environment (in a cluster: spec.runner.env; for stampede run and stampede-operator local: the shell that starts it)"
            ]
        );
    }

    #[test]
    fn a_secret_outside_a_cluster_is_refused_with_what_to_use_instead() {
        let errs = read(
            "{ certFrom: { secretKeyRef: { name: ledger-tls, key: tls.crt } }, key: k.pem }",
            &[],
        )
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(
                "spec.scenario.connection.tcp.tls.certFrom.secretKeyRef: needs a cluster"
            ) && errs[0].contains("STAMPEDE_SECRET_LEDGER_TLS_TLS_CRT_")
                && errs[0].ends_with("use certFrom.env or cert (PEM text or a file) here"),
            "{errs:?}"
        );
    }
}

//! Semantic validation: everything serde cannot say, reported with the path of the field
//! (`spec.scenario.steps[2].request.path`). Pure: the caller supplies the shape of CSV data it
//! read. The spec's own rules are here; the scenario's in `scenario`, which asks each kind for
//! its own (`KindOptions`); the field checks they all use in `fields`.
//!
//! Each rule that also gives the runner a value (a URL, a regex, a JSONPath, a payload's
//! bytes, a step's actions) is one function that returns that value or the `FieldError`;
//! validation calls it for the error, the runner's compile calls the same one for the value,
//! so the two never disagree on what is accepted or on the words that say why not.

pub mod fields;
mod scenario;

pub use scenario::{kind_takes, step_actions};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::scenario::Step;
use crate::spec::{API_VERSION, KIND, LoadTestFile, LoadTestSpec};
use crate::threshold::Threshold;
use fields::Errors;

/// One problem, at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Turns a message into the error at `path`: `.map_err(FieldError::at("spec.…"))`.
    pub fn at(path: impl Into<String>) -> impl FnOnce(String) -> FieldError {
        let path = path.into();
        move |message| FieldError { path, message }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

/// The name results of a step are reported under: its `name`, else `METHOD path` for a
/// request and the action (`send`, `expect`, `listen`) otherwise; `None` for a think.
pub fn step_name(step: &Step) -> Option<String> {
    if let Some(n) = &step.name {
        return Some(n.clone());
    }
    step.default_name()
}

/// Largest number of connections the test reaches, over `connections` and every stage.
pub fn peak_connections(spec: &LoadTestSpec) -> u32 {
    spec.stages
        .iter()
        .filter_map(|s| s.connections)
        .fold(spec.connections, u32::max)
}

/// The longest test: a month. Longer spans are typos (`400000000000y`) that would overflow the
/// clocks the plan is scheduled on.
pub const MAX_TEST_LENGTH: std::time::Duration = std::time::Duration::from_secs(31 * 24 * 3600);

/// The most runners one test may ask for: each is a pod, and a typo must not create thousands.
pub const MAX_RUNNERS: u32 = 1000;

/// Names templates reserve for built-ins; no variable, data set or extracted value may take them.
pub const RESERVED_NAMES: &[&str] = &["vu", "iteration", "run"];

/// What the caller found in a CSV data set: its columns and how many rows follow the header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataShape {
    pub columns: Vec<String>,
    pub rows: usize,
}

/// Checks a parsed file. `csv` holds the shape of data sets read from CSV files, by set name
/// (inline rows carry their own). Returns every problem found, not just the first.
pub fn validate(file: &LoadTestFile, csv: &BTreeMap<String, DataShape>) -> Vec<FieldError> {
    let mut errs = Errors::default();
    if file.api_version != API_VERSION {
        errs.push(
            "apiVersion",
            format!("expected {API_VERSION:?}, found {:?}", file.api_version),
        );
    }
    if file.kind != KIND {
        errs.push("kind", format!("expected {KIND:?}, found {:?}", file.kind));
    }
    let name = &file.metadata.name;
    if name.is_empty() {
        errs.push(
            "metadata.name",
            "required: a DNS-1123 name such as `checkout-peak`",
        );
    } else if !is_dns1123(name) {
        errs.push(
            "metadata.name",
            format!("{name:?} is not a DNS-1123 name: lower-case letters, digits and '-', at most 63 characters"),
        );
    }
    validate_spec(&file.spec, csv, &mut errs);
    errs.0
}

fn is_dns1123(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn validate_spec(spec: &LoadTestSpec, csv: &BTreeMap<String, DataShape>, errs: &mut Errors) {
    let staged = !spec.stages.is_empty();
    if spec.connections == 0 && !staged {
        errs.push("spec.connections", "must be at least 1");
    }
    if staged && peak_connections(spec) == 0 {
        errs.push(
            "spec.connections",
            "no user ever runs: set connections, or a stage with connections above 0",
        );
    }
    if let Some(r) = spec.rate {
        if !r.is_finite() || r < 0.0 || (r == 0.0 && !staged) {
            let expected = if staged {
                "a number of iterations per second ≥ 0 (the rate the first stage ramps from)"
            } else {
                "a positive number of iterations per second"
            };
            errs.push("spec.rate", format!("expected {expected}, found {r}"));
        } else if staged && r == 0.0 && spec.stages.iter().all(|s| s.rate.unwrap_or(0.0) == 0.0) {
            errs.push(
                "spec.stages",
                "the rate never rises above 0: give a stage a `rate`",
            );
        }
    }
    match (&spec.duration, staged) {
        (None, false) => errs.push(
            "spec.duration",
            "required when spec.stages is absent, e.g. `30s`",
        ),
        (Some(_), true) => errs.push("spec.duration", "set either duration or stages, not both"),
        (Some(d), false) if d.as_std().is_zero() => {
            errs.push("spec.duration", "must be longer than 0s")
        }
        (Some(d), false) if d.as_std() > MAX_TEST_LENGTH => errs.push(
            "spec.duration",
            format!("expected at most 744h (31 days), found {d}"),
        ),
        _ => {}
    }
    let staged_length = spec
        .stages
        .iter()
        .map(|s| s.duration.as_std())
        .try_fold(std::time::Duration::ZERO, |a, d| a.checked_add(d));
    if staged_length.is_none_or(|l| l > MAX_TEST_LENGTH) {
        errs.push(
            "spec.stages",
            "the stages' durations add up to more than 744h (31 days), the longest test",
        );
    }
    for (i, st) in spec.stages.iter().enumerate() {
        let p = format!("spec.stages[{i}]");
        if st.duration.as_std().is_zero() {
            errs.push(format!("{p}.duration"), "must be longer than 0s");
        }
        if let Some(r) = st.rate {
            if spec.rate.is_none() {
                errs.push(
                    format!("{p}.rate"),
                    "a stage rate needs spec.rate (the open model); without spec.rate users loop closed",
                );
            } else if !(r.is_finite() && r >= 0.0) {
                errs.push(
                    format!("{p}.rate"),
                    format!("must be a number ≥ 0, found {r}"),
                );
            }
        }
        if st.rate.is_none() && st.connections.is_none() {
            errs.push(p, "a stage needs a target `rate`, `connections` or both");
        }
    }
    if let Some(at) = &spec.start_at
        && let Err(e) = crate::instant::parse_rfc3339(at)
    {
        errs.push("spec.startAt", e);
    }
    if let Some(r) = spec.connect_rate
        && !(r.is_finite() && r >= 1.0)
    {
        errs.push(
            "spec.connectRate",
            format!("expected at least 1 new connection per second, found {r}"),
        );
    }
    validate_runners(spec, errs);
    let step_names = scenario::validate_scenario(&spec.scenario, spec, csv, errs);
    for (i, t) in spec.thresholds.iter().enumerate() {
        let p = format!("spec.thresholds[{i}]");
        match Threshold::parse(t) {
            Err(e) => errs.push(p, e),
            Ok(th) => {
                if let Some(step) = &th.step
                    && !step_names.contains(step)
                {
                    errs.push(
                        p,
                        format!("no step is named {step:?}; steps: {}", quoted(&step_names)),
                    );
                }
            }
        }
    }
}

/// `runners` and `runner`: what the operator needs to place and size runner pods.
fn validate_runners(spec: &LoadTestSpec, errs: &mut Errors) {
    let peak = peak_connections(spec);
    let max = spec.max_connections_per_runner();
    if let Some(n) = spec.runners {
        if n == 0 {
            errs.push("spec.runners", "must be at least 1");
        } else if n > MAX_RUNNERS {
            errs.push(
                "spec.runners",
                format!("expected at most {MAX_RUNNERS}, found {n}"),
            );
        } else if n > peak && peak > 0 {
            errs.push(
                "spec.runners",
                format!("{n} runners for at most {peak} connections leaves a runner with no user; use at most {peak}"),
            );
        }
        if let Some(m) = max.filter(|m| *m > 0)
            && u64::from(n) * u64::from(m) < u64::from(peak)
        {
            errs.push(
                "spec.runners",
                format!("{n} runners × runner.maxConnections {m} cannot hold {peak} connections; raise either, or omit runners to derive it"),
            );
        }
    }
    let Some(runner) = &spec.runner else { return };
    if let Err((i, m)) = crate::runner_pod::expand_source_addresses(&runner.source_addresses) {
        errs.push(format!("spec.runner.sourceAddresses[{i}]"), m);
    }
    if max == Some(0) {
        errs.push("spec.runner.maxConnections", "must be at least 1");
    }
    if runner.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        errs.push(
            "spec.runner.image",
            "must not be empty; omit it for the operator's default",
        );
    }
    for (i, e) in runner.env.iter().enumerate() {
        let p = format!("spec.runner.env[{i}].name");
        let ident = !e.name.is_empty()
            && !e.name.starts_with(|c: char| c.is_ascii_digit())
            && e.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            errs.push(p, format!("{:?} is not an environment variable name (letters, digits and '_', not starting with a digit)", e.name));
        } else if e.name.starts_with("STAMPEDE_") {
            errs.push(
                p,
                format!(
                    "{:?}: names starting with STAMPEDE_ are set by the operator",
                    e.name
                ),
            );
        }
    }
    for (i, t) in runner.tolerations.iter().enumerate() {
        let p = format!("spec.runner.tolerations[{i}]");
        match t.operator.as_deref() {
            None | Some("Equal") => {}
            Some("Exists") if t.value.is_some() => {
                errs.push(format!("{p}.value"), "must be empty with operator Exists");
            }
            Some("Exists") => {}
            Some(o) => errs.push(
                format!("{p}.operator"),
                format!("expected Equal or Exists, found {o:?}"),
            ),
        }
        if let Some(e) = t.effect.as_deref()
            && !matches!(e, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute")
        {
            errs.push(
                format!("{p}.effect"),
                format!("expected NoSchedule, PreferNoSchedule or NoExecute, found {e:?}"),
            );
        }
    }
    if let Some(r) = &runner.resources {
        for (kind, m) in [("requests", &r.requests), ("limits", &r.limits)] {
            for (k, v) in m {
                if !is_quantity(v) {
                    errs.push(
                        format!("spec.runner.resources.{kind}.{k}"),
                        format!("{v:?} is not a quantity such as 500m, 2 or 1Gi"),
                    );
                }
            }
        }
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional binary (`Ki` … `Ei`),
/// decimal (`n`, `u`, `m`, `k`, `M` … `E`) or exponent (`e3`) suffix.
fn is_quantity(v: &str) -> bool {
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let number_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_end);
    let number_ok = !number.is_empty() && number != "." && number.matches('.').count() <= 1;
    let exponent = |s: &str| {
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let suffix_ok = matches!(
        suffix,
        "" | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
            | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(exponent);
    number_ok && suffix_ok
}

fn quoted(names: &BTreeSet<String>) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_checked_as_kubernetes_reads_them() {
        for ok in [
            "2",
            "500m",
            "1Gi",
            "0.5",
            "1.5G",
            "1e3",
            "128974848",
            "+1k",
            "100Mi",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["lots", "", "Gi", "1GB", "1.2.3", "1e", "1 Gi", "-", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}

//! Semantic validation: everything serde cannot say, reported with the path of the field
//! (`spec.scenario.steps[2].request.path`). Pure: the caller supplies the shape of CSV data it read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::scenario::{Check, Extract, Request, Scenario, Step};
use crate::spec::{API_VERSION, KIND, LoadTestFile, LoadTestSpec};
use crate::template::{BUILTIN_NAMES, Part, Template};
use crate::threshold::Threshold;

/// One problem, at one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The name results of a step are reported under: its `name`, else `METHOD path`.
pub fn step_name(step: &Step) -> Option<String> {
    match (&step.name, &step.request) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(r)) => Some(format!("{} {}", r.method, r.path)),
        (None, None) => None,
    }
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
        (Some(d), false) if d.as_std() > MAX_TEST_LENGTH => {
            errs.push("spec.duration", format!("expected at most 31d, found {d}"))
        }
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
            "the stages' durations add up to more than 31d, the longest test",
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
    validate_runners(spec, errs);
    let step_names = validate_scenario(&spec.scenario, spec, csv, errs);
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

/// What templates may refer to.
struct Scope<'a> {
    variables: BTreeSet<&'a str>,
    extracted: BTreeSet<&'a str>,
    /// Data set name → columns, when known.
    data: BTreeMap<&'a str, Option<Vec<String>>>,
}

fn validate_scenario(
    sc: &Scenario,
    spec: &LoadTestSpec,
    csv: &BTreeMap<String, DataShape>,
    errs: &mut Errors,
) -> BTreeSet<String> {
    let base = "spec.scenario";
    match &sc.connection.http {
        None => errs.push(
            format!("{base}.connection"),
            "set exactly one connection kind; available: http",
        ),
        Some(h) => {
            let p = format!("{base}.connection.http");
            match url::Url::parse(&h.url) {
                Err(e) => errs.push(format!("{p}.url"), format!("not a URL ({e}): {:?}", h.url)),
                Ok(u) if u.scheme() != "http" => errs.push(
                    format!("{p}.url"),
                    format!("scheme {:?} is not supported yet; use http://", u.scheme()),
                ),
                Ok(u) if u.host_str().is_none_or(str::is_empty) => {
                    errs.push(format!("{p}.url"), "the URL needs a host")
                }
                Ok(u) if u.query().is_some() || u.fragment().is_some() => errs.push(
                    format!("{p}.url"),
                    "the base URL cannot carry a query or fragment; put them in request paths",
                ),
                Ok(_) => {}
            }
            if let Some(t) = h.connect_timeout
                && t.as_std().is_zero()
            {
                errs.push(format!("{p}.connectTimeout"), "must be longer than 0s");
            }
            for (k, v) in &h.headers {
                check_header(&format!("{p}.headers.{k}"), k, v, errs);
            }
        }
    }

    let mut scope = Scope {
        variables: BTreeSet::new(),
        extracted: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    for k in sc.variables.keys() {
        if !is_name(k) {
            errs.push(
                format!("{base}.variables.{k}"),
                "variable names are letters, digits, '_' or '-'",
            );
        }
        if RESERVED_NAMES.contains(&k.as_str()) {
            errs.push(
                format!("{base}.variables.{k}"),
                format!(
                    "{k:?} is reserved for built-ins ({})",
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
        scope.variables.insert(k);
    }
    for (i, d) in sc.data.iter().enumerate() {
        let p = format!("{base}.data[{i}]");
        if !is_name(&d.name) {
            errs.push(
                format!("{p}.name"),
                format!("{:?} is not a name: letters, digits, '_' or '-'", d.name),
            );
        }
        if RESERVED_NAMES.contains(&d.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!(
                    "{:?} is reserved for built-ins ({})",
                    d.name,
                    RESERVED_NAMES.join(", ")
                ),
            );
        }
        if scope.data.contains_key(d.name.as_str()) || scope.variables.contains(d.name.as_str()) {
            errs.push(
                format!("{p}.name"),
                format!("{:?} is defined twice", d.name),
            );
        }
        let (cols, row_count) = match (&d.rows, &d.csv) {
            (Some(rows), None) => {
                if rows.is_empty() {
                    errs.push(format!("{p}.rows"), "needs at least one row");
                }
                let first: Vec<String> = rows
                    .first()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                for (j, r) in rows.iter().enumerate() {
                    if r.keys().ne(first.iter()) {
                        errs.push(
                            format!("{p}.rows[{j}]"),
                            "every row needs the same columns as the first",
                        );
                    }
                }
                (Some(first), Some(rows.len()))
            }
            (None, Some(_)) => match csv.get(&d.name) {
                Some(shape) => {
                    if shape.rows == 0 {
                        errs.push(
                            format!("{p}.csv.file"),
                            "the file has a header line but no rows",
                        );
                    }
                    (Some(shape.columns.clone()), Some(shape.rows))
                }
                None => (None, None),
            },
            _ => {
                errs.push(p.clone(), "set exactly one of `rows` or `csv`");
                (None, None)
            }
        };
        if d.pick == crate::scenario::Pick::Unique
            && let Some(rows) = row_count
            && (rows as u64) < u64::from(peak_connections(spec))
        {
            errs.push(
                format!("{p}.pick"),
                format!(
                    "`unique` gives every user a row of its own: {} rows for up to {} users",
                    rows,
                    peak_connections(spec)
                ),
            );
        }
        scope.data.insert(&d.name, cols);
    }
    let all_steps = sc.on_start.iter().chain(&sc.steps).chain(&sc.on_stop);
    for step in all_steps {
        for k in step.extract.keys() {
            scope.extracted.insert(k);
        }
    }

    if let Some(h) = &sc.connection.http {
        for (k, v) in &h.headers {
            check_template(
                &format!("{base}.connection.http.headers.{k}"),
                v,
                &scope,
                errs,
            );
        }
    }
    if sc.steps.is_empty() {
        errs.push(format!("{base}.steps"), "needs at least one step");
    }
    let mut names = BTreeSet::new();
    for (list, key) in [
        (&sc.on_start, "onStart"),
        (&sc.steps, "steps"),
        (&sc.on_stop, "onStop"),
    ] {
        for (i, step) in list.iter().enumerate() {
            let p = format!("{base}.{key}[{i}]");
            validate_step(&p, step, &scope, errs);
            if let Some(n) = step_name(step) {
                names.insert(n);
            }
        }
    }
    names
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
}

fn validate_step(p: &str, step: &Step, scope: &Scope, errs: &mut Errors) {
    if let Some(n) = &step.name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        errs.push(
            format!("{p}.name"),
            "a step name is 1 to 128 printable characters",
        );
    }
    match (&step.request, &step.think) {
        (Some(r), None) => validate_request(&format!("{p}.request"), r, scope, errs),
        (None, Some(t)) => {
            if step.name.is_some() || !step.extract.is_empty() || step.check.is_some() {
                errs.push(p, "a think step takes no name, extract or check");
            }
            if t.as_std().is_zero() {
                errs.push(format!("{p}.think"), "must be longer than 0s");
            }
        }
        _ => errs.push(p, "a step is exactly one of `request` or `think`"),
    }
    for (k, rule) in &step.extract {
        let ep = format!("{p}.extract.{k}");
        if !is_name(k) {
            errs.push(&ep, "extracted names are letters, digits, '_' or '-'");
        }
        if scope.variables.contains(k.as_str())
            || scope.data.contains_key(k.as_str())
            || RESERVED_NAMES.contains(&k.as_str())
        {
            errs.push(
                &ep,
                format!("{k:?} already names a variable, data set or built-in"),
            );
        }
        match rule {
            Extract::JsonPath(path) => check_json_path(&ep, path, errs),
            Extract::Rule(r) => match (&r.json_path, &r.header, &r.regex) {
                (Some(jp), None, None) => check_json_path(&format!("{ep}.jsonPath"), jp, errs),
                (None, _, Some(re)) => check_regex(&format!("{ep}.regex"), re, errs),
                (None, Some(_), None) => {}
                _ => errs.push(
                    &ep,
                    "set `jsonPath`, or `regex`, or `header` (optionally with `regex`)",
                ),
            },
        }
    }
    if let Some(c) = &step.check {
        validate_check(&format!("{p}.check"), c, errs);
    }
}

fn check_json_path(p: &str, path: &str, errs: &mut Errors) {
    if let Err(e) = serde_json_path::JsonPath::parse(path) {
        errs.push(p, format!("not a JSONPath ({e}): {path:?}"));
    }
}

fn check_regex(p: &str, re: &str, errs: &mut Errors) {
    if let Err(e) = regex::Regex::new(re) {
        errs.push(p, format!("not a regular expression: {e}"));
    }
}

fn check_header(p: &str, name: &str, value: &str, errs: &mut Errors) {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        errs.push(p, format!("{name:?} is not a valid header name"));
    }
    if value.contains(['\r', '\n']) {
        errs.push(p, "header values cannot contain line breaks");
    }
}

fn validate_request(p: &str, r: &Request, scope: &Scope, errs: &mut Errors) {
    if r.method.is_empty() || !r.method.bytes().all(|b| b.is_ascii_uppercase()) {
        errs.push(
            format!("{p}.method"),
            format!(
                "expected an upper-case HTTP method such as GET or POST, found {:?}",
                r.method
            ),
        );
    }
    if !(r.path.starts_with('/') || r.path.starts_with("{{")) {
        errs.push(
            format!("{p}.path"),
            format!("must start with '/', found {:?}", r.path),
        );
    }
    let literal_has_space = Template::parse(&r.path).is_ok_and(|t| {
        t.parts
            .iter()
            .any(|part| matches!(part, Part::Text(s) if s.contains([' ', '\r', '\n'])))
    });
    if literal_has_space {
        errs.push(
            format!("{p}.path"),
            "cannot contain spaces or line breaks; encode them as %20",
        );
    }
    check_template(&format!("{p}.path"), &r.path, scope, errs);
    for (k, v) in &r.query {
        check_template(&format!("{p}.query.{k}"), v, scope, errs);
    }
    for (k, v) in &r.headers {
        check_header(&format!("{p}.headers.{k}"), k, v, errs);
        check_template(&format!("{p}.headers.{k}"), v, scope, errs);
    }
    match (&r.body, &r.json) {
        (Some(_), Some(_)) => errs.push(p, "set `body` or `json`, not both"),
        (Some(b), None) => check_template(&format!("{p}.body"), b, scope, errs),
        (None, Some(j)) => check_json_templates(&format!("{p}.json"), j, scope, errs),
        (None, None) => {}
    }
    if let Some(t) = r.timeout
        && t.as_std().is_zero()
    {
        errs.push(format!("{p}.timeout"), "must be longer than 0s");
    }
}

fn check_json_templates(p: &str, v: &serde_json::Value, scope: &Scope, errs: &mut Errors) {
    match v {
        serde_json::Value::String(s) => check_template(p, s, scope, errs),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_json_templates(&format!("{p}[{i}]"), x, scope, errs);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                check_json_templates(&format!("{p}.{k}"), x, scope, errs);
            }
        }
        _ => {}
    }
}

fn check_template(p: &str, src: &str, scope: &Scope, errs: &mut Errors) {
    let t = match Template::parse(src) {
        Ok(t) => t,
        Err(e) => return errs.push(p, e.0),
    };
    for part in &t.parts {
        let Part::Expr(crate::template::Expr::Name(segs)) = part else {
            continue;
        };
        if let Err(msg) = resolve(segs, scope) {
            errs.push(p, msg);
        }
    }
}

fn resolve(segs: &[String], scope: &Scope) -> Result<(), String> {
    let joined = segs.join(".");
    if BUILTIN_NAMES.contains(&joined.as_str()) {
        return Ok(());
    }
    match segs {
        [one]
            if scope.variables.contains(one.as_str()) || scope.extracted.contains(one.as_str()) =>
        {
            Ok(())
        }
        [set] if scope.data.contains_key(set.as_str()) => Err(format!(
            "`{set}` is a data set: name a column, as in `{set}.column`"
        )),
        [set, col] if scope.data.contains_key(set.as_str()) => match &scope.data[set.as_str()] {
            Some(cols) if !cols.contains(col) => Err(format!(
                "data set `{set}` has no column `{col}`; columns: {}",
                cols.join(", ")
            )),
            _ => Ok(()),
        },
        _ => {
            let mut known: Vec<String> = BUILTIN_NAMES.iter().map(|s| s.to_string()).collect();
            known.extend(scope.variables.iter().map(|s| s.to_string()));
            known.extend(scope.extracted.iter().map(|s| s.to_string()));
            known.extend(scope.data.keys().map(|s| format!("{s}.<column>")));
            Err(format!(
                "unknown name `{joined}` in template; known names: {}",
                known.join(", ")
            ))
        }
    }
}

fn validate_check(p: &str, c: &Check, errs: &mut Errors) {
    if let Some(s) = &c.status {
        if s.codes().is_empty() {
            errs.push(format!("{p}.status"), "list at least one status code");
        }
        for code in s.codes() {
            if !(100..=599).contains(code) {
                errs.push(
                    format!("{p}.status"),
                    format!("{code} is not an HTTP status (100–599)"),
                );
            }
        }
    }
    for k in c.json_path.keys() {
        check_json_path(&format!("{p}.jsonPath.{k}"), k, errs);
    }
    if let Some(m) = c.max_latency
        && m.as_std().is_zero()
    {
        errs.push(format!("{p}.maxLatency"), "must be longer than 0s");
    }
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

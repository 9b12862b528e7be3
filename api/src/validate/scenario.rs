//! The scenario's rules: names and data sets, templates, and each step's shared shape, with
//! the connection kind's own rules asked of it (`KindOptions`).

use std::collections::{BTreeMap, BTreeSet};

use crate::scenario::{
    Action, Check, Connection, ConnectionKind, Expect, Extract, KindOptions, Payload, PayloadBody,
    Request, Scenario, Step,
};
use crate::spec::LoadTestSpec;
use crate::template::{BUILTIN_NAMES, Num, Part, Template};
use crate::validate::fields::{Errors, header, is_name};
use crate::validate::{DataShape, FieldError, RESERVED_NAMES, peak_connections, step_name};

/// What templates may refer to.
struct Scope<'a> {
    /// Variable name → its value (constant text).
    variables: BTreeMap<&'a str, &'a str>,
    extracted: BTreeSet<&'a str>,
    /// Data set name → columns, when known.
    data: BTreeMap<&'a str, Option<Vec<String>>>,
}

pub(super) fn validate_scenario(
    sc: &Scenario,
    spec: &LoadTestSpec,
    csv: &BTreeMap<String, DataShape>,
    errs: &mut Errors,
) -> BTreeSet<String> {
    let base = "spec.scenario";
    let kind = validate_connection(&sc.connection, errs);

    let mut scope = Scope {
        variables: BTreeMap::new(),
        extracted: BTreeSet::new(),
        data: BTreeMap::new(),
    };
    for (k, v) in &sc.variables {
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
        scope.variables.insert(k, v);
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
        if scope.data.contains_key(d.name.as_str()) || scope.variables.contains_key(d.name.as_str())
        {
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

    if let Some((kind, headers)) = kind.and_then(|(k, o)| Some((k, o.headers()?))) {
        for (k, v) in headers {
            check_template(
                &format!("{base}.connection.{}.headers.{k}", kind.field()),
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
            validate_step(&p, step, kind, &scope, errs);
            if let Some(n) = step_name(step) {
                names.insert(n);
            }
        }
    }
    names
}

/// Checks the one connection kind and its options; returns its options when exactly one is set.
fn validate_connection<'c>(
    c: &'c Connection,
    errs: &mut Errors,
) -> Option<(ConnectionKind, &'c dyn KindOptions)> {
    let p = "spec.scenario.connection";
    match c.exactly_one() {
        Err(m) => {
            errs.push(p, m);
            None
        }
        Ok((kind, o)) => {
            o.validate(&format!("{p}.{}", kind.field()), errs);
            Some((kind, o))
        }
    }
}

/// The actions of the step at `p`: exactly one (`send` may come with `expect`), or none for a
/// `think`.
pub fn step_actions(p: &str, step: &Step) -> Result<Vec<Action>, FieldError> {
    let actions = step.actions();
    let one = matches!(
        (actions.as_slice(), step.think.is_some()),
        ([], true) | ([_], false) | ([Action::Send, Action::Expect], false)
    );
    if !one {
        return Err(FieldError::new(
            p,
            "a step is exactly one of `request`, `send` (optionally with `expect`), `expect`, `listen` or `think`",
        ));
    }
    Ok(actions)
}

/// Whether the connection `kind` (options `o`) takes `actions`, those of the step at `p`.
pub fn kind_takes(
    p: &str,
    actions: &[Action],
    kind: ConnectionKind,
    o: &dyn KindOptions,
) -> Result<(), FieldError> {
    match actions.iter().find(|a| !o.actions().contains(a)) {
        None => Ok(()),
        Some(a) => Err(FieldError::new(
            format!("{p}.{}", a.field()),
            format!(
                "{} connections take {} steps",
                kind.field(),
                Action::list(o.actions())
            ),
        )),
    }
}

fn validate_step(
    p: &str,
    step: &Step,
    kind: Option<(ConnectionKind, &dyn KindOptions)>,
    scope: &Scope,
    errs: &mut Errors,
) {
    if let Some(n) = &step.name
        && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
    {
        errs.push(
            format!("{p}.name"),
            "a step name is 1 to 128 printable characters",
        );
    }
    let Some(actions) = errs.ok(step_actions(p, step)) else {
        return;
    };
    for (field, action) in step.stray_fields() {
        errs.push(
            format!("{p}.{field}"),
            format!("`{field}` belongs to a `{}` step", action.field()),
        );
    }
    // What the kind takes, named in the error.
    if let Some((k, o)) = kind {
        errs.ok(kind_takes(p, &actions, k, o));
        o.validate_step(p, step, errs);
    }
    let http = kind.is_some_and(|(_, o)| o.is_http());
    if let Some(r) = &step.request {
        validate_request(&format!("{p}.request"), r, scope, errs);
    }
    if let Some(m) = &step.send {
        validate_payload(&format!("{p}.send"), m, scope, errs);
    }
    if let Some(e) = &step.expect {
        validate_expect(&format!("{p}.expect"), e, errs);
    }
    if let Some(l) = &step.listen {
        if l.duration.as_std().is_zero() {
            errs.push(format!("{p}.listen.duration"), "must be longer than 0s");
        }
        errs.ok(l.timestamp(&format!("{p}.listen")));
        if !step.extract.is_empty() || step.check.is_some() {
            errs.push(
                p,
                "a listen step records what is pushed; it takes no `extract` or `check`",
            );
        }
    }
    if let Some(t) = &step.think {
        if step.name.is_some() || !step.extract.is_empty() || step.check.is_some() {
            errs.push(p, "a think step takes no name, extract or check");
        }
        if t.as_std().is_zero() {
            errs.push(format!("{p}.think"), "must be longer than 0s");
        }
    }
    // Only what arrives can be extracted from or checked.
    let receives = step.request.is_some() || step.expect.is_some() || step.listen.is_some();
    if !receives && step.send.is_some() && (step.check.is_some() || !step.extract.is_empty()) {
        errs.push(
            p,
            "`check` and `extract` judge what arrives: add an `expect` to this send",
        );
    }
    if !http && step.check.as_ref().is_some_and(|c| c.status.is_some()) {
        errs.push(format!("{p}.check.status"), "only HTTP has status codes");
    }
    if !http {
        for (k, rule) in &step.extract {
            if let Extract::Rule(r) = rule
                && r.header.is_some()
            {
                errs.push(
                    format!("{p}.extract.{k}.header"),
                    "only HTTP responses have headers; use `jsonPath` or `regex`",
                );
            }
        }
    }
    for (k, rule) in &step.extract {
        let ep = format!("{p}.extract.{k}");
        if !is_name(k) {
            errs.push(&ep, "extracted names are letters, digits, '_' or '-'");
        }
        if scope.variables.contains_key(k.as_str())
            || scope.data.contains_key(k.as_str())
            || RESERVED_NAMES.contains(&k.as_str())
        {
            errs.push(
                &ep,
                format!("{k:?} already names a variable, data set or built-in"),
            );
        }
        errs.ok(rule.source(&ep));
    }
    if let Some(c) = &step.check {
        validate_check(&format!("{p}.check"), c, errs);
        if let (Some(t), Some((k, o))) = (&c.reply_type, kind) {
            let types = o.reply_types();
            if types.is_empty() {
                errs.push(
                    format!("{p}.check.replyType"),
                    format!(
                        "{} replies have no types; check them with `reply` or `bodyContains`",
                        k.field()
                    ),
                );
            } else if !types.contains(&t.as_str()) {
                errs.push(
                    format!("{p}.check.replyType"),
                    format!("expected one of {}, found {t:?}", types.join(", ")),
                );
            }
        }
    }
}

fn validate_payload(p: &str, m: &Payload, scope: &Scope, errs: &mut Errors) {
    match errs.ok(m.body(p)) {
        Some(PayloadBody::Text(t)) => check_template(&format!("{p}.text"), t, scope, errs),
        Some(PayloadBody::Json(j)) => check_json_templates(&format!("{p}.json"), j, scope, errs),
        Some(PayloadBody::Binary(_)) | None => {}
    }
}

fn validate_expect(p: &str, e: &Expect, errs: &mut Errors) {
    if let Some(t) = e.timeout
        && t.as_std().is_zero()
    {
        errs.push(format!("{p}.timeout"), "must be longer than 0s");
    }
    // What the rest means is the kind's: a websocket message's matcher, a tcp reply's
    // framing (`KindOptions::validate_step`, which compiles them as the runner does).
}

fn validate_request(p: &str, r: &Request, scope: &Scope, errs: &mut Errors) {
    errs.ok(r.parsed_method(p));
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
        errs.ok(header(&format!("{p}.headers.{k}"), k, v));
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
    for segs in t.names() {
        if let Err(msg) = resolve(segs, scope) {
            errs.push(p, msg);
        }
    }
    // A variable is constant text: one used in arithmetic must read as a number now, not
    // render `NaN` on every request.
    for segs in t.numeric_names() {
        if let [one] = segs
            && let Some(v) = scope.variables.get(one.as_str())
            && Num::parse(v).is_none()
        {
            errs.push(
                p,
                format!(
                    "variable `{one}` is used in arithmetic but its value {v:?} is not a number"
                ),
            );
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
            if scope.variables.contains_key(one.as_str())
                || scope.extracted.contains(one.as_str()) =>
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
            known.extend(scope.variables.keys().map(|s| s.to_string()));
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
    errs.ok(c.parsed_json_paths(p));
    if let Some(m) = c.max_latency
        && m.as_std().is_zero()
    {
        errs.push(format!("{p}.maxLatency"), "must be longer than 0s");
    }
    if let (Some(min), Some(max)) = (c.reply_min, c.reply_max)
        && min > max
    {
        errs.push(
            format!("{p}.replyMin"),
            format!("{min} is above replyMax ({max}): no reply could pass"),
        );
    }
}

//! The compiled scenario: every step resolved once at load into what the hot path needs.
//! The engine compiles what all kinds share (names, results slots, extract and check rules,
//! thinks); the scenario's kind compiles the rest of each step (`protocol::Kind`). Built once
//! per test, shared read-only by workers.

use std::time::Duration;

use stampede_api::FieldError;
use stampede_api::scenario::{ConnectionKind, KindOptions, Scenario, Step};
use stampede_api::validate::{kind_takes, step_actions};

use crate::protocol::net::Endpoint;
use crate::protocol::{self, Common, Kind, StepMeta};
use crate::script::data::DataSet;
use crate::script::reply::Rules;
use crate::script::template::Names;

#[derive(Debug)]
pub struct CompiledScenario {
    pub kind: Kind,
    pub endpoint: Endpoint,
    /// Names results are reported under; a step's `stat` indexes this.
    pub step_names: Vec<String>,
    pub on_start: Vec<CStep>,
    pub steps: Vec<CStep>,
    pub on_stop: Vec<CStep>,
    pub data: Vec<DataSet>,
    /// Slots for extracted values.
    pub extracted: Vec<String>,
    /// `spec.connectRate`: new connections per second for the whole test.
    pub connect_rate: Option<f64>,
    /// The whole test's peak users: a worker paces connects at its share of `connect_rate`.
    pub test_peak: u64,
}

impl CompiledScenario {
    /// The longest any one step may wait for its answer: the end-of-test drain lasts at least
    /// this long, so a request in flight at the end gets its own outcome (a reply or its
    /// timeout) rather than being cut off first.
    pub fn longest_timeout(&self) -> Duration {
        [&self.on_start, &self.steps, &self.on_stop]
            .into_iter()
            .flatten()
            .filter_map(|s| match s {
                CStep::Think(_) => None,
                CStep::Kind(k) => k.meta.timeout,
            })
            .max()
            .unwrap_or_default()
    }
}

#[derive(Debug)]
pub enum CStep {
    Think(Duration),
    /// A step of the scenario's kind.
    Kind(Box<KindStep>),
}

#[derive(Debug)]
pub struct KindStep {
    /// The results slot it records into.
    pub stat: usize,
    pub meta: StepMeta,
    pub step: protocol::Step,
}

impl CStep {
    /// The results slot of a step that sends and waits for answers, and how many: what is
    /// in flight while it runs.
    pub fn awaited(&self) -> Option<(usize, u32)> {
        match self {
            CStep::Kind(k) if k.meta.answers > 0 => Some((k.stat, k.meta.answers)),
            _ => None,
        }
    }
}

pub fn compile(
    sc: &Scenario,
    data: Vec<DataSet>,
    endpoint: Endpoint,
    connect_rate: Option<f64>,
    test_peak: u64,
    run_id: &str,
) -> Result<CompiledScenario, FieldError> {
    let mut extracted: Vec<String> = Vec::new();
    for s in sc.on_start.iter().chain(&sc.steps).chain(&sc.on_stop) {
        for k in s.extract.keys() {
            if !extracted.contains(k) {
                extracted.push(k.clone());
            }
        }
    }
    let names = Names {
        variables: sc
            .variables
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        extracted,
        data,
        run_id: run_id.to_string(),
    };
    let mut kind = Kind::compile(&sc.connection, &names)?;
    let one = sc
        .connection
        .exactly_one()
        .map_err(FieldError::at("spec.scenario.connection"))?;
    let mut step_names = Vec::new();
    let mut list = |steps: &[Step], key: &str| -> Result<Vec<CStep>, FieldError> {
        steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                compile_step(
                    &format!("spec.scenario.{key}[{i}]"),
                    s,
                    one,
                    &mut kind,
                    &names,
                    &mut step_names,
                )
            })
            .collect()
    };
    let on_start = list(&sc.on_start, "onStart")?;
    let steps = list(&sc.steps, "steps")?;
    let on_stop = list(&sc.on_stop, "onStop")?;
    Ok(CompiledScenario {
        kind,
        endpoint,
        step_names,
        on_start,
        steps,
        on_stop,
        data: names.data,
        extracted: names.extracted,
        connect_rate,
        test_peak,
    })
}

fn stat_of(step: &Step, step_names: &mut Vec<String>) -> usize {
    let name = stampede_api::step_name(step).unwrap_or_default();
    match step_names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            step_names.push(name);
            step_names.len() - 1
        }
    }
}

fn compile_step(
    p: &str,
    step: &Step,
    (ck, options): (ConnectionKind, &dyn KindOptions),
    kind: &mut Kind,
    names: &Names,
    step_names: &mut Vec<String>,
) -> Result<CStep, FieldError> {
    // The api's rules for what a step is and which steps the kind takes.
    let actions = step_actions(p, step)?;
    kind_takes(p, &actions, ck, options)?;
    if let Some(t) = step.think {
        return Ok(CStep::Think(t.as_std()));
    }
    let rules = Rules::compile(p, step, names)?;
    let stat = stat_of(step, step_names);
    let (step, meta) = kind.compile_step(p, step, Common { stat, rules }, names)?;
    Ok(CStep::Kind(Box::new(KindStep { stat, meta, step })))
}

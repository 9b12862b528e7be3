//! From a LoadTest file on disk to a test ready to run: parse, read CSV headers, validate
//! with field paths, load data, resolve the target, compile the scenario.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stampede_api::threshold::Threshold;
use stampede_api::{FieldError, LoadTestFile};
use thiserror::Error;

use crate::assignment::Assignment;
use crate::engine::scenario::compile;
use crate::engine::user::Shared;
use crate::protocol::net::Endpoint;
use crate::script::data::{Cursors, DataSet, csv_shape};
use crate::value_from::Values;

#[derive(Debug, Error)]
pub enum LoadFailure {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

impl LoadFailure {
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadFailure::Invalid(v) => v.clone(),
            LoadFailure::Read { .. } => Vec::new(),
        }
    }
}

fn one(path: impl Into<String>, message: impl Into<String>) -> LoadFailure {
    LoadFailure::Invalid(vec![FieldError {
        path: path.into(),
        message: message.into(),
    }])
}

/// A parsed and validated file.
#[derive(Debug)]
pub struct Loaded {
    pub file: LoadTestFile,
    /// The file's directory: CSV paths are relative to it.
    pub base: PathBuf,
    /// Its `…From` values, read from the environment once, when it loaded.
    pub values: Values,
}

/// A test ready to start.
#[derive(Debug)]
pub struct Prepared {
    pub name: String,
    /// `{{ run.id }}`, also in the summary.
    pub run_id: String,
    pub shared: Arc<Shared>,
    pub assignment: Assignment,
    pub thresholds: Vec<Threshold>,
    pub start_at: Option<SystemTime>,
}

pub fn load_file(path: &Path) -> Result<Loaded, LoadFailure> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadFailure::Read {
        path: path.into(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_str(&text, &base)
}

pub fn load_str(text: &str, base: &Path) -> Result<Loaded, LoadFailure> {
    let file = stampede_api::parse(text).map_err(|e| LoadFailure::Invalid(e.field_errors()))?;
    let mut shapes = BTreeMap::new();
    let mut errs = Vec::new();
    for (i, d) in file.spec.scenario.data.iter().enumerate() {
        if let Some(csv) = &d.csv {
            match csv_shape(&base.join(&csv.file)) {
                Ok(shape) => {
                    shapes.insert(d.name.clone(), shape);
                }
                Err(message) => errs.push(FieldError {
                    path: format!("spec.scenario.data[{i}].csv.file"),
                    message,
                }),
            }
        }
    }
    errs.extend(stampede_api::validate(&file, &shapes));
    // Read here, not when prepared, so that `stampede validate` (which `stampede-operator
    // local` runs first) names a variable that is not set.
    let values = if errs.is_empty() {
        Values::read(&file.spec).unwrap_or_else(|unread| {
            errs.extend(unread);
            Values::default()
        })
    } else {
        Values::default()
    };
    if !errs.is_empty() {
        return Err(LoadFailure::Invalid(errs));
    }
    Ok(Loaded {
        file,
        base: base.to_path_buf(),
        values,
    })
}

/// The first address `host` resolves to, of the family of `like` when given (source
/// addresses can only reach targets of their own family).
fn resolve_host(
    host: &str,
    port: u16,
    like: Option<std::net::IpAddr>,
) -> Result<SocketAddr, String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let all: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    match like {
        Some(src) => {
            let family = if src.is_ipv4() { "IPv4" } else { "IPv6" };
            all.iter()
                .find(|a| a.is_ipv4() == src.is_ipv4())
                .copied()
                .ok_or_else(|| {
                    format!(
                        "{host} has no {family} address, and runner.sourceAddresses are {family}"
                    )
                })
        }
        None => all
            .first()
            .copied()
            .ok_or_else(|| format!("{host} resolves to no address")),
    }
}

/// Where users connect, and how, for the scenario's connection kind.
fn endpoint(
    spec: &stampede_api::LoadTestSpec,
    base: &Path,
    values: &Values,
) -> Result<Endpoint, LoadFailure> {
    const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    let (kind, options) = spec
        .scenario
        .connection
        .exactly_one()
        .map_err(|m| one("spec.scenario.connection", m))?;
    let p = format!("spec.scenario.connection.{}", kind.field());
    let t = options.target();
    let field = t.field();
    let (host, port) = options
        .host_port()
        .map_err(|m| one(format!("{p}.{field}"), m))?;
    let (tls, alpn, timeout) = (t.tls, t.alpn, t.connect_timeout);
    let sources = spec
        .runner
        .as_ref()
        .map(|r| stampede_api::runner_pod::expand_source_addresses(&r.source_addresses))
        .transpose()
        .map_err(|(i, m)| one(format!("spec.runner.sourceAddresses[{i}]"), m))?
        .unwrap_or_default();
    if sources.iter().any(|s| s.is_ipv4() != sources[0].is_ipv4()) {
        return Err(one(
            "spec.runner.sourceAddresses",
            "mixes IPv4 and IPv6 addresses; one target address is of one family",
        ));
    }
    let addr = resolve_host(&host, port, sources.first().copied())
        .map_err(|m| one(format!("{p}.{field}"), m))?;
    let from = crate::protocol::tls::Sources { base, values };
    let tls = tls
        .map(|t| crate::protocol::tls::client(Some(&t), &host, alpn, from))
        .transpose()
        .map_err(|(field, m)| {
            let path = if field.is_empty() {
                format!("{p}.tls")
            } else {
                format!("{p}.tls.{field}")
            };
            one(path, m)
        })?;
    Ok(Endpoint {
        addr,
        tls,
        connect_timeout: timeout
            .map(|d| d.as_std())
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        sources: sources.into(),
    })
}

/// A suspended test (`spec.suspend: true`) has nothing to run in one process.
pub fn refuse_suspended(loaded: Loaded) -> Result<Loaded, LoadFailure> {
    if loaded.file.spec.suspend {
        return Err(one(
            "spec.suspend",
            "the test is suspended; set it to false (or remove it) to run it",
        ));
    }
    Ok(loaded)
}

/// Prepares a run of its own: a new `{{ run.id }}` (`stampede run`).
pub fn prepare(loaded: &Loaded) -> Result<Prepared, LoadFailure> {
    prepare_run(loaded, stampede_api::id::run_id(SystemTime::now()))
}

/// Prepares one part of a run whose id was given (a runner of a coordinated test).
pub fn prepare_run(loaded: &Loaded, run_id: String) -> Result<Prepared, LoadFailure> {
    let spec = &loaded.file.spec;
    let sc = &spec.scenario;
    let mut data = Vec::new();
    for (i, d) in sc.data.iter().enumerate() {
        data.push(
            DataSet::load(d, &loaded.base)
                .map_err(|m| one(format!("spec.scenario.data[{i}]"), m))?,
        );
    }
    let endpoint = endpoint(spec, &loaded.base, &loaded.values)?;
    let peak = u64::from(stampede_api::peak_connections(spec));
    let scenario = compile(sc, data, endpoint, spec.connect_rate, peak, &run_id)
        .map_err(|e| one(e.path, e.message))?;
    let cursors = Cursors::new(&scenario.data);
    let thresholds = spec
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| Threshold::parse(t).map_err(|m| one(format!("spec.thresholds[{i}]"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let start_at = spec
        .start_at
        .as_deref()
        .map(stampede_api::instant::parse_rfc3339)
        .transpose()
        .map_err(|e| one("spec.startAt", e))?;
    Ok(Prepared {
        name: loaded.file.metadata.name.clone(),
        run_id,
        shared: Arc::new(Shared { scenario, cursors }),
        assignment: Assignment::from_spec(spec),
        thresholds,
        start_at,
    })
}

//! The message step that WebSocket, TCP and UDP share: an optional `send`, then an optional
//! `expect` of a reply that the kind finds its own way (a matching WebSocket message, a TCP
//! reply up to its framing, the next datagram), judged by the step's rules.

use std::time::{Duration, SystemTime};

use serde_json_path::JsonPath;
use stampede_api::FieldError;
use stampede_api::scenario::{Listen as ApiListen, Payload, PayloadBody, Step};

use crate::protocol::{Common, StepMeta};
use crate::script::reply::{Code, Rules, Verdict};
use crate::script::template::{Escape, Names, Tpl, compile_json};
use crate::stats::Outcome;

/// How long an `expect` waits unless the step says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A step that sent and does not wait for a reply: done once written, no checks.
pub const SENT: Verdict = Verdict {
    outcome: Outcome::Ok,
    passed: 0,
    failed: 0,
    code: Code::None,
};

/// A `send` and/or `expect` step; `E` is how the kind finds its reply.
#[derive(Debug)]
pub struct Message<E> {
    pub stat: usize,
    pub send: Option<Send>,
    pub expect: Option<Expect<E>>,
    pub rules: Rules,
    /// Whether the rules or the kind's matcher read the reply as JSON.
    pub needs_json: bool,
}

#[derive(Debug)]
pub struct Send {
    /// `base64` payloads are binary (a WebSocket binary message); the others are text.
    pub binary: bool,
    pub body: Tpl,
}

#[derive(Debug)]
pub struct Expect<E> {
    pub timeout: Duration,
    pub how: E,
}

/// Compiles a message step at `p` (its actions the kind's: `stampede_api::validate::kind_takes`
/// was asked first): `expect_how` compiles the kind's part of its `expect` (and says whether it
/// reads JSON).
pub fn compile<E>(
    p: &str,
    step: &Step,
    common: Common,
    names: &Names,
    expect_how: impl FnOnce(&str, &stampede_api::scenario::Expect) -> Result<(E, bool), FieldError>,
) -> Result<(Message<E>, StepMeta), FieldError> {
    let send = step
        .send
        .as_ref()
        .map(|m| compile_send(&format!("{p}.send"), m, names))
        .transpose()?;
    let mut json = common.rules.needs_json();
    let expect = match &step.expect {
        None => None,
        Some(e) => {
            let (how, how_json) = expect_how(&format!("{p}.expect"), e)?;
            json |= how_json;
            Some(Expect {
                timeout: e.timeout.map(|d| d.as_std()).unwrap_or(DEFAULT_TIMEOUT),
                how,
            })
        }
    };
    let meta = StepMeta {
        answers: 1,
        timeout: expect.as_ref().map(|e| e.timeout),
    };
    Ok((
        Message {
            stat: common.stat,
            send,
            expect,
            rules: common.rules,
            needs_json: json,
        },
        meta,
    ))
}

fn compile_send(p: &str, m: &Payload, names: &Names) -> Result<Send, FieldError> {
    Ok(match m.body(p)? {
        PayloadBody::Text(t) => Send {
            binary: false,
            body: Tpl::compile(t, Escape::Raw, names)
                .map_err(FieldError::at(format!("{p}.text")))?,
        },
        PayloadBody::Json(j) => Send {
            binary: false,
            body: compile_json(j, names).map_err(FieldError::at(format!("{p}.json")))?,
        },
        PayloadBody::Binary(b) => Send {
            binary: true,
            body: Tpl::literal(&b),
        },
    })
}

/// A `listen` step (WebSocket, Redis pub/sub): every pushed message counts as one answer.
#[derive(Debug)]
pub struct Listen {
    pub stat: usize,
    pub duration: Duration,
    /// Where the send time is, and nanoseconds per unit.
    pub timestamp: Option<(JsonPath, f64)>,
}

/// Compiles a `listen` step at `p`.
pub fn compile_listen(
    p: &str,
    l: &ApiListen,
    common: &Common,
) -> Result<(Listen, StepMeta), FieldError> {
    let timestamp = l.timestamp(&format!("{p}.listen"))?;
    let listen = Listen {
        stat: common.stat,
        duration: l.duration.as_std(),
        timestamp,
    };
    let meta = StepMeta {
        answers: 0,
        timeout: None,
    };
    Ok((listen, meta))
}

impl Listen {
    /// What one pushed message of `len` bytes records: ok, with its push latency when its
    /// payload carries the send time.
    pub fn record(&self, payload: &[u8]) -> crate::protocol::Record {
        let push = self
            .timestamp
            .as_ref()
            .and_then(|(path, nanos)| push_latency(payload, path, *nanos));
        crate::protocol::Record {
            outcome: Outcome::Ok,
            passed: 0,
            failed: 0,
            sent: 0,
            received: payload.len() as u64,
            timing: push.map(|p| (p, p)),
            code: Code::None,
        }
    }
}

/// How late a pushed message arrived after the timestamp at `path` in it (units of `nanos`
/// nanoseconds). A clock behind the server's is not a negative latency: none then.
pub fn push_latency(payload: &[u8], path: &JsonPath, nanos: f64) -> Option<Duration> {
    let arrived = SystemTime::now();
    let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let ts = path.query(&json).first()?.as_f64()?;
    let arrived_ns = arrived
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_nanos() as f64;
    let late = arrived_ns - ts * nanos;
    (late >= 0.0).then(|| Duration::from_nanos(late as u64))
}

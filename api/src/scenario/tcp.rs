//! The `tcp` connection kind: its options and their rules.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::{Action, Expect, Step};
use crate::scenario::tls::Tls;
use crate::validate::FieldError;
use crate::validate::fields::{Errors, check_connect_timeout, check_tls, parse_address};

/// A TCP connection.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpConnection {
    /// `host:port`, e.g. `10.0.0.5:7000` or `[::1]:7000`.
    pub address: String,
    /// How long opening the connection (and the TLS handshake) may take. Default 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// Speak TLS over the connection (present, even as `{}`, turns it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// Where a tcp reply ends, as its `expect` says.
#[derive(Clone, Debug)]
pub enum Framing<'a> {
    /// It ends with this text, included.
    Delimiter(&'a str),
    /// It starts with its length: a big-endian unsigned integer of this many bytes.
    LengthPrefix(u8),
    /// It ends where the bytes read so far first match this regular expression.
    Regex(regex::bytes::Regex),
}

/// Where the reply of `e`, the `expect` at `p`, ends: exactly one of `delimiter` (not empty),
/// `lengthPrefix` (1, 2, 4 or 8) or `regex` (which compiles).
pub fn framing<'e>(p: &str, e: &'e Expect) -> Result<Framing<'e>, FieldError> {
    match (&e.delimiter, e.length_prefix, e.parsed_regex(p)?) {
        (Some(d), None, None) if d.is_empty() => Err(FieldError::new(
            format!("{p}.delimiter"),
            "must not be empty",
        )),
        (Some(d), None, None) => Ok(Framing::Delimiter(d)),
        (None, Some(n @ (1 | 2 | 4 | 8)), None) => Ok(Framing::LengthPrefix(n)),
        (None, Some(n), None) => Err(FieldError::new(
            format!("{p}.lengthPrefix"),
            format!("expected 1, 2, 4 or 8 bytes, found {n}"),
        )),
        (None, None, Some(re)) => Ok(Framing::Regex(re)),
        _ => Err(FieldError::new(
            p,
            "a tcp reply needs exactly one of `delimiter`, `lengthPrefix` or `regex` to say where it ends",
        )),
    }
}

impl KindOptions for TcpConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Send, Action::Expect]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        if let Err(m) = self.host_port() {
            errs.push(format!("{kp}.address"), m);
        }
        check_connect_timeout(kp, self.connect_timeout, errs);
        if let Some(tls) = &self.tls {
            check_tls(&format!("{kp}.tls"), tls, errs);
        }
    }

    fn validate_step(&self, p: &str, step: &Step, errs: &mut Errors) {
        let Some(e) = &step.expect else { return };
        let p = format!("{p}.expect");
        for (f, set) in e.matching() {
            if set {
                errs.push(
                    format!("{p}.{f}"),
                    "on tcp, `expect` says where the reply ends; judge it with `check` (bodyContains, jsonPath)",
                );
            }
        }
        errs.ok(framing(&p, e));
    }

    fn target(&self) -> Target<'_> {
        Target::host_port(&self.address, self.tls.as_ref(), self.connect_timeout)
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        parse_address(&self.address)
    }
}

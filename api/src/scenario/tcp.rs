//! The `tcp` connection kind: its options and their rules.

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::{Action, Step};
use crate::scenario::tls::Tls;
use crate::validate::fields::{Errors, check_address, check_connect_timeout, check_tls};

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

impl KindOptions for TcpConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Send, Action::Expect]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        check_address(&format!("{kp}.address"), &self.address, errs);
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
        let ends = [
            e.delimiter.is_some(),
            e.length_prefix.is_some(),
            e.regex.is_some(),
        ];
        if ends.iter().filter(|s| **s).count() != 1 {
            errs.push(
                p,
                "a tcp reply needs exactly one of `delimiter`, `lengthPrefix` or `regex` to say where it ends",
            );
        }
    }

    fn target(&self) -> Target<'_> {
        Target::host_port(&self.address, self.tls.as_ref(), self.connect_timeout)
    }
}

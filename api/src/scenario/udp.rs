//! The `udp` connection kind: its options and their rules.

use serde::{Deserialize, Serialize};

use crate::scenario::kind::{KindOptions, Target};
use crate::scenario::step::{Action, Step};
use crate::validate::fields::{Errors, parse_address};

/// A UDP socket.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UdpConnection {
    /// `host:port` every datagram goes to.
    pub address: String,
}

impl KindOptions for UdpConnection {
    fn actions(&self) -> &'static [Action] {
        &[Action::Send, Action::Expect]
    }

    fn validate(&self, kp: &str, errs: &mut Errors) {
        if let Err(m) = self.host_port() {
            errs.push(format!("{kp}.address"), m);
        }
    }

    fn validate_step(&self, p: &str, step: &Step, errs: &mut Errors) {
        let Some(e) = &step.expect else { return };
        let framing = [
            ("delimiter", e.delimiter.is_some()),
            ("lengthPrefix", e.length_prefix.is_some()),
            ("regex", e.regex.is_some()),
        ];
        for (f, set) in e.matching().into_iter().chain(framing) {
            if set {
                errs.push(
                    format!("{p}.expect.{f}"),
                    "on udp the next datagram is the reply; judge it with `check`",
                );
            }
        }
    }

    fn target(&self) -> Target<'_> {
        Target::host_port(&self.address, None, None)
    }

    fn host_port(&self) -> Result<(String, u16), String> {
        parse_address(&self.address)
    }
}

//! `spec.runner`: how runner pods are placed and sized in a cluster. Plain data mirroring the
//! few Kubernetes fields a user sets, so the runner and `stampede run` need no Kubernetes types;
//! the operator translates them into a Pod. `///` comments are user documentation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Settings for the runners: where runner pods go and how big they are (operator only), and
/// the local addresses every runner connects from (`sourceAddresses`, honoured everywhere).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunnerPod {
    /// Container image of the runner, e.g. `ghcr.io/stampede-dev/stampede:0.1.0`. Default: the
    /// image the operator was started with (`--runner-image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory for each runner container, as in a Pod's `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// The most virtual users one runner may hold. When `spec.runners` is absent the operator
    /// starts ceil(peak connections / maxConnections) runners; while a runner is being replaced
    /// the others never take more than this many users each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "kube", schemars(range(min = 1)))]
    pub max_connections: Option<u32>,
    /// Node labels a runner pod must match, as in a Pod's `nodeSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints runner pods tolerate, as in a Pod's `tolerations`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Extra environment variables for the runner container. Names starting with `STAMPEDE_`
    /// are reserved for the operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Local IP addresses users connect from, each an address (`10.0.0.7`) or an inclusive
    /// range (`127.0.0.2-127.0.0.40`); users take them in turn. A source address and a
    /// target address allow ~28k connections between them (the ephemeral port range), so
    /// more connections to one target need more source addresses. Every address must exist on
    /// the runner's host (in a pod: its network namespace). Default: the system's choice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "kube", schemars(length(max = 64)))]
    pub source_addresses: Vec<String>,
}

/// The most addresses `sourceAddresses` may expand to: enough for 1.8 million connections to
/// one target, few enough that a typo cannot allocate gigabytes.
pub const MAX_SOURCE_ADDRESSES: usize = 65_536;

/// Expands `sourceAddresses` into addresses, or says which entry is wrong and why.
pub fn expand_source_addresses(list: &[String]) -> Result<Vec<std::net::IpAddr>, (usize, String)> {
    use std::net::IpAddr;
    let mut out = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let entry = entry.trim();
        let parse = |s: &str| {
            s.trim()
                .parse::<IpAddr>()
                .map_err(|_| (i, format!("{s:?} is not an IP address")))
        };
        match entry.split_once('-') {
            None => out.push(parse(entry)?),
            Some((a, b)) => match (parse(a)?, parse(b)?) {
                (IpAddr::V4(a), IpAddr::V4(b)) if u32::from(a) <= u32::from(b) => {
                    // The span minus one: a full /0 range would overflow the count.
                    let span = u64::from(u32::from(b) - u32::from(a));
                    if out.len() as u64 + span >= MAX_SOURCE_ADDRESSES as u64 {
                        return Err((i, format!("more than {MAX_SOURCE_ADDRESSES} addresses")));
                    }
                    out.extend((u32::from(a)..=u32::from(b)).map(|x| IpAddr::V4(x.into())));
                }
                (IpAddr::V6(a), IpAddr::V6(b)) if u128::from(a) <= u128::from(b) => {
                    let span = u128::from(b) - u128::from(a);
                    if out.len() as u128 + span >= MAX_SOURCE_ADDRESSES as u128 {
                        return Err((i, format!("more than {MAX_SOURCE_ADDRESSES} addresses")));
                    }
                    out.extend((u128::from(a)..=u128::from(b)).map(|x| IpAddr::V6(x.into())));
                }
                _ => {
                    return Err((
                        i,
                        format!(
                            "{entry:?}: a range runs from a lower to a higher address of the same family"
                        ),
                    ));
                }
            },
        }
        if out.len() > MAX_SOURCE_ADDRESSES {
            return Err((i, format!("more than {MAX_SOURCE_ADDRESSES} addresses")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_expand_ranges_in_order_and_name_the_bad_entry() {
        let v = expand_source_addresses(&["127.0.0.2-127.0.0.4".into(), "::1".into()]).unwrap();
        let shown: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"]);
        assert_eq!(
            expand_source_addresses(&["127.0.0.1".into(), "10.0.0.x".into()])
                .unwrap_err()
                .0,
            1
        );
        assert!(expand_source_addresses(&["127.0.0.9-127.0.0.2".into()]).is_err());
        assert!(expand_source_addresses(&["127.0.0.1-::1".into()]).is_err());
        assert!(expand_source_addresses(&["10.0.0.0-10.255.255.255".into()]).is_err());
        // Whole address spaces are refused, not overflowed.
        assert!(expand_source_addresses(&["0.0.0.0-255.255.255.255".into()]).is_err());
        assert!(
            expand_source_addresses(&["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into()])
                .is_err()
        );
        assert_eq!(
            expand_source_addresses(&["127.0.0.1-127.0.255.255".into()]).map(|v| v.len()),
            Ok(MAX_SOURCE_ADDRESSES - 1)
        );
    }
}

/// Compute resources, as in a container's `resources`: quantities such as `500m`, `2` or `1Gi`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Resources the scheduler reserves for the runner, e.g. `{cpu: "2", memory: 1Gi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// The most the runner may use, e.g. `{cpu: "4", memory: 2Gi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// A toleration, as in a Pod's `tolerations`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key to tolerate; empty with operator `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (the default: key and value must match) or `Exists` (any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The taint value to match with operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The taint effect to match: `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty
    /// matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// With effect `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// An environment variable with a literal value.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "kube", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// The variable's name, e.g. `RUST_LOG`.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

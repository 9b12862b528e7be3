//! Threshold expressions (`p99(checkout) < 250ms`, `errors < 1%`): parsing only.
//! Pure: evaluation against results lives with the results.

use std::fmt;

/// A parsed threshold. Values are normalised: latencies in seconds, ratios in 0..=1,
/// rates in per second.
#[derive(Clone, Debug, PartialEq)]
pub struct Threshold {
    pub source: String,
    pub metric: Metric,
    pub step: Option<String>,
    /// `errors(step, code=409)`: only server errors with this code (an HTTP status, a Redis
    /// error prefix) count.
    pub code: Option<String>,
    pub op: Op,
    pub value: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Metric {
    /// A latency percentile, e.g. 99.0 or 99.9, measured from the intended start.
    Percentile(f64),
    /// Mean latency.
    Avg,
    /// Largest latency.
    Max,
    /// Failed requests / requests.
    Errors,
    /// Achieved iterations/s (or requests/s of one step).
    Rate,
    /// Passed checks / checks.
    Checks,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        })
    }
}

impl Metric {
    pub fn is_latency(self) -> bool {
        matches!(self, Metric::Percentile(_) | Metric::Avg | Metric::Max)
    }
    pub fn is_ratio(self) -> bool {
        matches!(self, Metric::Errors | Metric::Checks)
    }
}

const FORMS: &str = "expected `METRIC[(step)] OP VALUE` such as `p99(checkout) < 250ms`, \
`avg < 100ms`, `errors < 1%`, `errors(buy, code=409) < 0.1%`, `checks > 99.9%` or `rate > 900`";

impl Threshold {
    pub fn parse(src: &str) -> Result<Threshold, String> {
        let s = src.trim();
        let (op, op_at, op_len) = ["<=", ">=", "<", ">"]
            .iter()
            .find_map(|o| s.find(o).map(|i| (*o, i, o.len())))
            .ok_or_else(|| format!("no comparison operator in {s:?}: {FORMS}"))?;
        let op = match op {
            "<=" => Op::Le,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            _ => Op::Gt,
        };
        let lhs = s[..op_at].trim();
        let rhs = s[op_at + op_len..].trim();
        let (name, step, code) = match lhs.find('(') {
            Some(i) => {
                let inner = lhs[i + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| format!("missing `)` in {lhs:?}: {FORMS}"))?
                    .trim();
                let (step, code) = arguments(inner, lhs)?;
                (lhs[..i].trim(), step, code)
            }
            None => (lhs, None, None),
        };
        if code.is_some() && name != "errors" {
            return Err(format!(
                "`code=` narrows `errors` to one server code; {name:?} takes a step name only"
            ));
        }
        let metric = match name {
            "avg" => Metric::Avg,
            "max" => Metric::Max,
            "errors" => Metric::Errors,
            "rate" => Metric::Rate,
            "checks" => Metric::Checks,
            p if p.starts_with('p') => {
                let q: f64 = p[1..]
                    .parse()
                    .map_err(|_| format!("unknown metric {p:?}: {FORMS}"))?;
                if !(q > 0.0 && q < 100.0) {
                    return Err(format!("percentile {p:?} must lie between p0 and p100"));
                }
                Metric::Percentile(q)
            }
            other => return Err(format!("unknown metric {other:?}: {FORMS}")),
        };
        let value = if metric.is_latency() {
            let d: crate::Duration = rhs
                .parse()
                .map_err(|e| format!("{name} compares with a duration: {e}"))?;
            d.as_std().as_secs_f64()
        } else if metric.is_ratio() {
            let v = match rhs.strip_suffix('%') {
                Some(p) => parse_number(p.trim())? / 100.0,
                None => {
                    let v = parse_number(rhs)?;
                    // `errors < 1` reads as "under 1%" to many and as "under 100%" to the
                    // parser: it passed at 48.8% errors. Only a fraction below 1 is clear.
                    if v == 1.0 {
                        return Err(format!(
                            "`{name} {op} 1` is ambiguous: write a percentage (`{name} {op} 1%`) or a \
                             ratio below 1 (`{name} {op} 0.01`)",
                            op = &s[op_at..op_at + op_len]
                        ));
                    }
                    v
                }
            };
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "{name} is a share: write a percentage (0%..100%) or a ratio (0..1), found {rhs:?}"
                ));
            }
            v
        } else {
            let v = parse_number(rhs)?;
            if v < 0.0 {
                return Err(format!("rate cannot be negative, found {rhs:?}"));
            }
            v
        };
        Ok(Threshold {
            source: s.to_string(),
            metric,
            step,
            code,
            op,
            value,
        })
    }
}

/// `step`, `code=C` or `step, code=C` inside a metric's parentheses.
fn arguments(inner: &str, lhs: &str) -> Result<(Option<String>, Option<String>), String> {
    let (mut step, mut code) = (None, None);
    for arg in inner.split(',').map(str::trim) {
        match arg.split_once('=') {
            Some((k, v)) if k.trim() == "code" && !v.trim().is_empty() && code.is_none() => {
                code = Some(v.trim().trim_matches('"').to_string());
            }
            Some(_) => return Err(format!("unknown argument {arg:?} in {lhs:?}: {FORMS}")),
            None if arg.is_empty() => {
                return Err(format!("empty step name in {lhs:?}: {FORMS}"));
            }
            None if step.is_none() && code.is_none() => step = Some(arg.to_string()),
            None => return Err(format!("one step name, then `code=…`, in {lhs:?}: {FORMS}")),
        }
    }
    Ok((step, code))
}

fn parse_number(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| format!("expected a number, found {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let t = Threshold::parse("p99(checkout) < 250ms").unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.0));
        assert_eq!(t.step.as_deref(), Some("checkout"));
        assert!((t.value - 0.25).abs() < 1e-12);
        assert_eq!(Threshold::parse("errors < 0.5%").unwrap().value, 0.005);
        assert_eq!(Threshold::parse("checks >= 0.999").unwrap().op, Op::Ge);
        assert_eq!(Threshold::parse("rate > 900").unwrap().value, 900.0);
        assert_eq!(
            Threshold::parse("p99.9 < 1s").unwrap().metric,
            Metric::Percentile(99.9)
        );
    }

    #[test]
    fn errors_narrow_to_one_server_code() {
        let t = Threshold::parse("errors(buy, code=409) < 0.1%").unwrap();
        assert_eq!(
            (t.step.as_deref(), t.code.as_deref()),
            (Some("buy"), Some("409"))
        );
        let t = Threshold::parse("errors(code=WRONGTYPE) < 1%").unwrap();
        assert_eq!((t.step, t.code.as_deref()), (None, Some("WRONGTYPE")));
        for bad in [
            "p99(buy, code=409) < 1s",
            "errors(buy, size=3) < 1%",
            "errors(code=409, buy) < 1%",
            "errors(buy, code=) < 1%",
            "errors(, code=409) < 1%",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_bare_one_is_refused_as_ambiguous_with_both_spellings_offered() {
        let e = Threshold::parse("errors < 1").unwrap_err();
        assert!(
            e.contains("`errors < 1%`") && e.contains("`errors < 0.01`"),
            "{e}"
        );
        assert_eq!(Threshold::parse("errors < 1%").unwrap().value, 0.01);
        assert_eq!(Threshold::parse("errors <= 100%").unwrap().value, 1.0);
        assert_eq!(Threshold::parse("checks > 0.99").unwrap().value, 0.99);
    }

    #[test]
    fn rejects_malformed_expressions() {
        for bad in [
            "p99 250ms",
            "p99 < 250",
            "errors < 150%",
            "latency < 3ms",
            "p99( < 1s",
            "rate > fast",
            "errors < 1",
            "checks >= 1.0",
        ] {
            assert!(Threshold::parse(bad).is_err(), "{bad} parsed");
        }
    }
}

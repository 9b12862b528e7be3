//! What `stampede run` prints: a live line a second and the final per-step table.
//! Pure formatting: returns strings, writes nothing.

use stampede_api::results::{Point, Summary};
use stampede_api::verdict::display_value;

pub use stampede_api::units::fmt_ms;

/// `n` and the noun for it: `1 user`, `2 users`, `0 users`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

fn opt_ms(v: Option<f64>) -> String {
    v.map(fmt_ms).unwrap_or_else(|| "-".into())
}

pub fn live_header() -> String {
    format!(
        "{:>6} {:>9} {:>9} {:>13} {:>9} {:>9} {:>9} {:>8}  {}",
        "time", "target/s", "achieved", "users", "p50", "p95", "p99", "dropped", "errors"
    )
}

pub fn live_line(p: &Point, open: bool) -> String {
    let target = match p.target_rate {
        Some(r) if open => format!("{r:.0}"),
        _ => "closed".into(),
    };
    let errors = if p.errors_by_kind.is_empty() {
        "0".to_string()
    } else {
        let total: u64 = p.errors_by_kind.values().sum();
        let kinds: Vec<String> = p
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        format!("{total} ({})", kinds.join(", "))
    };
    format!(
        "{:>5}s {:>9} {:>9} {:>13} {:>9} {:>9} {:>9} {:>8}  {}",
        p.t,
        target,
        p.iterations,
        format!("{}/{}", p.active_connections, p.target_connections),
        opt_ms(p.p50_ms),
        opt_ms(p.p95_ms),
        opt_ms(p.p99_ms),
        p.dropped,
        errors
    )
}

pub fn summary_table(s: &Summary) -> String {
    let mut out = String::new();
    let t = &s.totals;
    out.push_str(&format!(
        "\n{}{} — {} model, {:.1}s: {} ({:.1}/s{}), {}, {} ({:.3}%), {} dropped, {}{}\n\n",
        s.name,
        if s.run_id.is_empty() {
            String::new()
        } else {
            format!(" (run {})", s.run_id)
        },
        s.model,
        s.duration_seconds,
        count(t.iterations, "iteration", "iterations"),
        t.rate,
        s.target_rate
            .map(|r| format!(" of {r:.1}/s target"))
            .unwrap_or_default(),
        count(t.requests, "request", "requests"),
        count(t.errors, "error", "errors"),
        t.error_ratio * 100.0,
        t.dropped,
        count(t.connects, "connect", "connects"),
        if t.connect_errors > 0 {
            format!(" and {} failed", t.connect_errors)
        } else {
            String::new()
        }
    ));
    out.push_str(&format!(
        "{:<28} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}\n",
        "step", "requests", "errors", "rate/s", "p50", "p95", "p99", "p99.9", "max", "checks"
    ));
    for st in &s.steps {
        let checks = st.checks_passed + st.checks_failed;
        let checks = if checks == 0 {
            "-".into()
        } else {
            format!("{}/{}", st.checks_passed, checks)
        };
        let mut name = st.name.clone();
        if name.chars().count() > 28 {
            name = name.chars().take(27).collect::<String>() + "…";
        }
        out.push_str(&format!(
            "{:<28} {:>9} {:>8} {:>9.1} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}\n",
            name,
            st.requests,
            st.errors,
            st.rate,
            fmt_ms(st.latency.p50),
            fmt_ms(st.latency.p95),
            fmt_ms(st.latency.p99),
            fmt_ms(st.latency.p999),
            fmt_ms(st.latency.max),
            checks
        ));
    }
    if !t.errors_by_kind.is_empty() {
        let kinds: Vec<String> = t
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        out.push_str(&format!("\nerrors by kind: {}\n", kinds.join(", ")));
    }
    for st in s.steps.iter().filter(|st| !st.codes.is_empty()) {
        let codes: Vec<String> = st.codes.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        out.push_str(&format!(
            "server errors of {} by code: {}\n",
            st.name,
            codes.join(", ")
        ));
    }
    for r in &t.error_reasons {
        out.push_str(&format!("  {} ×{}: {}\n", r.kind, r.count, r.reason));
    }
    if let Some(h) = tls_hint(t) {
        out.push_str(&format!("hint: {h}\n"));
    }
    if !s.thresholds.is_empty() {
        out.push_str("\nthresholds:\n");
        for th in &s.thresholds {
            out.push_str(&format!(
                "  {} {:<40} observed {}\n",
                if th.passed { "PASS" } else { "FAIL" },
                th.expression,
                display_value(th)
            ));
        }
    }
    out.push_str(&format!(
        "\nverdict: {}\n",
        if s.passed { "PASSED" } else { "FAILED" }
    ));
    out
}

/// A hint for TLS failures that a test target's own certificate explains: verification
/// failed (unknown issuer, name, expiry), which `insecureSkipVerify` or the right
/// `serverName` fixes for a target under test.
pub fn tls_hint(t: &stampede_api::results::Totals) -> Option<&'static str> {
    t.error_reasons
        .iter()
        .any(|r| r.kind == "tls" && r.reason.contains("certificate"))
        .then_some(
            "the target's certificate was refused: for a private CA or a self-signed test \
             target, trust it with `tls: { ca: ca.pem }` in the scenario's connection (or skip \
             the check with `insecureSkipVerify: true`); `serverName` when the name differs",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headline(n: u64) -> String {
        let mut s = Summary {
            name: "t".into(),
            model: "open".into(),
            ..Summary::default()
        };
        s.totals.iterations = n;
        s.totals.requests = n;
        s.totals.errors = n;
        s.totals.connects = n;
        summary_table(&s).lines().nth(1).unwrap().to_string()
    }

    #[test]
    fn the_summary_headline_says_1_iteration_and_2_iterations() {
        let one = headline(1);
        assert!(
            one.contains(": 1 iteration (")
                && one.contains(", 1 request, 1 error (")
                && one.ends_with(", 1 connect"),
            "{one}"
        );
        let two = headline(2);
        assert!(
            two.contains(": 2 iterations (")
                && two.contains(", 2 requests, 2 errors (")
                && two.ends_with(", 2 connects"),
            "{two}"
        );
        assert!(headline(0).contains(": 0 iterations ("));
    }

    #[test]
    fn counts_take_the_singular_only_for_one() {
        assert_eq!(count(0u32, "user", "users"), "0 users");
        assert_eq!(count(1u32, "user", "users"), "1 user");
        assert_eq!(count(200u64, "user", "users"), "200 users");
    }
}

//! What `stampede run` prints: a live line a second and the final per-step table.
//! Pure formatting: returns strings, writes nothing.

use crate::results::{Point, Summary};
use crate::verdict::display_value;

pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
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
        "\n{} — {} model, {:.1}s: {} iterations ({:.1}/s{}), {} requests, {} errors ({:.3}%), {} dropped, {} connects\n\n",
        s.name,
        s.model,
        s.duration_seconds,
        t.iterations,
        t.rate,
        s.target_rate.map(|r| format!(" of {r:.1}/s target")).unwrap_or_default(),
        t.requests,
        t.errors,
        t.error_ratio * 100.0,
        t.dropped,
        t.connects
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

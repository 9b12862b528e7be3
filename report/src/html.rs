//! `stampede report --html`: one self-contained HTML page from a run's summary — header and
//! verdict, totals, thresholds, charts over time, the per-step table. Inline CSS and inline
//! SVG only: no JavaScript, nothing fetched, so the file opens offline and can be mailed.
//! Pure: returns a String, writes nothing. Every string from the summary is escaped (step
//! names, the test name and threshold text come from users).

mod chart;

use std::fmt::Write as _;

use stampede_api::results::{Latency, Summary, ThresholdResult};
use stampede_api::units::fmt_ms;
use stampede_api::verdict::display_value;

pub use chart::PLOT_BG;

/// Series colours, each used by one line only (the screenshot test looks for them).
pub const ACHIEVED_COLOR: &str = "#2563eb";
pub const TARGET_COLOR: &str = "#f97316";
pub const P50_COLOR: &str = "#0d9488";
pub const P95_COLOR: &str = "#7c3aed";
pub const P99_COLOR: &str = "#db2777";
pub const ERRORS_COLOR: &str = "#dc2626";
pub const DROPPED_COLOR: &str = "#ca8a04";

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567` → `1,234,567`.
fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate or other measure: `0.5`, `12.25`, `1,234`, `12.5k`, `1.2M`; `-` when not finite.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a >= 1e6 {
        format!("{sign}{:.1}M", a / 1e6)
    } else if a >= 1e4 {
        let k = a / 1e3;
        if k >= 100.0 || k.fract() == 0.0 {
            format!("{sign}{k:.0}k")
        } else {
            format!("{sign}{k:.1}k")
        }
    } else if a >= 100.0 || a.fract() == 0.0 {
        format!("{sign}{}", fmt_count(a.round() as u64))
    } else {
        let s = format!("{a:.2}");
        format!("{sign}{}", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A latency axis tick, without trailing zeros: `0.05ms`, `2ms`, `1.5s`.
fn fmt_ms_tick(ms: f64) -> String {
    let trim = |s: String| s.trim_end_matches('0').trim_end_matches('.').to_string();
    if ms >= 1000.0 {
        format!("{}s", trim(format!("{:.3}", ms / 1000.0)))
    } else {
        format!("{}ms", trim(format!("{ms:.6}")))
    }
}

/// A latency in ms, `-` when nothing was measured or the value is not a number.
fn fmt_latency(v: f64) -> String {
    if v.is_finite() && v >= 0.0 {
        fmt_ms(v)
    } else {
        "-".into()
    }
}

fn latencies(l: &Latency) -> [String; 5] {
    if l.count == 0 {
        return std::array::from_fn(|_| "-".into());
    }
    [l.p50, l.p95, l.p99, l.p999, l.max].map(fmt_latency)
}

fn pct(ratio: f64) -> String {
    if ratio.is_finite() {
        format!("{:.3}%", ratio * 100.0)
    } else {
        "-".into()
    }
}

fn checks(passed: u64, failed: u64) -> String {
    match passed.checked_add(failed) {
        Some(0) => "-".into(),
        Some(total) => format!("{}/{}", fmt_count(passed), fmt_count(total)),
        None => format!("{} passed, {} failed", fmt_count(passed), fmt_count(failed)),
    }
}

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;background:#eef1f5;color:#1e293b;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1220px;margin:0 auto;padding:24px 20px 40px}
header.top{display:flex;align-items:center;justify-content:space-between;gap:24px;background:#fff;border-radius:10px;padding:20px 24px;box-shadow:0 1px 2px rgba(15,23,42,.08)}
.kicker{margin:0;color:#64748b;font-size:12px;letter-spacing:.08em;text-transform:uppercase}
h1{margin:2px 0 6px;font-size:26px;word-break:break-word}
.meta{margin:0;color:#475569}
.meta span+span:before{content:"·";margin:0 8px;color:#94a3b8}
.verdict{flex:none;text-align:center;border-radius:10px;padding:12px 26px;color:#fff}
.verdict b{display:block;font-size:30px;letter-spacing:.06em}
.verdict small{font-size:12px;opacity:.9}
.verdict.passed{background:#15803d}
.verdict.failed{background:#b91c1c}
section{background:#fff;border-radius:10px;padding:16px 20px;margin-top:16px;box-shadow:0 1px 2px rgba(15,23,42,.08)}
h2{margin:0 0 10px;font-size:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
.card{border:1px solid #e2e8f0;border-radius:8px;padding:10px 12px}
.card .label{color:#64748b;font-size:12px}
.card .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.card .sub{color:#64748b;font-size:12px}
.kinds{margin:10px 0 0;color:#475569}
.kind{display:inline-block;background:#fee2e2;color:#991b1b;border-radius:999px;padding:1px 9px;margin:2px 4px 2px 0;font-size:12px}
.reasons{margin:8px 0 0;padding-left:18px;color:#475569;font-size:13px}
.reasons li{margin:2px 0;word-break:break-word}
.hint{margin:8px 0 0;color:#92400e;background:#fef3c7;border-radius:6px;padding:6px 10px;font-size:13px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;border-bottom:1px solid #e2e8f0;text-align:right;white-space:nowrap}
th{color:#64748b;font-weight:600;font-size:12px;background:#f8fafc}
th:first-child,td:first-child{text-align:left;white-space:normal;word-break:break-word}
tfoot td{font-weight:600;border-bottom:none;border-top:2px solid #cbd5e1}
td.bad{color:#b91c1c;font-weight:600}
code{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,monospace;font-size:13px}
.result{display:inline-block;border-radius:4px;padding:0 8px;font-weight:700;font-size:12px;color:#fff}
.result.pass{background:#15803d}
.result.fail{background:#b91c1c}
.none{color:#64748b;margin:0}
figure{margin:0}
svg.chart{display:block;max-width:100%;height:auto;font-size:12px;font-family:inherit}
footer{margin-top:16px;color:#64748b;font-size:12px;text-align:center}
"#;

/// The whole report page.
pub fn render(s: &Summary) -> String {
    let mut out = String::with_capacity(64 * 1024 + s.series.len() * 200);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} — Stampede report</title><style>{CSS}</style></head><body><main>",
        esc(&s.name)
    );
    header(&mut out, s);
    totals(&mut out, s);
    thresholds(&mut out, &s.thresholds);
    charts(&mut out, s);
    steps(&mut out, s);
    let _ = writeln!(
        out,
        "<footer>Stampede {} · summary schema {}</footer></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        esc(&s.schema)
    );
    out
}

fn header(out: &mut String, s: &Summary) {
    let failed = s.thresholds.iter().filter(|t| !t.passed).count();
    let detail = match (s.thresholds.len(), failed) {
        (0, _) => "no thresholds".to_string(),
        (n, 0) => format!("{n} of {n} thresholds held"),
        (n, f) => format!("{f} of {n} thresholds failed"),
    };
    let model = match (s.model.as_str(), s.target_rate) {
        ("open", Some(r)) => format!("open model, {} iterations/s target", fmt_num(r)),
        (m, _) => format!("{m} model"),
    };
    let _ = write!(
        out,
        r#"<header class="top"><div><p class="kicker">Stampede load test report</p><h1 id="test-name">{name}</h1><p class="meta">{run}<span>started {start}</span><span>{model}</span><span>{users} users</span><span>load window {dur:.1}s</span><span>elapsed {el:.1}s</span></p></div><div id="verdict" class="verdict {cls}"><b>{verdict}</b><small>{detail}</small></div></header>"#,
        name = esc(&s.name),
        run = if s.run_id.is_empty() {
            String::new()
        } else {
            format!("<span id=\"run-id\">run {}</span>", esc(&s.run_id))
        },
        start = esc(&s.start_time),
        model = esc(&model),
        users = fmt_count(s.connections),
        dur = finite(s.duration_seconds),
        el = finite(s.elapsed_seconds),
        cls = if s.passed { "passed" } else { "failed" },
        verdict = if s.passed { "PASSED" } else { "FAILED" },
    );
}

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { 0.0 }
}

fn card(out: &mut String, label: &str, value: &str, sub: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><div class="label">{}</div><div class="value">{}</div><div class="sub">{}</div></div>"#,
        esc(label),
        esc(value),
        esc(sub)
    );
}

fn totals(out: &mut String, s: &Summary) {
    let t = &s.totals;
    out.push_str(r#"<section id="totals"><h2>Totals</h2><div class="cards">"#);
    let of_target = s
        .target_rate
        .map(|r| format!(" of {}/s target", fmt_num(r)))
        .unwrap_or_default();
    card(
        out,
        "Iterations",
        &fmt_count(t.iterations),
        &format!("{}/s{of_target}", fmt_num(t.rate)),
    );
    card(
        out,
        "Requests",
        &fmt_count(t.requests),
        &format!("{}/s", fmt_num(t.request_rate)),
    );
    card(
        out,
        "Errors",
        &fmt_count(t.errors),
        &format!("{} of requests and failed connects", pct(t.error_ratio)),
    );
    card(
        out,
        "Dropped",
        &fmt_count(t.dropped),
        "iterations no user was free for",
    );
    let [p50, p95, p99, p999, max] = latencies(&t.latency);
    card(out, "Latency p50", &p50, &format!("p95 {p95}"));
    card(
        out,
        "Latency p99",
        &p99,
        &format!("p99.9 {p999} · max {max}"),
    );
    card(
        out,
        "Checks",
        &checks(t.checks_passed, t.checks_failed),
        "passed / evaluated",
    );
    card(
        out,
        "Users",
        &fmt_count(s.connections),
        &format!(
            "{} connects, {} failed",
            fmt_count(t.connects),
            fmt_count(t.connect_errors)
        ),
    );
    card(
        out,
        "Data",
        &fmt_bytes(t.bytes_received),
        &format!("received · {} sent", fmt_bytes(t.bytes_sent)),
    );
    out.push_str("</div>");
    if !t.errors_by_kind.is_empty() {
        out.push_str(r#"<p class="kinds">Errors by kind: "#);
        for (k, n) in &t.errors_by_kind {
            let _ = write!(
                out,
                r#"<span class="kind">{} {}</span>"#,
                esc(k),
                fmt_count(*n)
            );
        }
        out.push_str("</p>");
    }
    if !t.error_reasons.is_empty() {
        out.push_str(r#"<ul class="reasons" id="error-reasons">"#);
        for r in &t.error_reasons {
            let _ = write!(
                out,
                r#"<li><span class="kind">{}</span> ×{} {}</li>"#,
                esc(&r.kind),
                fmt_count(r.count),
                esc(&r.reason)
            );
        }
        out.push_str("</ul>");
    }
    if let Some(h) = crate::console::tls_hint(t) {
        let _ = write!(out, r#"<p class="hint">Hint: {}</p>"#, esc(h));
    }
    out.push_str("</section>");
}

fn thresholds(out: &mut String, ts: &[ThresholdResult]) {
    out.push_str(r#"<section><h2>Thresholds</h2>"#);
    if ts.is_empty() {
        out.push_str(r#"<p class="none" id="thresholds">No thresholds: the run passes whatever it measured.</p></section>"#);
        return;
    }
    out.push_str(r#"<table id="thresholds"><thead><tr><th>threshold</th><th>observed</th><th>result</th></tr></thead><tbody>"#);
    for t in ts {
        let (cls, word) = if t.passed {
            ("pass", "PASS")
        } else {
            ("fail", "FAIL")
        };
        let _ = write!(
            out,
            r#"<tr class="threshold {cls}"><td><code>{expr}</code></td><td>{value}</td><td><span class="result {cls}">{word}</span></td></tr>"#,
            expr = esc(&t.expression),
            value = esc(&display_value(t)),
        );
    }
    out.push_str("</tbody></table></section>");
}

fn charts(out: &mut String, s: &Summary) {
    let t: Vec<f64> = s.series.iter().map(|p| p.t as f64).collect();
    // Per second even where a point covers more (a coarsened series, a late tick).
    let count = |f: fn(&stampede_api::results::Point) -> u64| -> Vec<Option<f64>> {
        let mut previous = 0;
        s.series
            .iter()
            .map(|p| {
                let per_second = f(p) as f64 / p.interval_from(previous) as f64;
                previous = p.t;
                Some(per_second)
            })
            .collect()
    };
    let opt = |f: fn(&stampede_api::results::Point) -> Option<f64>| -> Vec<Option<f64>> {
        s.series.iter().map(f).collect()
    };
    let mut rate = vec![chart::Series {
        label: "achieved",
        color: ACHIEVED_COLOR,
        dashed: false,
        values: count(|p| p.iterations),
    }];
    let open = s.series.iter().any(|p| p.target_rate.is_some());
    if open {
        rate.push(chart::Series {
            label: "target",
            color: TARGET_COLOR,
            dashed: true,
            values: opt(|p| p.target_rate),
        });
    }
    let figures = [
        (
            "Iterations per second",
            if open {
                "The rate the users achieved each second, and the rate the plan asked for."
            } else {
                "The rate the users achieved each second (closed model: users go as fast as the target answers)."
            },
            chart::Chart {
                id: "chart-rate",
                unit: "iterations/s",
                scale: chart::Scale::Linear,
                t: t.clone(),
                series: rate,
                fmt_y: fmt_num,
                empty: "no data: the summary has no per-second series",
                nested: false,
            },
        ),
        (
            "Latency",
            "Percentiles of every response in each second, all steps, from the intended start.",
            chart::Chart {
                id: "chart-latency",
                unit: "ms",
                scale: chart::Scale::Log,
                t: t.clone(),
                series: vec![
                    chart::Series {
                        label: "p50",
                        color: P50_COLOR,
                        dashed: false,
                        values: opt(|p| p.p50_ms),
                    },
                    chart::Series {
                        label: "p95",
                        color: P95_COLOR,
                        dashed: false,
                        values: opt(|p| p.p95_ms),
                    },
                    chart::Series {
                        label: "p99",
                        color: P99_COLOR,
                        dashed: false,
                        values: opt(|p| p.p99_ms),
                    },
                ],
                fmt_y: fmt_ms_tick,
                empty: "no data: no response was measured",
                nested: true,
            },
        ),
        (
            "Errors and dropped iterations",
            "Failed requests and failed connects each second; iterations dropped because every user was busy.",
            chart::Chart {
                id: "chart-errors",
                unit: "per second",
                scale: chart::Scale::Linear,
                t,
                series: vec![
                    chart::Series {
                        label: "dropped",
                        color: DROPPED_COLOR,
                        dashed: false,
                        values: count(|p| p.dropped),
                    },
                    chart::Series {
                        label: "errors",
                        color: ERRORS_COLOR,
                        dashed: false,
                        values: count(|p| p.errors),
                    },
                ],
                fmt_y: fmt_num,
                empty: "no data: the summary has no per-second series",
                nested: false,
            },
        ),
    ];
    for (title, caption, c) in figures {
        let _ = write!(
            out,
            r#"<section class="figure"><figure><h2>{title}</h2><p class="none">{caption}</p>{svg}</figure></section>"#,
            svg = chart::svg(&c),
        );
    }
}

fn steps(out: &mut String, s: &Summary) {
    out.push_str(r#"<section><h2>Steps</h2>"#);
    out.push_str(r#"<table id="steps"><thead><tr><th>step</th><th>requests</th><th>errors</th><th>rate/s</th><th>p50</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>checks</th></tr></thead><tbody>"#);
    for st in &s.steps {
        let outcomes: Vec<String> = st
            .outcomes
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let [p50, p95, p99, p999, max] = latencies(&st.latency);
        let _ = write!(
            out,
            r#"<tr class="step"><td class="name">{name}</td><td>{req}</td><td{bad}{outcomes}>{err}</td><td>{rate}</td><td>{p50}</td><td>{p95}</td><td>{p99}</td><td>{p999}</td><td>{max}</td><td>{checks}</td></tr>"#,
            name = esc(&st.name),
            req = fmt_count(st.requests),
            bad = if st.errors > 0 { r#" class="bad""# } else { "" },
            outcomes = if outcomes.is_empty() {
                String::new()
            } else {
                format!(r#" title="{}""#, esc(&outcomes.join(", ")))
            },
            err = fmt_count(st.errors),
            rate = fmt_num(st.rate),
            checks = checks(st.checks_passed, st.checks_failed),
        );
    }
    out.push_str("</tbody>");
    let t = &s.totals;
    let [p50, p95, p99, p999, max] = latencies(&t.latency);
    let _ = write!(
        out,
        r#"<tfoot><tr class="total"><td>all steps</td><td>{req}</td><td>{err}</td><td>{rate}</td><td>{p50}</td><td>{p95}</td><td>{p99}</td><td>{p999}</td><td>{max}</td><td>{checks}</td></tr></tfoot></table>"#,
        req = fmt_count(t.requests),
        err = fmt_count(t.errors),
        rate = fmt_num(t.request_rate),
        checks = checks(t.checks_passed, t.checks_failed),
    );
    if s.steps.is_empty() {
        out.push_str(r#"<p class="none">The summary has no steps.</p>"#);
    }
    out.push_str("</section>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use stampede_api::results::{Point, StepSummary};

    fn step(name: &str, requests: u64) -> StepSummary {
        StepSummary {
            name: name.into(),
            requests,
            latency: Latency {
                count: requests,
                p50: 1.5,
                p95: 4.0,
                p99: 9.0,
                p999: 20.0,
                max: 31.0,
                ..Latency::default()
            },
            ..StepSummary::default()
        }
    }

    fn point(t: u64, iterations: u64) -> Point {
        Point {
            t,
            iterations,
            requests: iterations * 2,
            errors: t % 2,
            target_rate: Some(100.0),
            p50_ms: Some(1.0),
            p95_ms: Some(3.0),
            p99_ms: Some(8.0),
            ..Point::default()
        }
    }

    fn summary() -> Summary {
        Summary {
            schema: stampede_api::results::SUMMARY_SCHEMA.into(),
            name: "checkout-peak".into(),
            start_time: "2026-11-25T11:47:38.712Z".into(),
            duration_seconds: 3.0,
            model: "open".into(),
            target_rate: Some(100.0),
            connections: 10,
            steps: vec![step("home", 300), step("cart", 200)],
            series: (1..=4).map(|t| point(t, 100)).collect(),
            passed: true,
            ..Summary::default()
        }
    }

    /// The text of every `<td class="name">` of the steps table, in order.
    fn step_rows(html: &str) -> Vec<String> {
        html.split(r#"<tr class="step"><td class="name">"#)
            .skip(1)
            .map(|rest| rest.split("</td>").next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn escapes_every_special_character() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn strings_from_the_summary_are_escaped_everywhere() {
        let mut s = summary();
        s.name = "<script>alert(1)</script>".into();
        s.start_time = "<b>now</b>".into();
        s.steps[0].name = r#"GET /?q=<img src=x onerror="boom">&a=1"#.into();
        s.steps[0].outcomes.insert("<i>kind</i>".into(), 1);
        s.thresholds = vec![ThresholdResult {
            expression: "p99(</td><script>) < 5ms".into(),
            value: None,
            passed: false,
        }];
        s.totals.errors_by_kind.insert("<u>x</u>".into(), 2);
        let html = render(&s);
        for raw in [
            "<script>",
            "<img",
            "<b>now",
            "<i>kind",
            "<u>x",
            "</td><script>",
        ] {
            assert!(!html.contains(raw), "{raw} is not escaped");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(
            step_rows(&html)[0],
            "GET /?q=&lt;img src=x onerror=&quot;boom&quot;&gt;&amp;a=1"
        );
    }

    #[test]
    fn the_steps_table_has_one_row_per_step_in_order() {
        let mut s = summary();
        s.steps = ["login", "browse", "checkout", "logout"]
            .iter()
            .map(|n| step(n, 10))
            .collect();
        assert_eq!(
            step_rows(&render(&s)),
            ["login", "browse", "checkout", "logout"]
        );
        s.steps.clear();
        let html = render(&s);
        assert!(step_rows(&html).is_empty());
        assert!(html.contains("no steps"));
    }

    #[test]
    fn every_chart_is_drawn_with_its_series() {
        let html = render(&summary());
        for id in ["chart-rate", "chart-latency", "chart-errors"] {
            assert!(html.contains(&format!(r#"<svg id="{id}""#)), "{id}");
        }
        for series in [
            "achieved", "target", "p50", "p95", "p99", "errors", "dropped",
        ] {
            let at = html
                .find(&format!(r#"data-series="{series}" d="M"#))
                .unwrap_or_else(|| panic!("no path for {series}"));
            assert!(html[at..].starts_with(&format!(r#"data-series="{series}" d="M"#)));
        }
        assert!(!html.contains("no data"));
    }

    #[test]
    fn an_empty_series_gives_charts_that_say_no_data() {
        let mut s = summary();
        s.series.clear();
        let html = render(&s);
        assert_eq!(html.matches(r#"class="no-data""#).count(), 3);
        assert!(!html.contains(r#"class="series""#));
    }

    #[test]
    fn missing_percentiles_break_the_line_and_never_panic() {
        let mut s = summary();
        s.series[1].p50_ms = None;
        s.series[1].p95_ms = None;
        s.series[1].p99_ms = None;
        s.steps[1].latency = Latency::default();
        let html = render(&s);
        assert!(!html.contains("no data"));
        // The steps table shows `-` for a step that measured nothing, not 0ms (five latencies,
        // and no checks).
        let cart = html.split(r#"<td class="name">cart</td>"#).nth(1).unwrap();
        let cart = cart.split("</tr>").next().unwrap();
        assert_eq!(cart.matches("<td>-</td>").count(), 6, "{cart}");
        // Every latency missing: that chart says so, the others still draw.
        for p in &mut s.series {
            (p.p50_ms, p.p95_ms, p.p99_ms) = (None, None, None);
        }
        let html = render(&s);
        assert_eq!(html.matches(r#"class="no-data""#).count(), 1);
    }

    #[test]
    fn the_verdict_and_thresholds_are_shown() {
        let mut s = summary();
        s.passed = false;
        s.thresholds = vec![
            ThresholdResult {
                expression: "p99 < 250ms".into(),
                value: Some(12.5),
                passed: true,
            },
            ThresholdResult {
                expression: "errors < 1%".into(),
                value: Some(0.25),
                passed: false,
            },
        ];
        let html = render(&s);
        assert!(html.contains(r#"class="verdict failed"><b>FAILED</b>"#));
        assert!(html.contains("1 of 2 thresholds failed"));
        assert!(html.contains("<td>12.5ms</td>"));
        assert!(html.contains("<td>25.000%</td>"));
        assert_eq!(html.matches(r#"<tr class="threshold "#).count(), 2);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let html = render(&summary());
        for needle in [
            "<script", "<link", "src=", "url(", "@import", "http://", "https://",
        ] {
            let hits: Vec<_> = html.match_indices(needle).collect();
            // The SVG namespace is an identifier, not a fetch.
            let allowed = needle == "http://"
                && hits.len() == html.matches("http://www.w3.org/2000/svg").count();
            assert!(hits.is_empty() || allowed, "{needle} in the page");
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(2500.0), "2,500");
        assert_eq!(fmt_num(12_500.0), "12.5k");
        assert_eq!(fmt_num(f64::NAN), "-");
        assert_eq!(fmt_bytes(2048), "2.0 KiB");
        assert_eq!(fmt_ms_tick(0.5), "0.5ms");
        assert_eq!(fmt_ms_tick(20.0), "20ms");
        assert_eq!(fmt_ms_tick(0.001), "0.001ms");
        assert_eq!(fmt_ms_tick(2000.0), "2s");
    }
}

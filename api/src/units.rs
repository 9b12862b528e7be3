//! How figures are written where people read them: the console, the HTML report, threshold
//! values in a LoadTest's status.

/// A latency in milliseconds, at a precision that suits its size: `0.25ms`, `12.5ms`, `1.20s`.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.2}ms")
    }
}

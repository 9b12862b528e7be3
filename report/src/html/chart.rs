//! Line charts as inline SVG for the HTML report: scales, ticks, axes, legend and one path per
//! series. Pure: returns markup, reads nothing. Gaps (`None`) break a line; nothing panics on
//! empty, constant, zero or non-finite data.

use std::fmt::Write as _;

use super::esc;

/// The chart's size in CSS pixels (it scales down on narrower pages, never up).
pub const WIDTH: f64 = 1140.0;
pub const HEIGHT: f64 = 300.0;
/// Fill of the plot area, used nowhere else on the page (the screenshot test finds the
/// charts by it).
pub const PLOT_BG: &str = "#f6f8fc";

const LEFT: f64 = 72.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 44.0;
const GRID: &str = "#e3e8f0";
const AXIS: &str = "#94a3b8";
const INK: &str = "#475569";
/// Stroke width of a line, in px.
const LINE_WIDTH: f64 = 2.5;
/// How far each nested line shows on either side of the one drawn over it, in px: wide
/// enough to read as its own colour after anti-aliasing.
const NESTED_RIM: f64 = 1.5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// From zero to a round number above the largest value.
    Linear,
    /// Whole decades around the values (latencies span orders of magnitude).
    Log,
}

pub struct Series<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub dashed: bool,
    pub values: Vec<Option<f64>>,
}

pub struct Chart<'a> {
    /// The `id` of the `<svg>` element.
    pub id: &'a str,
    /// What the y values are, shown above the y axis (`iterations/s`).
    pub unit: &'a str,
    pub scale: Scale,
    /// Seconds since the run started, one per value of every series.
    pub t: Vec<f64>,
    pub series: Vec<Series<'a>>,
    pub fmt_y: fn(f64) -> String,
    /// Shown instead of lines when no series has a value.
    pub empty: &'a str,
    /// Draw the series as nested strokes: the first narrowest and on top, each later one
    /// wider beneath it. Percentiles of a fast target often coincide (p50 = p95 = p99 to
    /// the pixel); drawn one over another at one width, only the last would show.
    pub nested: bool,
}

/// A mapping from data to pixels along one axis.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    ticks: Vec<f64>,
}

impl Axis {
    /// Where `v` falls between the ends, 0..1 (clamped: out-of-range values sit on the edge).
    fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            let v = v.max(self.lo);
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn linear_axis(max: f64) -> Axis {
    // A little headroom, so a line at its maximum does not run along the top edge.
    let max = if max.is_finite() && max > 0.0 {
        max * 1.05
    } else {
        1.0
    };
    let step = nice_step(max / 5.0);
    let n = (max / step).ceil().max(1.0) as usize;
    Axis {
        lo: 0.0,
        hi: n as f64 * step,
        log: false,
        ticks: (0..=n).map(|i| i as f64 * step).collect(),
    }
}

fn log_axis(min: f64, max: f64) -> Axis {
    let floor = |v: f64| v.log10().floor() as i32;
    let ceil = |v: f64| v.log10().ceil() as i32;
    let lo = floor(min.max(1e-6));
    let mut hi = ceil(max.max(1e-6));
    if hi <= lo {
        hi = lo + 1;
    }
    let mut ticks = Vec::new();
    for e in lo..=hi {
        let d = 10f64.powi(e);
        ticks.push(d);
        // Few decades: 2 and 5 in between keep the axis readable.
        if hi - lo <= 2 && e < hi {
            ticks.extend([2.0 * d, 5.0 * d]);
        }
    }
    Axis {
        lo: 10f64.powi(lo),
        hi: 10f64.powi(hi),
        log: true,
        ticks,
    }
}

/// Seconds: steps a person reads on a clock, about ten ticks or fewer.
fn time_axis(max: f64) -> Axis {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    let step = STEPS
        .iter()
        .copied()
        .find(|s| max / s <= 10.0)
        .unwrap_or_else(|| (max / 10.0 / 3600.0).ceil() * 3600.0);
    let n = (max / step).ceil() as usize;
    Axis {
        lo: 0.0,
        hi: n as f64 * step,
        log: false,
        ticks: (0..=n).map(|i| i as f64 * step).collect(),
    }
}

/// `45s`, `2m`, `2m30s`, `1h5m`.
pub fn fmt_t(secs: f64) -> String {
    let s = secs.round() as u64;
    if s < 120 {
        return format!("{s}s");
    }
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, s) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{m}m{s}s"),
        (_, 0) => format!("{h}h{m}m"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Every finite value, for the scale (the log scale ignores values that are not positive).
fn finite_values<'a>(series: &'a [Series<'a>]) -> impl Iterator<Item = f64> + 'a {
    series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .filter(|v| v.is_finite())
}

/// The `d` of a path through the points, a new subpath after every gap. A lone point is a
/// zero-length subpath, which the round cap draws as a dot.
fn path(points: impl Iterator<Item = Option<(f64, f64)>>) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for p in points {
        match p {
            Some((x, y)) => {
                let _ = write!(d, "{}{x:.1} {y:.1}", if pen_down { " L" } else { " M" });
                if !pen_down {
                    let _ = write!(d, " l0 0");
                }
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_start().to_string()
}

pub fn svg(c: &Chart) -> String {
    let (w, h) = (WIDTH, HEIGHT);
    let (px0, px1, py0, py1) = (LEFT, w - RIGHT, TOP, h - BOTTOM);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg id="{id}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{unit}">"#,
        id = esc(c.id),
        unit = esc(c.unit),
    );
    let _ = write!(
        out,
        r#"<rect class="plot" x="{px0}" y="{py0}" width="{pw}" height="{ph}" fill="{PLOT_BG}"/>"#,
        pw = px1 - px0,
        ph = py1 - py0,
    );
    let values: Vec<f64> = finite_values(&c.series)
        .filter(|v| c.scale == Scale::Linear || *v > 0.0)
        .collect();
    if c.t.is_empty() || values.is_empty() {
        let _ = write!(
            out,
            r#"<text class="no-data" x="{x}" y="{y}" text-anchor="middle" dominant-baseline="middle" fill="{INK}" font-size="16">{msg}</text></svg>"#,
            x = (px0 + px1) / 2.0,
            y = (py0 + py1) / 2.0,
            msg = esc(c.empty),
        );
        return out;
    }
    let ymax = values.iter().copied().fold(f64::MIN, f64::max);
    let ymin = values.iter().copied().fold(f64::MAX, f64::min);
    let y = match c.scale {
        Scale::Linear => linear_axis(ymax),
        Scale::Log => log_axis(ymin, ymax),
    };
    let x = time_axis(
        c.t.iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max),
    );
    let sx = |v: f64| px0 + x.frac(v) * (px1 - px0);
    let sy = |v: f64| py1 - y.frac(v) * (py1 - py0);

    // Grid and y tick labels.
    for &v in &y.ticks {
        let yy = sy(v);
        let _ = write!(
            out,
            r#"<line x1="{px0}" x2="{px1}" y1="{yy:.1}" y2="{yy:.1}" stroke="{GRID}"/><text x="{lx}" y="{yy:.1}" text-anchor="end" dominant-baseline="middle" fill="{INK}">{label}</text>"#,
            lx = px0 - 8.0,
            label = esc(&(c.fmt_y)(v)),
        );
    }
    // X tick marks and labels.
    for &v in &x.ticks {
        let xx = sx(v);
        let _ = write!(
            out,
            r#"<line x1="{xx:.1}" x2="{xx:.1}" y1="{py1}" y2="{ty}" stroke="{AXIS}"/><text x="{xx:.1}" y="{ly}" text-anchor="middle" fill="{INK}">{label}</text>"#,
            ty = py1 + 5.0,
            ly = py1 + 20.0,
            label = fmt_t(v),
        );
    }
    // Axes and their titles.
    let _ = write!(
        out,
        r#"<path d="M{px0} {py0} V{py1} H{px1}" stroke="{AXIS}" fill="none"/><text x="{px0}" y="{uy}" fill="{INK}" font-weight="600">{unit}{log}</text><text x="{px1}" y="{ty}" text-anchor="end" fill="{INK}">time since start</text>"#,
        uy = py0 - 14.0,
        ty = h - 6.0,
        unit = esc(c.unit),
        log = if y.log { " (log scale)" } else { "" },
    );
    // Legend, right-aligned above the plot (outside it, so an empty line draws nothing there).
    let item_width = |s: &Series| 32.0 + 7.0 * s.label.chars().count() as f64 + 20.0;
    let mut lx = px1 - c.series.iter().map(item_width).sum::<f64>();
    let ly = py0 - 18.0;
    for s in &c.series {
        let _ = write!(
            out,
            r#"<g class="legend"><line x1="{lx:.1}" x2="{sx2:.1}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"{dash}/><text x="{tx:.1}" y="{ly}" dominant-baseline="middle" fill="{INK}">{label}</text></g>"#,
            sx2 = lx + 24.0,
            tx = lx + 32.0,
            color = esc(s.color),
            dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            },
            label = esc(s.label),
        );
        lx += item_width(s);
    }
    // The lines: later series on top, or, nested, the first on top and narrowest.
    let n = c.series.len();
    let order: Vec<usize> = if c.nested {
        (0..n).rev().collect()
    } else {
        (0..n).collect()
    };
    for i in order {
        let s = &c.series[i];
        let width = if c.nested {
            LINE_WIDTH + NESTED_RIM * 2.0 * i as f64
        } else {
            LINE_WIDTH
        };
        let points = c.t.iter().zip(&s.values).map(|(&t, v)| {
            let v = (*v).filter(|v| v.is_finite())?;
            t.is_finite().then(|| (sx(t), sy(v)))
        });
        let _ = write!(
            out,
            r#"<path class="series" data-series="{label}" d="{d}" stroke="{color}" stroke-width="{width}" fill="none" stroke-linejoin="round" stroke-linecap="round"{dash}/>"#,
            label = esc(s.label),
            d = path(points),
            color = esc(s.color),
            dash = if s.dashed {
                r#" stroke-dasharray="7 5""#
            } else {
                ""
            },
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> String {
        format!("{v}")
    }

    fn chart(scale: Scale, t: Vec<f64>, values: Vec<Option<f64>>) -> String {
        svg(&Chart {
            id: "c",
            unit: "u",
            scale,
            t,
            series: vec![Series {
                label: "s",
                color: "#123456",
                dashed: false,
                values,
            }],
            fmt_y: ms,
            empty: "no data",
            nested: false,
        })
    }

    #[test]
    fn linear_ticks_start_at_zero_and_cover_the_largest_value() {
        for max in [0.0, 0.3, 1.0, 7.0, 99.0, 100.0, 101.0, 12_345.0, f64::NAN] {
            let a = linear_axis(max);
            assert_eq!(a.ticks[0], 0.0);
            assert_eq!(*a.ticks.last().unwrap(), a.hi);
            assert!(a.hi >= max || max.is_nan(), "{max}: {}", a.hi);
            assert!(a.ticks.len() <= 11, "{max}: {:?}", a.ticks);
        }
    }

    #[test]
    fn log_ticks_span_whole_decades_around_the_values() {
        let a = log_axis(0.04, 3.5);
        assert_eq!((a.lo, a.hi), (0.01, 10.0));
        let a = log_axis(5.0, 5.0);
        assert!(a.lo <= 5.0 && a.hi > 5.0);
        assert!(a.ticks.contains(&2.0) || a.ticks.contains(&1.0));
    }

    #[test]
    fn time_ticks_are_clock_steps() {
        assert_eq!(time_axis(3.0).ticks, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(time_axis(600.0).hi, 600.0);
        assert!(time_axis(86_400.0).ticks.len() <= 11);
        assert_eq!(fmt_t(150.0), "2m30s");
        assert_eq!(fmt_t(3900.0), "1h5m");
    }

    #[test]
    fn a_gap_starts_a_new_subpath_and_a_lone_point_is_a_dot() {
        let d = path([Some((1.0, 2.0)), Some((3.0, 4.0)), None, Some((5.0, 6.0))].into_iter());
        assert_eq!(d, "M1.0 2.0 l0 0 L3.0 4.0 M5.0 6.0 l0 0");
        assert_eq!(path([None, None].into_iter()), "");
    }

    #[test]
    fn no_values_say_no_data_instead_of_drawing() {
        let s = chart(Scale::Linear, vec![], vec![]);
        assert!(
            s.contains("no data") && !s.contains("class=\"series\""),
            "{s}"
        );
        let s = chart(Scale::Log, vec![1.0, 2.0], vec![None, Some(0.0)]);
        assert!(s.contains("no data"), "{s}");
    }

    #[test]
    fn nested_series_draw_the_first_last_and_narrowest_so_equal_lines_all_show() {
        let series = |nested: bool| {
            let line = |label| Series {
                label,
                color: "#123456",
                dashed: false,
                values: vec![Some(1.0), Some(1.0)],
            };
            svg(&Chart {
                id: "c",
                unit: "ms",
                scale: Scale::Log,
                t: vec![1.0, 2.0],
                series: vec![line("p50"), line("p95"), line("p99")],
                fmt_y: ms,
                empty: "no data",
                nested,
            })
        };
        // (label, stroke width) of each line, in drawing order.
        let drawn = |svg: String| -> Vec<(String, String)> {
            svg.split(r#"<path class="series" data-series=""#)
                .skip(1)
                .map(|p| {
                    let label = p.split('"').next().unwrap().to_string();
                    let width = p.split(r#"stroke-width=""#).nth(1).unwrap();
                    (label, width.split('"').next().unwrap().to_string())
                })
                .collect()
        };
        let pairs = |v: [(&str, &str); 3]| v.map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(
            drawn(series(true)),
            pairs([("p99", "8.5"), ("p95", "5.5"), ("p50", "2.5")])
        );
        assert_eq!(
            drawn(series(false)),
            pairs([("p50", "2.5"), ("p95", "2.5"), ("p99", "2.5")])
        );
    }

    #[test]
    fn odd_values_never_panic_and_lines_stay_inside_the_chart() {
        let s = chart(
            Scale::Log,
            vec![1.0, 2.0, 3.0, 4.0],
            vec![Some(0.0), Some(f64::INFINITY), Some(1e9), Some(0.001)],
        );
        assert!(s.contains("class=\"series\""));
        let s = chart(Scale::Linear, vec![1.0], vec![Some(-5.0)]);
        assert!(s.contains(" l0 0"), "a single point is drawn: {s}");
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
    }
}

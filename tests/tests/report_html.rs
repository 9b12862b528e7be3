//! `stampede report --html` end to end: a real run of the `stampede` binary against the demo
//! target, the report rendered by headless Chromium (Debian's, installed by
//! `scripts/install-test-deps.sh`), the step rows read back from the rendered DOM and each
//! chart found in the screenshot and checked for drawn lines. The report and its screenshot
//! are kept in `target/tmp/report_html/` to look at.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use stampede_report::html::{
    ACHIEVED_COLOR, ERRORS_COLOR, P50_COLOR, P95_COLOR, P99_COLOR, PLOT_BG, TARGET_COLOR,
};
use stampede_runner::target::Target;
use stampede_tests::stampede_bin;

const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

/// The scenario's step names, in order: HTML's special characters on purpose.
const STEPS: [&str; 3] = ["home <index>", "bytes & more", "\"flaky\" 503"];

/// `chromium` from PATH, as `scripts/install-test-deps.sh` looks for it.
fn chromium() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("chromium"))
            .find(|p| p.is_file())
            .expect(
                "chromium is not on PATH: run scripts/install-test-deps.sh (it installs Debian's \
                 chromium), then this test again",
            )
    })
}

/// What a finished child printed.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` in its own process group with output to files in `dir`, killing the whole group
/// when it outlives `limit` (Chromium starts helper processes).
fn run_bounded(mut cmd: Command, dir: &Path, name: &str, limit: Duration) -> Finished {
    use std::os::unix::process::CommandExt as _;
    let (out_path, err_path) = (
        dir.join(format!("{name}.stdout")),
        dir.join(format!("{name}.stderr")),
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{name} did not finish within {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Finished {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

/// Headless Chromium on `page` with a fresh profile, plus `args`.
fn chromium_run(page: &Path, dir: &Path, name: &str, args: &[String]) -> Finished {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1280,2400",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    let done = run_bounded(cmd, dir, name, CHROMIUM_LIMIT);
    assert_eq!(
        done.code,
        Some(0),
        "chromium ({name}) failed:\n{}",
        done.stderr
    );
    done
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The text of the first cell of every `<tr class="step">` in the serialised DOM.
fn step_rows(dom: &str) -> Vec<String> {
    dom.split(r#"<tr class="step">"#)
        .skip(1)
        .map(|row| {
            let cell = row.split("</td>").next().unwrap();
            unescape(&cell[cell.find('>').unwrap() + 1..])
        })
        .collect()
}

type Rgb = [u8; 3];

fn rgb(hex: &str) -> Rgb {
    let v = u32::from_str_radix(hex.trim_start_matches('#'), 16).unwrap();
    [(v >> 16) as u8, (v >> 8) as u8, v as u8]
}

struct Image {
    width: usize,
    height: usize,
    pixels: Vec<Rgb>,
}

impl Image {
    fn decode(path: &Path) -> Image {
        let mut decoder = png::Decoder::new(std::io::BufReader::new(File::open(path).unwrap()));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let channels = info.color_type.samples();
        assert!(channels >= 3, "colour screenshot: {:?}", info.color_type);
        let pixels = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Image {
            width: info.width as usize,
            height: info.height as usize,
            pixels,
        }
    }

    fn row(&self, y: usize) -> &[Rgb] {
        &self.pixels[y * self.width..(y + 1) * self.width]
    }

    /// The row ranges of the charts' plot areas, top to bottom: bands of rows mostly filled
    /// with the plot background (gridlines and lines across a row leave small gaps).
    fn plot_bands(&self) -> Vec<(usize, usize)> {
        let bg = rgb(PLOT_BG);
        let mut bands: Vec<(usize, usize)> = Vec::new();
        for y in 0..self.height {
            if self.row(y).iter().filter(|p| **p == bg).count() < self.width / 4 {
                continue;
            }
            match bands.last_mut() {
                Some((_, end)) if y - *end <= 8 => *end = y,
                _ => bands.push((y, y)),
            }
        }
        bands.retain(|(a, b)| b - a >= 100);
        bands
    }

    /// Pixels in rows `band` within a small distance of `color` (anti-aliasing blends edges).
    fn count_near(&self, band: (usize, usize), color: Rgb) -> usize {
        (band.0..=band.1)
            .flat_map(|y| self.row(y))
            .filter(|p| {
                let d: i32 = (0..3).map(|i| (p[i] as i32 - color[i] as i32).pow(2)).sum();
                d <= 40 * 40
            })
            .count()
    }
}

#[test]
fn a_real_runs_html_report_renders_its_steps_and_draws_every_chart() {
    chromium();
    let bin = stampede_bin();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report_html");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // The demo target on its own runtime; this thread runs the programs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.block_on(stampede_tests::serial());
    let target = rt
        .block_on(Target::start("127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let yaml = format!(
        r#"apiVersion: stampede.dev/v1alpha1
kind: LoadTest
metadata: {{ name: report-demo }}
spec:
  connections: 8
  rate: 200
  duration: 3s
  scenario:
    connection: {{ http: {{ url: "http://{addr}" }} }}
    steps:
      - name: {s0:?}
        request: {{ path: / }}
        check: {{ status: 200 }}
      - name: {s1:?}
        request: {{ path: /bytes/2048 }}
      - name: {s2:?}
        request: {{ path: /status/503 }}
  thresholds:
    - "p99 < 1s"
    - "errors < 1%"
"#,
        addr = target.addr,
        s0 = STEPS[0],
        s1 = STEPS[1],
        s2 = STEPS[2],
    );
    let file = dir.join("report-demo.yaml");
    std::fs::write(&file, yaml).unwrap();
    let summary = dir.join("summary.json");
    let mut run = Command::new(bin);
    run.arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&summary)
        .arg("--quiet");
    let ran = run_bounded(run, &dir, "run", Duration::from_secs(60));
    target.shutdown();
    // Every request of the last step is a 503, so `errors < 1%` fails: exit code 99.
    assert_eq!(
        ran.code,
        Some(99),
        "stampede run:\n{}{}",
        ran.stdout,
        ran.stderr
    );

    let html = dir.join("report.html");
    let mut report = Command::new(bin);
    report.arg("report").arg(&summary).arg("--html").arg(&html);
    let reported = run_bounded(report, &dir, "report", Duration::from_secs(30));
    assert_eq!(
        reported.code,
        Some(0),
        "stampede report: {}",
        reported.stderr
    );

    // (a) The rendered DOM has exactly the scenario's steps as rows, in order, their names
    // intact (escaped in the file, text again in the DOM).
    let dom = chromium_run(&html, &dir, "dump-dom", &["--dump-dom".into()]).stdout;
    assert_eq!(step_rows(&dom), STEPS, "step rows in the rendered report");
    for id in ["chart-rate", "chart-latency", "chart-errors"] {
        assert!(
            dom.contains(&format!(r#"<svg id="{id}""#)),
            "{id} in the DOM"
        );
    }
    assert!(dom.contains("FAILED"), "the verdict is shown");

    // (b) Each chart's plot area is in the screenshot, and its lines are drawn in it.
    assert_every_line_drawn(&html, &dir, "report");

    // (c) The same run where every second's p95 and p99 equal its p50, as on a machine fast
    // enough that one latency bucket holds them all (a CI run drew p50 over 258 pixels,
    // hidden under p95 and p99): each percentile still shows.
    let mut coinciding: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let points = coinciding["series"].as_array_mut().unwrap();
    let measured = points.iter().filter(|p| p["p50Ms"].is_f64()).count();
    assert!(
        measured >= 2,
        "a 3 s run has per-second latencies: {points:?}"
    );
    for p in points {
        // A second without a response has no percentiles; it stays a gap.
        let p50 = p["p50Ms"].clone();
        p["p95Ms"] = p50.clone();
        p["p99Ms"] = p50;
    }
    let same = dir.join("coinciding.json");
    std::fs::write(&same, coinciding.to_string()).unwrap();
    let same_html = dir.join("coinciding.html");
    let mut report = Command::new(bin);
    report
        .arg("report")
        .arg(&same)
        .arg("--html")
        .arg(&same_html);
    let reported = run_bounded(report, &dir, "report-coinciding", Duration::from_secs(30));
    assert_eq!(
        reported.code,
        Some(0),
        "stampede report: {}",
        reported.stderr
    );
    assert_every_line_drawn(&same_html, &dir, "coinciding");
}

/// Screenshots `html` into `dir/{name}.png`, finds the three charts' plot areas and requires
/// each series' colour across its plot.
fn assert_every_line_drawn(html: &Path, dir: &Path, name: &str) {
    let png = dir.join(format!("{name}.png"));
    chromium_run(
        html,
        dir,
        &format!("screenshot-{name}"),
        &[format!("--screenshot={}", png.display())],
    );
    let img = Image::decode(&png);
    let bands = img.plot_bands();
    assert_eq!(
        bands.len(),
        3,
        "three chart plot areas in {} (rows {bands:?})",
        png.display()
    );
    let charts = [
        (
            "rate",
            vec![("achieved", ACHIEVED_COLOR), ("target", TARGET_COLOR)],
        ),
        (
            "latency",
            vec![("p50", P50_COLOR), ("p95", P95_COLOR), ("p99", P99_COLOR)],
        ),
        ("errors", vec![("errors", ERRORS_COLOR)]),
    ];
    for ((chart, series), band) in charts.iter().zip(&bands) {
        for (series, color) in series {
            let n = img.count_near(*band, rgb(color));
            println!("{name}: {chart} chart, rows {band:?}: {n} pixels of {series} ({color})");
            // A line across the plot is thousands of pixels; the legend sits outside it.
            assert!(
                n >= 300,
                "{chart} chart: the {series} line is not drawn ({n} pixels of {color} in rows \
                 {band:?} of {})",
                png.display()
            );
        }
    }
}

#[test]
fn report_refuses_files_that_are_not_summaries_and_prints_the_table_without_html() {
    let bin = stampede_bin();
    let dir = tempfile::tempdir().unwrap();
    let report = |file: &Path, html: bool| {
        let mut cmd = Command::new(bin);
        cmd.arg("report").arg(file);
        if html {
            cmd.arg("--html").arg(dir.path().join("out.html"));
        }
        run_bounded(cmd, dir.path(), "report", Duration::from_secs(30))
    };

    let yaml = dir.path().join("loadtest.yaml");
    std::fs::write(&yaml, "apiVersion: stampede.dev/v1alpha1\nkind: LoadTest\n").unwrap();
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"apiVersion": "v1", "kind": "Pod"}"#).unwrap();
    for (file, why) in [
        (&yaml, "is not JSON"),
        (
            &other,
            "is not a Stampede summary: it has no `schema` field",
        ),
    ] {
        let done = report(file, true);
        assert_eq!(done.code, Some(1), "{}", done.stderr);
        assert!(
            done.stderr.contains(&format!("{} {why}", file.display())),
            "names the file and the problem: {}",
            done.stderr
        );
        assert!(!dir.path().join("out.html").exists());
    }

    let summary = dir.path().join("summary.json");
    let s = stampede_runner::Summary {
        schema: stampede_api::results::SUMMARY_SCHEMA.into(),
        name: "table-demo".into(),
        steps: vec![stampede_api::results::StepSummary {
            name: "home".into(),
            requests: 7,
            ..Default::default()
        }],
        passed: true,
        ..Default::default()
    };
    std::fs::write(&summary, s.to_json_pretty()).unwrap();
    let done = report(&summary, false);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert!(
        done.stdout.contains("table-demo") && done.stdout.contains("verdict: PASSED"),
        "{}",
        done.stdout
    );
}

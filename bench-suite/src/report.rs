//! Medians, ratios, the markdown table and the SVG chart.

use std::fmt::Write as _;

use crate::procs::Results;
use crate::workloads::{Case, Metric, Runtime, Unit, RUNTIMES};

/// What one case gave on each runtime over the repetitions.
pub struct Outcome {
    pub case: Case,
    /// Per runtime (in `RUNTIMES` order): the results of each successful repetition.
    pub runs: [Vec<Results>; 3],
    /// Per runtime: the errors of failed repetitions.
    pub errors: [Vec<String>; 3],
    /// Per runtime: why it did not run at all (libuv missing).
    pub skipped: [Option<String>; 3],
}

impl Outcome {
    pub fn new(case: Case) -> Outcome {
        Outcome { case, runs: Default::default(), errors: Default::default(), skipped: Default::default() }
    }

    pub fn failed(&self) -> bool {
        self.errors.iter().any(|e| !e.is_empty())
    }
}

/// One row of the table: a metric of a case, with each runtime's median.
pub struct Row {
    pub workload: &'static str,
    pub case: String,
    pub metric: Metric,
    /// Median per runtime, or why there is none.
    pub cells: [Result<f64, String>; 3],
}

impl Row {
    /// How many times better evloop is than runtime `other`: > 1.0 means evloop is ahead.
    pub fn ratio(&self, other: Runtime) -> Option<f64> {
        let i = RUNTIMES.iter().position(|&r| r == other)?;
        let (Ok(ev), Ok(x)) = (&self.cells[0], &self.cells[i]) else { return None };
        let r = if self.metric.higher_is_better { ev / x } else { x / ev };
        r.is_finite().then_some(r)
    }
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

pub fn rows(outcomes: &[Outcome]) -> Vec<Row> {
    let mut rows = Vec::new();
    for o in outcomes {
        for metric in o.case.metrics() {
            let cells = std::array::from_fn(|i| {
                if let Some(why) = &o.skipped[i] {
                    return Err(why.clone());
                }
                if let Some(e) = o.errors[i].first() {
                    return Err(format!("FAILED: {}", short(e)));
                }
                let mut v: Vec<f64> =
                    o.runs[i].iter().filter_map(|r| r.get(metric.key)).map(|v| v * metric.scale).collect();
                median(&mut v).ok_or_else(|| format!("FAILED: no {}", metric.key))
            });
            rows.push(Row { workload: o.case.workload, case: o.case.label.clone(), metric, cells });
        }
    }
    rows
}

fn short(e: &str) -> String {
    let e = e.replace('|', "/").replace('\n', " ");
    if e.chars().count() > 160 {
        format!("{}...", e.chars().take(160).collect::<String>())
    } else {
        e
    }
}

/// A value with three significant digits and its unit.
pub fn format_value(v: f64, unit: Unit) -> String {
    let sig = |v: f64| -> String {
        if v >= 100.0 {
            format!("{v:.0}")
        } else if v >= 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        }
    };
    match unit {
        Unit::PerSec if v >= 1e6 => format!("{} M/s", sig(v / 1e6)),
        Unit::PerSec if v >= 1e3 => format!("{} k/s", sig(v / 1e3)),
        Unit::PerSec => format!("{}/s", sig(v)),
        Unit::Ms => format!("{} ms", sig(v)),
        Unit::Us => format!("{} µs", sig(v)),
        Unit::MiB => format!("{} MiB", sig(v)),
        Unit::MiBPerSec => format!("{} MiB/s", sig(v)),
        Unit::Bytes => format!("{} B", sig(v)),
    }
}

fn format_ratio(r: Option<f64>) -> String {
    match r {
        // Bold when it shows as below 1.00 (0.996 prints as a tie, 1.00).
        Some(r) if r < 0.995 => format!("**{r:.2}**"),
        Some(r) => format!("{r:.2}"),
        None => "–".into(),
    }
}

pub const RATIO_EXPLANATION: &str = "Ratios say how many times better evloop is than the other runtime: \
**> 1.0 means evloop is ahead, < 1.0 (bold) behind**. For rates (↑, higher is better) the ratio is \
evloop ÷ other; for times, latencies, CPU per operation and memory (↓, lower is better) it is other ÷ evloop.";

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    s.push_str(
        "| workload | case | metric | evloop | tokio | libuv | evloop vs libuv (>1: evloop ahead) | \
         evloop vs tokio (>1: evloop ahead) |\n",
    );
    s.push_str("|---|---|---|--:|--:|--:|--:|--:|\n");
    for r in rows {
        let cell = |c: &Result<f64, String>| match c {
            Ok(v) => format_value(*v, r.metric.unit),
            Err(e) => e.clone(),
        };
        let arrow = if r.metric.higher_is_better { "↑" } else { "↓" };
        let _ = writeln!(
            s,
            "| {} | {} | {} {} | {} | {} | {} | {} | {} |",
            r.workload,
            r.case,
            r.metric.name,
            arrow,
            cell(&r.cells[0]),
            cell(&r.cells[1]),
            cell(&r.cells[2]),
            format_ratio(r.ratio(Runtime::Libuv)),
            format_ratio(r.ratio(Runtime::Tokio)),
        );
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart of the ratios on a log scale, with a line at 1.0.
pub fn svg(rows: &[Row], title: &str) -> String {
    const LABEL_W: f64 = 330.0;
    const PLOT_W: f64 = 520.0;
    const RIGHT_W: f64 = 60.0;
    const TOP: f64 = 70.0;
    const BAR_H: f64 = 9.0;
    const ROW_H: f64 = 26.0;
    // log2 scale from 1/8 to 8.
    const MIN_L: f64 = -3.0;
    const MAX_L: f64 = 3.0;
    let x_of = |r: f64| {
        let l = r.log2().clamp(MIN_L, MAX_L);
        LABEL_W + (l - MIN_L) / (MAX_L - MIN_L) * PLOT_W
    };
    let colors = [(Runtime::Libuv, "#d9822b", "vs libuv"), (Runtime::Tokio, "#3d7ebf", "vs tokio")];
    let height = TOP + rows.len() as f64 * ROW_H + 40.0;
    let width = LABEL_W + PLOT_W + RIGHT_W;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, xml_escape(title));
    let _ = writeln!(
        s,
        r#"<text x="10" y="38">How many times better evloop is (log scale; right of 1.0: evloop ahead, left: behind).</text>"#
    );
    for (i, (_, color, label)) in colors.iter().enumerate() {
        let x = LABEL_W + i as f64 * 110.0;
        let _ = writeln!(s, r#"<rect x="{x}" y="46" width="12" height="9" fill="{color}"/>"#);
        let _ = writeln!(s, r#"<text x="{}" y="55">evloop {label}</text>"#, x + 16.0);
    }
    let plot_bottom = TOP + rows.len() as f64 * ROW_H;
    for tick in [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0] {
        let x = x_of(tick);
        let (stroke, w) = if tick == 1.0 { ("#000", 1.5) } else { ("#ddd", 1.0) };
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{plot_bottom}" stroke="{stroke}" stroke-width="{w}"/>"#,
            TOP - 6.0
        );
        let label = if tick < 1.0 { format!("1/{}", (1.0 / tick) as u32) } else { format!("{tick}") };
        let _ =
            writeln!(s, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#, plot_bottom + 14.0);
    }
    let one = x_of(1.0);
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + i as f64 * ROW_H;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{}" width="{width}" height="{ROW_H}" fill="#f6f6f6"/>"##,
                y - 3.0
            );
        }
        let arrow = if row.metric.higher_is_better { "↑" } else { "↓" };
        let label = format!("{} · {} · {} {}", row.workload, row.case, row.metric.name, arrow);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + 13.0,
            xml_escape(&label)
        );
        for (j, (rt, color, _)) in colors.iter().enumerate() {
            let by = y + j as f64 * (BAR_H + 1.0);
            match row.ratio(*rt) {
                Some(r) => {
                    let x = x_of(r);
                    let (x0, w) = if x >= one { (one, x - one) } else { (x, one - x) };
                    let _ = writeln!(
                        s,
                        r#"<rect x="{x0:.1}" y="{by:.1}" width="{:.1}" height="{BAR_H}" fill="{color}"/>"#,
                        w.max(1.0)
                    );
                    let clipped = if r.log2() > MAX_L || r.log2() < MIN_L { "!" } else { "" };
                    // Beside the bar's end; inside it, in white, where the row label would be.
                    let (tx, anchor, fill) = if x >= one {
                        (x + 3.0, "start", "#000")
                    } else if x - 3.0 < LABEL_W + 32.0 {
                        (x + 3.0, "start", "#fff")
                    } else {
                        (x - 3.0, "end", "#000")
                    };
                    let _ = writeln!(
                        s,
                        r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" fill="{fill}" font-size="9">{r:.2}{clipped}</text>"#,
                        by + BAR_H - 1.0
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#888">n/a</text>"##,
                        one + 3.0,
                        by + BAR_H - 1.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

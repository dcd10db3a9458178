//! Medians, ratios, the markdown table and the SVG chart.

use std::fmt::Write as _;

use crate::procs::Results;
use crate::workloads::{
    Case, Metric, Runtime, Unit, DEFER_DEFER, ECHO_THREADS_1, ECHO_THREADS_2, LOOP_COUNT_LISTENER,
    LOOP_COUNT_NO_SOCKET, RUNTIMES,
};

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
    /// The ratios (vs libuv, vs tokio) as an earlier run's table printed them, for rows read
    /// back from its results.md (`rows_from_results`): recomputed from the rounded figures
    /// they could differ in the last digit.
    pub printed_ratios: Option<[Option<f64>; 2]>,
}

impl Row {
    /// How many times better evloop is than runtime `other`: > 1.0 means evloop is ahead.
    pub fn ratio(&self, other: Runtime) -> Option<f64> {
        if let Some(printed) = self.printed_ratios {
            return if other == Runtime::Libuv { printed[0] } else { printed[1] };
        }
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
            let cells = std::array::from_fn(|i| cell(&o.skipped[i], &o.errors[i], &o.runs[i], &metric));
            rows.push(Row {
                workload: o.case.workload,
                case: o.case.label.clone(),
                metric,
                cells,
                printed_ratios: None,
            });
        }
    }
    rows
}

/// One runtime's (or server's) cell of a row: the median of `metric` over its successful
/// `runs`, or why there is none (skipped, or its first error).
pub fn cell(
    skipped: &Option<String>,
    errors: &[String],
    runs: &[Results],
    metric: &Metric,
) -> Result<f64, String> {
    if let Some(why) = skipped {
        return Err(why.clone());
    }
    if let Some(e) = errors.first() {
        return Err(format!("FAILED: {}", short(e)));
    }
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r.get(metric.key)).map(|v| v * metric.scale).collect();
    median(&mut v).ok_or_else(|| format!("FAILED: no {}", metric.key))
}

pub fn short(e: &str) -> String {
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
        Unit::Percent => format!("{} %", sig(v)),
    }
}

pub fn format_ratio(r: Option<f64>) -> String {
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

/// evloop's ratios against libuv and tokio as a chart (`ratios.svg`).
pub fn svg(rows: &[Row], title: &str) -> String {
    let series =
        [(Runtime::Libuv, "#d9822b", "evloop vs libuv"), (Runtime::Tokio, "#3d7ebf", "evloop vs tokio")];
    let bars: Vec<ChartRow> = rows
        .iter()
        .map(|row| ChartRow {
            label: format!("{} · {} · {} {}", row.workload, row.case, row.metric.name, row.metric.arrow()),
            bars: series.iter().map(|&(rt, color, _)| row.ratio(rt).map(|r| (r, color))).collect(),
        })
        .collect();
    chart(
        title,
        "How many times better evloop is (log scale; right of 1.0: evloop ahead, left: behind).",
        &series.map(|(_, color, label)| (color, label)),
        &bars,
    )
}

/// One row of a chart: its label, and per series a ratio and the colour of its bar (or none).
pub struct ChartRow {
    pub label: String,
    pub bars: Vec<Option<(f64, &'static str)>>,
}

/// A horizontal bar chart of ratios on a log scale, with a line at 1.0: a title, a line
/// saying how to read it, a legend of (colour, label), and the rows.
pub fn chart(title: &str, subtitle: &str, legend: &[(&str, &str)], rows: &[ChartRow]) -> String {
    const LABEL_W: f64 = 330.0;
    const PLOT_W: f64 = 520.0;
    const RIGHT_W: f64 = 60.0;
    const TOP: f64 = 70.0;
    const BAR_H: f64 = 9.0;
    // log2 scale from 1/8 to 8.
    const MIN_L: f64 = -3.0;
    const MAX_L: f64 = 3.0;
    let per_row = rows.iter().map(|r| r.bars.len()).max().unwrap_or(1).max(1) as f64;
    let row_h = per_row * (BAR_H + 1.0) + 6.0;
    let x_of = |r: f64| {
        let l = r.log2().clamp(MIN_L, MAX_L);
        LABEL_W + (l - MIN_L) / (MAX_L - MIN_L) * PLOT_W
    };
    let height = TOP + rows.len() as f64 * row_h + 40.0;
    let width = LABEL_W + PLOT_W + RIGHT_W;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#, xml_escape(title));
    let _ = writeln!(s, r#"<text x="10" y="38">{}</text>"#, xml_escape(subtitle));
    let mut x = LABEL_W;
    for (color, label) in legend {
        let _ = writeln!(s, r#"<rect x="{x}" y="46" width="12" height="9" fill="{color}"/>"#);
        let _ = writeln!(s, r#"<text x="{}" y="55">{}</text>"#, x + 16.0, xml_escape(label));
        x += 16.0 + 6.0 * label.chars().count() as f64 + 16.0;
    }
    let plot_bottom = TOP + rows.len() as f64 * row_h;
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
        let y = TOP + i as f64 * row_h;
        if i % 2 == 0 {
            let _ = writeln!(
                s,
                r##"<rect x="0" y="{}" width="{width}" height="{row_h}" fill="#f6f6f6"/>"##,
                y - 3.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + per_row * (BAR_H + 1.0) / 2.0 + 3.5,
            xml_escape(&row.label)
        );
        for (j, bar) in row.bars.iter().enumerate() {
            let by = y + j as f64 * (BAR_H + 1.0);
            match *bar {
                Some((r, color)) => {
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

// ---- the summary table (README.md's comparison section) ----

/// A row the summary always shows (if the run has it): workload, case label, metric key.
const SUMMARY_ROWS: &[(&str, &str, &str)] = &[
    ("loop_count", LOOP_COUNT_LISTENER, "iterations_per_s"),
    ("loop_count", LOOP_COUNT_NO_SOCKET, "iterations_per_s"),
    ("timers", "1000000 timers", "starts_per_s"),
    ("timers", "1000000 timers", "total_ms"),
    ("timers", "1000000 timers", "peak_rss_kib"),
    ("defer", DEFER_DEFER, "calls_per_s"),
    ("ping_pongs", "1 conn, 5 B", "server_cpu_us_per_op"),
    ("echo", "100 conn x 1 KiB", "round_trips_per_s"),
    ("echo", "100 conn x 1 KiB", "p99_us"),
    ("echo", "100 conn x 64 KiB", "round_trips_per_s"),
    ("echo", "100 conn x 64 KiB", "p99_us"),
    ("echo_threads", ECHO_THREADS_1, "round_trips_per_s"),
    ("echo_threads", ECHO_THREADS_2, "round_trips_per_s"),
    ("echo_threads", ECHO_THREADS_2, "server_cpu_us_per_op"),
    ("udp_echo", "16 sockets x 64 B", "datagrams_per_s"),
    ("udp_echo", "16 sockets x 64 B", "server_cpu_us_per_op"),
    ("pump", "100 conn x 8 KiB writes", "mib_per_s"),
    ("pound", "1000 clients", "server_cpu_us_per_op"),
    ("tcp_write_batch", "1000000 x 13 B", "total_ms"),
    ("waker", "1 thread", "round_trips_per_s"),
    ("channel", "1 thread", "msgs_per_s"),
    ("queue_work", "1000 in flight", "jobs_per_s"),
    ("fs_stat", "32 in flight", "stats_per_s"),
    ("memory", "10000 idle conns", "rss_per_conn_bytes"),
    ("unix_echo", "100 conn x 1 KiB", "round_trips_per_s"),
    ("unix_pump", "100 conn x 8 KiB writes", "mib_per_s"),
    ("unix_memory", "10000 idle conns", "rss_per_conn_bytes"),
];

/// Besides `SUMMARY_ROWS`, the summary shows every row where evloop is behind either runtime
/// by this much or more (a ratio that prints as this or less), so that it never shows only the
/// good side.
const SUMMARY_BEHIND: f64 = 0.97;

/// Cases the summary leaves out, whatever their figures, and why.
const SUMMARY_NOISE: &[(&str, &str, &str)] =
    &[("waker", "2 threads", "3 threads on 2 cores"), ("waker", "4 threads", "5 threads on 2 cores")];

/// The summary table for README.md: the rows of `SUMMARY_ROWS`, every row where evloop is
/// behind (ratio < `SUMMARY_BEHIND`), none of `SUMMARY_NOISE`, in the run's order, with the
/// versions beside their columns and notes on what the table leaves out. `source` says which
/// run it comes from.
pub fn summary(rows: &[Row], tokio: &str, libuv: &str, source: &str) -> String {
    let noise = |r: &Row| SUMMARY_NOISE.iter().any(|&(w, c, _)| r.workload == w && r.case == c);
    let listed =
        |r: &Row| SUMMARY_ROWS.iter().any(|&(w, c, k)| r.workload == w && r.case == c && r.metric.key == k);
    // Compared as printed (two decimals), so that a summary made again from results.md
    // (whose ratios are rounded) selects exactly the rows the run's own summary did.
    let shown = |x: f64| (x * 100.0).round() / 100.0;
    let behind = |r: &Row| {
        [Runtime::Libuv, Runtime::Tokio]
            .iter()
            .any(|&rt| r.ratio(rt).is_some_and(|x| shown(x) <= SUMMARY_BEHIND))
    };
    let mut s = String::new();
    let _ = writeln!(s, "{source}");
    s.push('\n');
    let _ = writeln!(
        s,
        "| workload | case | metric | evloop | tokio {tokio} (current-thread) | libuv {libuv} (system, pkg-config) | \
         evloop vs libuv | evloop vs tokio |"
    );
    s.push_str("|---|---|---|--:|--:|--:|--:|--:|\n");
    let mut no_socket = false;
    for r in rows.iter().filter(|r| !noise(r) && (listed(r) || behind(r))) {
        let cell = |c: &Result<f64, String>| match c {
            Ok(v) => format_value(*v, r.metric.unit),
            Err(e) => e.clone(),
        };
        let arrow = if r.metric.higher_is_better { "↑" } else { "↓" };
        let mark = if r.workload == "loop_count" && r.case == LOOP_COUNT_NO_SOCKET {
            no_socket = true;
            " ¹"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "| {} | {}{mark} | {} {arrow} | {} | {} | {} | {} | {} |",
            r.workload,
            r.case,
            r.metric.name,
            cell(&r.cells[0]),
            cell(&r.cells[1]),
            cell(&r.cells[2]),
            format_ratio(r.ratio(Runtime::Libuv)),
            format_ratio(r.ratio(Runtime::Tokio)),
        );
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "Ratio > 1: evloop ahead; **bold** (< 1): evloop behind. For rates (↑) the ratio is evloop ÷ other, for \
         times, latencies, CPU and memory (↓) other ÷ evloop. The rows: a fixed selection, plus every row where \
         evloop is behind either runtime by {:.0}% or more; every row is in `bench-suite/results.md`.",
        (1.0 - SUMMARY_BEHIND) * 100.0
    );
    if no_socket {
        s.push('\n');
        let has_listener = rows.iter().any(|r| r.workload == "loop_count" && r.case == LOOP_COUNT_LISTENER);
        let _ = writeln!(
            s,
            "¹ Not like for like: with no socket open, evloop skips the poll's system call when it would not block; \
             libuv always polls (its loop watches a signal pipe), and tokio's `yield_now` goes through a \
             zero-timeout poll of its driver. The realistic case is `{LOOP_COUNT_LISTENER}`: one TCP listener open \
             that nobody connects to, so every runtime polls{}.",
            if has_listener { " (the row above)" } else { "; this run predates that case" }
        );
    }
    if let Some(line) = scaling(rows) {
        s.push('\n');
        s.push_str(&line);
    }
    let left_out: Vec<String> = SUMMARY_NOISE
        .iter()
        .filter(|&&(w, c, _)| rows.iter().any(|r| r.workload == w && r.case == c))
        .map(|&(w, c, why)| format!("{w} {c} ({why})"))
        .collect();
    if !left_out.is_empty() {
        s.push('\n');
        let _ = writeln!(
            s,
            "Left out as scheduler noise: {}; they measure the scheduler as much as the runtime and vary widely \
             between runs (bench-suite/README.md, Caveats). Their figures are in `bench-suite/results.md`.",
            left_out.join(", ")
        );
    }
    s
}

/// One line on the `echo_threads` rows: requests/s on 2 threads over 1, per runtime.
fn scaling(rows: &[Row]) -> Option<String> {
    let rate = |case: &str| {
        rows.iter()
            .find(|r| r.workload == "echo_threads" && r.case == case && r.metric.key == "round_trips_per_s")
    };
    let (one, two) = (rate(ECHO_THREADS_1)?, rate(ECHO_THREADS_2)?);
    let per_runtime: Vec<String> = RUNTIMES
        .iter()
        .enumerate()
        .filter_map(|(i, rt)| match (&one.cells[i], &two.cells[i]) {
            (Ok(a), Ok(b)) if *a > 0.0 => Some(format!("{} {:.2}x", rt.name(), b / a)),
            _ => None,
        })
        .collect();
    Some(format!(
        "One loop per core (`echo_threads`), requests/s on 2 threads ÷ on 1: {}. This machine has 2 CPUs, which the \
         2 server threads share with the one-threaded load generator (nothing is pinned in these rows), so a \
         second thread cannot double anything here; the rows show what it costs.\n",
        per_runtime.join(", ")
    ))
}

/// Parses a cell of `table` back into a value in the metric's units (an error cell as is).
pub fn parse_cell(cell: &str) -> Result<f64, String> {
    let (num, suffix) = match cell.split_once(' ') {
        Some((n, u)) => (n, u),
        None => match cell.strip_suffix("/s") {
            Some(n) => (n, "/s"),
            None => (cell, ""),
        },
    };
    let scale = match suffix {
        "M/s" => 1e6,
        "k/s" => 1e3,
        _ => 1.0,
    };
    num.parse::<f64>().map(|v| v * scale).map_err(|_| cell.to_string())
}

/// The rows of a `results.md` written by an earlier run (its table), for `--summary-from`.
/// Figures come back as printed (three significant digits); the ratios are the file's. No
/// rows is not an error here: a run of `--only redis` has none.
pub fn rows_from_results(text: &str) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 8 || cells[0] == "workload" {
            continue;
        }
        let Some(&(workload, _)) = crate::workloads::WORKLOADS.iter().find(|(n, _)| *n == cells[0]) else {
            return Err(format!("unknown workload in {line:?}"));
        };
        let name = cells[2].trim_end_matches(['↑', '↓']).trim();
        let metric = crate::workloads::metrics_of(workload)
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("unknown metric in {line:?}"))?;
        // Before the listener case existed, loop_count's only case ("idle") had no socket.
        let case = match (workload, cells[1]) {
            ("loop_count", "idle") => LOOP_COUNT_NO_SOCKET.to_string(),
            (_, c) => c.to_string(),
        };
        let ratio = |c: &str| c.trim_matches('*').parse::<f64>().ok();
        let printed_ratios = Some([ratio(cells[6]), ratio(cells[7])]);
        let cells = [parse_cell(cells[3]), parse_cell(cells[4]), parse_cell(cells[5])];
        rows.push(Row { workload, case, metric, cells, printed_ratios });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_row(case: &str, evloop: f64) -> Row {
        let metric =
            crate::workloads::metrics_of("echo").into_iter().find(|m| m.key == "round_trips_per_s").unwrap();
        Row {
            workload: "echo",
            case: case.into(),
            metric,
            cells: [Ok(evloop), Ok(100.0), Ok(100.0)],
            printed_ratios: None,
        }
    }

    #[test]
    fn the_summary_made_again_from_results_selects_the_same_behind_rows() {
        // 0.9651 prints as 0.97 (behind by 3 %, shown); 0.9751 prints as 0.98 (not shown).
        let rows = vec![echo_row("3 conn x 7 B", 96.51), echo_row("5 conn x 7 B", 97.51)];
        let live = summary(&rows, "t", "l", "src");
        let again = summary(&rows_from_results(&table(&rows)).unwrap(), "t", "l", "src");
        assert!(live.contains("| echo | 3 conn x 7 B |"), "{live}");
        assert!(!live.contains("5 conn x 7 B"), "{live}");
        assert_eq!(again, live);
    }
}

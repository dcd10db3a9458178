//! The `redis` workload's rows: mini_redis beside redis-server, with the ratio
//! mini_redis ÷ redis-server, as a section of results.md, of summary.md and as `redis.svg`,
//! and read back from an earlier results.md for `--summary-from`.

use std::fmt::Write as _;

use crate::redis::{
    Outcome, BENCH_METRICS, CLIENTS, LOAD_BATCH, LOAD_METRICS, REDIS_SERVER_ARGS, VALUE_SIZE,
};
use crate::report::{self, ChartRow};
use crate::workloads::Metric;

/// The heading of the section in results.md; what `--summary-from` looks for.
pub const HEADING: &str = "## mini_redis vs redis-server";

/// One row: a metric of a case, each server's median, and the ratio mini_redis ÷ redis-server.
pub struct Row {
    pub case: String,
    pub metric: Metric,
    /// mini_redis, redis-server: the median, or why there is none.
    pub cells: [Result<f64, String>; 2],
    pub ratio: Option<f64>,
}

impl Row {
    /// Whether mini_redis is behind (its ratio on the wrong side of 1.0, as printed).
    fn behind(&self) -> bool {
        self.ratio.is_some_and(|r| if self.metric.higher_is_better { r < 0.995 } else { r > 1.005 })
    }
}

pub fn rows(outcomes: &[Outcome]) -> Vec<Row> {
    let mut rows = Vec::new();
    for o in outcomes {
        for metric in o.metrics {
            let cells: [Result<f64, String>; 2] =
                std::array::from_fn(|i| report::cell(&o.skipped[i], &o.errors[i], &o.runs[i], metric));
            let ratio = match &cells {
                [Ok(a), Ok(b)] => Some(a / b).filter(|r| r.is_finite()),
                _ => None,
            };
            rows.push(Row { case: o.case.clone(), metric: *metric, cells, ratio });
        }
    }
    rows
}

/// How to read the ratio, below every table of these rows.
const EXPLANATION: &str = "The ratio is mini_redis ÷ redis-server for every row. **requests/s (↑, higher is \
better): above 1.0 mini_redis is ahead.** **Server CPU per request and RSS (↓, lower is better): below 1.0 \
mini_redis is ahead** (it spends less). Bold: mini_redis behind.";

fn table(rows: &[Row], version: &str) -> String {
    let mut s = format!(
        "| case | metric | mini_redis | redis-server {version} | mini_redis ÷ redis-server | better |\n\
         |---|---|--:|--:|--:|---|\n"
    );
    for r in rows {
        let cell = |c: &Result<f64, String>| match c {
            Ok(v) => report::format_value(*v, r.metric.unit),
            Err(e) => e.clone(),
        };
        let (arrow, better) = (r.metric.arrow(), if r.metric.higher_is_better { "higher" } else { "lower" });
        let ratio = match r.ratio {
            Some(x) if r.behind() => format!("**{x:.2}**"),
            Some(x) => format!("{x:.2}"),
            None => "–".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} {arrow} | {} | {} | {ratio} | {better} |",
            r.case,
            r.metric.name,
            cell(&r.cells[0]),
            cell(&r.cells[1])
        );
    }
    s
}

/// The section of results.md: what ran, the table, how to read it, the chart.
pub fn section(rows: &[Row], version: &str, requests: u64, keys: u64) -> String {
    format!(
        "{HEADING}\n\n\
         Two servers, not runtimes: `examples/mini_redis` (evloop, release build) and redis-server {version} \
         (the system's, `redis-server --port P {}`), each on CPU 0, with the load on CPU 1 (when pinned). \
         Per -P level, one server process runs `redis-benchmark -c {CLIENTS} -n {requests} -t TEST -P 1|16 --csv` \
         once per test, in the order SET, GET, INCR, LPUSH, LPOP; server CPU per request is the server's CPU \
         time (all threads) over that run ÷ {requests}. RSS: the server's `VmRSS` after `bench-suite client \
         redis_load` stored {keys} keys of {VALUE_SIZE} bytes ({LOAD_BATCH} pipelined `SET`s per write) in a \
         fresh server. Medians over the repetitions.\n\n{}\n{EXPLANATION}\n\n![mini_redis vs redis-server](redis.svg)\n",
        REDIS_SERVER_ARGS.map(|a| if a.is_empty() { "\"\"" } else { a }).join(" "),
        table(rows, version)
    )
}

/// The part of summary.md (and so of README.md's summary block): every row, and the chart.
pub fn summary(rows: &[Row], version: &str) -> String {
    format!(
        "**mini_redis vs redis-server** (`--only redis`; how they run: `bench-suite/README.md`). Not a \
         runtime comparison: mini_redis is a Redis-compatible example server on evloop, redis-server is \
         Redis {version} itself.\n\n{}\n{EXPLANATION}\n\n![mini_redis vs redis-server](bench-suite/redis.svg)\n",
        table(rows, version)
    )
}

/// The rows as a chart: the ratio mini_redis ÷ redis-server per row, green where mini_redis
/// is ahead and red where it is behind.
pub fn svg(rows: &[Row], title: &str) -> String {
    let bars: Vec<ChartRow> = rows
        .iter()
        .map(|r| ChartRow {
            label: format!("{} · {} {}", r.case, r.metric.name, r.metric.arrow()),
            bars: vec![r.ratio.map(|x| (x, if r.behind() { BEHIND } else { AHEAD }))],
        })
        .collect();
    report::chart(
        title,
        "mini_redis ÷ redis-server (log scale). ↑ rows: right of 1.0 is better; ↓ rows (CPU, RSS): left of 1.0 is better.",
        &[(AHEAD, "mini_redis ahead"), (BEHIND, "mini_redis behind")],
        &bars,
    )
}

const AHEAD: &str = "#3a8f3a";
const BEHIND: &str = "#c0392b";

/// The rows of the section in an earlier results.md, and the redis-server version of its
/// header; `None` if the file has no such section (a run without the `redis` workload).
pub fn parse(text: &str) -> Result<Option<(Vec<Row>, String)>, String> {
    let Some(at) = text.find(HEADING) else { return Ok(None) };
    let mut rows = Vec::new();
    let mut version = "?".to_string();
    for line in text[at..].lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        if cells.len() != 6 {
            continue;
        }
        if cells[0] == "case" {
            version = cells[3].trim_start_matches("redis-server").trim().to_string();
            continue;
        }
        let name = cells[1].trim_end_matches(['↑', '↓']).trim();
        let metric = BENCH_METRICS
            .iter()
            .chain(&LOAD_METRICS)
            .find(|m| m.name == name)
            .ok_or_else(|| format!("unknown metric in {line:?}"))?;
        rows.push(Row {
            case: cells[0].to_string(),
            metric: *metric,
            cells: [report::parse_cell(cells[2]), report::parse_cell(cells[3])],
            ratio: cells[4].trim_matches('*').parse().ok(),
        });
    }
    Ok(Some((rows, version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, metric: Metric, cells: [Result<f64, String>; 2]) -> Row {
        let ratio = match &cells {
            [Ok(a), Ok(b)] => Some(a / b),
            _ => None,
        };
        Row { case: case.into(), metric, cells, ratio }
    }

    fn sample() -> Vec<Row> {
        vec![
            row("SET -P 16", BENCH_METRICS[0], [Ok(250_000.0), Ok(200_000.0)]),
            row("SET -P 16", BENCH_METRICS[1], [Ok(3.0), Ok(2.0)]),
            row(
                "GET -P 1",
                BENCH_METRICS[0],
                [Ok(30_000.0), Err("skipped: redis-server not installed".into())],
            ),
            row("1000 keys x 32 B", LOAD_METRICS[0], [Ok(50.0), Ok(100.0)]),
        ]
    }

    /// A row as the tests compare it: case, metric key, the two cells, the ratio.
    type Shown = (String, &'static str, Result<f64, String>, Result<f64, String>, Option<f64>);

    /// The committed results.md: a run without the redis workload.
    const OLD_RESULTS: &str = include_str!("../results.md");

    #[test]
    fn section_reads_back_as_written() {
        let text =
            format!("# bench-suite results\n\nheader\n\n{}", section(&sample(), "7.0.15", 200_000, 1000));
        let (rows, version) = parse(&text).unwrap().expect("the section is found");
        assert_eq!(version, "7.0.15");
        let shown: Vec<Shown> = rows
            .into_iter()
            .map(|r| (r.case, r.metric.key, r.cells[0].clone(), r.cells[1].clone(), r.ratio))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("SET -P 16".into(), "requests_per_s", Ok(250_000.0), Ok(200_000.0), Some(1.25)),
                ("SET -P 16".into(), "server_cpu_us_per_op", Ok(3.0), Ok(2.0), Some(1.5)),
                (
                    "GET -P 1".into(),
                    "requests_per_s",
                    Ok(30_000.0),
                    Err("skipped: redis-server not installed".into()),
                    None
                ),
                ("1000 keys x 32 B".into(), "rss_kib", Ok(50.0), Ok(100.0), Some(0.5)),
            ]
        );
    }

    #[test]
    fn bold_where_mini_redis_is_behind_whichever_way_is_better() {
        let t = table(&sample(), "7");
        // Faster: ahead. More CPU per request (ratio above 1 where lower is better): behind.
        assert!(t.contains("| SET -P 16 | requests/s ↑ | 250 k/s | 200 k/s | 1.25 | higher |"), "{t}");
        assert!(
            t.contains("| SET -P 16 | server CPU/request ↓ | 3.00 µs | 2.00 µs | **1.50** | lower |"),
            "{t}"
        );
        assert!(
            t.contains("| 1000 keys x 32 B | RSS after loading ↓ | 50.0 MiB | 100 MiB | 0.50 | lower |"),
            "{t}"
        );
        let svg = svg(&sample(), "t");
        assert_eq!(svg.matches(BEHIND).count(), 2, "one bar and the legend: {svg}");
        assert_eq!(svg.matches(AHEAD).count(), 3, "two bars and the legend: {svg}");
    }

    #[test]
    fn results_without_the_section_still_read() {
        // The committed results, without their redis section if they have one.
        let old_results = OLD_RESULTS.split(HEADING).next().unwrap();
        assert!(parse(old_results).unwrap().is_none());
        let old = report::rows_from_results(old_results).unwrap();
        assert!(!old.is_empty());
        // The same file with the section after it: the same evloop rows, and the redis rows.
        let both = format!("{old_results}\n{}", section(&sample(), "7.0.15", 200_000, 1000));
        let main = both.split(HEADING).next().unwrap();
        assert_eq!(report::rows_from_results(main).unwrap().len(), old.len());
        assert_eq!(parse(&both).unwrap().unwrap().0.len(), sample().len());
    }
}

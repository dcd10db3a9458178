//! bench-suite: the same workloads on evloop, tokio's current-thread runtime and libuv, in
//! one run, with a table of medians and ratios. See README.md.
//!
//! ```text
//! cargo run --release -p bench-suite -- [--smoke] [--only NAME[,NAME...]] [--reps N]
//!     [--echo-conns 1,10,100] [--echo-sizes 64,1024,65536] [--no-pin] [--out DIR]
//!     [--require-libuv] [--list]
//! cargo run --release -p bench-suite -- --summary-from bench-suite/results.md [--out DIR]
//! ```
//!
//! The same program is also every Rust child: `child evloop|tokio WORKLOAD ARGS...` runs
//! one workload on one runtime, `client MODE ARGS...` is the load generator.

mod client;
mod procs;
mod redis;
mod redis_report;
mod report;
mod rt_evloop;
mod rt_tokio;
mod stream;
mod tokio_stream;
mod util;
mod workloads;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use report::Outcome;
use workloads::{Config, RUNTIMES, WORKLOADS};

const USAGE: &str = "usage: bench-suite [--smoke] [--only NAME[,NAME...]] [--reps N] \
[--echo-conns LIST] [--echo-sizes LIST] [--no-pin] [--out DIR] [--require-libuv] [--list]
       bench-suite --summary-from RESULTS.md [--out DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let child = match args.first().map(String::as_str) {
        Some("child") => Some(match args.get(1).map(String::as_str) {
            Some("evloop") => rt_evloop::main(&args[2..]),
            Some("tokio") => rt_tokio::main(&args[2..]),
            _ => Err("usage: bench-suite child evloop|tokio WORKLOAD ARGS...".into()),
        }),
        Some("client") => Some(client::main(&args[1..])),
        _ => None,
    };
    if let Some(r) = child {
        return match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match orchestrate(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench-suite: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',').map(|x| x.trim().parse().map_err(|_| format!("bad number {x:?} in {s:?}"))).collect()
}

struct Options {
    config: Config,
    out_dir: PathBuf,
    /// Fail at once, running nothing, if libuv was not found at build time.
    require_libuv: bool,
    /// Only write the summary table of an earlier run's results.md.
    summary_from: Option<PathBuf>,
}

/// Set (to anything but empty or `0`) in CI: as `--require-libuv`, and as for the tests' outside
/// clients, a missing libuv is a failure instead of a skipped column.
const REQUIRE_ENV: &str = "EVLOOP_REQUIRE_CLIENTS";

fn parse_options(args: &[String]) -> Result<Option<Options>, String> {
    let mut smoke = false;
    let mut reps = None;
    let mut only = Vec::new();
    let mut echo_conns = vec![1, 10, 100];
    let mut echo_sizes = vec![64, 1024, 64 * 1024];
    let mut pin = true;
    let mut out_dir = None;
    let mut require_libuv = std::env::var(REQUIRE_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut summary_from = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().cloned().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--smoke" => smoke = true,
            "--reps" => reps = Some(value("--reps")?.parse::<usize>().map_err(|e| format!("--reps: {e}"))?),
            "--only" => only.extend(value("--only")?.split(',').map(|s| s.trim().to_string())),
            "--echo-conns" => echo_conns = list(&value("--echo-conns")?)?,
            "--echo-sizes" => echo_sizes = list(&value("--echo-sizes")?)?,
            "--no-pin" => pin = false,
            "--require-libuv" => require_libuv = true,
            "--summary-from" => summary_from = Some(PathBuf::from(value("--summary-from")?)),
            "--out" => out_dir = Some(PathBuf::from(value("--out")?)),
            "--list" => {
                for (name, what) in WORKLOADS {
                    println!("{name:<16} {what}");
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}\nworkloads (--list describes them): {}", names().join(", "));
                return Ok(None);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    for o in &only {
        if !WORKLOADS.iter().any(|(n, _)| n == o) {
            return Err(format!("unknown workload {o:?}; the workloads are {}", names().join(", ")));
        }
    }
    if echo_conns.contains(&0) || echo_sizes.contains(&0) {
        return Err("--echo-conns and --echo-sizes take positive numbers".into());
    }
    let reps = reps.unwrap_or(if smoke { 1 } else { 3 });
    if reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset_works = || {
        std::process::Command::new("taskset")
            .args(["-c", "1", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let pin = (pin && cores >= 2 && taskset_works()).then_some((0, 1));
    let uvbench = Some(env!("BENCH_SUITE_UVBENCH").to_string()).filter(|p| !p.is_empty());
    let self_exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out_dir = match out_dir {
        Some(d) => d,
        // Smoke figures mean nothing: keep them beside the program, in the target directory,
        // away from the committed results.
        None if smoke => {
            self_exe.parent().map_or_else(|| PathBuf::from("."), |d| d.join("bench-suite-smoke"))
        }
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")),
    };
    Ok(Some(Options {
        config: Config {
            smoke,
            reps,
            only,
            echo_conns,
            echo_sizes,
            pin,
            uvbench,
            self_exe: self_exe.to_string_lossy().into_owned(),
        },
        out_dir,
        require_libuv,
        summary_from,
    }))
}

fn names() -> Vec<&'static str> {
    WORKLOADS.iter().map(|(n, _)| *n).collect()
}

/// Runs the cases: for each case, repetitions of evloop, tokio, libuv in turn. Returns
/// whether everything succeeded.
fn orchestrate(args: &[String]) -> Result<bool, String> {
    let Some(Options { config: cfg, out_dir, require_libuv, summary_from }) = parse_options(args)? else {
        return Ok(true);
    };
    if let Some(results) = summary_from {
        return summary_from_results(&results, args.iter().any(|a| a == "--out").then_some(&out_dir));
    }
    if require_libuv && cfg.uvbench.is_none() {
        eprintln!(
            "bench-suite: libuv was not found when bench-suite was built, and --require-libuv \
             (or {REQUIRE_ENV}) makes that a failure: install libuv1-dev and pkg-config, then \
             rebuild (cargo clean -p bench-suite if the build script ran without them)"
        );
        return Ok(false);
    }
    let redis_setup = if cfg.only.is_empty() || cfg.only.iter().any(|o| o == redis::WORKLOAD) {
        match redis::setup(&cfg, require_libuv) {
            Ok(setup) => Some(setup),
            Err(e) => {
                eprintln!("bench-suite: {e}");
                return Ok(false);
            }
        }
    } else {
        None
    };
    let cases = workloads::cases(&cfg);
    let started = Instant::now();
    eprintln!(
        "bench-suite: {} x {} repetition(s){}; {}",
        [
            (!cases.is_empty()).then(|| format!("{} cases x {} runtimes", cases.len(), RUNTIMES.len())),
            redis_setup.as_ref().map(|_| "the redis workload (mini_redis vs redis-server)".to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" and "),
        cfg.reps,
        if cfg.smoke { " (smoke: tiny counts)" } else { "" },
        match cfg.pin {
            Some((s, c)) => format!("servers on CPU {s}, load generator on CPU {c} (taskset)"),
            None => "not pinned".into(),
        }
    );
    let mut outcomes = Vec::new();
    for case in cases {
        let mut o = Outcome::new(case.clone());
        if cfg.uvbench.is_none() {
            o.skipped[2] = Some(workloads::LIBUV_SKIPPED.into());
        }
        for rep in 0..cfg.reps {
            for (i, &rt) in RUNTIMES.iter().enumerate() {
                if o.skipped[i].is_some() {
                    continue;
                }
                let t = Instant::now();
                let r = workloads::run(&cfg, &case, rt);
                let summary = match &r {
                    Ok(res) => case
                        .metrics()
                        .iter()
                        .filter_map(|m| res.get(m.key).map(|v| report::format_value(v * m.scale, m.unit)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Err(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "  {:<16} {:<22} rep {}/{} {:<7} {summary}  [{:.1} s]",
                    case.workload,
                    case.label,
                    rep + 1,
                    cfg.reps,
                    rt.name(),
                    t.elapsed().as_secs_f64()
                );
                match r {
                    Ok(res) => o.runs[i].push(res),
                    Err(e) => o.errors[i].push(e),
                }
            }
        }
        outcomes.push(o);
    }
    let redis_outcomes = redis_setup.as_ref().map(|setup| redis::run_all(&cfg, setup)).unwrap_or_default();
    let ok = !outcomes.iter().any(Outcome::failed)
        && !redis_outcomes.iter().any(|o| o.errors.iter().any(|e| !e.is_empty()));
    let rows = report::rows(&outcomes);
    let redis_rows = redis_report::rows(&redis_outcomes);
    let redis_version = redis_setup.as_ref().map_or("", |s| s.redis_version.as_str());
    let elapsed = started.elapsed();
    let header = header(&cfg, args, elapsed.as_secs_f64(), !rows.is_empty(), !redis_rows.is_empty());
    // The evloop-vs-runtimes part and the mini_redis-vs-redis-server part, each if it ran.
    let main_part =
        (!rows.is_empty()).then(|| format!("{}\n\n{}", report::RATIO_EXPLANATION, report::table(&rows)));
    let redis_part = (!redis_rows.is_empty()).then(|| {
        let (requests, keys) = redis::sizes(cfg.smoke);
        redis_report::section(&redis_rows, redis_version, requests, keys)
    });
    println!("{header}");
    for part in [&main_part, &redis_part].into_iter().flatten() {
        println!("\n{part}");
    }
    for o in outcomes.iter().filter(|o| o.failed()) {
        for (i, errs) in o.errors.iter().enumerate() {
            for e in errs {
                eprintln!("FAILED {} {} on {}: {e}", o.case.workload, o.case.label, RUNTIMES[i].name());
            }
        }
    }
    for o in &redis_outcomes {
        for (i, errs) in o.errors.iter().enumerate() {
            for e in errs {
                eprintln!("FAILED {} {} on {}: {e}", redis::WORKLOAD, o.case, redis::SERVERS[i].name());
            }
        }
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let libuv_version = match env!("BENCH_SUITE_LIBUV_VERSION") {
        "" => "(not found)",
        v => v,
    };
    let doc = summary_doc(
        &rows,
        libuv_version,
        TOKIO_VERSION,
        &redis_rows,
        redis_version,
        &summary_source(&header),
    );
    let mut written = vec![write(&out_dir, "summary.md", &doc)?];
    let mut doc = format!("# bench-suite results\n\n{header}\n");
    if let Some(part) = &main_part {
        let _ = write!(doc, "\n{part}\n{NOTES}\n![ratios](ratios.svg)\n");
    }
    if let Some(part) = &redis_part {
        let _ = write!(doc, "\n{part}");
    }
    written.push(write(&out_dir, "results.md", &doc)?);
    if !rows.is_empty() {
        let title = format!("evloop vs tokio (current-thread) and libuv — median of {} run(s)", cfg.reps);
        written.push(write(&out_dir, "ratios.svg", &report::svg(&rows, &title))?);
    }
    if !redis_rows.is_empty() {
        let title = format!("mini_redis vs redis-server {redis_version} — median of {} run(s)", cfg.reps);
        written.push(write(&out_dir, "redis.svg", &redis_report::svg(&redis_rows, &title))?);
    }
    eprintln!("wrote {} in {:.0} s", written.join(", "), elapsed.as_secs_f64());
    if !ok {
        eprintln!("bench-suite: some runs FAILED");
    }
    Ok(ok)
}

/// Writes `name` in `dir`; its path, for the log.
fn write(dir: &std::path::Path, name: &str, text: &str) -> Result<String, String> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path.display().to_string())
}

/// summary.md: where it comes from, the summary of the evloop rows and the mini_redis vs
/// redis-server rows, each if there are any.
fn summary_doc(
    rows: &[report::Row],
    libuv: &str,
    tokio: &str,
    redis_rows: &[redis_report::Row],
    redis_version: &str,
    source: &str,
) -> String {
    let mut doc =
        if rows.is_empty() { format!("{source}\n") } else { report::summary(rows, tokio, libuv, source) };
    if !redis_rows.is_empty() {
        doc.push('\n');
        doc.push_str(&redis_report::summary(redis_rows, redis_version));
    }
    doc
}

/// The first lines of the summary: which run it comes from (from a results.md header).
fn summary_source(header: &str) -> String {
    let lines: Vec<&str> = header
        .lines()
        .map(|l| l.trim_end())
        .filter(|l| ["Command:", "Median of", "Machine:"].iter().any(|p| l.starts_with(p)))
        .collect();
    format!(
        "<!-- Generated by bench-suite (src/report.rs, `summary`) from the run in results.md; do not edit by hand. -->\n\
         From the run in `bench-suite/results.md`:  \n{}",
        lines.join("  \n")
    )
}

/// The word after `prefix` in `text` (a version in a results.md header), or "?".
fn word_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.find(prefix).and_then(|i| text[i + prefix.len()..].split_whitespace().next()).unwrap_or("?")
}

/// `--summary-from FILE`: the summary table of an earlier run, from its results.md, written
/// as summary.md beside it (or in `--out DIR`) and printed.
fn summary_from_results(results: &std::path::Path, out_dir: Option<&PathBuf>) -> Result<bool, String> {
    let text = std::fs::read_to_string(results).map_err(|e| format!("{}: {e}", results.display()))?;
    let at = |e: String| format!("{}: {e}", results.display());
    // The evloop table comes before the mini_redis vs redis-server section, if there is one.
    let main = text.split(redis_report::HEADING).next().unwrap_or("");
    let rows = report::rows_from_results(main).map_err(at)?;
    let (redis_rows, redis_version) = redis_report::parse(&text).map_err(at)?.unwrap_or_default();
    if rows.is_empty() && redis_rows.is_empty() {
        return Err(at("no result rows found".into()));
    }
    let doc = summary_doc(
        &rows,
        word_after(&text, "; libuv ").trim_end_matches(';'),
        word_after(&text, "; tokio ").trim_end_matches(';'),
        &redis_rows,
        &redis_version,
        &summary_source(&text),
    );
    let dir = out_dir.cloned().unwrap_or_else(|| results.parent().map_or_else(PathBuf::new, PathBuf::from));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = write(&dir, "summary.md", &doc)?;
    print!("{doc}");
    eprintln!("wrote {path}");
    Ok(true)
}

const NOTES: &str = "\
Notes (bench-suite/README.md has the details):
- The TCP servers (echo, pump, pound, memory) and the tcp_write_batch writer are the runtime under test; \
the load generator (or sink) is the same evloop/std program for all three, pinned to the other CPU with \
taskset. All servers: backlog 1024, TCP_NODELAY, one shared 64 KiB read buffer, write-through with a 64 KiB \
write-queue high-water mark.
- unix_echo, unix_pump, unix_memory: the echo and pump servers on a Unix domain socket (a path in a fresh \
temp directory), with the same per-connection code as over TCP: evloop `UnixListener`, tokio `UnixListener` \
(no backlog to set: the kernel's maximum), libuv `uv_pipe_t`; no TCP_NODELAY (nothing to set).
- Server CPU rows: the server process's CPU time (all threads) divided by the requests (round trips, MiB, \
connections) it served. With one core for the load generator, throughput is often capped by the client; \
these rows show what each server spent.
- loop_count on tokio is a task that calls `yield_now()` in a loop: the nearest equivalent of an idle \
watcher, not the same thing. The `1 idle listener` case has a TCP listener open that nobody connects to, \
so every runtime polls each iteration; the `no socket` case measures evloop skipping the poll's system call \
(libuv always polls: its loop watches a signal pipe), not like for like.
- timers on tokio: one task per timer sleeping until its deadline; a timer counts as started once its \
task has been polled.
- defer: n one-shot callbacks on the next iteration, 1,000 outstanding, each scheduling the next. evloop \
`Loop::defer`; tokio `tokio::spawn` of a trivial task per call (the nearest equivalent); libuv a \
setImmediate-style queue (as Node) run by one `uv_check_t`, with a `uv_idle_t` active while it is non-empty. \
The `0 ms timer` case: evloop a `Timer`, libuv a `malloc`ed `uv_timer_t` (both closed in their callback), \
tokio `sleep(Duration::ZERO)` in a spawned task, which waits for the timer wheel's next 1 ms tick.
- tcp_write_batch: evloop and libuv issue all writes at once, each trying the socket first and queueing \
only what it did not take (libuv: uv_try_write, then uv_write of the rest with a callback that frees it; \
evloop: write, no callback); tokio awaits `write_all` per message.
- pump: evloop and libuv try the socket first per 8 KiB chunk and queue only the rest (libuv with a request \
and callback per queued rest), up to 64 KiB queued, and go on once the queue is empty; tokio awaits \
`write_all` per chunk.
- waker: libuv uv_async_t + a semaphore per thread; evloop Waker + park/unpark; tokio Notify + park/unpark. \
Unpinned, so noisier than the rest.
- channel: producer threads send u64s to the loop thread: evloop `Channel::new` (unbounded), tokio \
`mpsc::unbounded_channel` awaited by the runtime's thread, libuv a mutex-protected queue + `uv_async_send` \
per message (the callback swaps the queue out and drains it). Unpinned; 4 producers are 5 threads on 2 cores.
- queue_work / fs_stat: a pool of 4 threads on every runtime (tokio: `max_blocking_threads(4)`).
";

/// The header of results.md; `runtimes` and `redis`: whether the run had runtime workloads,
/// and the redis workload.
fn header(cfg: &Config, args: &[String], secs: f64, runtimes: bool, redis: bool) -> String {
    let cmd = if args.is_empty() {
        "cargo run --release -p bench-suite".to_string()
    } else {
        format!("cargo run --release -p bench-suite -- {}", args.join(" "))
    };
    let libuv = match env!("BENCH_SUITE_LIBUV_VERSION") {
        "" => "libuv: not found at build time".to_string(),
        v => format!("libuv {v} (system, pkg-config)"),
    };
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "Command: `{cmd}`  \nMedian of {} repetition(s), {}{}; \
         {:.0} s in all.  \nMachine: {} CPUs, Linux {}; tokio {} current-thread runtime; {}.  \nPinning: {}.",
        cfg.reps,
        [
            runtimes.then_some("runtimes interleaved (evloop, tokio, libuv, evloop, ...)"),
            redis.then_some("servers interleaved (mini_redis, redis-server, mini_redis, ...)"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
        if cfg.smoke { "; SMOKE MODE: tiny counts, the figures mean nothing" } else { "" },
        secs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        kernel.trim(),
        TOKIO_VERSION,
        libuv,
        match cfg.pin {
            Some((s, c)) => format!(
                "the TCP or Unix socket server (or writer) under test on CPU {s}, the load generator \
                 (or redis-benchmark) on CPU {c} (taskset); other workloads unpinned"
            ),
            None => "none (taskset missing or fewer than 2 CPUs, or --no-pin)".to_string(),
        }
    )
}

/// The tokio version in the workspace's Cargo.lock at build time.
const TOKIO_VERSION: &str = env!("BENCH_SUITE_TOKIO_VERSION");

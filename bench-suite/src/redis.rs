//! The `redis` workload: `examples/mini_redis` (a Redis-compatible server on evloop) side by
//! side with the system's `redis-server`, both loaded by `redis-benchmark` and by the suite's
//! `client redis_load`. Its rows compare two servers, not three runtimes, so they have an
//! outcome, a table and a chart of their own (`redis_report.rs`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procs::{Proc, Results, Spec};
use crate::report;
use crate::workloads::Metric;
use crate::workloads::{Config, Unit};

/// The workload's name (`--only redis`).
pub const WORKLOAD: &str = "redis";

/// The servers, in the order they run within each repetition.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Server {
    MiniRedis,
    RedisServer,
}

pub const SERVERS: [Server; 2] = [Server::MiniRedis, Server::RedisServer];

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::MiniRedis => "mini_redis",
            Server::RedisServer => "redis-server",
        }
    }
}

/// The `redis-benchmark` tests, run one at a time in this order on one server process (so
/// that GET finds SET's key and LPOP LPUSH's list, as in one `redis-benchmark` run).
pub const TESTS: [&str; 5] = ["set", "get", "incr", "lpush", "lpop"];
/// `redis-benchmark -P`: requests pipelined per connection.
/// 1 and 16 are the issue's; at both, redis-benchmark's one core is the limit for a lean
/// server. At 64 the client's cost per request falls enough that a server's core can be the
/// limit (redis-server's is, ~95 % busy), so that row shows the servers' capacity.
pub const PIPELINES: [u32; 3] = [1, 16, 64];
/// `redis-benchmark -c`.
pub const CLIENTS: u32 = 50;
/// The value size of the loaded keys, and the `SET`s per pipelined batch of the loader.
pub const VALUE_SIZE: usize = 32;
pub const LOAD_BATCH: u64 = 500;

/// The arguments every `redis-server` gets besides its port: no persistence, in the
/// foreground, on the loopback only.
pub const REDIS_SERVER_ARGS: [&str; 8] =
    ["--save", "", "--appendonly", "no", "--daemonize", "no", "--bind", "127.0.0.1"];

const fn m(key: &'static str, name: &'static str, unit: Unit, higher_is_better: bool) -> Metric {
    Metric { key, name, unit, scale: 1.0, higher_is_better }
}

/// The metrics of a `redis-benchmark` case.
pub const BENCH_METRICS: [Metric; 3] = [
    m("requests_per_s", "requests/s", Unit::PerSec, true),
    m("server_cpu_us_per_op", "server CPU/request", Unit::Us, false),
    m("server_busy_pct", "server core busy", Unit::Percent, false),
];
/// The metric of the loading case.
pub const LOAD_METRICS: [Metric; 1] =
    [Metric { scale: 1.0 / 1024.0, ..m("rss_kib", "RSS after loading", Unit::MiB, false) }];

/// What one run (one server process) does: the five tests at one `-P`, or the load.
#[derive(Clone, Debug)]
pub enum Group {
    Bench { pipeline: u32, requests: u64 },
    Load { keys: u64 },
}

impl Group {
    /// The labels of its cases, in the order its run returns their results.
    pub fn cases(&self) -> Vec<String> {
        match *self {
            Group::Bench { pipeline, .. } => {
                TESTS.iter().map(|t| format!("{} -P {pipeline}", t.to_uppercase())).collect()
            }
            Group::Load { keys } => vec![format!("{keys} keys x {VALUE_SIZE} B")],
        }
    }

    pub fn metrics(&self) -> &'static [Metric] {
        match self {
            Group::Bench { .. } => &BENCH_METRICS,
            Group::Load { .. } => &LOAD_METRICS,
        }
    }
}

/// Requests per `redis-benchmark` run and keys loaded, for the mode.
pub fn sizes(smoke: bool) -> (u64, u64) {
    if smoke {
        (2_000, 10_000)
    } else {
        (200_000, 1_000_000)
    }
}

/// The groups to run, sized for the mode.
pub fn groups(smoke: bool) -> Vec<Group> {
    let (requests, keys) = sizes(smoke);
    // Deeper pipelines get more requests, so that a run still lasts a few tenths of a second.
    let requests_at = |pipeline: u32| if pipeline > 16 { requests * 5 } else { requests };
    let mut out: Vec<Group> = PIPELINES
        .iter()
        .map(|&pipeline| Group::Bench { pipeline, requests: requests_at(pipeline) })
        .collect();
    out.push(Group::Load { keys });
    out
}

/// The programs the workload runs: each found, or why not.
pub struct Setup {
    pub mini_redis: Result<String, String>,
    pub redis_server: Result<String, String>,
    pub redis_benchmark: Result<String, String>,
    /// `redis-server --version`'s `v=` field, for the column header.
    pub redis_version: String,
}

/// A program on `PATH`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn found(name: &str, package: &str) -> Result<String, String> {
    find_program(name)
        .map(|p| p.to_string_lossy().into_owned())
        .ok_or_else(|| format!("skipped: {name} not installed (apt-get install {package})"))
}

/// Builds `examples/mini_redis` in release (`cargo build --release --example mini_redis` in
/// the workspace, into the target directory this program was built in) and finds
/// `redis-server` and `redis-benchmark`. With `require`, any of them missing is an error.
pub fn setup(cfg: &Config, require: bool) -> Result<Setup, String> {
    let redis_server = found("redis-server", "redis-server");
    let redis_benchmark = found("redis-benchmark", "redis-tools");
    if require {
        for r in [&redis_server, &redis_benchmark] {
            if let Err(e) = r {
                return Err(format!(
                    "{}, and --require-libuv (or EVLOOP_REQUIRE_CLIENTS) makes that a failure",
                    e.trim_start_matches("skipped: ")
                ));
            }
        }
    }
    let redis_version = match &redis_server {
        Ok(p) => std::process::Command::new(p)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.split_whitespace().find_map(|w| w.strip_prefix("v=").map(str::to_string))
            })
            .unwrap_or_else(|| "?".into()),
        Err(_) => "(not found)".into(),
    };
    Ok(Setup { mini_redis: Ok(build_mini_redis(cfg)?), redis_server, redis_benchmark, redis_version })
}

/// How long building mini_redis may take (a cold release build of evloop and the example).
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

fn build_mini_redis(cfg: &Config) -> Result<String, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("no workspace directory")?;
    // This program is TARGET/<profile>/bench-suite: build beside it, in TARGET/release.
    let target = Path::new(&cfg.self_exe)
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("no target directory above {}", cfg.self_exe))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = workspace.join("Cargo.toml");
    let args = [
        "build",
        "--release",
        "--example",
        "mini_redis",
        "--manifest-path",
        &manifest.to_string_lossy(),
        "--target-dir",
        &target.to_string_lossy(),
    ]
    .map(str::to_string);
    let command = format!("{cargo} {}", args.join(" "));
    eprintln!("bench-suite: building mini_redis: {command}");
    let how = |e: String| {
        format!("cannot build mini_redis, which the redis workload needs ({e}); run `{command}` to see why")
    };
    Proc::spawn("cargo build mini_redis", &Spec::new(&cargo, args), None)
        .and_then(|mut p| p.output(BUILD_TIMEOUT))
        .map_err(how)?;
    let exe = target.join("release/examples/mini_redis");
    if !exe.is_file() {
        return Err(how(format!("{} is not there after the build", exe.display())));
    }
    Ok(exe.to_string_lossy().into_owned())
}

/// Why `server` cannot run at all, if so.
pub fn skipped(setup: &Setup, server: Server, group: &Group) -> Option<String> {
    let program = match server {
        Server::MiniRedis => &setup.mini_redis,
        Server::RedisServer => &setup.redis_server,
    };
    let bench = matches!(group, Group::Bench { .. }).then_some(&setup.redis_benchmark);
    [Some(program), bench].into_iter().flatten().find_map(|r| r.as_ref().err().cloned())
}

/// A port on 127.0.0.1 nobody listens on right now, for `redis-server --port` (it cannot pick
/// one itself and say which).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind(crate::util::local_any()).map_err(|e| format!("free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| format!("free port: {e}"))
}

/// Starts `server` on `core`, and waits until it accepts connections: the process (killed
/// when dropped) and its port.
fn start(setup: &Setup, server: Server, core: Option<usize>, short: Duration) -> Result<(Proc, u16), String> {
    let program = |r: &Result<String, String>| r.clone();
    match server {
        Server::MiniRedis => {
            let spec = Spec::new(program(&setup.mini_redis)?, ["127.0.0.1:0"]);
            let mut p = Proc::spawn("mini_redis", &spec, core)?;
            let port = p.find_line(short, "listening", |line| {
                let addr = line.strip_prefix("listening on ")?;
                Some(
                    addr.parse::<std::net::SocketAddr>()
                        .map(|a| a.port())
                        .map_err(|e| format!("{line:?}: {e}")),
                )
            })?;
            Ok((p, port))
        }
        Server::RedisServer => {
            let port = free_port()?;
            let args = ["--port".to_string(), port.to_string()]
                .into_iter()
                .chain(REDIS_SERVER_ARGS.iter().map(|s| s.to_string()));
            let mut p = Proc::spawn("redis-server", &Spec::new(program(&setup.redis_server)?, args), core)?;
            p.find_line(short, "it was ready", |line| {
                line.contains("Ready to accept connections").then_some(Ok(()))
            })?;
            Ok((p, port))
        }
    }
}

/// The requests/s of `test` in `redis-benchmark --csv`'s output (`"SET","12345.67",...`).
fn csv_rps(lines: &[String], test: &str) -> Result<f64, String> {
    let want = format!("\"{}\"", test.to_uppercase());
    let line = lines
        .iter()
        .find(|l| l.split(',').next() == Some(&want))
        .ok_or_else(|| format!("redis-benchmark printed no {want} row: {:?}", lines.join(" / ")))?;
    let rps = line.split(',').nth(1).map(|v| v.trim_matches('"'));
    rps.and_then(|v| v.parse().ok()).ok_or_else(|| format!("redis-benchmark: bad line {line:?}"))
}

/// Runs `group` on `server`: the results of each of its cases, in order.
pub fn run(cfg: &Config, setup: &Setup, group: &Group, server: Server) -> Result<Vec<Results>, String> {
    let timeout = Duration::from_secs(if cfg.smoke { 30 } else { 300 });
    let short = Duration::from_secs(if cfg.smoke { 10 } else { 30 });
    let (server_core, client_core) = cfg.pin.map_or((None, None), |(s, c)| (Some(s), Some(c)));
    let (mut proc, port) = start(setup, server, server_core, short)?;
    let mut out = Vec::new();
    match *group {
        Group::Bench { pipeline, requests } => {
            let bench = setup.redis_benchmark.clone()?;
            for test in TESTS {
                let args = [
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-c",
                    &CLIENTS.to_string(),
                    "-n",
                    &requests.to_string(),
                    "-t",
                    test,
                    "-P",
                    &pipeline.to_string(),
                    "--csv",
                ]
                .map(str::to_string);
                let before = proc.cpu_ns();
                let started = Instant::now();
                let name = format!("redis-benchmark {test} on {}", server.name());
                let lines = Proc::spawn(&name, &Spec::new(&bench, args), client_core)?.output(timeout)?;
                let wall = started.elapsed();
                proc.check_running()?;
                let mut r = Results::new();
                r.insert("requests_per_s".into(), csv_rps(&lines, test)?);
                // The server's CPU time per request: what requests/s hides when
                // redis-benchmark's core is the limit.
                if let (Some(a), Some(b)) = (before, proc.cpu_ns()) {
                    r.insert("server_cpu_us_per_op".into(), (b - a) as f64 / 1e3 / requests as f64);
                    // Below 100 %, the server waited for work: redis-benchmark (one thread, on
                    // the other core) was the limit, not the server. The wall time includes
                    // its start and exit, a few ms: an underestimate by a few per cent.
                    r.insert("server_busy_pct".into(), (b - a) as f64 / wall.as_nanos() as f64 * 100.0);
                }
                out.push(r);
            }
        }
        Group::Load { keys } => {
            let args = crate::workloads::strings(&[&"redis_load", &port, &keys, &VALUE_SIZE, &LOAD_BATCH]);
            let spec = Spec::new(&cfg.self_exe, ["client".to_string()].into_iter().chain(args));
            let loaded = Proc::spawn(&format!("loader of {}", server.name()), &spec, client_core)?
                .results(&[], timeout)?;
            if loaded.get("keys") != Some(&(keys as f64)) {
                return Err(format!("the loader stored {:?} keys, not {keys}", loaded.get("keys")));
            }
            proc.check_running()?;
            let rss = proc.status_kib("VmRSS:").ok_or("cannot read the server's VmRSS")?;
            out.push(Results::from([("rss_kib".to_string(), rss as f64)]));
        }
    }
    Ok(out)
}

/// What one case gave on each server over the repetitions.
pub struct Outcome {
    pub case: String,
    pub metrics: &'static [Metric],
    pub runs: [Vec<Results>; 2],
    pub errors: [Vec<String>; 2],
    pub skipped: [Option<String>; 2],
}

/// Runs every group, `cfg.reps` times, the two servers in turn each time. The outcomes, one
/// per case.
pub fn run_all(cfg: &Config, setup: &Setup) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for group in groups(cfg.smoke) {
        let first = outcomes.len();
        for case in group.cases() {
            outcomes.push(Outcome {
                case,
                metrics: group.metrics(),
                runs: Default::default(),
                errors: Default::default(),
                skipped: SERVERS.map(|s| skipped(setup, s, &group)),
            });
        }
        let cases = &mut outcomes[first..];
        for rep in 0..cfg.reps {
            for (i, &server) in SERVERS.iter().enumerate() {
                if cases[0].skipped[i].is_some() {
                    continue;
                }
                let t = Instant::now();
                match run(cfg, setup, &group, server) {
                    Ok(results) => {
                        for (o, r) in cases.iter_mut().zip(results) {
                            let shown: Vec<String> = o
                                .metrics
                                .iter()
                                .filter_map(|m| {
                                    r.get(m.key).map(|v| report::format_value(v * m.scale, m.unit))
                                })
                                .collect();
                            eprintln!(
                                "  {WORKLOAD:<16} {:<22} rep {}/{} {:<12} {}",
                                o.case,
                                rep + 1,
                                cfg.reps,
                                server.name(),
                                shown.join(", ")
                            );
                            o.runs[i].push(r);
                        }
                    }
                    Err(e) => {
                        eprintln!(
                            "  {WORKLOAD:<16} {:?} rep {} {} FAILED: {e}",
                            group,
                            rep + 1,
                            server.name()
                        );
                        for o in cases.iter_mut() {
                            o.errors[i].push(e.clone());
                        }
                    }
                }
                eprintln!("  ({} on {}: {:.1} s)", WORKLOAD, server.name(), t.elapsed().as_secs_f64());
            }
        }
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_second_from_redis_benchmark_csv() {
        let lines: Vec<String> = [
            r#""test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms""#,
            r#""LPUSH","40816.33","0.789","0.224","0.767","1.143","2.079","2.319""#,
        ]
        .map(str::to_string)
        .to_vec();
        assert_eq!(csv_rps(&lines, "lpush"), Ok(40816.33));
        assert!(csv_rps(&lines, "lpop").unwrap_err().contains("no \"LPOP\" row"));
    }

    #[test]
    fn cases_in_run_order() {
        let g = groups(true);
        assert_eq!(g.len(), 4);
        assert_eq!(g[0].cases(), ["SET -P 1", "GET -P 1", "INCR -P 1", "LPUSH -P 1", "LPOP -P 1"]);
        assert_eq!(g[1].cases()[4], "LPOP -P 16");
        assert_eq!(g[2].cases()[0], "SET -P 64");
        assert!(matches!(
            (&g[1], &g[2]),
            (Group::Bench { requests: 2_000, .. }, Group::Bench { requests: 10_000, .. })
        ));
        assert_eq!(g[3].cases(), ["10000 keys x 32 B"]);
    }
}

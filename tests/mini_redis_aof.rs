//! mini_redis's append-only file (`--aof PATH`) end to end: write, stop (SIGTERM or SIGKILL),
//! restart on the same file, read back; a truncated end repaired; a malformed file refused;
//! and the exact bytes of the records (a unit test of `aof::record`).

mod common;

#[path = "common/redis.rs"]
mod redis;

// The example as a module, for `aof::record`.
#[path = "../examples/mini_redis/main.rs"]
mod mini_redis;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{fresh_example, start_example, wait_within, Example, TempDir};
use evloop::{Loop, RunMode, Timer};
use mini_redis::commands::Server;
use mini_redis::{aof, resp};
use redis::Client;

fn command(path: &Path) -> Command {
    let mut cmd = Command::new(fresh_example("mini_redis"));
    cmd.arg("127.0.0.1:0").arg("--aof").arg(path);
    cmd
}

/// mini_redis on the AOF at `path`, once it listens (so once the file is replayed).
fn start(path: &Path) -> Example {
    start_example(command(path))
}

/// SIGTERM, and its exit status.
fn terminate(mini: &mut Example) -> ExitStatus {
    let pid = mini.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    wait_within(&mut mini.child, 10, "mini_redis after SIGTERM")
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// The bulk strings of an array reply, sorted: for sets and hashes, whose order is the
/// server's. (None of the test's values starts with `$` or `*`.)
fn sorted(reply: &str) -> Vec<String> {
    let mut items: Vec<String> = reply
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with('$') && !l.starts_with('*'))
        .map(str::to_owned)
        .collect();
    items.sort();
    items
}

/// One record per request, as a client sends it.
fn records(requests: &[&[&str]]) -> Vec<u8> {
    requests.iter().flat_map(|r| resp::request(r)).collect()
}

#[test]
fn writes_survive_sigterm_and_a_restart() {
    let dir = TempDir::new("aof-sigterm");
    let path = dir.join("appendonly.aof");
    let mut mini = start(&path);
    let mut c = Client::connect(mini.addr);
    let writes: &[(&[&str], &str)] = &[
        (&["SET", "s", "hello"], "+OK\r\n"),
        (&["APPEND", "s", " world"], ":11\r\n"),
        (&["SET", "n", "10"], "+OK\r\n"),
        (&["INCR", "n"], ":11\r\n"),
        (&["INCRBY", "n", "5"], ":16\r\n"),
        (&["DECR", "n"], ":15\r\n"),
        (&["DECRBY", "n", "3"], ":12\r\n"),
        (&["MSET", "m1", "a", "m2", "b"], "+OK\r\n"),
        (&["GETSET", "m1", "c"], "$1\r\na\r\n"),
        (&["DEL", "m2", "nokey"], ":1\r\n"),
        (&["DEL", "nokey"], ":0\r\n"),
        (&["RPUSH", "l", "a", "b", "c"], ":3\r\n"),
        (&["LPUSH", "l", "z"], ":4\r\n"),
        (&["RPOP", "l"], "$1\r\nc\r\n"),
        (&["HSET", "h", "f", "1", "g", "2", "k", "3"], ":3\r\n"),
        (&["HDEL", "h", "g"], ":1\r\n"),
        (&["SADD", "set", "x", "y", "z"], ":3\r\n"),
        (&["SREM", "set", "y"], ":1\r\n"),
        (&["SET", "nx", "first", "NX"], "+OK\r\n"),
        (&["SET", "nx", "second", "NX"], "$-1\r\n"),
        (&["LPUSH", "s", "x"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["SET", "hour", "v", "EX", "3600"], "+OK\r\n"),
        (&["SET", "e", "v"], "+OK\r\n"),
        (&["EXPIRE", "e", "3600"], ":1\r\n"),
        (&["SET", "p", "v", "EX", "100"], "+OK\r\n"),
        (&["PERSIST", "p"], ":1\r\n"),
        (&["SET", "gone", "v"], "+OK\r\n"),
        (&["PEXPIRE", "gone", "0"], ":1\r\n"),
        (&["SET", "short", "v", "PX", "300"], "+OK\r\n"),
    ];
    for (request, reply) in writes {
        assert_eq!(c.ask(request), *reply, "{request:?}");
    }
    // The server logged `short`'s deadline after it got the request, before this.
    let short_deadline = wall_ms() + 300;
    assert!(terminate(&mut mini).success());

    // Restart once `short`'s deadline has passed, on the wall clock (bounded).
    retry(|| {
        if wall_ms() > short_deadline + 5 {
            Ok(())
        } else {
            Err("the clock did not pass the deadline".into())
        }
    });
    let mini = start(&path);
    let mut c = Client::connect(mini.addr);
    let reads: &[(&[&str], &str)] = &[
        (&["EXISTS", "short", "gone", "m2"], ":0\r\n"),
        (&["DBSIZE"], ":10\r\n"),
        (&["GET", "s"], "$11\r\nhello world\r\n"),
        (&["GET", "n"], "$2\r\n12\r\n"),
        (&["GET", "m1"], "$1\r\nc\r\n"),
        (&["LRANGE", "l", "0", "-1"], "*3\r\n$1\r\nz\r\n$1\r\na\r\n$1\r\nb\r\n"),
        (&["GET", "nx"], "$5\r\nfirst\r\n"),
        (&["TTL", "p"], ":-1\r\n"),
        (&["TTL", "s"], ":-1\r\n"),
        (&["TYPE", "hour"], "+string\r\n"),
    ];
    for (request, reply) in reads {
        assert_eq!(c.ask(request), *reply, "{request:?}");
    }
    assert_eq!(sorted(&c.ask(&["HGETALL", "h"])), ["1", "3", "f", "k"]);
    assert_eq!(sorted(&c.ask(&["SMEMBERS", "set"])), ["x", "z"]);
    // The deadlines are absolute: a restart does not extend them, and keeps them.
    for key in ["hour", "e"] {
        let ttl: i64 = c.ask(&["TTL", key]).trim_start_matches(':').trim().parse().unwrap();
        assert!((3590..=3600).contains(&ttl), "TTL {key} after a restart: {ttl}");
    }
}

/// An AOF at `path`, fed `SET k <value>` for each value, on a loop not run yet.
fn fed(path: &Path, values: &[&str]) -> (Loop, aof::Aof) {
    let mut lp = Loop::new().unwrap();
    let aof = aof::Aof::open(path, &mut Server::default(), lp.now()).unwrap();
    aof.start(&mut lp).unwrap();
    for value in values {
        let args: Vec<Vec<u8>> = ["SET", "k", value].iter().map(|a| a.as_bytes().to_vec()).collect();
        aof.feed("set", &args, b"+OK\r\n");
    }
    (lp, aof)
}

#[test]
fn each_loop_iteration_hands_the_buffer_to_the_pool_in_order() {
    let dir = TempDir::new("aof-iteration");
    let path = dir.join("appendonly.aof");
    let (mut lp, _aof) = fed(&path, &["1", "2"]);
    // One referenced timer: one iteration, whose prepare phase queues the write; the write
    // in flight keeps the loop alive until it is done.
    let tick = Timer::new(&mut lp, |_, _| {});
    tick.start(&mut lp, Duration::from_millis(1), Duration::ZERO).unwrap();
    lp.run(RunMode::Default).unwrap();
    let expected = records(&[&["SET", "k", "1"], &["SET", "k", "2"]]);
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn the_shutdown_flush_writes_what_no_iteration_handed_off() {
    let dir = TempDir::new("aof-finish");
    let path = dir.join("appendonly.aof");
    let (mut lp, aof) = fed(&path, &["1"]);
    // Nothing keeps the loop alive: `run` returns with no iteration, as after a shutdown
    // that closed everything in the iteration that ran the last command.
    lp.run(RunMode::Default).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    aof.finish().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), resp::request(&["SET", "k", "1"]));
}

/// Asks `request` until the reply is `want`, for at most 10 s.
fn ask_until(c: &mut Client, request: &[&str], want: &str) {
    retry(|| {
        let reply = c.ask(request);
        if reply == want {
            Ok(())
        } else {
            Err(format!("{request:?} still replies {reply:?}, not {want:?}"))
        }
    });
}

/// Runs `attempt` every 10 ms until it succeeds; after 10 s, fails with its last complaint.
fn retry(mut attempt: impl FnMut() -> Result<(), String>) {
    let limit = Instant::now() + Duration::from_secs(10);
    while let Err(why) = attempt() {
        assert!(Instant::now() < limit, "{why}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_key_that_expired_and_was_written_again_is_replayed_as_written() {
    // Nothing expires during a replay: without the DEL logged at each expiry, the INCR below
    // would replay onto the old 5, and the end of the load would then remove the key.
    let dir = TempDir::new("aof-expired");
    let path = dir.0.join("appendonly.aof");
    let mut mini = start(&path);
    let mut c = Client::connect(mini.addr);
    for request in
        [&["SET", "lazy", "5", "PX", "100"][..], &["RPUSH", "l", "a", "b"], &["PEXPIRE", "l", "100"]]
    {
        c.ask(request);
    }
    c.ask(&["SET", "active", "5", "PX", "100"]);
    // Lazily: touched after its deadline. Actively: DBSIZE counts a key until the expiry
    // cycle (every 100 ms) removes it, and nothing touches `active` meanwhile.
    ask_until(&mut c, &["EXISTS", "lazy"], ":0\r\n");
    ask_until(&mut c, &["DBSIZE"], ":0\r\n");
    assert_eq!(c.ask(&["INCR", "lazy"]), ":1\r\n");
    assert_eq!(c.ask(&["INCR", "active"]), ":1\r\n");
    assert_eq!(c.ask(&["RPUSH", "l", "c"]), ":1\r\n");
    assert!(terminate(&mut mini).success());
    for _ in 0..2 {
        // Twice: the restart must not lose them either.
        let mut mini = start(&path);
        let mut c = Client::connect(mini.addr);
        assert_eq!(c.ask(&["MGET", "lazy", "active"]), "*2\r\n$1\r\n1\r\n$1\r\n1\r\n");
        assert_eq!(c.ask(&["LRANGE", "l", "0", "-1"]), "*1\r\n$1\r\nc\r\n");
        assert_eq!(c.ask(&["DBSIZE"]), ":3\r\n");
        assert!(terminate(&mut mini).success());
    }
}

#[test]
fn a_failed_write_refuses_write_commands_until_a_retry_succeeds() {
    if !common::have_client("a_failed_write_refuses_write_commands_until_a_retry_succeeds", "prlimit") {
        return;
    }
    let dir = TempDir::new("aof-misconf");
    let path = dir.join("appendonly.aof");
    // A file size limit makes the second record's write fail (EFBIG; SIGXFSZ ignored).
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"trap "" XFSZ; exec prlimit --fsize=200:unlimited "$@""#, "sh"]);
    cmd.arg(fresh_example("mini_redis")).args(["127.0.0.1:0", "--aof"]).arg(&path);
    let mut mini = start_example(cmd);
    let mut c = Client::connect(mini.addr);
    let value = "v".repeat(150);
    assert_eq!(c.ask(&["SET", "a", &value]), "+OK\r\n");
    assert_eq!(c.ask(&["SET", "b", &value]), "+OK\r\n");
    let misconf = "-MISCONF Errors writing to the AOF file: File too large\r\n";
    // (A DEL of nothing is not logged: polling with it adds nothing to the file.)
    ask_until(&mut c, &["DEL", "nokey"], misconf);
    assert_eq!(c.ask(&["SET", "c", "1"]), misconf);
    // PING too, as in Redis: a health check sees the failure.
    assert_eq!(c.ask(&["PING"]), misconf);
    assert_eq!(c.ask(&["GET", "c"]), "$-1\r\n");
    assert_eq!(c.ask(&["DBSIZE"]), ":2\r\n");
    // Once the file may grow, the timer's retry writes the record again and writes are
    // accepted.
    let pid = mini.child.id().to_string();
    assert!(Command::new("prlimit")
        .args(["--pid", &pid, "--fsize=unlimited:unlimited"])
        .status()
        .unwrap()
        .success());
    ask_until(&mut c, &["SET", "c", "1"], "+OK\r\n");
    assert!(terminate(&mut mini).success());
    let expected = records(&[&["SET", "a", &value], &["SET", "b", &value], &["SET", "c", "1"]]);
    assert_eq!(std::fs::read(&path).unwrap(), expected);
}

#[test]
fn a_file_that_starts_with_select_0_as_redis_writes_them_loads() {
    let data = [resp::request(&["SELECT", "0"]), resp::request(&["SET", "k", "v"])].concat();
    let mut server = Server::default();
    assert_eq!(aof::replay(&data, &mut server, 0), Ok(data.len()));
    assert_eq!(server.db.len(), 1);
    let other_db = resp::request(&["SELECT", "1"]);
    assert!(aof::replay(&other_db, &mut Server::default(), 0).is_err());
}

#[test]
fn a_write_in_the_file_survives_sigkill() {
    let dir = TempDir::new("aof-sigkill");
    let path = dir.join("appendonly.aof");
    let mut mini = start(&path);
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["RPUSH", "l", "a", "b"]), ":2\r\n");
    let expected = records(&[&["RPUSH", "l", "a", "b"]]);
    // No shutdown flush with SIGKILL: wait until the pool's write has reached the file.
    retry(|| {
        let reached = std::fs::metadata(&path).unwrap().len() >= expected.len() as u64;
        if reached {
            Ok(())
        } else {
            Err("the write did not reach the file within 10 s".into())
        }
    });
    mini.child.kill().unwrap();
    mini.child.wait().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let mini = start(&path);
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["LRANGE", "l", "0", "-1"]), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    assert_eq!(c.ask(&["CONFIG", "GET", "appendonly"]), "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n");
}

#[test]
fn a_truncated_last_record_is_cut_off_and_the_rest_replayed() {
    let dir = TempDir::new("aof-truncated");
    let path = dir.join("appendonly.aof");
    let whole = records(&[&["SET", "a", "1"], &["RPUSH", "l", "x", "y"]]);
    let mut file = whole.clone();
    file.extend_from_slice(&resp::request(&["SET", "b", "2"]));
    file.truncate(file.len() - 3);
    let dropped = file.len() - whole.len();
    std::fs::write(&path, &file).unwrap();

    let mut cmd = command(&path);
    cmd.stderr(Stdio::piped());
    let mut mini = start_example(cmd);
    // Repaired before `listening on`: the whole commands, nothing after.
    assert_eq!(std::fs::read(&path).unwrap(), whole);
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["DBSIZE"]), ":2\r\n");
    assert_eq!(c.ask(&["GET", "a"]), "$1\r\n1\r\n");
    assert_eq!(c.ask(&["LRANGE", "l", "0", "-1"]), "*2\r\n$1\r\nx\r\n$1\r\ny\r\n");
    assert_eq!(c.ask(&["GET", "b"]), "$-1\r\n");
    assert_eq!(c.ask(&["SET", "c", "3"]), "+OK\r\n");
    assert!(terminate(&mut mini).success());
    let mut stderr = String::new();
    mini.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains(&format!("{dropped} bytes dropped")), "{stderr}");

    let mini = start(&path);
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["MGET", "a", "b", "c"]), "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
}

#[test]
fn a_malformed_record_before_the_end_stops_the_start_and_leaves_the_file() {
    let dir = TempDir::new("aof-malformed");
    let path = dir.join("appendonly.aof");
    let first = resp::request(&["SET", "a", "1"]);
    let last = resp::request(&["SET", "b", "2"]);
    let middles: [&[u8]; 3] = [b"garbage\r\n", b"*2\r\n$3\r\nGET\r\n$x\r\n", &resp::request(&["PING"])];
    for middle in middles {
        let contents = [&first[..], middle, &last[..]].concat();
        std::fs::write(&path, &contents).unwrap();
        let mut child = command(&path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let status = wait_within(&mut child, 10, "mini_redis on a malformed AOF");
        let mut out = String::new();
        child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        child.stderr.take().unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(status.code(), Some(1), "{out}");
        assert!(out.contains("Bad file format reading the append only file"), "{out}");
        assert!(!out.contains("listening on"), "{out}");
        assert_eq!(std::fs::read(&path).unwrap(), contents, "the file was touched");
    }
}

#[test]
fn records_are_redis_7_propagation() {
    let wall = 1_700_000_000_000;
    let log = |args: &[&str], reply: &str| {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let mut out = Vec::new();
        aof::record(
            &mut out,
            &String::from_utf8(args[0].to_ascii_lowercase()).unwrap(),
            &args,
            reply.as_bytes(),
            || wall,
        );
        String::from_utf8(out).unwrap()
    };
    assert_eq!(
        log(&["SET", "k", "v", "EX", "10"], "+OK\r\n"),
        "*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$13\r\n1700000010000\r\n"
    );
    assert_eq!(
        log(&["set", "k", "v", "nx", "px", "250"], "+OK\r\n"),
        log(&["SET", "k", "v", "PXAT", "1700000000250"], "+OK\r\n")
    );
    assert_eq!(
        log(&["SET", "k", "v", "EXAT", "1800000000"], "+OK\r\n"),
        log(&["SET", "k", "v", "PXAT", "1800000000000"], "+OK\r\n")
    );
    // PXAT and KEEPTTL are logged as they came.
    assert_eq!(
        log(&["SET", "k", "v", "PXAT", "5"], "+OK\r\n"),
        String::from_utf8(resp::request(&["SET", "k", "v", "PXAT", "5"])).unwrap()
    );
    assert_eq!(
        log(&["PEXPIRE", "k", "500", "GT"], ":1\r\n"),
        "*3\r\n$9\r\nPEXPIREAT\r\n$1\r\nk\r\n$13\r\n1700000000500\r\n"
    );
    assert_eq!(log(&["EXPIRE", "k", "2"], ":1\r\n"), log(&["PEXPIREAT", "k", "1700000002000"], ":1\r\n"));
    assert_eq!(
        log(&["EXPIREAT", "k", "1800000000"], ":1\r\n"),
        log(&["PEXPIREAT", "k", "1800000000000"], ":1\r\n")
    );
    // A deadline already past deleted the key: logged as the DEL it was.
    assert_eq!(log(&["EXPIRE", "k", "0"], ":1\r\n"), "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
    assert_eq!(log(&["PEXPIREAT", "k", "1"], ":1\r\n"), "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
    assert_eq!(log(&["LPUSH", "l", "a"], ":1\r\n"), "*3\r\n$5\r\nLPUSH\r\n$1\r\nl\r\n$1\r\na\r\n");
    // SET with GET: the reply is the old value, so NX set only without one, XX only with one.
    assert_ne!(log(&["SET", "k", "v", "NX", "GET"], "$-1\r\n"), "");
    assert_ne!(log(&["SET", "k", "v", "XX", "GET"], "$1\r\nw\r\n"), "");
    // What changed nothing is not logged.
    for (args, reply) in [
        (&["SET", "k", "v", "NX"][..], "$-1\r\n"),
        (&["SET", "k", "v", "XX"], "$-1\r\n"),
        (&["SET", "k", "v", "NX", "GET"], "$1\r\nw\r\n"),
        (&["SET", "k", "v", "XX", "GET"], "$-1\r\n"),
        (&["DEL", "k"], ":0\r\n"),
        (&["EXPIRE", "k", "10"], ":0\r\n"),
        (&["SADD", "s", "x"], ":0\r\n"),
        (&["LPOP", "l"], "$-1\r\n"),
        (&["RPOP", "l", "2"], "*-1\r\n"),
        (&["LPUSH", "k", "x"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["GET", "k"], "$1\r\nv\r\n"),
    ] {
        assert_eq!(log(args, reply), "", "{args:?} {reply:?}");
    }
}

/// Waits until the file at `path` is smaller than `bytes`.
fn wait_until_smaller(path: &Path, bytes: u64) {
    retry(|| {
        let size = std::fs::metadata(path).unwrap().len();
        if size < bytes {
            Ok(())
        } else {
            Err(format!("{} is still {size} bytes, not under {bytes}", path.display()))
        }
    });
}

#[test]
fn bgrewriteaof_leaves_the_shortest_commands_and_loses_nothing() {
    let dir = TempDir::new("aof-rewrite");
    let path = dir.join("appendonly.aof");
    let mut mini = start(&path);
    let mut c = Client::connect(mini.addr);
    let items: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let rpush: Vec<&str> = ["RPUSH", "l"].into_iter().chain(items.iter().map(String::as_str)).collect();
    c.ask(&rpush);
    for _ in 0..500 {
        c.ask(&["INCR", "n"]);
    }
    for request in [
        &["HSET", "h", "f", "1", "g", "2"][..],
        &["SADD", "s", "3", "1", "2"],
        &["SET", "t", "v", "EX", "3600"],
    ] {
        c.ask(request);
    }
    let reply = c.ask(&["BGREWRITEAOF"]);
    assert!(reply.starts_with("+Background append only file rewriting s"), "{reply}");
    // 500 INCR records alone are 10,500 bytes; rewritten, everything fits in about 1,500.
    wait_until_smaller(&path, 2_000);
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    assert!(text.starts_with("*") && text.contains("PEXPIREAT") && !text.contains("INCR"), "{text}");
    // Appends go on after the rewrite, into the new file.
    assert_eq!(c.ask(&["INCR", "n"]), ":501\r\n");
    assert!(terminate(&mut mini).success());
    let mut mini = start(&path);
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["GET", "n"]), "$3\r\n501\r\n");
    assert_eq!(c.ask(&["LLEN", "l"]), ":200\r\n");
    assert_eq!(c.ask(&["LRANGE", "l", "199", "199"]), "*1\r\n$3\r\n199\r\n");
    assert_eq!(c.ask(&["HGETALL", "h"]), "*4\r\n$1\r\nf\r\n$1\r\n1\r\n$1\r\ng\r\n$1\r\n2\r\n");
    assert_eq!(c.ask(&["SMEMBERS", "s"]), "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n");
    let ttl: u64 = c.ask(&["TTL", "t"]).trim_start_matches(':').trim().parse().unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert!(terminate(&mut mini).success());
}

#[test]
fn the_file_is_rewritten_by_itself_once_it_doubles_past_the_minimum_size() {
    let dir = TempDir::new("aof-auto-rewrite");
    let path = dir.join("appendonly.aof");
    let mut cmd = command(&path);
    cmd.args(["--auto-aof-rewrite-min-size", "4000"]);
    let mut mini = start_example(cmd);
    let mut c = Client::connect(mini.addr);
    for _ in 0..1_000 {
        c.ask(&["INCR", "n"]);
    }
    // 21,000 bytes of INCR records without a rewrite; with one each time the file passes
    // 4,000 bytes (checked every 100 ms), it ends as one SET and the INCRs since.
    wait_until_smaller(&path, 4_000);
    let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
    assert!(text.starts_with("*3\r\n$3\r\nSET\r\n$1\r\nn\r\n"), "not rewritten: {text}");
    assert!(terminate(&mut mini).success());
    let mini = start(&path);
    assert_eq!(Client::connect(mini.addr).ask(&["GET", "n"]), "$4\r\n1000\r\n");
}

#[test]
fn bgrewriteaof_without_an_aof_is_an_error() {
    let mut cmd = Command::new(fresh_example("mini_redis"));
    cmd.arg("127.0.0.1:0");
    let mini = start_example(cmd);
    let reply = Client::connect(mini.addr).ask(&["BGREWRITEAOF"]);
    assert_eq!(reply, "-ERR Append only file is off: start mini_redis with --aof PATH\r\n");
}

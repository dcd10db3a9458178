//! mini_redis end to end: raw RESP over a std TcpStream, `redis-cli`, `redis-benchmark`, and
//! the replies of a real `redis-server` for the same requests; and the parser on its own (pure
//! code, included from the example). The keyspace and the server on the simulator are in
//! mini_redis_sim.rs.

mod common;

// The parser, pure code, tested here on its own too.
#[path = "../examples/mini_redis/resp.rs"]
mod resp;

// A RESP client, shared with mini_redis_aof.rs.
#[path = "common/redis.rs"]
mod redis;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fresh_example, have_client, start_example, Example};
use redis::{read_reply, Client};

fn mini_redis() -> Example {
    let mut cmd = Command::new(fresh_example("mini_redis"));
    cmd.arg("127.0.0.1:0");
    start_example(cmd)
}

/// A real redis-server on a free port, no persistence; `None` (skipped) if not installed.
fn redis_server(test: &str) -> Option<Example> {
    if !have_client(test, "redis-server") {
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let server = Example { child, addr };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not listen on {addr} within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(server)
}

/// Requests whose replies do not depend on a hash table's order, errors included.
const SCRIPT: &[&[&str]] = &[
    &["PING"],
    &["ping", "hello"],
    &["PING", "a", "b"],
    &["ECHO", "x y"],
    &["ECHO"],
    &["SELECT", "0"],
    &["SELECT", "x"],
    &["FLUSHALL"],
    &["DBSIZE"],
    &["NOSUCH", "a", "b"],
    &["nosuch"],
    &["GET", "k"],
    &["SET", "k", "v"],
    &["GET", "k"],
    &["GET"],
    &["SET", "k"],
    &["SET", "k", "v", "NX"],
    &["SET", "k", "w", "XX", "GET"],
    &["SET", "k2", "v", "XX"],
    &["SET", "k", "v", "EX", "0"],
    &["SET", "k", "v", "EX", "x"],
    &["SET", "k", "v", "EX"],
    &["SET", "k", "v", "NX", "XX"],
    &["SET", "k", "v", "BOGUS"],
    &["SET", "t", "v", "EX", "100"],
    &["TTL", "t"],
    &["SET", "t", "w", "KEEPTTL"],
    &["TTL", "t"],
    &["PERSIST", "t"],
    &["TTL", "t"],
    &["TTL", "nokey"],
    &["PTTL", "nokey"],
    &["EXPIRE", "t", "100"],
    &["EXPIRE", "t", "50", "GT"],
    &["EXPIRE", "t", "50", "LT"],
    &["EXPIRE", "t", "50", "NX"],
    &["EXPIRE", "t", "50", "NX", "XX"],
    &["EXPIRE", "t", "50", "BOGUS"],
    &["EXPIRE", "t", "x"],
    &["EXPIRE", "nokey", "10"],
    &["PEXPIRE", "t", "-1"],
    &["EXISTS", "t"],
    &["SET", "p", "v", "PXAT", "99999999999999"],
    &["SET", "p", "v", "EXAT", "0"],
    &["SET", "p", "v", "PXAT", "x"],
    &["PEXPIREAT", "p", "99999999999999"],
    &["EXPIREAT", "p", "99999999999", "GT"],
    &["EXPIREAT", "p", "99999999999", "LT"],
    &["EXPIREAT", "p", "x"],
    &["PEXPIREAT", "p"],
    &["PEXPIREAT", "nokey", "1"],
    &["EXPIREAT", "p", "1"],
    &["EXISTS", "p"],
    &["GETSET", "g", "1"],
    &["GETSET", "g", "2"],
    &["INCR", "g"],
    &["INCRBY", "g", "10"],
    &["DECR", "g"],
    &["DECRBY", "g", "5"],
    &["INCRBY", "g", "x"],
    &["INCR", "k"],
    &["SET", "big", "9223372036854775807"],
    &["INCR", "big"],
    &["DECRBY", "g", "-9223372036854775808"],
    &["SET", "z", "007"],
    &["INCR", "z"],
    &["APPEND", "a", "hello"],
    &["APPEND", "a", " world"],
    &["STRLEN", "a"],
    &["STRLEN", "nokey"],
    &["MSET", "m1", "1", "m2", "2"],
    &["MSET", "m1", "1", "m2"],
    &["MGET", "m1", "nokey", "m2"],
    &["DEL", "m1", "m2", "nokey"],
    &["EXISTS", "a", "a", "nokey"],
    &["TYPE", "a"],
    &["TYPE", "nokey"],
    &["LPUSH", "l", "a", "b", "c"],
    &["RPUSH", "l", "d"],
    &["LLEN", "l"],
    &["LRANGE", "l", "0", "-1"],
    &["LRANGE", "l", "1", "2"],
    &["LRANGE", "l", "-2", "100"],
    &["LRANGE", "l", "5", "10"],
    &["LRANGE", "l", "x", "1"],
    &["LPOP", "l"],
    &["RPOP", "l"],
    &["LPOP", "l", "5"],
    &["LPOP", "l"],
    &["LPOP", "l", "2"],
    &["LPOP", "l", "-1"],
    &["LPOP", "l", "1", "2"],
    &["TYPE", "l"],
    &["GET", "l"],
    &["LPUSH", "a", "x"],
    &["TYPE", "a"],
    &["HSET", "h", "f", "1", "g", "2"],
    &["HSET", "h", "f", "3"],
    &["HSET", "h", "f"],
    &["HGET", "h", "f"],
    &["HGET", "h", "nofield"],
    &["HDEL", "h", "f", "nofield"],
    &["HGETALL", "h"],
    &["HDEL", "h", "g"],
    &["EXISTS", "h"],
    &["HGET", "a", "f"],
    &["SADD", "s", "x", "y", "x"],
    &["SCARD", "s"],
    &["SREM", "s", "x", "nomember"],
    &["SMEMBERS", "s"],
    &["SREM", "s", "y"],
    &["SCARD", "s"],
    &["SADD", "a", "x"],
    // Small hashes answer in insertion order, small integer sets ascending, as in Redis.
    &["HSET", "o", "z", "1", "a", "2", "m", "3"],
    &["HSET", "o", "a", "9", "b", "4"],
    &["HDEL", "o", "z"],
    &["HGETALL", "o"],
    &["SADD", "n", "10", "-3", "7", "10", "2", "-9223372036854775808"],
    &["SREM", "n", "7", "x", "07"],
    &["SMEMBERS", "n"],
    &["SADD", "n", "07"],
    &["SCARD", "n"],
    &["DEL", "o", "n"],
    &["KEYS", "nomatch*"],
    &["PUBLISH", "nochannel", "hi"],
    &["CONFIG", "GET"],
    &["CLIENT", "SETNAME", "tester"],
    &["CLIENT", "SETNAME", "two words"],
    &["FLUSHALL", "junk"],
    &["FLUSHALL", "sync", "x"],
    &["DBSIZE"],
    &["FLUSHALL", "ASYNC"],
    &["DBSIZE"],
];

#[test]
fn replies_match_redis_server() {
    let Some(real) = redis_server("replies_match_redis_server") else { return };
    let mini = mini_redis();
    let (mut theirs, mut ours) = (Client::connect(real.addr), Client::connect(mini.addr));
    for request in SCRIPT {
        assert_eq!(ours.ask(request), theirs.ask(request), "{request:?}");
    }
}

#[test]
fn commands_reply_as_redis_7() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    let expect = [
        (&["PING"][..], "+PONG\r\n"),
        (&["SET", "k", "v"], "+OK\r\n"),
        (&["GET", "k"], "$1\r\nv\r\n"),
        (&["NOSUCH", "a"], "-ERR unknown command 'NOSUCH', with args beginning with: 'a' \r\n"),
        (&["GET"], "-ERR wrong number of arguments for 'get' command\r\n"),
        (&["INCR", "k"], "-ERR value is not an integer or out of range\r\n"),
        (&["LPUSH", "k", "x"], "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        (&["SET", "k", "v", "PX"], "-ERR syntax error\r\n"),
        (&["CONFIG", "GET", "save"], "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"),
        (&["CONFIG", "GET", "appendonly"], "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"),
        (&["COMMAND", "DOCS"], "*0\r\n"),
        (&["DBSIZE"], ":1\r\n"),
    ];
    for (request, reply) in expect {
        assert_eq!(c.ask(request), reply, "{request:?}");
    }
    let info = c.ask(&["INFO"]);
    assert!(info.contains("redis_version:") && info.contains("db0:keys=1,expires=0"), "{info}");
    assert_eq!(c.raw(b"SET k \"a b\"\r\nGET k\r\n", 2), "+OK\r\n$3\r\na b\r\n");
}

#[test]
fn keys_matches_glob_patterns() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    for key in ["hello", "hallo", "hxllo", "hllo", "heeeello", "h*llo"] {
        c.ask(&["SET", key, "1"]);
    }
    let mut cases: Vec<(&str, Vec<&str>)> = vec![
        ("h?llo", vec!["h*llo", "hallo", "hello", "hxllo"]),
        ("h*llo", vec!["h*llo", "hallo", "heeeello", "hello", "hllo", "hxllo"]),
        ("h[ae]llo", vec!["hallo", "hello"]),
        ("h[^e]llo", vec!["h*llo", "hallo", "hxllo"]),
        ("h[a-b]llo", vec!["hallo"]),
        ("h\\*llo", vec!["h*llo"]),
    ];
    for (pattern, want) in cases.iter_mut() {
        let reply = c.ask(&["KEYS", pattern]);
        let mut got: Vec<&str> = reply.lines().skip(1).filter(|l| !l.starts_with('$')).collect();
        got.sort();
        assert_eq!(&got, want, "KEYS {pattern}");
    }
}

#[test]
fn hashes_and_sets_list_their_members() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    c.ask(&["HSET", "h", "f", "1", "g", "2"]);
    c.ask(&["SADD", "s", "x", "y"]);
    let sorted = |reply: String| {
        let mut lines: Vec<String> = reply.lines().skip(1).map(str::to_owned).collect();
        lines.sort();
        lines.join(",")
    };
    assert_eq!(sorted(c.ask(&["HGETALL", "h"])), "$1,$1,$1,$1,1,2,f,g");
    assert_eq!(sorted(c.ask(&["SMEMBERS", "s"])), "$1,$1,x,y");
}

#[test]
fn a_malformed_request_gets_the_protocol_error_and_the_close() {
    let mini = mini_redis();
    let long_inline = "x".repeat(70 << 10);
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$536870913\r\n", "invalid bulk length"),
        (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
        (b"SET k \"v\r\n", "unbalanced quotes in request"),
        (b"SET k \"v\"x\r\n", "unbalanced quotes in request"),
        (long_inline.as_bytes(), "too big inline request"),
    ];
    for (request, error) in cases {
        let mut c = Client::connect(mini.addr);
        assert_eq!(c.raw(b"PING\r\n", 1), "+PONG\r\n");
        c.w.write_all(request).unwrap();
        let what = String::from_utf8_lossy(&request[..request.len().min(20)]);
        assert_eq!(c.rest(), format!("-ERR Protocol error: {error}\r\n"), "{what}");
    }
}

#[test]
fn quit_replies_then_closes() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    c.w.write_all(b"PING\r\nQUIT\r\nPING\r\n").unwrap();
    assert_eq!(c.rest(), "+PONG\r\n+OK\r\n");
}

/// A pipeline of multibulk and inline requests, and its replies.
const PIPELINE: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nab\r\nGET k\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n\r\n*0\r\nAPPEND k \"c\\x41\"\n*1\r\n$4\r\nPING\r\n";
const PIPELINE_REPLIES: &str = "+OK\r\n$2\r\nab\r\n$0\r\n\r\n:4\r\n+PONG\r\n";

/// Parses every complete request in `buf` the way the server does.
fn parse_all(buf: &mut Vec<u8>, into: &mut Vec<Vec<Vec<u8>>>) {
    let limits = resp::Limits::default();
    while let Some((args, used)) = resp::parse(buf, &limits).unwrap() {
        buf.drain(..used);
        if !args.is_empty() {
            into.push(args);
        }
    }
}

#[test]
fn the_parser_gives_the_same_requests_however_the_input_is_split() {
    let mut whole = Vec::new();
    parse_all(&mut PIPELINE.to_vec(), &mut whole);
    assert_eq!(whole.len(), 5);
    assert_eq!(whole[3], [b"APPEND".to_vec(), b"k".to_vec(), b"cA".to_vec()]);
    for split in 0..=PIPELINE.len() {
        let (mut buf, mut got) = (PIPELINE[..split].to_vec(), Vec::new());
        parse_all(&mut buf, &mut got);
        buf.extend_from_slice(&PIPELINE[split..]);
        parse_all(&mut buf, &mut got);
        assert_eq!(got, whole, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn pipelined_input_sent_byte_by_byte_gets_the_same_replies() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.raw(PIPELINE, 5), PIPELINE_REPLIES);
    c.w.set_nodelay(true).unwrap();
    for byte in PIPELINE {
        c.w.write_all(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(c.raw(b"", 5), PIPELINE_REPLIES);
}

#[test]
fn keys_expire_when_touched_and_by_the_active_cycle() {
    let mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    c.ask(&["SET", "lazy", "v", "PX", "1"]);
    for i in 0..50 {
        c.ask(&["SET", &format!("k{i}"), "v", "PX", "1"]);
    }
    c.ask(&["SET", "stays", "v", "EX", "100"]);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.ask(&["GET", "lazy"]), "$-1\r\n");
    assert_eq!(c.ask(&["TTL", "lazy"]), ":-2\r\n");
    // DBSIZE counts expired keys not yet removed: only the active cycle brings it to 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.ask(&["DBSIZE"]) != ":1\r\n" {
        assert!(Instant::now() < deadline, "expired keys still counted after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.ask(&["GET", "stays"]), "$1\r\nv\r\n");
}

#[test]
fn subscribers_get_what_is_published() {
    let mini = mini_redis();
    let (mut sub, mut publisher) = (Client::connect(mini.addr), Client::connect(mini.addr));
    assert_eq!(sub.ask(&["SUBSCRIBE", "news", "chat"]), "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(read_reply(&mut sub.r), "*3\r\n$9\r\nsubscribe\r\n$4\r\nchat\r\n:2\r\n");
    assert_eq!(
        sub.ask(&["GET", "k"]),
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(sub.ask(&["PING"]), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(publisher.ask(&["PUBLISH", "news", "hi"]), ":1\r\n");
    assert_eq!(read_reply(&mut sub.r), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n");
    assert_eq!(sub.ask(&["UNSUBSCRIBE", "news"]), "*3\r\n$11\r\nunsubscribe\r\n$4\r\nnews\r\n:1\r\n");
    assert_eq!(publisher.ask(&["PUBLISH", "news", "hi"]), ":0\r\n");
    assert_eq!(sub.ask(&["UNSUBSCRIBE"]), "*3\r\n$11\r\nunsubscribe\r\n$4\r\nchat\r\n:0\r\n");
    assert_eq!(sub.ask(&["UNSUBSCRIBE"]), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
    assert_eq!(sub.ask(&["GET", "k"]), "$-1\r\n");
}

#[test]
fn a_subscriber_that_does_not_read_is_disconnected_past_the_hard_limit() {
    // The hard limit is 32 MiB of queued output; kernel buffers hold a few MiB more. Without
    // the limit, every PUBLISH below would reach the subscriber.
    let mini = mini_redis();
    let (mut sub, mut publisher) = (Client::connect(mini.addr), Client::connect(mini.addr));
    sub.ask(&["SUBSCRIBE", "firehose"]);
    let message = "m".repeat(256 << 10);
    let mut reached = 0;
    for _ in 0..1000 {
        if publisher.ask(&["PUBLISH", "firehose", &message]) == ":0\r\n" {
            break;
        }
        reached += 1;
    }
    assert!((128..1000).contains(&reached), "{reached} messages reached the subscriber");
    assert_eq!(publisher.ask(&["PING"]), "+PONG\r\n");
}

/// `redis-cli ARGS` against `addr`; its output.
fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn redis_cli_speaks_to_it() {
    if !have_client("redis_cli_speaks_to_it", "redis-cli") {
        return;
    }
    let mini = mini_redis();
    let cases: &[(&[&str], &str)] = &[
        (&["PING"], "PONG\n"),
        (&["SET", "k", "10"], "OK\n"),
        (&["INCRBY", "k", "5"], "15\n"),
        (&["GET", "k"], "15\n"),
        (&["RPUSH", "l", "a", "b"], "2\n"),
        (&["LRANGE", "l", "0", "-1"], "a\nb\n"),
        (&["HSET", "h", "f", "v"], "1\n"),
        (&["HGET", "h", "f"], "v\n"),
        (&["SADD", "s", "m"], "1\n"),
        (&["SMEMBERS", "s"], "m\n"),
        (&["EXPIRE", "k", "100"], "1\n"),
        (&["TYPE", "h"], "hash\n"),
        (&["DBSIZE"], "4\n"),
        (&["--no-raw", "GET", "nokey"], "(nil)\n"),
        (
            &["--no-raw", "GET", "l"],
            "(error) WRONGTYPE Operation against a key holding the wrong kind of value\n",
        ),
        (&["FLUSHALL"], "OK\n"),
        (&["DBSIZE"], "0\n"),
    ];
    for (args, want) in cases {
        assert_eq!(redis_cli(mini.addr, args), *want, "redis-cli {args:?}");
    }
    assert!(redis_cli(mini.addr, &["INFO"]).contains("redis_version:"));
    redis_cli(mini.addr, &["SET", "k", "v", "EX", "100"]);
    let ttl = redis_cli(mini.addr, &["TTL", "k"]);
    assert!(["100\n", "99\n"].contains(&ttl.as_str()), "{ttl}");
}

/// `redis-cli --no-raw` reading `commands` from its stdin, one per line; what it printed.
fn redis_cli_script(addr: SocketAddr, commands: &str) -> String {
    let mut child = Command::new("timeout")
        .args(["60", "redis-cli", "--no-raw", "-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "redis-cli: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn redis_cli_prints_for_every_command_what_it_prints_for_redis_server() {
    // The whole diff script (every command but the connection-state ones, which have their
    // own tests), errors included, through redis-cli's own parser and printer.
    if !have_client("redis_cli_prints_for_every_command_what_it_prints_for_redis_server", "redis-cli") {
        return;
    }
    let Some(real) = redis_server("redis_cli_prints_for_every_command_what_it_prints_for_redis_server")
    else {
        return;
    };
    let mini = mini_redis();
    let quote = |arg: &&str| format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\""));
    let script: String =
        SCRIPT.iter().map(|request| request.iter().map(quote).collect::<Vec<_>>().join(" ") + "\n").collect();
    let (ours, theirs) = (redis_cli_script(mini.addr, &script), redis_cli_script(real.addr, &script));
    assert!(theirs.lines().count() >= SCRIPT.len(), "{theirs}");
    for (i, (a, b)) in ours.lines().zip(theirs.lines()).enumerate() {
        assert_eq!(a, b, "line {i} of redis-cli's output");
    }
    assert_eq!(ours, theirs);
}

#[test]
fn redis_benchmark_runs_clean() {
    if !have_client("redis_benchmark_runs_clean", "redis-benchmark") {
        return;
    }
    let mini = mini_redis();
    let out = Command::new("timeout")
        .args(["120", "redis-benchmark", "-q", "-n", "20000", "-t", "ping,set,get,incr,lpush,lpop,mset"])
        .args(["-h", "127.0.0.1", "-p", &mini.addr.port().to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for test in ["PING_INLINE", "PING_MBULK", "SET", "GET", "INCR", "LPUSH", "LPOP", "MSET (10 keys)"] {
        assert!(stdout.contains(&format!("{test}: ")), "no {test} row: {stdout}");
    }
    assert!(!stdout.contains("ERR") && !stderr.contains("ERR"), "{stdout}\n{stderr}");
    let mut c = Client::connect(mini.addr);
    assert!(c.ask(&["GET", "key:__rand_int__"]).starts_with("$3\r\n"));
}

#[test]
fn sigterm_closes_the_connections_and_exits_0() {
    let mut mini = mini_redis();
    let mut c = Client::connect(mini.addr);
    assert_eq!(c.ask(&["PING"]), "+PONG\r\n");
    let status = Command::new("kill").args(["-TERM", &mini.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    // The connection ends without waiting for the client, as Redis ends its clients'.
    assert_eq!(c.rest(), "");
    let status = common::wait_within(&mut mini.child, 10, "mini_redis after SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(mini.addr).is_err(), "still accepting after SIGTERM");
}

#[test]
fn bad_arguments_get_one_line_and_exit_2() {
    let bad: [&[&str]; 5] = [
        &["--aof"],
        &["not-an-address"],
        &["127.0.0.1:0", "127.0.0.1:0"],
        &["--auto-aof-rewrite-min-size", "64mb"],
        &["--bogus"],
    ];
    for args in bad {
        let out = Command::new(fresh_example("mini_redis")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("mini_redis: ") && stderr.lines().count() == 1, "{args:?}: {stderr}");
    }
    let out = Command::new(fresh_example("mini_redis")).arg("--aof").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "mini_redis: usage: mini_redis [ADDR] [--aof PATH] [--auto-aof-rewrite-min-size BYTES]\n"
    );
}

//! The command table and the commands on strings, keys and the server; the aggregate types
//! are in `types.rs`. Replies and errors are Redis 7's, byte for byte.

use evloop::{Loop, TcpStream};

use super::aof::{self, Aof};
use super::db::{glob_match, Db, Value};
use super::pubsub::PubSub;
use super::resp::{self, parse_i64, Limits};
use super::types;

/// Everything the commands share.
#[derive(Default)]
pub struct Server {
    pub db: Db,
    pub pubsub: PubSub,
    pub limits: Limits,
    /// The append-only file, if the server has one.
    pub aof: Option<Aof>,
    /// The AOF is being replayed: no key expires meanwhile (Redis' `server.loading`).
    pub loading: bool,
}

/// What the connection does after a command.
#[derive(PartialEq, Eq, Debug)]
pub enum After {
    Continue,
    /// Close once the replies have gone (`QUIT`).
    Close,
}

/// The reply of a command that failed; the text after `-`.
pub type Failed = String;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const SYNTAX: &str = "ERR syntax error";

/// Arity as Redis declares it: `n` exactly, `-n` at least `n`, the name included.
fn arity(name: &str) -> Option<i32> {
    Some(match name {
        "ping" | "unsubscribe" | "quit" | "command" | "info" | "flushall" => -1,
        "dbsize" | "bgrewriteaof" => 1,
        "echo" | "select" | "get" | "incr" | "decr" | "strlen" | "ttl" | "pttl" | "persist" | "type"
        | "keys" | "llen" | "hgetall" | "smembers" | "scard" => 2,
        "getset" | "incrby" | "decrby" | "append" | "hget" | "publish" => 3,
        "lrange" => 4,
        "set" | "expire" | "pexpire" | "expireat" | "pexpireat" | "mset" | "lpush" | "rpush" | "hdel"
        | "sadd" | "srem" => -3,
        "del" | "exists" | "mget" | "lpop" | "rpop" | "subscribe" | "client" | "config" => -2,
        "hset" => -4,
        _ => return None,
    })
}

/// Runs one command, appending its reply to `out`.
pub fn execute<S: 'static>(
    lp: &mut Loop<S>,
    server: &mut Server,
    client: TcpStream,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) -> After {
    let mut lower = [0; 16];
    let name = lowercase(&args[0], &mut lower);
    let Some(arity) = arity(name) else {
        resp::error_reply(out, &unknown_command(args));
        return After::Continue;
    };
    let n = args.len() as i32;
    if (arity > 0 && n != arity) || n < -arity {
        resp::error_reply(out, &wrong_arity(name));
        return After::Continue;
    }
    if let Some(refused) = server.aof.as_ref().and_then(|aof| aof.refusal(name)) {
        resp::error_reply(out, &refused);
        return After::Continue;
    }
    let subscribed = server.pubsub.is_subscribed(client);
    if subscribed && !matches!(name, "ping" | "subscribe" | "unsubscribe" | "quit") {
        resp::error_reply(out, &format!("ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"));
        return After::Continue;
    }
    let now = lp.now();
    let start = out.len();
    let result = match name {
        "ping" if args.len() > 2 => Err(wrong_arity("ping")),
        "ping" if subscribed => {
            resp::array(out, 2);
            resp::bulk(out, b"pong");
            resp::bulk(out, args.get(1).map_or(&b""[..], |a| a.as_slice()));
            Ok(())
        }
        "ping" => {
            match args.get(1) {
                Some(a) => resp::bulk(out, a),
                None => resp::simple(out, "PONG"),
            }
            Ok(())
        }
        "echo" => {
            resp::bulk(out, &args[1]);
            Ok(())
        }
        "quit" => {
            resp::simple(out, "OK");
            return After::Close;
        }
        "bgrewriteaof" => match server.aof.clone() {
            Some(aof) => {
                aof.request_rewrite(lp, &server.db).map(|text| resp::simple(out, text)).map_err(String::from)
            }
            None => Err("ERR Append only file is off: start mini_redis with --aof PATH".into()),
        },
        "subscribe" | "unsubscribe" | "publish" => {
            subscriptions(lp, &mut server.pubsub, client, name, &args[1..], out);
            Ok(())
        }
        _ => server_or_data(server, name, args, now, out),
    };
    if let Err(e) = result {
        resp::error_reply(out, &e);
    }
    if let Some(aof) = &server.aof {
        // Keys the command found expired were removed before it ran: their DELs first.
        aof.feed_expired(&mut server.db);
        aof.feed(name, args, &out[start..]);
    }
    After::Continue
}

/// `name` in lower case, in `buf`: no allocation per command. Too long for any command
/// name, or not UTF-8: the empty name, which no command has.
fn lowercase<'a>(name: &[u8], buf: &'a mut [u8; 16]) -> &'a str {
    let Some(buf) = buf.get_mut(..name.len()) else { return "" };
    for (to, from) in buf.iter_mut().zip(name) {
        *to = from.to_ascii_lowercase();
    }
    std::str::from_utf8(buf).unwrap_or("")
}

fn flush_all(db: &mut Db, out: &mut Vec<u8>) {
    db.clear();
    resp::simple(out, "OK");
}

/// Runs a command read from the append-only file: no client, the reply (`out`) is scratch,
/// and a command that fails is skipped, as Redis does. `Err` if it is not a write command or
/// has the wrong arity: the file is not one of ours.
pub fn replay(server: &mut Server, args: &[Vec<u8>], now: u64, out: &mut Vec<u8>) -> Result<(), Failed> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    let n = args.len() as i32;
    // Redis' own files start with `SELECT 0` (one database here).
    if name == "select" && args.get(1).map(|a| a.as_slice()) == Some(b"0") && n == 2 {
        return Ok(());
    }
    match arity(&name) {
        Some(arity) if aof::is_write(&name) && !((arity > 0 && n != arity) || n < -arity) => {
            let _ = server_or_data(server, &name, args, now, out);
            Ok(())
        }
        _ => Err(format!("command '{name}' with {} arguments", n - 1)),
    }
}

/// Redis' reply to a command it does not know.
fn unknown_command(args: &[Vec<u8>]) -> String {
    let mut rest = String::new();
    for arg in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let arg = String::from_utf8_lossy(arg);
        let take: String = arg.chars().take(128 - rest.len()).collect();
        rest.push_str(&format!("'{take}' "));
    }
    let name: String = String::from_utf8_lossy(&args[0]).chars().take(128).collect();
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}

pub fn wrong_arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

fn subscriptions<S>(
    lp: &mut Loop<S>,
    pubsub: &mut PubSub,
    client: TcpStream,
    name: &str,
    args: &[Vec<u8>],
    out: &mut Vec<u8>,
) {
    let confirm = |out: &mut Vec<u8>, kind: &[u8], channel: Option<&[u8]>, count: usize| {
        resp::array(out, 3);
        resp::bulk(out, kind);
        match channel {
            Some(c) => resp::bulk(out, c),
            None => resp::nil(out),
        }
        resp::int(out, count as i64);
    };
    match name {
        "subscribe" => {
            for channel in args {
                let count = pubsub.subscribe(client, channel);
                confirm(out, b"subscribe", Some(channel), count);
            }
        }
        "unsubscribe" => {
            let channels = if args.is_empty() { pubsub.channels_of(client) } else { args.to_vec() };
            if channels.is_empty() {
                confirm(out, b"unsubscribe", None, 0);
            }
            for channel in channels {
                let count = pubsub.unsubscribe(client, &channel);
                confirm(out, b"unsubscribe", Some(&channel), count);
            }
        }
        _ => {
            let receivers = pubsub.publish(lp, &args[0], &args[1]);
            resp::int(out, receivers as i64);
        }
    }
}

fn server_or_data(
    server: &mut Server,
    name: &str,
    args: &[Vec<u8>],
    now: u64,
    out: &mut Vec<u8>,
) -> Result<(), Failed> {
    let db = &mut server.db;
    match name {
        "select" => match parse_i64(&args[1]) {
            None => return Err(NOT_INTEGER.into()),
            Some(0) => resp::simple(out, "OK"),
            Some(_) => return Err("ERR DB index is out of range".into()),
        },
        "dbsize" => resp::int(out, db.len() as i64),
        // Redis 7.0 takes `ASYNC` or `SYNC` (both flush at once here) and nothing else: a
        // typo must not cost the whole dataset.
        "flushall" => match &args[1..] {
            [] => flush_all(db, out),
            [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {
                flush_all(db, out)
            }
            _ => return Err(SYNTAX.into()),
        },
        "command" => resp::array(out, 0),
        "client" => client_command(args, out)?,
        "config" => config_command(args, server.aof.is_some(), out)?,
        "info" => info(db, out),
        "get" => match db.get(&args[1], now) {
            None => resp::nil(out),
            Some(Value::Str(s)) => resp::bulk(out, s),
            Some(_) => return Err(WRONGTYPE.into()),
        },
        "set" => set(db, args, now, out)?,
        "getset" => {
            let old = get_string(db, &args[1], now)?;
            match old {
                Some(v) => resp::bulk(out, &v),
                None => resp::nil(out),
            }
            db.set(&args[1], Value::Str(args[2].clone()), false);
        }
        "del" | "exists" => {
            let mut count = 0;
            for key in &args[1..] {
                let found = db.get(key, now).is_some();
                count += i64::from(found && (name == "exists" || db.remove(key)));
            }
            resp::int(out, count);
        }
        "incr" | "decr" | "incrby" | "decrby" => {
            let by = match name {
                "incr" => 1,
                "decr" => -1,
                _ => {
                    let n = parse_i64(&args[2]).ok_or(NOT_INTEGER)?;
                    if name == "incrby" {
                        n
                    } else if n == i64::MIN {
                        return Err("ERR decrement would overflow".into());
                    } else {
                        -n
                    }
                }
            };
            let old = get_string(db, &args[1], now)?;
            let old = match old {
                Some(v) => parse_i64(&v).ok_or(NOT_INTEGER)?,
                None => 0,
            };
            let new = old.checked_add(by).ok_or("ERR increment or decrement would overflow")?;
            let keep_ttl = true;
            db.set(&args[1], Value::Str(new.to_string().into_bytes()), keep_ttl);
            resp::int(out, new);
        }
        "append" => {
            let max = server.limits.max_bulk;
            let old_len = get_string(db, &args[1], now)?.map_or(0, |v| v.len());
            if old_len + args[2].len() > max {
                return Err("ERR string exceeds maximum allowed size (proto-max-bulk-len)".into());
            }
            let Value::Str(s) = db.entry(&args[1], now, || Value::Str(Vec::new())) else {
                return Err(WRONGTYPE.into());
            };
            s.extend_from_slice(&args[2]);
            resp::int(out, s.len() as i64);
        }
        "strlen" => resp::int(out, get_string(db, &args[1], now)?.map_or(0, |v| v.len()) as i64),
        "mget" => {
            resp::array(out, args.len() - 1);
            for key in &args[1..] {
                match db.get(key, now) {
                    Some(Value::Str(s)) => resp::bulk(out, s),
                    _ => resp::nil(out),
                }
            }
        }
        "mset" => {
            if args.len() % 2 == 0 {
                return Err(wrong_arity("mset"));
            }
            for pair in args[1..].chunks(2) {
                db.set(&pair[0], Value::Str(pair[1].clone()), false);
            }
            resp::simple(out, "OK");
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => expire(db, name, args, now, server.loading, out)?,
        "ttl" | "pttl" => {
            let reply = match db.get(&args[1], now) {
                None => -2,
                Some(_) => match db.deadline(&args[1]) {
                    None => -1,
                    Some(at) if name == "pttl" => (at - now) as i64,
                    Some(at) => ((at - now + 500) / 1000) as i64,
                },
            };
            resp::int(out, reply);
        }
        "persist" => {
            let found = db.get(&args[1], now).is_some();
            resp::int(out, i64::from(found && db.persist(&args[1])));
        }
        "type" => {
            let kind = db.get(&args[1], now).map_or("none", Value::type_name);
            resp::simple(out, kind);
        }
        "keys" => {
            let keys: Vec<&[u8]> = db.keys(now).filter(|k| glob_match(&args[1], k)).collect();
            resp::array(out, keys.len());
            for key in keys {
                resp::bulk(out, key);
            }
        }
        _ => types::execute(db, name, args, now, out)?,
    }
    Ok(())
}

/// The string at `key`: `Ok(None)` if none, `Err` if it holds another type.
fn get_string(db: &mut Db, key: &[u8], now: u64) -> Result<Option<Vec<u8>>, Failed> {
    match db.get(key, now) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(WRONGTYPE.into()),
    }
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
fn set(db: &mut Db, args: &[Vec<u8>], now: u64, out: &mut Vec<u8>) -> Result<(), Failed> {
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<(&str, &[u8])> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = String::from_utf8_lossy(&args[i]).to_ascii_uppercase();
        let next = args.get(i + 1);
        match opt.as_str() {
            "NX" if !xx => nx = true,
            "XX" if !nx => xx = true,
            "GET" => get = true,
            "KEEPTTL" if expire.is_none() => keep_ttl = true,
            "EX" | "PX" | "EXAT" | "PXAT" if expire.is_none() && !keep_ttl => {
                let Some(value) = next else { return Err(SYNTAX.into()) };
                expire = Some((static_unit(&opt), value.as_slice()));
                i += 1;
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let expires_at = match expire {
        None => None,
        Some((unit, value)) => Some(deadline(unit, value, now, "set")?),
    };
    let old = if get { Some(get_string(db, &args[1], now)?) } else { None };
    // Only NX and XX look first: a plain SET hashes the key once less.
    let found = (nx || xx) && db.get(&args[1], now).is_some();
    if (nx && found) || (xx && !found) {
        match old {
            Some(Some(v)) => resp::bulk(out, &v),
            _ => resp::nil(out),
        }
        return Ok(());
    }
    db.set(&args[1], Value::Str(args[2].clone()), keep_ttl);
    if let Some(at) = expires_at {
        db.set_deadline(&args[1], at);
    }
    match old {
        None => resp::simple(out, "OK"),
        Some(Some(v)) => resp::bulk(out, &v),
        Some(None) => resp::nil(out),
    }
    Ok(())
}

fn static_unit(opt: &str) -> &'static str {
    match opt {
        "EX" => "EX",
        "PX" => "PX",
        "EXAT" => "EXAT",
        _ => "PXAT",
    }
}

/// The loop-time deadline of an `EX`/`PX`/`EXAT`/`PXAT` value; `command` names the command
/// in the error.
fn deadline(unit: &str, value: &[u8], now: u64, command: &str) -> Result<u64, Failed> {
    let n = parse_i64(value).ok_or(NOT_INTEGER)?;
    let invalid = || format!("ERR invalid expire time in '{command}' command");
    if n <= 0 {
        return Err(invalid());
    }
    let ms = if unit.starts_with("EX") { n.checked_mul(1000).ok_or_else(invalid)? } else { n };
    if unit.ends_with("AT") {
        // Unix time: relative to the wall clock, then to the loop's clock.
        return Ok(now.saturating_add(ms.saturating_sub(wall_ms()).max(0) as u64));
    }
    now.checked_add(ms as u64).filter(|&at| at < i64::MAX as u64).ok_or_else(invalid)
}

/// The wall clock, in Unix milliseconds.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// `EXPIRE key seconds [NX|XX|GT|LT]`, `PEXPIRE` in milliseconds, and `EXPIREAT` /
/// `PEXPIREAT` at a Unix time. While `loading` the AOF, a deadline already past is kept (at
/// `now`, so the key lasts until the loop runs) instead of deleting the key, as Redis does.
fn expire(
    db: &mut Db,
    name: &str,
    args: &[Vec<u8>],
    now: u64,
    loading: bool,
    out: &mut Vec<u8>,
) -> Result<(), Failed> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for arg in &args[3..] {
        match String::from_utf8_lossy(arg).to_ascii_uppercase().as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => return Err(format!("ERR Unsupported option {}", String::from_utf8_lossy(arg))),
        }
    }
    if nx && (xx || gt || lt) {
        return Err("ERR NX and XX, GT or LT options at the same time are not compatible".into());
    }
    if gt && lt {
        return Err("ERR GT and LT options at the same time are not compatible".into());
    }
    let n = parse_i64(&args[2]).ok_or(NOT_INTEGER)?;
    let invalid = || format!("ERR invalid expire time in '{name}' command");
    let ms = if name.starts_with("expire") { n.checked_mul(1000).ok_or_else(invalid)? } else { n };
    // The absolute forms: from the wall clock to the loop's.
    let ms = if name.ends_with("at") { ms.checked_sub(wall_ms()).ok_or_else(invalid)? } else { ms };
    let at = (now as i64).checked_add(ms).ok_or_else(invalid)?;
    if db.get(&args[1], now).is_none() {
        resp::int(out, 0);
        return Ok(());
    }
    let current = db.deadline(&args[1]);
    let refused = match current {
        None => xx || gt,
        Some(cur) => nx || (gt && at <= cur as i64) || (lt && at >= cur as i64),
    };
    if refused {
        resp::int(out, 0);
    } else if at <= now as i64 && !loading {
        db.remove(&args[1]);
        resp::int(out, 1);
    } else {
        db.set_deadline(&args[1], at.max(now as i64) as u64);
        resp::int(out, 1);
    }
    Ok(())
}

fn client_command(args: &[Vec<u8>], out: &mut Vec<u8>) -> Result<(), Failed> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("setname", 3) if args[2].iter().any(|&b| b <= b' ' || b > b'~') => {
            Err("ERR Client names cannot contain spaces, newlines or special characters.".into())
        }
        ("setname", 3) => {
            resp::simple(out, "OK");
            Ok(())
        }
        ("setname", _) => Err(wrong_arity("client|setname")),
        _ => Err(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", String::from_utf8_lossy(&args[1]))),
    }
}

/// `CONFIG GET`: what redis-benchmark and redis-cli ask about, nothing persisted.
fn config_command(args: &[Vec<u8>], appendonly: bool, out: &mut Vec<u8>) -> Result<(), Failed> {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    if sub != "get" {
        return Err(format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[1])
        ));
    }
    if args.len() < 3 {
        return Err(wrong_arity("config|get"));
    }
    let params = [("save", ""), ("appendonly", if appendonly { "yes" } else { "no" }), ("databases", "1")];
    let found: Vec<_> = params
        .iter()
        .filter(|(name, _)| args[2..].iter().any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes())))
        .collect();
    resp::array(out, found.len() * 2);
    for (name, value) in found {
        resp::bulk(out, name.as_bytes());
        resp::bulk(out, value.as_bytes());
    }
    Ok(())
}

fn info(db: &Db, out: &mut Vec<u8>) {
    let mut text = String::from("# Server\r\nredis_version:7.0.0\r\nredis_mode:standalone\r\n");
    text.push_str(&format!("process_id:{}\r\nmultiplexing_api:evloop\r\n", std::process::id()));
    text.push_str("\r\n# Keyspace\r\n");
    if !db.is_empty() {
        text.push_str(&format!("db0:keys={},expires={},avg_ttl=0\r\n", db.len(), db.volatile_len()));
    }
    resp::bulk(out, text.as_bytes());
}

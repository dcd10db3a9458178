//! The append-only file rewritten as the shortest commands that rebuild the data (Redis'
//! `BGREWRITEAOF`): one `SET`, `RPUSH`, `HSET` or `SADD` per key (aggregates 64 items to a
//! command, as Redis' `AOF_REWRITE_ITEMS_PER_CMD`) and a `PEXPIREAT` for a deadline. Without
//! it the file grows for as long as the server writes, and so does the time a restart takes.
//!
//! Redis forks and writes the snapshot from the child; mini_redis has one thread and no
//! fork, so [`snapshot`] runs on the loop (a million small keys: about 0.4 s, measured)
//! and only the file's write, fsync and rename go to the thread pool. See `Aof::rewrite` for
//! how the commands logged meanwhile are kept.

use super::db::{Db, Value};
use super::resp::command;

/// Items per command for lists, hashes and sets.
const ITEMS_PER_COMMAND: usize = 64;

/// The commands that rebuild `db` as it is at loop time `now`, deadlines as Unix times in
/// milliseconds from the wall clock's `wall_now`. Keys already past their deadline are left
/// out.
pub fn snapshot(db: &Db, now: u64, wall_now: i64) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value, deadline) in db.entries(now) {
        match value {
            Value::Str(s) => command::<&[u8]>(&mut out, &[b"SET", key, s]),
            Value::List(list) => {
                let items: Vec<&[u8]> = list.iter().map(Vec::as_slice).collect();
                for chunk in items.chunks(ITEMS_PER_COMMAND) {
                    command(&mut out, &with_head(b"RPUSH", key, chunk.iter().copied()));
                }
            }
            Value::Hash(hash) => {
                let pairs: Vec<(&[u8], &[u8])> = hash.iter().collect();
                for chunk in pairs.chunks(ITEMS_PER_COMMAND) {
                    command(&mut out, &with_head(b"HSET", key, chunk.iter().flat_map(|&(f, v)| [f, v])));
                }
            }
            Value::Set(set) => {
                let mut members = Vec::with_capacity(set.len());
                set.for_each(|m| members.push(m.to_vec()));
                for chunk in members.chunks(ITEMS_PER_COMMAND) {
                    command(&mut out, &with_head(b"SADD", key, chunk.iter().map(Vec::as_slice)));
                }
            }
        }
        if let Some(at) = deadline {
            let unix_ms = wall_now.saturating_add(at as i64 - now as i64);
            command::<&[u8]>(&mut out, &[b"PEXPIREAT", key, unix_ms.to_string().as_bytes()]);
        }
    }
    out
}

/// `name key items...`: the arguments of one command.
fn with_head<'a>(name: &'a [u8], key: &'a [u8], items: impl Iterator<Item = &'a [u8]>) -> Vec<&'a [u8]> {
    [name, key].into_iter().chain(items).collect()
}

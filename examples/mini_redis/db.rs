//! The keyspace: values by key, and the deadlines of the keys that have one.
//!
//! Expiry as Redis does it: a key past its deadline is removed when it is touched (lazily),
//! and [`Db::expire_cycle`] samples keys with a deadline so that keys nobody touches again
//! do not pile up. The keys with a deadline are also kept in a vector, so that sampling one
//! at random is O(1).

use std::collections::{HashMap, VecDeque};

use super::encodings::{HashValue, SetValue};

/// A value. The aggregates are boxed so that a value is 24 bytes, the size of a string's:
/// the keyspace table holds a million small strings in 40-byte slots instead of 80.
#[allow(clippy::box_collection)] // the extra allocation is on aggregates only, on purpose
pub enum Value {
    Str(Vec<u8>),
    List(Box<VecDeque<Vec<u8>>>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
}

impl Value {
    /// What `TYPE` says.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }

    /// Whether an aggregate lost its last element (Redis deletes such keys).
    fn is_empty_aggregate(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }
}

/// One database (mini_redis has only db 0).
#[derive(Default)]
pub struct Db {
    /// Keys as boxed slices: 16 bytes, and they never grow.
    map: HashMap<Box<[u8]>, Value>,
    /// Deadline (loop time, ms) and index in `volatile`, by key.
    expires: HashMap<Vec<u8>, (u64, usize)>,
    /// The keys with a deadline, to sample from.
    volatile: Vec<Vec<u8>>,
    /// xorshift state for sampling: no need for a real generator.
    rng: u64,
    /// Whether keys removed by expiry are kept in `expired` (for the AOF, which logs a `DEL`
    /// for each, as Redis propagates one: a replay must not find the old value).
    pub track_expired: bool,
    expired: Vec<Vec<u8>>,
}

/// How many keys one round of the active expiry cycle samples (Redis' default).
pub const SAMPLE: usize = 20;
/// Rounds at most per cycle, so that one cycle cannot stall the loop.
const MAX_ROUNDS: usize = 16;

impl Db {
    /// The number of keys, some perhaps expired but not yet removed (as Redis' `DBSIZE`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The number of keys with a deadline.
    pub fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.map.clear();
        self.expires.clear();
        self.volatile.clear();
    }

    /// Removes `key` if its deadline has passed at `now`: past it, as Redis (`now > when`), so
    /// a key still answers at its deadline's very millisecond, with a PTTL of 0.
    fn expire_if_due(&mut self, key: &[u8], now: u64) {
        // With no deadline at all (the common case), no second hash of the key.
        if !self.expires.is_empty() && self.expires.get(key).is_some_and(|&(at, _)| at < now) {
            self.expire(key);
        }
    }

    /// Removes `key` because its deadline passed, noting it if expiries are tracked.
    pub fn expire(&mut self, key: &[u8]) {
        if self.remove(key) && self.track_expired {
            self.expired.push(key.to_vec());
        }
    }

    /// The keys removed by expiry since the last call (none unless `track_expired`).
    pub fn take_expired(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.expired)
    }

    /// The value of `key`, unless expired.
    pub fn get(&mut self, key: &[u8], now: u64) -> Option<&Value> {
        self.expire_if_due(key, now);
        self.map.get(key)
    }

    /// The value of `key` to change, unless expired.
    pub fn get_mut(&mut self, key: &[u8], now: u64) -> Option<&mut Value> {
        self.expire_if_due(key, now);
        self.map.get_mut(key)
    }

    /// The value of `key`, or `make()` stored there first; the deadline stays.
    pub fn entry(&mut self, key: &[u8], now: u64, make: impl FnOnce() -> Value) -> &mut Value {
        self.expire_if_due(key, now);
        self.map.entry(key.into()).or_insert_with(make)
    }

    /// Stores `value` at `key`, dropping any deadline unless `keep_ttl`.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) {
        if !keep_ttl {
            self.persist(key);
        }
        // Overwriting keeps the stored key: no copy of it.
        match self.map.get_mut(key) {
            Some(old) => *old = value,
            None => drop(self.map.insert(key.into(), value)),
        }
    }

    /// Removes `key` if it emptied (an aggregate loses its key with its last element).
    pub fn drop_if_empty(&mut self, key: &[u8]) {
        if self.map.get(key).is_some_and(Value::is_empty_aggregate) {
            self.remove(key);
        }
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        self.persist(key);
        self.map.remove(key).is_some()
    }

    /// The keys not expired at `now`.
    pub fn keys(&self, now: u64) -> impl Iterator<Item = &[u8]> {
        self.map.keys().map(|k| &**k).filter(move |k| self.expires.get(*k).is_none_or(|&(at, _)| at >= now))
    }

    /// Every key not expired at `now`, with its value and deadline.
    pub fn entries(&self, now: u64) -> impl Iterator<Item = (&[u8], &Value, Option<u64>)> {
        self.map.iter().filter_map(move |(key, value)| {
            let deadline = if self.expires.is_empty() { None } else { self.deadline(key) };
            match deadline {
                Some(at) if at < now => None,
                _ => Some((&**key, value, deadline)),
            }
        })
    }

    /// The deadline of `key` (which must exist), if it has one.
    pub fn deadline(&self, key: &[u8]) -> Option<u64> {
        self.expires.get(key).map(|&(at, _)| at)
    }

    /// Sets the deadline of an existing `key`.
    pub fn set_deadline(&mut self, key: &[u8], at: u64) {
        if let Some(entry) = self.expires.get_mut(key) {
            entry.0 = at;
            return;
        }
        self.expires.insert(key.to_vec(), (at, self.volatile.len()));
        self.volatile.push(key.to_vec());
    }

    /// Drops the deadline of `key`; whether it had one.
    pub fn persist(&mut self, key: &[u8]) -> bool {
        if self.expires.is_empty() {
            return false;
        }
        let Some((_, index)) = self.expires.remove(key) else { return false };
        self.volatile.swap_remove(index);
        if let Some(moved) = self.volatile.get(index) {
            if let Some(entry) = self.expires.get_mut(moved) {
                entry.1 = index;
            }
        }
        true
    }

    /// One active expiry cycle at `now`: rounds of [`SAMPLE`] random keys with a deadline,
    /// removing the expired ones, repeated while more than a quarter of a round had expired
    /// (then more are likely). Returns how many keys it removed.
    pub fn expire_cycle(&mut self, now: u64) -> usize {
        let mut removed = 0;
        for _ in 0..MAX_ROUNDS {
            let mut expired = 0;
            for _ in 0..SAMPLE.min(self.volatile.len()) {
                let i = (self.next_random() % self.volatile.len() as u64) as usize;
                let key = self.volatile[i].clone();
                if self.deadline(&key).is_some_and(|at| at < now) {
                    self.expire(&key);
                    expired += 1;
                }
            }
            removed += expired;
            if expired * 4 <= SAMPLE || self.volatile.is_empty() {
                break;
            }
        }
        removed
    }

    fn next_random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = 0x9E37_79B9_7F4A_7C15;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// Redis' `stringmatchlen`: `*`, `?`, `[abc]`, `[^a-z]`, and `\` to escape.
///
/// Every token but `*` matches exactly one byte, so a mismatch only ever needs to retry from
/// the last `*` one byte further on: O(pattern x key) at worst, where trying every split at
/// every `*` (the obvious recursion) is exponential in the number of stars, a cheap way for
/// one `KEYS` to stall the server.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, and the byte it would next
    // swallow.
    let mut retry: Option<(usize, usize)> = None;
    loop {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            retry = Some((p, i));
            continue;
        }
        let Some(&c) = s.get(i) else {
            return pattern[p..].iter().all(|&b| b == b'*');
        };
        if let Some(used) = token_matches(&pattern[p..], c) {
            p += used;
            i += 1;
            continue;
        }
        match retry {
            Some((after_star, from)) => {
                p = after_star;
                i = from + 1;
                retry = Some((after_star, from + 1));
            }
            None => return false,
        }
    }
}

/// How many pattern bytes the token at the start of `p` (not `*`) takes, if it matches `c`.
fn token_matches(p: &[u8], c: u8) -> Option<usize> {
    let (matched, used) = match p {
        [] => return None,
        [b'?', ..] => (true, 1),
        [b'[', rest @ ..] => {
            let (matched, after) = class(rest, c);
            (matched, p.len() - after.len())
        }
        [b'\\', e, ..] => (*e == c, 2),
        [b, ..] => (*b == c, 1),
    };
    matched.then_some(used)
}

/// Matches `c` against the class after a `[`; returns whether it matched and the pattern
/// after the closing `]` (or its end, as Redis treats an unclosed class).
fn class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', e, rest @ ..] => {
                matched |= *e == c;
                p = rest;
            }
            // As Redis: `a-]` is the range `a`..`]`, and the class goes on after it.
            [a, b'-', b, rest @ ..] => {
                let (lo, hi) = if a <= b { (*a, *b) } else { (*b, *a) };
                matched |= (lo..=hi).contains(&c);
                p = rest;
            }
            [a, rest @ ..] => {
                matched |= *a == c;
                p = rest;
            }
        }
    }
    (matched != negate, p)
}

//! The append-only file (`--aof PATH`): every write command that changed the data, appended
//! in Redis' AOF format, and replayed on start.
//!
//! **Format.** Each record is the command as a RESP multibulk, exactly as a client sends it:
//! `*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument. Commands are logged as received,
//! except that relative times become absolute Unix times in milliseconds, so that a restart
//! does not extend a key's life (Redis 7 propagates these same forms): `SET k v EX s` / `PX
//! ms` / `EXAT s` → `SET k v PXAT <ms>`; `EXPIRE`, `PEXPIRE`, `EXPIREAT` → `PEXPIREAT k <ms>`
//! (their NX/XX/GT/LT dropped: the command took effect, so replaying it unconditionally gives
//! the same deadline), or `DEL k` when the deadline had already passed and the key went. The
//! db's deadlines are on the loop's clock; the wall clock is read when a command is logged,
//! and again when the file is replayed. A command that changed nothing is not logged: an
//! error reply, a failed `SET NX`/`XX`, a `DEL` / `PERSIST` / `HDEL` / `SREM` / `SADD` /
//! `EXPIRE` answering 0, a pop from nothing (Redis propagates only when `dirty` moved).
//!
//! **Flush schedule** (Redis' `appendfsync everysec`). Commands append to an in-memory
//! buffer. A [`Prepare`] watcher, which runs once per loop iteration just before the loop
//! blocks (where Redis' `beforeSleep` calls `flushAppendOnlyFile`), hands the whole buffer to
//! the thread pool as one positioned write. It sees every command of the iteration,
//! whatever callback ran it, and costs one pool request per iteration, not one per command;
//! a zero timer or a deferred call would need re-arming from each command. At most one write
//! is in flight: what arrives meanwhile accumulates in the buffer and goes with the next one,
//! so the file keeps the order of execution. A 1 s timer fsyncs (`sync_data`, on the pool)
//! when something was written since the last fsync. On SIGINT/SIGTERM, once the loop has
//! ended (no write in flight then: pool requests keep it alive), [`Aof::finish`] writes what
//! is left and fsyncs, before the process exits.
//!
//! **Guarantees.** After a clean shutdown (SIGINT/SIGTERM), every acknowledged write is in
//! the file, fsynced. After a power cut or a kernel crash, up to about 1 s of acknowledged
//! writes can be lost (the last fsync's age, plus the write in flight), as with Redis'
//! `everysec`. Replies leave as soon as their command ran, before its write(2) (Redis writes
//! in `beforeSleep`, before it sends the replies): for everysec that is the same guarantee,
//! since Redis' reply did not wait for the disk either, only for the page cache, which a
//! power cut loses just the same. What differs is a crash of the process alone (SIGKILL, a
//! panic): Redis loses nothing acknowledged, while here the commands of the last iteration
//! and of the write still in flight (a few milliseconds of them) can be lost, their replies
//! sent; a second SIGINT, which exits at once, counts as such a crash. A file cut by a
//! crash mid-record loads as described below. Fsync on every
//! command (`appendfsync always`) is not offered.
//!
//! **Errors.** A failed write is logged (error level) and, as in Redis, write commands get
//! `-MISCONF Errors writing to the AOF file: <reason>` until a write succeeds; the timer
//! retries once a second, at the same offset (the file holds no partial record once a retry
//! succeeds). A failed fsync is logged and refuses writes the same way until an fsync
//! succeeds.
//!
//! **Rewrite** (`BGREWRITEAOF`, or by itself once the file has doubled since the load or the
//! last rewrite and is at least `--auto-aof-rewrite-min-size`, 64 MiB by default, as Redis'
//! `auto-aof-rewrite-percentage 100`): once no write is in flight, the data is written out
//! as the shortest commands that rebuild it ([`aof_rewrite::snapshot`], on the loop), and the
//! pool writes them to `PATH.rewrite`, fsyncs it and renames it over PATH, so the file is
//! the old one or the new one, whole, whatever happens. What was logged and not yet written
//! when the snapshot was taken is in the snapshot, so it is held back, and dropped once the
//! new file is in place; commands logged during the rewrite wait in the buffer and are
//! appended to the new file. If the rewrite fails, the held-back commands and the new ones
//! go to the old file, as if nothing had happened.
//!
//! **Memory.** The buffer holds what arrived since the last hand-off: one loop iteration's
//! commands, plus, while a write is in flight, what arrives during that write(2). During a
//! write error nothing accumulates, since write commands are refused. The file is read
//! whole on start to replay it (one read, no system call per command).
//!
//! **Loading.** A file that ends mid-command (a crash mid-write) is handled as Redis'
//! `aof-load-truncated yes`: a warning says how many bytes were dropped, the file is cut at
//! the end of the last whole command, and the server starts. A malformed record before the
//! end stops the start with `Bad file format reading the append only file` and leaves the
//! file untouched. While loading, keys do not expire (as Redis' `server.loading`): a
//! deadline already past is kept until the end of the load, so the commands that followed it
//! see what they saw when they ran; then those keys are removed.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use evloop::{Loop, Prepare, Timer};

use super::aof_rewrite;
use super::commands::{self, wall_ms, Server};
use super::db::Db;
use super::resp::{self, command, parse_i64};

/// How often written data is fsynced (`appendfsync everysec`).
pub const FSYNC_PERIOD: Duration = Duration::from_secs(1);

/// A write buffer this big or smaller is kept for reuse after its write.
const SPARE_MAX: usize = 1 << 20;

/// The append-only file of a server; clones share it.
#[derive(Clone)]
pub struct Aof(Rc<RefCell<Log>>);

struct Log {
    file: Arc<File>,
    path: PathBuf,
    /// Where the next write goes: the end of what was written whole. Writes are positioned,
    /// so a retry after a failed (perhaps partial) write overwrites what that one left.
    end: u64,
    /// Commands logged and not yet handed to the pool.
    buf: Vec<u8>,
    /// The buffer of the last write, empty, for reuse.
    spare: Vec<u8>,
    writing: bool,
    syncing: bool,
    /// Something was written since the last fsync began.
    unsynced: bool,
    write_error: Option<String>,
    sync_error: Option<String>,
    /// While a rewrite is under way: what was logged before its snapshot and not written,
    /// held back (nothing is appended meanwhile) and dropped once the new file is in place,
    /// or appended to the old file after all if the rewrite fails.
    rewriting: Option<Vec<u8>>,
    /// `BGREWRITEAOF` came while a write was in flight: the rewrite starts after it.
    rewrite_wanted: bool,
    /// The file's size after the load or the last rewrite: an automatic rewrite waits until
    /// the file has doubled from it (Redis' `auto-aof-rewrite-percentage 100`) ...
    base: u64,
    /// ... and is at least this big (`auto-aof-rewrite-min-size`).
    rewrite_min_size: u64,
}

/// Redis' default `auto-aof-rewrite-min-size`.
pub const REWRITE_MIN_SIZE: u64 = 64 << 20;

impl Aof {
    /// Opens the file at `path` (created if missing) and replays it into `server` at loop
    /// time `now`, repairing a truncated end. The error says why the server cannot start.
    pub fn open(path: &Path, server: &mut Server, now: u64) -> io::Result<Aof> {
        server.db.track_expired = true;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let end = replay(&data, server, now).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("Bad file format reading the append only file {}: {e}", path.display()),
            )
        })?;
        if end < data.len() {
            // Always shown, whatever RUST_LOG says: the operator must hear of lost bytes.
            eprintln!(
                "mini_redis: warning: {} ends with an incomplete command: {} bytes dropped; \
                 the file is truncated to its last whole command ({end} bytes)",
                path.display(),
                data.len() - end
            );
            file.set_len(end as u64)?;
            file.sync_data()?;
        }
        log::info!("{}: {} bytes replayed, {} keys", path.display(), end, server.db.len());
        let aof = Aof(Rc::new(RefCell::new(Log {
            file: Arc::new(file),
            path: path.to_owned(),
            end: end as u64,
            buf: Vec::new(),
            spare: Vec::new(),
            writing: false,
            syncing: false,
            unsynced: false,
            write_error: None,
            sync_error: None,
            rewriting: None,
            rewrite_wanted: false,
            base: end as u64,
            rewrite_min_size: REWRITE_MIN_SIZE,
        })));
        // The keys whose deadline had passed by the end of the load: their DELs go first.
        aof.feed_expired(&mut server.db);
        Ok(aof)
    }

    /// Starts writing on `lp`: the per-iteration hand-off and the fsync timer, neither of
    /// which keeps the loop alive.
    pub fn start<S: 'static>(&self, lp: &mut Loop<S>) -> io::Result<()> {
        let aof = self.clone();
        let prepare = Prepare::new(lp, move |lp, _| aof.flush(lp, false));
        prepare.start(lp)?;
        prepare.unref(lp)?;
        let aof = self.clone();
        let timer = Timer::new(lp, move |lp, _| {
            // A failed write is retried here, once a second, not on every iteration.
            aof.flush(lp, true);
            aof.sync(lp);
        });
        timer.start(lp, FSYNC_PERIOD, FSYNC_PERIOD)?;
        timer.unref(lp)
    }

    /// The error reply for write command `name` while the file cannot be written, if so.
    pub fn refusal(&self, name: &str) -> Option<String> {
        let log = self.0.borrow();
        let reason = log.write_error.as_ref().or(log.sync_error.as_ref())?;
        // PING too, as Redis refuses it: a health check must see the failure.
        (is_write(name) || name == "ping")
            .then(|| format!("MISCONF Errors writing to the AOF file: {reason}"))
    }

    /// Logs command `args` (named `name`, in lower case), which ran and replied `reply`.
    pub fn feed(&self, name: &str, args: &[Vec<u8>], reply: &[u8]) {
        record(&mut self.0.borrow_mut().buf, name, args, reply, wall_ms);
    }

    /// Logs a `DEL` for each key `db` removed by expiry since the last call (Redis
    /// propagates one too): without it, a replay, in which nothing expires, would let a
    /// later command act on the old value.
    pub fn feed_expired(&self, db: &mut Db) {
        for key in db.take_expired() {
            self.feed("del", &[b"DEL".to_vec(), key], b":1\r\n");
        }
    }

    /// Hands the buffer to the pool, unless a write is in flight (or failed and this is not
    /// the retry).
    fn flush<S: 'static>(&self, lp: &mut Loop<S>, retry: bool) {
        let mut log = self.0.borrow_mut();
        if log.writing
            || log.rewriting.is_some()
            || log.buf.is_empty()
            || (log.write_error.is_some() && !retry)
        {
            return;
        }
        let spare = std::mem::take(&mut log.spare);
        // Shared with the worker, so that the data is still here if the write fails or
        // cannot be queued.
        let data = Arc::new(std::mem::replace(&mut log.buf, spare));
        let (file, offset) = (log.file.clone(), log.end);
        log.writing = true;
        drop(log);
        let (aof, of_worker, of_callback) = (self.clone(), data.clone(), data.clone());
        let queued = lp.queue_work(
            move || file.write_all_at(&of_worker, offset),
            move |_, r| aof.written(of_callback, r.and_then(|r| r)),
        );
        if let Err(e) = queued {
            // No worker thread could start: a failed write, retried by the timer.
            self.written(data, Err(e));
        }
    }

    fn written(&self, data: Arc<Vec<u8>>, r: io::Result<()>) {
        let mut log = self.0.borrow_mut();
        log.writing = false;
        match r {
            Ok(()) => {
                log.end += data.len() as u64;
                log.unsynced = true;
                if log.write_error.take().is_some() {
                    log::warn!("AOF write error looks solved: accepting write commands again");
                }
                if let Ok(mut spare) = Arc::try_unwrap(data) {
                    if spare.capacity() <= SPARE_MAX {
                        spare.clear();
                        log.spare = spare;
                    }
                }
            }
            Err(e) => {
                log::error!(
                    "Error writing to the AOF file {}: {e}; write commands are refused (MISCONF) \
                     until a write succeeds, retried every {FSYNC_PERIOD:?}",
                    log.path.display()
                );
                log.write_error = Some(reason(&e));
                // Back in front of what came since, to be written again at the same offset.
                let mut again = Arc::try_unwrap(data).unwrap_or_else(|shared| (*shared).clone());
                again.extend_from_slice(&log.buf);
                log.buf = again;
            }
        }
    }

    /// Fsyncs on the pool if something was written since the last fsync.
    fn sync<S: 'static>(&self, lp: &mut Loop<S>) {
        let mut log = self.0.borrow_mut();
        if log.syncing || !log.unsynced {
            return;
        }
        log.syncing = true;
        log.unsynced = false;
        let file = log.file.clone();
        drop(log);
        let aof = self.clone();
        if let Err(e) = lp.queue_work(move || file.sync_data(), move |_, r| aof.synced(r.and_then(|r| r))) {
            self.synced(Err(e));
        }
    }

    fn synced(&self, r: io::Result<()>) {
        let mut log = self.0.borrow_mut();
        log.syncing = false;
        match r {
            Ok(()) => log.sync_error = None,
            Err(e) => {
                log::error!(
                    "fsync of the AOF file {} failed: {e}; write commands are refused (MISCONF) \
                     until an fsync succeeds",
                    log.path.display()
                );
                log.sync_error = Some(reason(&e));
                log.unsynced = true;
            }
        }
    }

    /// Sets the size below which the file is not rewritten automatically.
    pub fn set_rewrite_min_size(&self, bytes: u64) {
        self.0.borrow_mut().rewrite_min_size = bytes;
    }

    /// `BGREWRITEAOF`: rewrites the file from `db` now, or as soon as the write in flight is
    /// done. The reply's text, or the error's.
    pub fn request_rewrite<S: 'static>(
        &self,
        lp: &mut Loop<S>,
        db: &Db,
    ) -> Result<&'static str, &'static str> {
        let mut log = self.0.borrow_mut();
        if log.rewriting.is_some() {
            return Err("ERR Background append only file rewriting already in progress");
        }
        log.rewrite_wanted = true;
        drop(log);
        Ok(if self.maybe_rewrite(lp, db) {
            "Background append only file rewriting started"
        } else {
            "Background append only file rewriting scheduled"
        })
    }

    /// Starts a rewrite if one was asked for or the file has doubled past its minimum size,
    /// unless a write is in flight (the snapshot must cover everything not yet written, and
    /// that write's result must land on the old file's end). Called by the server's 100 ms
    /// timer too. Whether it started.
    pub fn maybe_rewrite<S: 'static>(&self, lp: &mut Loop<S>, db: &Db) -> bool {
        let mut log = self.0.borrow_mut();
        let grown = log.end >= log.rewrite_min_size && log.end >= log.base.saturating_mul(2);
        if log.writing || log.rewriting.is_some() || !(log.rewrite_wanted || grown) {
            return false;
        }
        log.rewrite_wanted = false;
        // Everything logged so far is in the snapshot: what is not written yet is held back.
        let held = std::mem::take(&mut log.buf);
        log.rewriting = Some(held);
        let path = log.path.clone();
        drop(log);
        let data = aof_rewrite::snapshot(db, lp.now(), wall_ms());
        let len = data.len() as u64;
        let aof = self.clone();
        let queued = lp.queue_work(
            move || replace_file(&path, &data),
            move |_, r| aof.rewritten(len, r.and_then(|r| r)),
        );
        if let Err(e) = queued {
            self.rewritten(len, Err(e));
        }
        true
    }

    fn rewritten(&self, len: u64, r: io::Result<File>) {
        let mut log = self.0.borrow_mut();
        let held = log.rewriting.take().unwrap_or_default();
        match r {
            Ok(file) => {
                log::info!("AOF rewritten: {} is {len} bytes", log.path.display());
                log.file = Arc::new(file);
                (log.end, log.base) = (len, len);
                // The new file holds everything, fsynced: an old error is past.
                (log.unsynced, log.write_error, log.sync_error) = (false, None, None);
            }
            Err(e) => {
                log::error!("AOF rewrite of {} failed: {e}; appending to the old file", log.path.display());
                let mut buf = held;
                buf.extend_from_slice(&log.buf);
                log.buf = buf;
            }
        }
    }

    /// Writes what is left and fsyncs, on this thread: for after the loop has ended.
    pub fn finish(&self) -> io::Result<()> {
        let mut log = self.0.borrow_mut();
        if log.writing {
            return Err(io::Error::other("an AOF write is still in flight"));
        }
        if !log.buf.is_empty() {
            log.file.write_all_at(&log.buf, log.end)?;
            log.end += log.buf.len() as u64;
            log.buf.clear();
        }
        log.file.sync_data()
    }
}

/// Writes `data` to a temporary file beside `path`, fsyncs it and renames it over `path`:
/// the file is the old one or the new one, whole, whenever the process dies. The new file,
/// open for the appends that follow.
fn replace_file(path: &Path, data: &[u8]) -> io::Result<File> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".rewrite");
    let temp = PathBuf::from(temp);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&temp)?;
    let written = file
        .write_all_at(data, 0)
        .and_then(|()| file.sync_data())
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    Ok(file)
}

/// What the MISCONF reply says of `e`: the system's text, as Redis' `strerror`, without
/// Rust's ` (os error N)`.
fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text.strip_suffix(&format!(" (os error {code})")).unwrap_or(&text).to_owned(),
        None => text,
    }
}

/// Runs every whole command of `data` (an AOF's contents) on `server` at loop time `now`,
/// replies dropped. Returns where the last whole command ends: before `data.len()` if the
/// file ends mid-command. `Err`: a malformed record before that, or a command that is not a
/// write command.
pub fn replay(data: &[u8], server: &mut Server, now: u64) -> Result<usize, String> {
    // Only the data sizes the server accepted from clients; no limit on the argument count.
    let limits = resp::Limits { max_multibulk: i64::MAX, ..server.limits };
    let mut scratch = Vec::new();
    let mut pos = 0;
    server.loading = true;
    let result = loop {
        if pos == data.len() {
            break Ok(pos);
        }
        if data[pos] != b'*' {
            break Err(format!("expected '*' at byte {pos}"));
        }
        match resp::parse(&data[pos..], &limits) {
            Ok(None) => break Ok(pos),
            Ok(Some((args, _))) if args.is_empty() => break Err(format!("empty command at byte {pos}")),
            Ok(Some((args, used))) => {
                if let Err(e) = commands::replay(server, &args, now, &mut scratch) {
                    break Err(format!("{e} (at byte {pos})"));
                }
                scratch.clear();
                pos += used;
            }
            Err(e) => break Err(format!("{e} at byte {pos}")),
        }
    };
    server.loading = false;
    // The deadlines that had passed were kept at `now` while loading: their keys go now, so
    // that a client never sees them, even within the loop's first millisecond.
    let db = &mut server.db;
    let due: Vec<Vec<u8>> =
        db.keys(0).filter(|k| db.deadline(k).is_some_and(|at| at <= now)).map(<[u8]>::to_vec).collect();
    for key in due {
        db.expire(&key);
    }
    result
}

/// Whether command `name` (lower case) can change the data, and is logged when it does.
pub fn is_write(name: &str) -> bool {
    matches!(
        name,
        "set"
            | "getset"
            | "del"
            | "incr"
            | "decr"
            | "incrby"
            | "decrby"
            | "append"
            | "mset"
            | "expire"
            | "pexpire"
            | "expireat"
            | "pexpireat"
            | "persist"
            | "lpush"
            | "rpush"
            | "lpop"
            | "rpop"
            | "hset"
            | "hdel"
            | "sadd"
            | "srem"
            | "flushall"
    )
}

/// Appends to `out` the record of command `args` (named `name`, lower case), which replied
/// `reply`: nothing if it is not a write command or changed nothing, its relative times made absolute with
/// `wall_ms`, the wall clock in Unix milliseconds (read only if needed).
pub fn record(out: &mut Vec<u8>, name: &str, args: &[Vec<u8>], reply: &[u8], wall_ms: impl FnOnce() -> i64) {
    if !is_write(name) || !changed(name, args, reply) {
        return;
    }
    match name {
        "set" => match set_deadline(args, wall_ms) {
            Some(at) => {
                command::<&[u8]>(out, &[b"SET", &args[1], &args[2], b"PXAT", at.to_string().as_bytes()])
            }
            None => command(out, args),
        },
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let n = parse_i64(&args[2]).unwrap_or(0);
            let ms = if name.starts_with("expire") { n.saturating_mul(1000) } else { n };
            let now = wall_ms();
            let at = if name.ends_with("at") { ms } else { now.saturating_add(ms) };
            if at <= now {
                command::<&[u8]>(out, &[b"DEL", &args[1]]);
            } else {
                command::<&[u8]>(out, &[b"PEXPIREAT", &args[1], at.to_string().as_bytes()]);
            }
        }
        _ => command(out, args),
    }
}

/// Whether a command that replied `reply` changed the data.
fn changed(name: &str, args: &[Vec<u8>], reply: &[u8]) -> bool {
    if reply.first() == Some(&b'-') {
        return false;
    }
    let flag = |f: &[u8]| args.iter().skip(3).any(|a| a.eq_ignore_ascii_case(f));
    match name {
        // Without GET, `+OK` means it was set; with GET the reply is the old value, so NX
        // set iff there was none, and XX iff there was one.
        "set" if !flag(b"GET") => reply == b"+OK\r\n",
        "set" if flag(b"NX") => reply == b"$-1\r\n",
        "set" if flag(b"XX") => reply != b"$-1\r\n",
        "del" | "persist" | "hdel" | "srem" | "sadd" | "expire" | "pexpire" | "expireat" | "pexpireat" => {
            reply != b":0\r\n"
        }
        "lpop" | "rpop" => !matches!(reply, b"$-1\r\n" | b"*-1\r\n" | b"*0\r\n"),
        _ => true,
    }
}

/// The absolute deadline (Unix ms) of a `SET` with `EX`, `PX` or `EXAT`; `None` without one,
/// or with `PXAT`, which is logged as it is.
fn set_deadline(args: &[Vec<u8>], wall_ms: impl FnOnce() -> i64) -> Option<i64> {
    let at = args.iter().skip(3).position(|a| {
        a.eq_ignore_ascii_case(b"EX") || a.eq_ignore_ascii_case(b"PX") || a.eq_ignore_ascii_case(b"EXAT")
    })?;
    let unit = args[3 + at].to_ascii_uppercase();
    let n = parse_i64(args.get(4 + at)?)?;
    Some(match unit.as_slice() {
        b"EX" => wall_ms().saturating_add(n.saturating_mul(1000)),
        b"PX" => wall_ms().saturating_add(n),
        _ => n.saturating_mul(1000),
    })
}

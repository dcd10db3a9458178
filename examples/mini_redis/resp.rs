//! RESP2: the request parser (multibulk and inline commands) and the reply writers.
//!
//! The parser is a pure function over the bytes received so far, with no evloop in sight, so
//! that a fuzzer can drive it directly. It follows Redis' `processMultibulkBuffer` and
//! `processInlineBuffer` (networking.c), errors included, word for word.

#![allow(dead_code)] // the tests use parts the server does not

use std::fmt;

/// The sizes a request may reach, Redis' defaults unless configured.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The longest bulk argument (`proto-max-bulk-len`, 512 MiB).
    pub max_bulk: usize,
    /// The longest inline request, and the longest `*N` or `$N` line (64 KiB).
    pub max_inline: usize,
    /// The most arguments in one multibulk request (Redis: `INT_MAX`).
    pub max_multibulk: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk: 512 << 20, max_inline: 64 << 10, max_multibulk: i32::MAX as i64 }
    }
}

/// A malformed request: Redis replies `-ERR Protocol error: <this>` and closes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

/// One request: its arguments (empty for a blank line or `*0`, which Redis skips) and how many
/// bytes of the buffer it took.
pub type Parsed = (Vec<Vec<u8>>, usize);

/// Parses the first request in `buf`. `Ok(None)`: not complete yet, read more.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Option<Parsed>, ProtocolError> {
    let mut args = Args::default();
    Ok(parse_into(buf, limits, &mut args)?.map(|used| (args.as_slice().to_vec(), used)))
}

/// [`parse`] into `args`, whose buffers are reused from one request to the next: a server
/// parsing millions of small requests then allocates nothing per argument. Returns how many
/// bytes the request took; `args` holds its arguments (none for a blank line or `*0`).
pub fn parse_into(buf: &[u8], limits: &Limits, args: &mut Args) -> Result<Option<usize>, ProtocolError> {
    parse_resuming(buf, limits, args, &mut Progress::default())
}

/// [`parse_into`], going on where the last call on the same request stopped (`progress`):
/// while a request with many arguments arrives read by read, each call reads only what is
/// new, instead of all of it again (quadratic: a 3-million-argument `RPUSH` stalled the
/// server for half a minute). `buf` must hold the same request, grown, as in the last call;
/// `progress` is reset when the request completes or fails.
pub fn parse_resuming(
    buf: &[u8],
    limits: &Limits,
    args: &mut Args,
    progress: &mut Progress,
) -> Result<Option<usize>, ProtocolError> {
    args.clear();
    let parsed = match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits, args, progress),
        Some(_) => parse_inline(buf, limits, args),
    };
    if !matches!(parsed, Ok(None)) {
        *progress = Progress::default();
    }
    parsed
}

/// Where the scan of an incomplete multibulk request stopped: the first argument not
/// complete yet, and how many were still to come there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pos: usize,
    remaining: i64,
}

/// The arguments of one request, in buffers kept for the next one.
#[derive(Default)]
pub struct Args {
    bufs: Vec<Vec<u8>>,
    len: usize,
    /// Whether a buffer grew past [`Args::KEEP_BYTES`] or their number past [`Args::KEEP`].
    oversized: bool,
}

impl Args {
    /// How many argument buffers stay allocated between requests.
    const KEEP: usize = 64;
    /// The largest argument buffer kept between requests: one 100 MB value must not stay
    /// allocated for the rest of the connection.
    const KEEP_BYTES: usize = 64 << 10;

    /// The arguments.
    pub fn as_slice(&self) -> &[Vec<u8>] {
        &self.bufs[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    fn push(&mut self, data: &[u8]) {
        match self.bufs.get_mut(self.len) {
            Some(b) => {
                b.clear();
                b.extend_from_slice(data);
            }
            None => self.bufs.push(data.to_vec()),
        }
        self.len += 1;
        self.oversized |= data.len() > Self::KEEP_BYTES || self.len > Self::KEEP;
    }

    /// The bytes the argument buffers hold allocated.
    pub fn allocated(&self) -> usize {
        self.bufs.iter().map(Vec::capacity).sum()
    }

    /// Frees the buffers past what is kept between requests (call between requests).
    pub fn shrink(&mut self) {
        if std::mem::take(&mut self.oversized) {
            self.len = 0;
            self.bufs.truncate(Self::KEEP);
            for b in &mut self.bufs {
                if b.capacity() > Self::KEEP_BYTES {
                    *b = Vec::new();
                }
            }
        }
    }
}

fn error(what: &str) -> ProtocolError {
    ProtocolError(what.to_owned())
}

/// The line starting at `from` up to its `\r`, once its `\n` has arrived too (Redis looks
/// for the `\r` and assumes the byte after it). `Err` when no line end is in sight past the
/// inline limit.
fn line(buf: &[u8], from: usize, limits: &Limits, too_big: &str) -> Result<Option<usize>, ProtocolError> {
    match buf[from..].iter().position(|&b| b == b'\r') {
        None if buf.len() - from > limits.max_inline => Err(error(too_big)),
        None => Ok(None),
        Some(cr) if from + cr + 2 > buf.len() => Ok(None),
        Some(cr) => Ok(Some(from + cr)),
    }
}

fn parse_multibulk(
    buf: &[u8],
    limits: &Limits,
    args: &mut Args,
    progress: &mut Progress,
) -> Result<Option<usize>, ProtocolError> {
    let Some(cr) = line(buf, 0, limits, "too big mbulk count string")? else { return Ok(None) };
    let count = match parse_i64(&buf[1..cr]) {
        Some(n) if n <= limits.max_multibulk => n,
        _ => return Err(error("invalid multibulk length")),
    };
    let start = cr + 2;
    if count <= 0 {
        return Ok(Some(start));
    }
    let whole = Progress { pos: start, remaining: count };
    if progress.pos == 0 {
        // The usual case, the request whole in the buffer: one walk checks and copies.
        return match walk(buf, whole, limits, |arg| args.push(arg))? {
            Walk::Complete(end) => Ok(Some(end)),
            Walk::Incomplete(stopped) => {
                args.clear();
                *progress = stopped;
                Ok(None)
            }
        };
    }
    // Going on from where the last call stopped, only checking; the copies once it is whole,
    // in a second walk that cannot fail.
    match walk(buf, *progress, limits, |_| {})? {
        Walk::Incomplete(stopped) => {
            *progress = stopped;
            Ok(None)
        }
        Walk::Complete(end) => {
            walk(buf, whole, limits, |arg| args.push(arg))?;
            Ok(Some(end))
        }
    }
}

enum Walk {
    /// Every argument is here; the request ends there.
    Complete(usize),
    Incomplete(Progress),
}

/// Walks the bulk arguments `from` says, calling `each` with each complete one.
fn walk(
    buf: &[u8],
    from: Progress,
    limits: &Limits,
    mut each: impl FnMut(&[u8]),
) -> Result<Walk, ProtocolError> {
    let Progress { mut pos, mut remaining } = from;
    while remaining > 0 {
        let stopped = Walk::Incomplete(Progress { pos, remaining });
        let Some(cr) = line(buf, pos, limits, "too big bulk count string")? else { return Ok(stopped) };
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!("expected '$', got '{}'", buf[pos] as char)));
        }
        let len = match parse_i64(&buf[pos + 1..cr]) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk as u64 => n as usize,
            _ => return Err(error("invalid bulk length")),
        };
        let data = cr + 2;
        // Like Redis, the two bytes after the data are skipped unread.
        if buf.len() - data < len.saturating_add(2) {
            return Ok(stopped);
        }
        each(&buf[data..data + len]);
        pos = data + len + 2;
        remaining -= 1;
    }
    Ok(Walk::Complete(pos))
}

fn parse_inline(buf: &[u8], limits: &Limits, args: &mut Args) -> Result<Option<usize>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline { Err(error("too big inline request")) } else { Ok(None) };
    };
    let end = if nl > 0 && buf[nl - 1] == b'\r' { nl - 1 } else { nl };
    let words = split_args(&buf[..end]).ok_or_else(|| error("unbalanced quotes in request"))?;
    for word in &words {
        args.push(word);
    }
    Ok(Some(nl + 1))
}

/// Redis' `sdssplitargs`: words split on white space, `"..."` with C escapes (`\n`, `\xHH`
/// ...), `'...'` with only `\'`. A closing quote must be followed by a space or the end.
/// `None`: unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let space = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    loop {
        while i < line.len() && space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = line.get(i).copied();
            if in_double {
                match c? {
                    b'\\'
                        if line.len() > i + 3
                            && line[i + 1] == b'x'
                            && line[i + 2].is_ascii_hexdigit()
                            && line[i + 3].is_ascii_hexdigit() =>
                    {
                        arg.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    }
                    b'\\' if i + 1 < line.len() => {
                        i += 1;
                        arg.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                    }
                    b'"' => {
                        if line.get(i + 1).is_some_and(|&b| !space(b)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => arg.push(other),
                }
            } else if in_single {
                match c? {
                    b'\\' if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        arg.push(b'\'');
                    }
                    b'\'' => {
                        if line.get(i + 1).is_some_and(|&b| !space(b)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    other => arg.push(other),
                }
            } else {
                match c {
                    None => break,
                    Some(b) if space(b) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(b) => arg.push(b),
                }
            }
            i += 1;
        }
        args.push(arg);
    }
}

fn hex(b: u8) -> u8 {
    (b as char).to_digit(16).unwrap_or(0) as u8
}

/// Redis' `string2ll`: an optional `-`, digits, no leading zero, no `+`, no spaces, in range.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (negative, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    match digits {
        [] => return None,
        [b'0'] => return (!negative).then_some(0),
        [b'0', ..] => return None,
        // 19 digits fit a u64 without overflow; i64 has at most 19.
        _ if digits.len() > 19 => return None,
        _ => {}
    }
    let mut n: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    if negative {
        // -2^63 is in range, +2^63 is not.
        (n <= 1 << 63).then(|| (n as i64).wrapping_neg())
    } else {
        i64::try_from(n).ok()
    }
}

/// A request as a client sends it: a multibulk of `args`.
pub fn request(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    command(&mut out, args);
    out
}

/// A command as a multibulk of `args` (a client's request, an AOF record), appended to `out`.
pub fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    array(out, args.len());
    for arg in args {
        bulk(out, arg.as_ref());
    }
}

/// `+text`.
pub fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `-text`; line breaks become spaces, as Redis' `addReplyError` makes sure.
pub fn error_reply(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(text.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    out.extend_from_slice(b"\r\n");
}

/// `:n`.
pub fn int(out: &mut Vec<u8>, n: i64) {
    header(out, b':', n);
}

/// `$len` and the bytes.
pub fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    header(out, b'$', data.len() as i64);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// `$-1`: no value.
pub fn nil(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

/// `*n`: an array of `n` replies follows.
pub fn array(out: &mut Vec<u8>, n: usize) {
    header(out, b'*', n as i64);
}

/// `*-1`: no array.
pub fn nil_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

fn header(out: &mut Vec<u8>, kind: u8, n: i64) {
    // Digits from the end of a stack buffer: no String per reply.
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.push(kind);
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
    out.extend_from_slice(b"\r\n");
}

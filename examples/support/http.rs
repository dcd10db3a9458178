//! `http_hello`'s request framing and head parser, free of I/O: bytes in, requests out. The
//! example feeds it what it reads; the tests (tests/fuzz_cases/) and the fuzz target
//! `http_request` (fuzz/) feed it bytes alone, whole, split and byte by byte.

/// What the server needs of a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, an HTTP token.
    pub method: &'a str,
    /// The request target, as sent (no control characters).
    pub target: &'a str,
    /// HTTP/1.0 (else HTTP/1.1).
    pub http10: bool,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The length of the body that follows the head (0 without `Content-Length`).
    pub body: u64,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

impl Request<'_> {
    /// The status `http_hello` answers with: 200 for `GET` or `HEAD` of `/` (whatever the
    /// query), 404 for any other path, 405 for any other method on `/`.
    pub fn status(&self) -> u16 {
        match (self.method, self.target.split('?').next()) {
            (_, Some(path)) if path != "/" => 404,
            ("GET" | "HEAD", _) => 200,
            _ => 405,
        }
    }
}

/// Cuts one connection's byte stream into request heads, discarding each request's body:
/// the state kept between reads.
#[derive(Debug, Default)]
pub struct Framer {
    /// How much of the pending head has been searched for its end, so a head that trickles
    /// in byte by byte is not searched again from its start each time.
    scanned: usize,
    /// Body bytes of the last request still to be discarded.
    skip: u64,
}

impl Framer {
    /// Takes the next request from `buf`, the bytes received and not yet consumed: returns
    /// how many bytes of `buf` it consumed (a skipped body, then the head with its blank
    /// line), and the request, or the error status to answer before closing (400, 431, 501),
    /// or `None` when more bytes are needed. Without a request, the bytes not consumed are
    /// the start of the next head: pass them again, with what arrives next, to the next call.
    /// A head longer than `max_head` (with its blank line) is 431 as soon as that many bytes
    /// have arrived without its end.
    pub fn next<'a>(&mut self, buf: &'a [u8], max_head: usize) -> (usize, Option<Result<Request<'a>, u16>>) {
        let skipped = usize::try_from(self.skip).unwrap_or(usize::MAX).min(buf.len());
        self.skip -= skipped as u64;
        if self.skip > 0 {
            return (skipped, None);
        }
        let rest = &buf[skipped..];
        // The end may straddle what was scanned and what is new. `min`: a caller that passes
        // fewer bytes than before gets a search from where they end, not a panic.
        let from = self.scanned.saturating_sub(3).min(rest.len());
        let Some(end) = rest[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4) else {
            self.scanned = rest.len();
            return (skipped, (rest.len() >= max_head).then_some(Err(431)));
        };
        self.scanned = 0;
        let request = if end > max_head { Err(431) } else { parse(&rest[..end - 4]) };
        if let Ok(req) = &request {
            self.skip = req.body;
        }
        (skipped + end, Some(request))
    }

    /// Whether part of a body is still to be discarded.
    pub fn in_body(&self) -> bool {
        self.skip > 0
    }
}

/// Parses a request head without its final blank line, or returns the error status. Strict:
/// lines end with CRLF, the head is UTF-8, no control characters but tabs in header values,
/// no line folding, one `Host` in HTTP/1.1, no conflicting `Content-Length`.
pub fn parse(head: &[u8]) -> Result<Request<'_>, u16> {
    let head = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    let http10 = match version {
        "HTTP/1.0" => true,
        "HTTP/1.1" => false,
        _ => return Err(400),
    };
    if !is_token(method) || target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(400);
    }
    let (mut close, mut keep_alive, mut hosts) = (false, false, 0);
    let (mut body, mut expect_continue) = (None, false);
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        // A token excludes the whitespace of "Name :" and of obsolete folded lines.
        let value = value.trim_matches([' ', '\t']);
        if !is_token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(400);
        }
        let is = |h: &str| name.eq_ignore_ascii_case(h);
        if is("content-length") {
            // Digits only: `parse` would take a sign.
            let n = value.bytes().all(|b| b.is_ascii_digit()).then(|| value.parse::<u64>().ok()).flatten();
            match (n, body) {
                (Some(n), None) => body = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(400),
            }
        } else if is("transfer-encoding") {
            return Err(501);
        } else if is("connection") {
            for option in value.split(',').map(|o| o.trim_matches([' ', '\t'])) {
                close |= option.eq_ignore_ascii_case("close");
                keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        } else if is("host") {
            hosts += 1;
        } else if is("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    if !http10 && hosts != 1 {
        return Err(400);
    }
    let keep_alive = !close && (!http10 || keep_alive);
    Ok(Request { method, target, http10, keep_alive, body: body.unwrap_or(0), expect_continue })
}

/// Whether `s` is an HTTP token (a method, a header name).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

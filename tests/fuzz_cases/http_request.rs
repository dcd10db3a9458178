//! The properties of `http_hello`'s request framing (examples/support/http.rs) that the fuzz
//! target `http_request` checks on every input: shared with the tests, which replay the
//! inputs the fuzzer found and try every split of some requests.
//!
//! An input is `[max_head, split, stream...]`: the first byte picks the largest head (small
//! ones reach 431 with short inputs), the second where the stream is cut in two.

// Each includer (the tests, the fuzz target) uses a part of this and of `http`.
#![allow(dead_code)]

#[path = "../../examples/support/http.rs"]
mod http;

use http::Framer;

/// One framing result, owned, so that results from different buffers compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A request head: the request and the status `http_hello` answers with.
    Request {
        method: String,
        target: String,
        http10: bool,
        keep_alive: bool,
        body: u64,
        expect: bool,
        status: u16,
    },
    /// An error status; the connection ends after it.
    Error(u16),
}

/// Frames `chunks`, arriving one after another, as `http_hello` does: every request found
/// after each chunk, up to the first error. Asserts on the way that each call consumed at
/// most the bytes it was given, and a request at least its blank line.
pub fn frame(chunks: &[&[u8]], max_head: usize) -> Vec<Item> {
    let mut framer = Framer::default();
    let mut buf = Vec::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let mut pos = 0;
        loop {
            let (used, found) = framer.next(&buf[pos..], max_head);
            assert!(used <= buf.len() - pos, "consumed {used} of {} bytes", buf.len() - pos);
            pos += used;
            let item = match found {
                None => break,
                Some(Err(code)) => Item::Error(code),
                Some(Ok(req)) => {
                    assert!(used >= 4, "a head of {used} bytes cannot hold its blank line");
                    Item::Request {
                        method: req.method.into(),
                        target: req.target.into(),
                        http10: req.http10,
                        keep_alive: req.keep_alive,
                        body: req.body,
                        expect: req.expect_continue,
                        status: req.status(),
                    }
                }
            };
            let error = matches!(item, Item::Error(_));
            items.push(item);
            if error {
                return items;
            }
        }
        buf.drain(..pos);
    }
    items
}

/// The largest head for the first byte of an input: 4 to 512 bytes, or http_hello's 8192.
pub fn max_head(byte: u8) -> usize {
    if byte == 255 {
        8192
    } else {
        4 + 2 * usize::from(byte)
    }
}

/// Checks one fuzz input: the stream framed whole, cut in two where the input says, and
/// byte by byte, gives the same requests.
pub fn check(data: &[u8]) {
    let [head, split, stream @ ..] = data else { return };
    let max_head = max_head(*head);
    let whole = frame(&[stream], max_head);
    let at = usize::from(*split) * stream.len() / 255;
    let (a, b) = stream.split_at(at);
    assert_eq!(frame(&[a, b], max_head), whole, "split at {at}");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(frame(&bytes, max_head), whole, "byte by byte");
}

/// Checks `stream` cut in two at every point, with `max_head`.
pub fn check_every_split(stream: &[u8], max_head: usize) -> Vec<Item> {
    let whole = frame(&[stream], max_head);
    for at in 0..=stream.len() {
        let (a, b) = stream.split_at(at);
        assert_eq!(frame(&[a, b], max_head), whole, "split at {at} of {:?}", String::from_utf8_lossy(stream));
    }
    whole
}

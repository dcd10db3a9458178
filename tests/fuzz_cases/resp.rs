//! mini_redis's RESP parser (examples/mini_redis/resp.rs), fed as a server reads: a buffer
//! that grows chunk by chunk, every complete request taken off its front. Whatever the bytes
//! and however they are cut, it never panics, never takes more than the buffer holds or
//! nothing at all, and gives the same requests. Only a "too big" error may come earlier
//! when the bytes arrive in pieces: Redis, too, gives up on a line whose end has not
//! arrived within the limit, and takes the same line whole when its end is already there.

#[path = "../../examples/mini_redis/resp.rs"]
mod parser;

/// The requests taken, in order, and the protocol error that ended the stream, if any.
pub type Framed = (Vec<Vec<Vec<u8>>>, Option<String>);

/// Parses `chunks` as the server does: into one set of argument buffers, reused (and shrunk)
/// from request to request, resuming an incomplete request where the last call stopped;
/// which must give what a fresh parse of the whole buffer gives.
pub fn frame(chunks: &[&[u8]], limits: &parser::Limits) -> Framed {
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut args = parser::Args::default();
    // As the server: the parse of an incomplete request goes on where the last one stopped.
    let mut progress = parser::Progress::default();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            args.shrink();
            let parsed = parser::parse_resuming(&buf, limits, &mut args, &mut progress);
            let fresh = parser::parse(&buf, limits);
            match parsed {
                Ok(Some(used)) => {
                    assert!(used > 0 && used <= buf.len(), "took {used} of {} bytes", buf.len());
                    assert_eq!(fresh, Ok(Some((args.as_slice().to_vec(), used))), "reused buffers");
                    out.push(args.as_slice().to_vec());
                    buf.drain(..used);
                }
                Ok(None) => {
                    assert_eq!(fresh, Ok(None));
                    break;
                }
                Err(e) => {
                    assert_eq!(fresh.as_ref().err(), Some(&e));
                    return (out, Some(e.0));
                }
            }
        }
    }
    (out, None)
}

/// The first byte picks small limits (so that they are reached), the second a cut; the rest
/// is the stream.
pub fn check(data: &[u8]) {
    let [size, cut, stream @ ..] = data else { return };
    let limits = parser::Limits {
        max_bulk: 1 + *size as usize * 4,
        max_inline: 8 + *size as usize,
        max_multibulk: 1 + (*size % 64) as i64,
    };
    let whole = frame(&[stream], &limits);
    let at = (*cut as usize).min(stream.len());
    let halves = frame(&[&stream[..at], &stream[at..]], &limits);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    let one_by_one = frame(&bytes, &limits);
    for pieces in [&halves, &one_by_one] {
        same_requests(&whole, pieces);
    }
}

/// `pieces` gave what `whole` gave, except that a "too big" error may have ended it sooner.
fn same_requests(whole: &Framed, pieces: &Framed) {
    let early = pieces.1.as_deref().is_some_and(|e| e.starts_with("too big"));
    if early && pieces.0.len() <= whole.0.len() {
        assert_eq!(pieces.0[..], whole.0[..pieces.0.len()], "the requests before a too-big error");
    } else {
        assert_eq!(pieces, whole, "cut into pieces, the stream parses the same");
    }
}

//! `Pipe` on the real loop, under every backend: end of stream, EPIPE, what `open` refuses,
//! direction misuse, a closed pipe's id, 8 MiB with backpressure, a socket, liveness, and
//! what a simulated loop refuses.
//! The bodies shared with the simulator are in tests/conformance/pipe.rs.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::fd::OwnedFd;

use common::{backends, pattern, time_limit, TempDir};
use evloop::{Loop, Pipe, RunMode};

fn each_backend(mut f: impl FnMut(&mut Loop<Vec<u8>>)) {
    for backend in backends() {
        let mut lp = Loop::builder().backend(backend).state(Vec::new()).build().unwrap();
        time_limit(&mut lp, 20);
        f(&mut lp);
    }
}

/// `(read end, write end)` of a `pipe(2)`, as files, for the side a test drives itself.
fn std_pipe() -> (std::fs::File, std::fs::File) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    (r.into(), w.into())
}

#[test]
fn the_reader_gets_the_data_then_the_end_once_the_writer_closes() {
    each_backend(|lp| {
        let (r, mut w) = std_pipe();
        let reader = Pipe::open(lp, r).unwrap();
        assert!(reader.is_readable(lp) && !reader.is_writable(lp));
        w.write_all(b"hello, ").unwrap();
        w.write_all(b"pipe").unwrap();
        drop(w);
        reader
            .read_start(lp, |lp, reader, data| match data.unwrap() {
                [] => {
                    lp.state.extend_from_slice(b"<EOF>");
                    reader.close(lp).unwrap();
                }
                bytes => lp.state.extend_from_slice(bytes),
            })
            .unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.state, b"hello, pipe<EOF>");
    });
}

#[test]
fn a_write_after_the_reader_closed_fails_with_broken_pipe() {
    each_backend(|lp| {
        let (r, w) = std_pipe();
        let writer = Pipe::open(lp, w).unwrap();
        assert!(writer.is_writable(lp) && !writer.is_readable(lp));
        drop(r);
        let err = writer.write(lp, b"nobody reads").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::BrokenPipe);
        // Later writes keep failing the same way, and the loop has nothing left to do.
        assert_eq!(writer.write(lp, b"x").unwrap_err().kind(), ErrorKind::BrokenPipe);
        writer.close(lp).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn queued_writes_fail_with_broken_pipe_when_the_reader_closes() {
    each_backend(|lp| {
        let (r, w) = std_pipe();
        let writer = Pipe::open(lp, w).unwrap();
        let big = vec![7u8; 1 << 20]; // more than a pipe holds: the rest is queued
        writer
            .write_with(lp, &big, |lp, result| {
                lp.state = format!("{:?}", result.unwrap_err().kind()).into_bytes();
            })
            .unwrap();
        assert!(writer.write_queue_size(lp).unwrap() > 0);
        drop(r);
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.state, b"BrokenPipe");
        writer.close(lp).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn a_regular_file_and_a_directory_are_refused_naming_evloop_fs() {
    let dir = TempDir::new("pipe-refused");
    let path = dir.join("file.txt");
    std::fs::write(&path, b"data").unwrap();
    let mut lp = Loop::new().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let err = Pipe::open(&mut lp, file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "evloop: Pipe::open needs a pipe, FIFO, character device (a tty) or socket, and this \
         descriptor is a regular file; read and write files with evloop::fs"
    );
    let directory = std::fs::File::open(&dir.0).unwrap();
    let err = Pipe::open(&mut lp, directory).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string().contains("descriptor is a directory; read and write files with evloop::fs"),
        "{err}"
    );
}

#[test]
fn dev_null_is_refused_as_a_device_no_poller_takes() {
    each_backend(|lp| {
        let null = std::fs::File::open("/dev/null").unwrap();
        let err = Pipe::open(lp, null).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("cannot be polled (always ready, as /dev/null)"), "{err}");
        assert!(err.to_string().contains("evloop::fs"), "{err}");
    });
}

#[test]
fn reading_a_write_end_and_writing_a_read_end_are_refused_naming_the_direction() {
    let mut lp = Loop::new().unwrap();
    let (reader, writer) = Pipe::pair(&mut lp).unwrap();
    let err = writer.read_start(&mut lp, |_, _, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "evloop: this pipe is a write end (opened write-only): it cannot read");
    let err = reader.write(&mut lp, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "evloop: this pipe is a read end (opened read-only): it cannot write");
    assert_eq!(reader.try_write(&mut lp, b"x").unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(reader.shutdown(&mut lp, |_, _| {}).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert!(!writer.is_reading(&lp));
    // Nothing was started: the loop is not kept alive.
    assert!(!lp.alive());
}

#[test]
fn a_closed_pipes_id_is_refused() {
    let mut lp = Loop::new().unwrap();
    let (reader, writer) = Pipe::pair(&mut lp).unwrap();
    writer.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    let err = writer.write(&mut lp, b"x").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(writer.close(&mut lp).unwrap_err().kind(), ErrorKind::InvalidInput);
    reader.close(&mut lp).unwrap();
}

#[test]
fn eight_mib_through_a_pipe_pair_with_backpressure_byte_exact() {
    const TOTAL: usize = 8 << 20;
    const CHUNK: usize = 64 * 1024;
    struct St {
        data: Vec<u8>,
        got: Vec<u8>,
        sent: usize,
        write_said_full: usize,
        drains: usize,
        max_queued: usize,
    }
    fn pump(lp: &mut Loop<St>, writer: Pipe) {
        let data = std::mem::take(&mut lp.state.data);
        while lp.state.sent < TOTAL {
            let end = (lp.state.sent + CHUNK).min(TOTAL);
            let below = writer.write(lp, &data[lp.state.sent..end]).unwrap();
            lp.state.sent = end;
            let queued = writer.write_queue_size(lp).unwrap();
            lp.state.max_queued = lp.state.max_queued.max(queued);
            if !below {
                lp.state.write_said_full += 1;
                lp.state.data = data;
                return; // on_drain resumes
            }
        }
        writer
            .shutdown(lp, move |lp, r| {
                r.unwrap();
                writer.close(lp).unwrap();
            })
            .unwrap();
    }
    for backend in backends() {
        let st = St {
            data: pattern(TOTAL),
            got: Vec::new(),
            sent: 0,
            write_said_full: 0,
            drains: 0,
            max_queued: 0,
        };
        let mut lp = Loop::builder().backend(backend).state(st).build().unwrap();
        time_limit(&mut lp, 30);
        let (reader, writer) = Pipe::pair(&mut lp).unwrap();
        writer.set_high_water_mark(&mut lp, 128 * 1024).unwrap();
        writer
            .on_drain(&mut lp, |lp, writer| {
                lp.state.drains += 1;
                pump(lp, writer);
            })
            .unwrap();
        reader
            .read_start(&mut lp, |lp, reader, data| match data.unwrap() {
                [] => reader.close(lp).unwrap(),
                bytes => lp.state.got.extend_from_slice(bytes),
            })
            .unwrap();
        pump(&mut lp, writer);
        lp.run(RunMode::Default).unwrap();
        let st = &lp.state;
        assert!(st.got == pattern(TOTAL), "{backend:?}: {} bytes, not byte-exact", st.got.len());
        assert!(st.write_said_full > 0, "write returned false at the high-water mark");
        assert_eq!(st.drains, st.write_said_full, "one drain per false");
        // The queue never grows past the mark by more than the one write that reached it.
        assert!(st.max_queued < 128 * 1024 + CHUNK, "queue reached {}", st.max_queued);
    }
}

#[test]
fn shutdown_closes_the_write_end_so_the_reader_sees_the_end() {
    each_backend(|lp| {
        let (mut r, w) = std_pipe();
        let writer = Pipe::open(lp, w).unwrap();
        writer.write(lp, b"last words").unwrap();
        writer.shutdown(lp, |lp, r| lp.state = format!("{r:?}").into_bytes()).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.state, b"Ok(())");
        // The pipe handle is still open, but its descriptor is closed: the reader ends (read
        // non-blocking: a write end left open would be `WouldBlock`, not a hang).
        let flags = rustix::fs::fcntl_getfl(&r).unwrap();
        rustix::fs::fcntl_setfl(&r, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"last words");
        assert_eq!(writer.write(lp, b"more").unwrap_err().kind(), ErrorKind::BrokenPipe);
        writer.close(lp).unwrap();
        lp.run(RunMode::Default).unwrap();
    });
}

#[test]
fn a_socketpair_end_opens_as_a_two_way_pipe() {
    each_backend(|lp| {
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        theirs.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let pipe = Pipe::open(lp, OwnedFd::from(ours)).unwrap();
        assert!(pipe.is_readable(lp) && pipe.is_writable(lp));
        theirs.write_all(b"ping").unwrap();
        pipe.read_start(lp, |lp, pipe, data| match data.unwrap() {
            [] => pipe.close(lp).unwrap(),
            bytes => {
                lp.state.extend_from_slice(bytes);
                pipe.write(lp, b"pong").unwrap();
                // A socket half-closes: the peer sees the end, and can still answer.
                pipe.shutdown(lp, |_, r| r.unwrap()).unwrap();
            }
        })
        .unwrap();
        lp.run(RunMode::Once).unwrap();
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"pong");
        drop(theirs);
        lp.run(RunMode::Default).unwrap();
        assert_eq!(lp.state, b"ping");
    });
}

#[test]
fn a_read_end_keeps_the_loop_alive_only_while_reading() {
    each_backend(|lp| {
        let (r, _w) = std_pipe();
        let reader = Pipe::open(lp, r).unwrap();
        assert!(!lp.alive(), "an idle pipe keeps nothing alive");
        reader.read_start(lp, |_, _, _| {}).unwrap();
        assert!(lp.alive() && reader.is_active(lp));
        reader.read_stop(lp).unwrap();
        assert!(!lp.alive() && !reader.is_active(lp));
        lp.run(RunMode::Default).unwrap(); // returns at once: nothing can happen
        reader.close(lp).unwrap();
    });
}

#[test]
fn a_write_end_keeps_the_loop_alive_while_writes_are_queued() {
    each_backend(|lp| {
        let (mut r, w) = std_pipe();
        let writer = Pipe::open(lp, w).unwrap();
        let big = pattern(1 << 20);
        writer.write(lp, &big).unwrap();
        assert!(lp.alive(), "queued writes keep the loop alive");
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).map(|_| got)
        });
        writer.shutdown(lp, move |lp, _| writer.close(lp).unwrap()).unwrap();
        lp.run(RunMode::Default).unwrap();
        assert!(reader.join().unwrap().unwrap() == big);
    });
}

#[test]
fn a_simulated_loop_opens_only_its_fake_pipes() {
    let mut sim = evloop::sim::Sim::new(1, ());
    let err = Pipe::pair(&mut sim).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let (r, _w) = std_pipe();
    let err = Pipe::open(&mut sim, r).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        err.to_string(),
        "evloop::sim: a simulated loop opens only fake pipes (Sim::fake_read_pipe, Sim::fake_write_pipe)"
    );
    // A fake pipe's descriptor is checked like any other: its direction is its access mode.
    let (fd, _peer) = sim.fake_write_pipe().unwrap();
    let p = Pipe::open(&mut sim, fd).unwrap();
    assert!(p.is_writable(&sim) && !p.is_readable(&sim));
    assert_eq!(p.read_start(&mut sim, |_, _, _| {}).unwrap_err().kind(), ErrorKind::InvalidInput);
}

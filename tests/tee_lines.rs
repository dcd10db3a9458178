//! The `tee_lines` example, run as a program: 8 MiB of mixed lines through it with a
//! stdout reader that first does not read at all (stdin must stop being read: backpressure)
//! and then reads slowly; stdin as a regular file; a FILE that cannot be created; stdout
//! closed early. Run `cargo build --examples` first: stale binaries are refused.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fresh_example, TempDir};

/// The example under `timeout 60`, so that a hung program fails its test instead of
/// hanging it (`timeout` passes the program's exit status through).
fn tee_lines() -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(fresh_example("tee_lines"));
    cmd
}

/// Lines of many lengths (empty ones too), and a last line without its newline: the copy
/// must be exact, not line by line.
fn mixed_lines(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total);
    let mut i = 0usize;
    while out.len() < total {
        let len = (i * 7919) % 300;
        out.extend((0..len).map(|k| b'a' + ((i + k) % 26) as u8));
        out.push(b'\n');
        i += 1;
    }
    out.truncate(total);
    *out.last_mut().unwrap() = b'!';
    out
}

#[test]
fn eight_mib_reach_stdout_and_the_file_exactly_and_a_stalled_stdout_stops_stdin() {
    const TOTAL: usize = 8 << 20;
    let dir = TempDir::new("tee-lines-big");
    let out = dir.join("copy.txt");
    let input = Arc::new(mixed_lines(TOTAL));
    let mut child = tee_lines()
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (input, sent) = (input.clone(), sent.clone());
        std::thread::spawn(move || {
            for chunk in input.chunks(16 * 1024) {
                stdin.write_all(chunk).unwrap();
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            // Dropping stdin: the end of the input.
        })
    };

    // Nobody reads stdout: once its pipe and the program's write queue are full, the
    // program must stop reading stdin, so the writer stalls far short of 8 MiB. Stalled
    // means no progress for 300 ms (bounded: at most 10 s in all).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (sent.load(Ordering::SeqCst), Instant::now());
    while last.1.elapsed() < Duration::from_millis(300) {
        assert!(Instant::now() < deadline, "the writer never stalled: stdin is read regardless");
        std::thread::sleep(Duration::from_millis(10));
        let now = sent.load(Ordering::SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    // Two pipes (64 KiB each), the write queue's high-water mark (64 KiB) and a read or two.
    assert!(last.0 < 1 << 20, "stdin went on being read while stdout was stalled: {} bytes taken", last.0);

    // Now a slow reader: small reads with pauses, so stdout keeps backing up.
    let mut got = Vec::with_capacity(TOTAL);
    let mut buf = [0u8; 8 * 1024];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() % (256 * 1024) < n {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    writer.join().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert!(got == *input, "stdout is not byte-exact: {} of {} bytes", got.len(), TOTAL);
    let file = std::fs::read(&out).unwrap();
    assert!(file == *input, "FILE is not byte-exact: {} of {} bytes", file.len(), TOTAL);
}

#[test]
fn stdin_as_a_regular_file_is_read_through_evloop_fs() {
    let dir = TempDir::new("tee-lines-file");
    let input = mixed_lines(300 * 1024);
    let source = dir.join("in.txt");
    std::fs::write(&source, &input).unwrap();
    let out = dir.join("copy.txt");
    let output = tee_lines().arg(&out).stdin(std::fs::File::open(&source).unwrap()).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout == input, "stdout: {} of {} bytes", output.stdout.len(), input.len());
    assert!(std::fs::read(&out).unwrap() == input);

    // And stdout a regular file too (`tee_lines out < in > copy`), and empty input.
    let copy = dir.join("stdout.txt");
    let status = tee_lines()
        .arg(dir.join("copy2.txt"))
        .stdin(std::fs::File::open(&source).unwrap())
        .stdout(std::fs::File::create(&copy).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(std::fs::read(&copy).unwrap() == input);
    let output = tee_lines().arg(&out).stdin(Stdio::null()).output().unwrap();
    assert_eq!((output.status.code(), output.stdout.len()), (Some(0), 0));
    assert_eq!(std::fs::read(&out).unwrap().len(), 0, "FILE is truncated");
}

#[test]
fn a_file_in_a_missing_directory_fails_with_a_clear_message() {
    let dir = TempDir::new("tee-lines-missing");
    let out = dir.join("no/such/dir/copy.txt");
    let output = tee_lines().arg(&out).stdin(Stdio::piped()).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("tee_lines: "), "{stderr}");
    assert!(stderr.contains(&out.display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn stdout_closed_early_exits_quietly_with_141() {
    let dir = TempDir::new("tee-lines-epipe");
    let mut child = tee_lines()
        .arg(dir.join("copy.txt"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away
    let mut stdin = child.stdin.take().unwrap();
    // The program stops reading once its write fails; the broken stdin pipe ends the writer.
    for _ in 0..1024 {
        if stdin.write_all(&[b'x'; 4096]).is_err() {
            break;
        }
    }
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(141));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "", "quietly");
}

#[test]
fn stdin_and_stdout_are_left_blocking_as_they_were() {
    // The program's stdin and stdout are pipes whose descriptions the test shares (as a
    // shell shares its terminal): `Pipe::open` makes them non-blocking, the example restores
    // them on the way out.
    let dir = TempDir::new("tee-lines-flags");
    let (in_r, in_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (in_shared, out_shared) = (in_r.try_clone().unwrap(), out_w.try_clone().unwrap());
    let mut child = tee_lines().arg(dir.join("copy.txt")).stdin(in_r).stdout(out_w).spawn().unwrap();
    let mut input = std::fs::File::from(in_w);
    input.write_all(b"some bytes").unwrap();
    drop(input);
    let mut got = Vec::new();
    let reader = std::thread::spawn(move || {
        std::fs::File::from(out_r).read_to_end(&mut got).unwrap();
        got
    });
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let nonblocking = |fd: &std::os::fd::OwnedFd| {
        rustix::fs::fcntl_getfl(fd).unwrap().contains(rustix::fs::OFlags::NONBLOCK)
    };
    assert!(!nonblocking(&in_shared), "stdin left non-blocking");
    assert!(!nonblocking(&out_shared), "stdout left non-blocking");
    drop(out_shared);
    assert_eq!(reader.join().unwrap(), b"some bytes");
}

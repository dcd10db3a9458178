//! `tee` on the loop: copies stdin, exactly (bytes, not only whole lines), to stdout and to
//! FILE.
//!
//! Usage: `tee_lines FILE` (FILE is created, or truncated).
//!
//! stdin and stdout are [`Pipe`] streams (on duplicates of descriptors 0 and 1); FILE is
//! written through the thread pool with [`evloop::fs`], one write in flight at a time so the
//! appends stay in order, what arrives meanwhile gathered into the next write.
//!
//! Backpressure: reading stdin stops while stdout's reader is slow (its `write` returned
//! `false`, until the drain callback) or while more than 1 MiB waits for FILE, and resumes
//! when both have caught up. Memory stays bounded however fast stdin is.
//!
//! stdin (or stdout) may be a regular file, or `/dev/null`, which no poller takes
//! (`tee_lines out < in > copy`): then it is read (written) through `evloop::fs` instead.
//!
//! Exit status: 0 at the end of stdin once stdout and FILE have everything; 1 with a
//! message on stderr if FILE cannot be opened or written, or stdin cannot be read; 141 (as
//! a shell reports a process killed by SIGPIPE, what `tee` itself gives) without a message
//! if stdout's reader goes away first: the usual end of a pipeline such as
//! `tee_lines log | head`, not an error worth a message. What already reached FILE stays.
//!
//! stdin and stdout are left blocking, or not, as they were found: `Pipe::open` makes them
//! non-blocking on their open file descriptions, which a shell may share.

use std::io::{self, Seek};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;

use evloop::fs::{File, OpenOptions};
use evloop::{Loop, Pipe, RunMode};

/// Read size when stdin is a file.
const CHUNK: usize = 64 * 1024;
/// Bytes that may wait for a file (queued plus in flight) before stdin pauses.
const FILE_BOUND: usize = 1 << 20;
/// Exit status when stdout's reader went away (128 + SIGPIPE).
const BROKEN_PIPE_STATUS: u8 = 141;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: tee_lines FILE");
        return ExitCode::from(2);
    };
    // `Pipe::open` makes stdin and stdout non-blocking on their open file descriptions,
    // which a shell whose terminal they are shares: put them back as they were on the way
    // out, as Node does.
    let saved = [io::stdin().as_fd(), io::stdout().as_fd()].map(|fd| rustix::fs::fcntl_getfl(fd).ok());
    let result = run(path.into());
    for (fd, flags) in [io::stdin().as_fd(), io::stdout().as_fd()].into_iter().zip(saved) {
        if let Some(flags) = flags {
            let _ = rustix::fs::fcntl_setfl(fd, flags);
        }
    }
    match result {
        Ok(status) => ExitCode::from(status),
        Err(e) => {
            eprintln!("tee_lines: {e}");
            ExitCode::from(1)
        }
    }
}

/// Where bytes go: a pipe stream, or a file written through the pool.
enum Output {
    Pipe(Pipe),
    File(Sink),
}

/// A file written through the pool, in order: one write in flight, the rest gathered.
#[derive(Default)]
struct Sink {
    file: Option<File>,
    name: String,
    gathered: Vec<u8>,
    in_flight: usize,
}

impl Sink {
    fn held(&self) -> usize {
        self.gathered.len() + self.in_flight
    }
}

/// Where stdin comes from.
enum Input {
    Pipe(Pipe),
    /// A regular file (or a device no poller takes), read at `offset` through the pool.
    File {
        file: File,
        offset: u64,
    },
}

#[derive(Default)]
struct Tee {
    input: Option<Input>,
    stdout: Option<Output>,
    file: Sink,
    /// stdout's write returned false: waiting for its drain.
    stdout_full: bool,
    paused: bool,
    ended: bool,
    stdout_done: bool,
    /// Set once the program is over: its exit status.
    status: Option<u8>,
}

#[derive(Copy, Clone)]
enum Which {
    File,
    Stdout,
}

fn sink(lp: &mut Loop<Tee>, which: Which) -> Option<&mut Sink> {
    match which {
        Which::File => Some(&mut lp.state.file),
        Which::Stdout => match &mut lp.state.stdout {
            Some(Output::File(s)) => Some(s),
            _ => None,
        },
    }
}

fn run(path: std::path::PathBuf) -> io::Result<u8> {
    let mut lp = Loop::with_state(Tee::default())?;
    lp.state.file.name = path.display().to_string();
    let stdout = open_pipe(&mut lp, io::stdout().as_fd().try_clone_to_owned()?)?;
    let input = open_pipe(&mut lp, io::stdin().as_fd().try_clone_to_owned()?)?;
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    File::open(&mut lp, &path, &options, |lp, r| match r {
        Ok(file) => {
            lp.state.file.file = Some(file);
            start_stdout(lp, stdout, input);
        }
        Err(e) => fail(lp, e.to_string()), // names the path and the operation
    })?;
    lp.run(RunMode::Default)?;
    lp.state.status.ok_or_else(|| io::Error::other("stopped with work left undone"))
}

/// A `Pipe` over `fd`, or `Err(fd)` back if it is a file (or a device no poller takes).
fn open_pipe(lp: &mut Loop<Tee>, fd: OwnedFd) -> io::Result<Result<Pipe, OwnedFd>> {
    let keep = fd.try_clone()?;
    match Pipe::open(lp, fd) {
        Ok(pipe) => Ok(Ok(pipe)),
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(Err(keep)),
        Err(e) => Err(e),
    }
}

/// Opens the path of a descriptor with `evloop::fs` (a new open file description of the
/// same file), calling `then` with it.
fn open_fd_path(
    lp: &mut Loop<Tee>,
    fd: i32,
    options: &OpenOptions,
    then: impl FnOnce(&mut Loop<Tee>, File) + 'static,
) {
    let what = if fd == 0 { "stdin" } else { "stdout" };
    let r = File::open(lp, format!("/dev/fd/{fd}"), options, move |lp, r| match r {
        Ok(file) => then(lp, file),
        Err(e) => fail(lp, format!("cannot open {what}: {e}")),
    });
    if let Err(e) = r {
        fail(lp, format!("cannot open {what}: {e}"));
    }
}

fn start_stdout(lp: &mut Loop<Tee>, stdout: Result<Pipe, OwnedFd>, input: Result<Pipe, OwnedFd>) {
    match stdout {
        Ok(pipe) => {
            lp.state.stdout = Some(Output::Pipe(pipe));
            let on_drain = pipe.on_drain(lp, |lp, _| {
                lp.state.stdout_full = false;
                resume(lp);
            });
            if let Err(e) = on_drain {
                return fail(lp, format!("stdout: {e}"));
            }
            start_input(lp, input);
        }
        Err(_) => {
            // A file: appended to, so that `>>` and `>` both work from where it ends.
            let mut options = OpenOptions::new();
            options.append(true);
            open_fd_path(lp, 1, &options, move |lp, file| {
                let sink = Sink { file: Some(file), name: "stdout".into(), ..Sink::default() };
                lp.state.stdout = Some(Output::File(sink));
                start_input(lp, input);
            });
        }
    }
}

fn start_input(lp: &mut Loop<Tee>, input: Result<Pipe, OwnedFd>) {
    match input {
        Ok(pipe) => {
            lp.state.input = Some(Input::Pipe(pipe));
            let r = pipe.read_start(lp, |lp, _, data| match data {
                Ok([]) => end_of_input(lp),
                Ok(bytes) => deliver(lp, bytes),
                Err(e) => fail(lp, format!("cannot read stdin: {e}")),
            });
            if let Err(e) = r {
                fail(lp, format!("cannot read stdin: {e}"));
            }
        }
        Err(fd) => {
            // Start where the shell left the file's offset (usually its beginning).
            let offset = std::fs::File::from(fd).stream_position().unwrap_or(0);
            open_fd_path(lp, 0, OpenOptions::new().read(true), move |lp, file| {
                lp.state.input = Some(Input::File { file, offset });
                read_file(lp);
            });
        }
    }
}

/// The next read of a file given as stdin.
fn read_file(lp: &mut Loop<Tee>) {
    let Some(Input::File { file, offset }) = lp.state.input else { return };
    let r = file.read_at(lp, offset, CHUNK, |lp, r| match r {
        Ok(data) if data.is_empty() => end_of_input(lp),
        Ok(data) => {
            if let Some(Input::File { offset, .. }) = &mut lp.state.input {
                *offset += data.len() as u64;
            }
            deliver(lp, &data);
            if !lp.state.paused && lp.state.status.is_none() {
                read_file(lp);
            }
        }
        Err(e) => fail(lp, format!("cannot read stdin: {e}")),
    });
    if let Err(e) = r {
        fail(lp, format!("cannot read stdin: {e}"));
    }
}

/// Copies one chunk of stdin to both outputs, and pauses stdin if either lags.
fn deliver(lp: &mut Loop<Tee>, data: &[u8]) {
    match &lp.state.stdout {
        Some(Output::Pipe(pipe)) => {
            let pipe = *pipe;
            match pipe.write_with(lp, data, |lp, r| {
                if r.is_err() {
                    stdout_gone(lp);
                }
            }) {
                Ok(below) => lp.state.stdout_full |= !below,
                Err(_) => return stdout_gone(lp),
            }
        }
        Some(Output::File(_)) => push(lp, Which::Stdout, data),
        None => {}
    }
    push(lp, Which::File, data);
    if lagging(&lp.state) && !lp.state.paused {
        lp.state.paused = true;
        if let Some(Input::Pipe(pipe)) = lp.state.input {
            let _ = pipe.read_stop(lp);
        }
    }
}

fn lagging(st: &Tee) -> bool {
    let stdout_lags = match &st.stdout {
        Some(Output::File(s)) => s.held() >= FILE_BOUND,
        _ => st.stdout_full,
    };
    stdout_lags || st.file.held() >= FILE_BOUND
}

/// Resumes stdin once both outputs have caught up.
fn resume(lp: &mut Loop<Tee>) {
    if !lp.state.paused || lagging(&lp.state) || lp.state.ended || lp.state.status.is_some() {
        return;
    }
    lp.state.paused = false;
    match lp.state.input {
        Some(Input::Pipe(pipe)) => {
            if let Err(e) = pipe.read_resume(lp) {
                fail(lp, format!("cannot read stdin: {e}"));
            }
        }
        Some(Input::File { .. }) => read_file(lp),
        None => {}
    }
}

/// Gathers `data` for a file, and writes if no write is in flight.
fn push(lp: &mut Loop<Tee>, which: Which, data: &[u8]) {
    if let Some(s) = sink(lp, which) {
        s.gathered.extend_from_slice(data);
        if s.in_flight == 0 {
            write_gathered(lp, which);
        }
    }
}

fn write_gathered(lp: &mut Loop<Tee>, which: Which) {
    let Some(s) = sink(lp, which) else { return };
    let Some(file) = s.file else { return };
    if s.gathered.is_empty() {
        return;
    }
    let data = std::mem::take(&mut s.gathered);
    s.in_flight = data.len();
    let r = file.write(lp, data, move |lp, r| {
        let Some(s) = sink(lp, which) else { return };
        s.in_flight = 0;
        if let Err(e) = r {
            let msg = format!("cannot write {}: {e}", s.name);
            return fail(lp, msg);
        }
        write_gathered(lp, which);
        resume(lp);
        finish_if_done(lp);
    });
    if let Err(e) = r {
        fail(lp, format!("cannot write: {e}"));
    }
}

fn end_of_input(lp: &mut Loop<Tee>) {
    lp.state.ended = true;
    if let Some(Input::Pipe(pipe)) = lp.state.input {
        let _ = pipe.close(lp);
    }
    match lp.state.stdout {
        Some(Output::Pipe(pipe)) => {
            // After the queued writes: then stdout is complete.
            let r = pipe.shutdown(lp, |lp, r| match r {
                Ok(()) => {
                    lp.state.stdout_done = true;
                    finish_if_done(lp);
                }
                Err(_) => stdout_gone(lp),
            });
            if r.is_err() {
                stdout_gone(lp);
            }
        }
        _ => lp.state.stdout_done = true,
    }
    finish_if_done(lp);
}

/// At the end of stdin, once every output has all of it: exit 0.
fn finish_if_done(lp: &mut Loop<Tee>) {
    let st = &lp.state;
    let stdout_file_idle = !matches!(&st.stdout, Some(Output::File(s)) if s.held() > 0);
    if st.status.is_none() && st.ended && st.stdout_done && st.file.held() == 0 && stdout_file_idle {
        lp.state.status = Some(0);
        close_all(lp);
    }
}

/// stdout's reader went away (EPIPE): stop quietly with status 141.
fn stdout_gone(lp: &mut Loop<Tee>) {
    if lp.state.status.is_none() {
        lp.state.status = Some(BROKEN_PIPE_STATUS);
        close_all(lp);
    }
}

fn fail(lp: &mut Loop<Tee>, msg: String) {
    if lp.state.status.is_none() {
        eprintln!("tee_lines: {msg}");
        lp.state.status = Some(1);
        close_all(lp);
    }
}

/// Closes every handle; writes to FILE already submitted still complete on the pool.
fn close_all(lp: &mut Loop<Tee>) {
    match lp.state.input {
        Some(Input::Pipe(pipe)) => drop(pipe.close(lp)),
        Some(Input::File { file, .. }) => drop(file.close(lp)),
        None => {}
    }
    match &lp.state.stdout {
        Some(Output::Pipe(pipe)) => {
            let pipe = *pipe;
            drop(pipe.close(lp));
        }
        Some(Output::File(Sink { file: Some(file), .. })) => {
            let file = *file;
            drop(file.close(lp));
        }
        _ => {}
    }
    if let Some(file) = lp.state.file.file {
        drop(file.close(lp));
    }
}

//! `parallel [-j N]`: runs shell commands in parallel, as GNU parallel or `xargs -P` would.
//!
//! It reads one command per line on stdin (blank lines are skipped, but keep their number),
//! runs each with `sh -c`, at most N at a time (default: the number of CPUs), and prints
//! each line a command writes, on stdout or stderr, to its own stdout as it arrives,
//! prefixed with the command's line number (`3: hello`); a last line without a newline is
//! printed when the command's output ends. It exits with the number of commands that failed
//! (a non-zero exit, a signal, or no way to start them), at most 255. Ctrl-C (SIGINT) sends
//! SIGTERM to every running command, starts no more, and exits with 130 once they are gone.
//!
//! ```text
//! $ printf 'echo one\nsleep 1; echo two >&2\nexit 3\n' | cargo run --example parallel -- -j 2
//! 1: one
//! 2: two
//! $ echo $?
//! 1
//! ```
//!
//! The output of each command is read from the [`Pipe`] streams that [`Process::spawn`]
//! gives for its piped stdout and stderr.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};

use evloop::{Loop, Pipe, Process, RunMode, Signal};

struct App {
    /// (line number, command), in input order.
    commands: Vec<(usize, String)>,
    next: usize,
    /// The commands running.
    processes: Vec<Process>,
    /// The pipes of their output, with their line numbers.
    outputs: Vec<(usize, Pipe)>,
    jobs: usize,
    failed: usize,
    interrupted: bool,
}

fn main() -> io::Result<()> {
    env_logger::init();
    let jobs = match parse_jobs(std::env::args().skip(1)) {
        Ok(jobs) => jobs,
        Err(msg) => {
            eprintln!("parallel: {msg}\nusage: parallel [-j N] < commands");
            std::process::exit(2);
        }
    };
    let mut input = String::new();
    io::stdin().read_to_string(&mut input)?;
    let commands = input
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| (i + 1, line.to_string()))
        .collect();
    let app = App {
        commands,
        next: 0,
        processes: Vec::new(),
        outputs: Vec::new(),
        jobs,
        failed: 0,
        interrupted: false,
    };
    let mut lp = Loop::with_state(app)?;

    let sigint = Signal::new(&mut lp, |lp, watcher, _| {
        lp.state.interrupted = true;
        for process in lp.state.processes.clone() {
            let _ = process.kill(lp, Signal::SIGTERM);
        }
        let _ = watcher.close(lp);
    });
    sigint.start(&mut lp, Signal::SIGINT)?;
    // The commands keep the loop alive; the watcher only listens while they run.
    sigint.unref(&mut lp)?;

    start_more(&mut lp);
    lp.run(RunMode::Default)?;
    io::stdout().flush()?;
    let code = if lp.state.interrupted { 130 } else { lp.state.failed.min(255) as i32 };
    std::process::exit(code);
}

/// `-j N`, `-jN` or nothing (the number of CPUs).
fn parse_jobs(mut args: impl Iterator<Item = String>) -> Result<usize, String> {
    let mut jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("-j") {
            Some("") => args.next().ok_or("-j needs a number")?,
            Some(n) => n.to_string(),
            None => return Err(format!("unknown argument {arg:?}")),
        };
        jobs = value.parse().ok().filter(|&n| n > 0).ok_or(format!("-j {value:?}: not a positive number"))?;
    }
    Ok(jobs)
}

/// Starts commands until N run, the input is used up, or Ctrl-C came.
fn start_more(lp: &mut Loop<App>) {
    while !lp.state.interrupted
        && lp.state.processes.len() < lp.state.jobs
        && lp.state.next < lp.state.commands.len()
    {
        let (line_no, script) = lp.state.commands[lp.state.next].clone();
        lp.state.next += 1;
        let mut command = Command::new("sh");
        command.args(["-c", &script]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let spawned = Process::spawn(lp, &mut command, move |lp, process, status| {
            if !status.success() {
                lp.state.failed += 1;
            }
            lp.state.processes.retain(|&p| p != process);
            let _ = process.close(lp);
            if lp.state.interrupted {
                // A command killed by Ctrl-C may leave a grandchild holding its output
                // open: stop reading it rather than wait for it.
                for (_, output) in lp.state.outputs.clone().into_iter().filter(|&(n, _)| n == line_no) {
                    let _ = output.close(lp);
                }
            }
            lp.state.outputs.retain(|&(n, _)| n != line_no);
            start_more(lp);
        });
        match spawned {
            Ok(spawned) => {
                lp.state.processes.push(spawned.process);
                for output in [spawned.stdout, spawned.stderr].into_iter().flatten() {
                    if let Err(e) = print_lines(lp, line_no, output) {
                        eprintln!("parallel: {line_no}: cannot read its output: {e}");
                    }
                }
            }
            Err(e) => {
                eprintln!("parallel: {line_no}: cannot run: {e}");
                lp.state.failed += 1;
            }
        }
    }
}

/// Prints what arrives on `output` line by line, prefixed with `line_no`, until its end.
fn print_lines(lp: &mut Loop<App>, line_no: usize, output: Pipe) -> io::Result<()> {
    let mut pending = Vec::new();
    output.read_start(lp, move |lp, output, data| match data {
        Ok([]) | Err(_) => {
            // The end (or an error): the last line, even without its newline.
            if !pending.is_empty() {
                emit(line_no, &pending);
                pending.clear();
            }
            let _ = output.close(lp);
        }
        Ok(bytes) => {
            pending.extend_from_slice(bytes);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                emit(line_no, &pending[..end]);
                pending.drain(..=end);
            }
        }
    })?;
    lp.state.outputs.push((line_no, output));
    Ok(())
}

fn emit(line_no: usize, line: &[u8]) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(format!("{line_no}: ").as_bytes());
    let _ = out.write_all(line);
    let _ = out.write_all(b"\n");
}

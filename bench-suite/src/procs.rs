//! Child processes of the orchestrator: spawn (pinned to a core with `taskset` if asked),
//! read their stdout line by line with a deadline, collect `result KEY VALUE` lines, and
//! kill them (by their own id) when done.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util;

pub type Results = BTreeMap<String, f64>;

pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

/// What to run: the program, its arguments, extra environment.
#[derive(Clone, Debug)]
pub struct Spec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Spec {
    pub fn new(program: impl Into<String>, args: impl IntoIterator<Item = impl Into<String>>) -> Spec {
        Spec { program: program.into(), args: args.into_iter().map(Into::into).collect(), env: Vec::new() }
    }

    pub fn env(mut self, key: &str, value: &str) -> Spec {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl Proc {
    /// Starts `spec`, on CPU `core` if given (through `taskset`, which execs the program, so
    /// the child's id is the program's).
    pub fn spawn(name: &str, spec: &Spec, core: Option<usize>) -> Result<Proc, String> {
        let mut cmd = match core {
            Some(c) => {
                let mut cmd = Command::new("taskset");
                cmd.arg("-c").arg(c.to_string()).arg(&spec.program);
                cmd
            }
            None => Command::new(&spec.program),
        };
        cmd.args(&spec.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("{name}: cannot start {}: {e}", spec.program))?;
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut err = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the tail only.
                if s.len() > 8192 {
                    let cut = s.len() - 4096;
                    let cut = (cut..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
                    s.drain(..cut);
                }
            }
        });
        Ok(Proc { name: name.into(), child, lines, stderr })
    }

    /// Why the process is gone (exit status and the end of its stderr), after a short wait
    /// for it to finish writing.
    fn gone(&mut self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break format!("{s}"),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break "still running".into(),
            }
        };
        thread::sleep(Duration::from_millis(20));
        let err = self.stderr.lock().unwrap().trim().to_string();
        let err: String =
            err.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        if err.is_empty() {
            format!("{}: {what} ({status})", self.name)
        } else {
            format!("{}: {what} ({status}): {err}", self.name)
        }
    }

    /// The next stdout line, waiting at most until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<Option<String>, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => Ok(Some(line)),
            Err(RecvTimeoutError::Disconnected) => Ok(None),
            Err(RecvTimeoutError::Timeout) => Err(self.gone(&format!("no answer within {left:?}"))),
        }
    }

    /// Waits for the first stdout line that `f` maps to `Some`, and returns that.
    pub fn find_line<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&str) -> Option<Result<T, String>>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        while let Some(line) = self.next_line(deadline)? {
            if let Some(r) = f(&line) {
                return r.map_err(|e| format!("{}: {e}", self.name));
            }
        }
        Err(self.gone(&format!("exited before {what}")))
    }

    /// Waits for `listening PORT`.
    pub fn port(&mut self, timeout: Duration) -> Result<u16, String> {
        self.find_line(timeout, "listening", |line| {
            let p = line.strip_prefix("listening ")?;
            Some(p.trim().parse().map_err(|_| format!("bad line {line:?}")))
        })
    }

    /// Waits for a line equal to `want`.
    pub fn expect(&mut self, want: &str, timeout: Duration) -> Result<(), String> {
        self.find_line(timeout, &format!("saying {want:?}"), |line| (line.trim() == want).then_some(Ok(())))
    }

    /// Collects `result` lines until the keys in `until` are all there (the process keeps
    /// running), or, with `until` empty, until the process exits; it must exit with success.
    pub fn results(&mut self, until: &[&str], timeout: Duration) -> Result<Results, String> {
        let deadline = Instant::now() + timeout;
        let mut results = Results::new();
        loop {
            if !until.is_empty() && until.iter().all(|k| results.contains_key(*k)) {
                return Ok(results);
            }
            let Some(line) = self.next_line(deadline)? else { break };
            if let Some(rest) = line.strip_prefix("result ") {
                let mut it = rest.split_whitespace();
                let (Some(k), Some(v)) = (it.next(), it.next()) else {
                    return Err(format!("{}: bad line {line:?}", self.name));
                };
                let v: f64 = v.parse().map_err(|_| format!("{}: bad line {line:?}", self.name))?;
                results.insert(k.to_string(), v);
            }
        }
        if !until.is_empty() {
            return Err(self.gone("exited before reporting"));
        }
        self.exited(deadline)?;
        Ok(results)
    }

    /// Every stdout line until the process exits, which it must do with success by `timeout`.
    pub fn output(&mut self, timeout: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        let mut lines = Vec::new();
        while let Some(line) = self.next_line(deadline)? {
            lines.push(line);
        }
        self.exited(deadline)?;
        Ok(lines)
    }

    /// Once stdout is closed (the process is exiting): waits for its exit, which must be a
    /// success, until `deadline`.
    fn exited(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) if s.success() => return Ok(()),
                Ok(Some(_)) => return Err(self.gone("failed")),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => return Err(self.gone("did not exit")),
                Err(e) => return Err(format!("{}: wait: {e}", self.name)),
            }
        }
    }

    /// A field of the process's `/proc/PID/status` in KiB (`"VmRSS:"`).
    pub fn status_kib(&self, field: &str) -> Option<u64> {
        util::status_kib_of(&format!("/proc/{}/status", self.child.id()), field)
    }

    /// CPU time the process has used so far, all its threads, in nanoseconds (Linux:
    /// the first field of `/proc/PID/task/*/schedstat`).
    pub fn cpu_ns(&self) -> Option<u64> {
        let mut total = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(total)
    }

    /// Fails if the process has exited (a server must outlive its client).
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(self.gone("exited early")),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by its id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

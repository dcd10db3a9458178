//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use evloop::{Loop, Timer};

/// Fails the test if the loop is still running after `secs` seconds: an unreferenced timer,
/// so it never keeps the loop alive by itself.
pub fn time_limit<S>(lp: &mut Loop<S>, secs: u64) {
    let t = Timer::new(lp, move |_, _| panic!("the test did not finish within {secs} s"));
    t.start(lp, Duration::from_secs(secs), Duration::ZERO).unwrap();
    t.unref(lp).unwrap();
}

/// 127.0.0.1 with port 0: the kernel picks a free port.
pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A deterministic byte pattern of length `n`, so corruption or reordering shows.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// The open-file limit, raised to the hard limit if it is below `want` (through `prlimit`,
/// since the crate takes no libc). Returns the soft limit in force.
pub fn ensure_fd_limit(want: u64) -> u64 {
    let soft = current_fd_limit();
    if soft >= want {
        return soft;
    }
    let pid = std::process::id().to_string();
    let _ =
        std::process::Command::new("prlimit").args(["--pid", &pid, &format!("--nofile={want}:")]).status();
    current_fd_limit()
}

fn current_fd_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Resident memory of a process (VmRSS), in bytes.
pub fn rss_bytes(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

/// Runs a blocking peer `f` on a thread. When it returns, it wakes the loop, whose callback
/// runs `on_done` (typically: close the server), so `run(RunMode::Default)` ends by itself.
pub fn peer<S: 'static, T: Send + 'static>(
    lp: &mut Loop<S>,
    on_done: impl FnOnce(&mut Loop<S>) + 'static,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let mut on_done = Some(on_done);
    let waker = evloop::Waker::new(lp, move |lp, w| {
        if let Some(done) = on_done.take() {
            done(lp);
        }
        w.close(lp).unwrap();
    });
    std::thread::spawn(move || {
        let result = f();
        waker.wake().unwrap();
        result
    })
}

/// A running example program, killed when dropped so that it never outlives its test.
pub struct Example {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Path of a compiled example (`cargo test` builds them next to the test binaries).
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap(); // target/debug
    dir.join("examples").join(name)
}

/// The example's binary, refused if older than its source (run `cargo build --examples`):
/// `examples/NAME.rs`, or the newest file of the folder `examples/NAME/`.
pub fn fresh_example(name: &str) -> std::path::PathBuf {
    use std::path::Path;
    let bin = example_path(name);
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let file = examples.join(format!("{name}.rs"));
    let source = if file.exists() {
        modified(&file)
    } else {
        let folder = std::fs::read_dir(examples.join(name)).into_iter().flatten().flatten();
        folder.filter_map(|entry| modified(&entry.path())).max()
    };
    match (modified(&bin), source) {
        (Some(b), Some(s)) if b >= s => bin,
        _ => panic!("{} is missing or stale: run `cargo build --examples`", bin.display()),
    }
}

/// Starts `command` (an example, perhaps under a wrapper such as `prlimit`) and waits for
/// its `listening on ADDR` line.
pub fn start_example(command: std::process::Command) -> Example {
    let (child, listening) = start_listening(command);
    let addr = listening.parse().unwrap_or_else(|e| panic!("not an address: {listening:?}: {e}"));
    Example { child, addr }
}

/// Starts `command` and returns it with what its first line says after `listening on `
/// (`127.0.0.1:7000`, `unix:/path`), read on a thread so that a silent example fails the
/// test within 10 s.
pub fn start_listening(mut command: std::process::Command) -> (std::process::Child, String) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = command.stdout(Stdio::piped()).spawn().expect("cannot start the example");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let Some(listening) = line.as_deref().ok().and_then(|l| l.trim().strip_prefix("listening on ")) else {
        let _ = child.kill();
        panic!("the example did not say where it listens: {line:?}");
    };
    let listening = listening.to_owned();
    (child, listening)
}

/// Whether an outside client is installed. If it is not, the test is skipped with a clear
/// message, unless `EVLOOP_REQUIRE_CLIENTS` is set (CI sets it), in which case it fails.
pub fn have_client(test: &str, client: &str) -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {client}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    if std::env::var_os("EVLOOP_REQUIRE_CLIENTS").is_some() {
        panic!("{test}: `{client}` is not installed, and EVLOOP_REQUIRE_CLIENTS is set");
    }
    eprintln!("SKIPPED: {test}: {client} not installed");
    false
}

/// Listening sockets on `port` in the whole system (`/proc/net/tcp`, state 0A).
pub fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter(|row| {
            let fields: Vec<&str> = row.split_whitespace().collect();
            let local_port = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            local_port == Some(port) && fields[3] == "0A"
        })
        .count()
}

/// Every operating-system backend this platform has.
pub fn backends() -> Vec<evloop::Backend> {
    let mut all = vec![evloop::Backend::Polling];
    #[cfg(target_os = "linux")]
    all.push(evloop::Backend::Epoll);
    all
}

/// Waits for `child` to end, polling; kills it and fails the test after `secs` seconds.
pub fn wait_within(child: &mut std::process::Child, secs: u64, what: &str) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("evloop-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, p: &str) -> std::path::PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

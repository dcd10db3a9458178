//! Child processes on the real loop, with real programs (`sh`, `sleep`, `true`, `cat`). The
//! bodies shared with the simulator are in tests/conformance/process.rs.
//!
//! Every test here runs twice: as itself (the exit learnt through a pidfd on Linux) and, in
//! `every_test_again_through_sigchld`, in a child copy of this binary with
//! `EVLOOP_CHILD_WAIT=sigchld` (the exit learnt through SIGCHLD, as on systems without
//! pidfds).

use std::io::{self, ErrorKind, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use evloop::{Loop, Process, RunMode, Signal};

mod common;

/// Whether this run learns exits through SIGCHLD (see the file's doc).
fn through_sigchld() -> bool {
    std::env::var("EVLOOP_CHILD_WAIT").is_ok_and(|v| v == "sigchld")
}

fn sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    cmd
}

/// A loop whose state collects exit statuses; it fails the test after 30 s.
fn new_loop() -> Loop<Vec<ExitStatus>> {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    common::time_limit(&mut lp, 30);
    lp
}

fn record(lp: &mut Loop<Vec<ExitStatus>>, process: Process, status: ExitStatus) {
    lp.state.push(status);
    process.close(lp).unwrap();
}

/// The state field of `/proc/<pid>/stat` and the parent's pid, or `None` if the pid is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a zombie child of this process.
fn is_our_zombie(pid: u32) -> bool {
    proc_stat(pid) == Some(('Z', std::process::id()))
}

/// Whether `pid` is still a child of this process (running or a zombie).
fn is_our_child(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(_, ppid)| ppid == std::process::id())
}

/// Waits (bounded) until `cond` holds, running `lp` without blocking in between.
fn until<S>(lp: &mut Loop<S>, what: &str, mut cond: impl FnMut(&mut Loop<S>) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond(lp) {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        lp.run(RunMode::NoWait).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn exit_code_of_sh_exit_3() {
    let mut lp = new_loop();
    let spawned = Process::spawn(&mut lp, &mut sh("exit 3"), record).unwrap();
    assert!(spawned.process.is_active(&lp), "active while the child runs");
    assert!(spawned.stdin.is_none() && spawned.stdout.is_none() && spawned.stderr.is_none());
    let pid = spawned.process.id(&lp).unwrap();
    assert!(pid > 0);
    assert!(lp.state.is_empty(), "the exit callback never runs inside spawn");
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state.len(), 1, "the exit callback ran once");
    assert_eq!(lp.state[0].code(), Some(3));
    assert!(!is_our_child(pid), "reaped");
}

#[test]
fn exit_learnt_through_the_expected_mechanism() {
    let mut lp = new_loop();
    let before = lp.handle_count();
    let p = Process::spawn(&mut lp, &mut Command::new("true"), record).unwrap().process;
    // The SIGCHLD path opens one internal signal watcher, once; the pidfd path opens nothing.
    let internal = usize::from(through_sigchld());
    assert_eq!(lp.handle_count(), before + 1 + internal);
    lp.run(RunMode::Default).unwrap();
    assert!(p.is_closing(&lp));
    assert_eq!(lp.handle_count(), before + internal);
}

#[test]
fn sleep_killed_with_sigterm_reports_the_signal_then_kill_is_esrch() {
    let mut lp = new_loop();
    let p = Process::spawn(&mut lp, Command::new("sleep").arg("100"), |lp, _, status| {
        lp.state.push(status);
    })
    .unwrap()
    .process;
    p.kill(&mut lp, 0).unwrap(); // only checks that it is there
    p.kill(&mut lp, Signal::SIGTERM).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.len(), 1);
    assert_eq!(lp.state[0].signal(), Some(15));
    assert_eq!(lp.state[0].code(), None);
    assert!(!p.is_active(&lp), "inactive after the exit callback");
    for signum in [Signal::SIGTERM, 0] {
        let err = p.kill(&mut lp, signum).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(3), "ESRCH after the exit was collected: {err}");
    }
    p.close(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
}

#[test]
fn a_signal_out_of_range_is_invalid_input() {
    let mut lp = new_loop();
    let p = Process::spawn(&mut lp, Command::new("sleep").arg("100"), record).unwrap().process;
    for signum in [-1, 32, 1000] {
        assert_eq!(p.kill(&mut lp, signum).unwrap_err().kind(), ErrorKind::InvalidInput, "{signum}");
    }
    assert!(p.is_active(&lp), "nothing was sent");
    p.kill(&mut lp, 9).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state[0].signal(), Some(9));
}

/// Spawn failures: std's error, from the call, and no handle left.
#[test]
fn spawn_failures_are_errors_with_no_handle_left() {
    let mut lp = new_loop();
    let count = lp.handle_count();
    let dir = std::env::temp_dir().join(format!("evloop-process-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_executable = dir.join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\nexit 0\n").unwrap();
    let cases: Vec<(&str, Command, ErrorKind)> = vec![
        ("missing program", Command::new("/nonexistent/evloop-no-such-program"), ErrorKind::NotFound),
        ("not executable", Command::new(&not_executable), ErrorKind::PermissionDenied),
        (
            "bad working directory",
            {
                let mut c = Command::new("true");
                c.current_dir(dir.join("missing"));
                c
            },
            ErrorKind::NotFound,
        ),
    ];
    for (what, mut cmd, kind) in cases {
        let err = Process::spawn(&mut lp, &mut cmd, record).unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(err.raw_os_error().is_some(), "{what}: the OS's error, unchanged: {err:?}");
        assert_eq!(lp.handle_count(), count, "{what}: no handle left behind");
    }
    assert!(!lp.run(RunMode::Default).unwrap(), "nothing keeps the loop alive");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// uid: whatever std does, with the OS's error. As root, the child runs as `nobody`; as
/// anyone else, EPERM from spawn.
#[test]
fn uid_is_std_s_with_the_os_error() {
    let mut lp = new_loop();
    let count = lp.handle_count();
    let out = tempfile("uid");
    let mut cmd = Command::new("id");
    cmd.arg("-u").uid(65534).stdout(Stdio::from(std::fs::File::create(&out).unwrap()));
    match Process::spawn(&mut lp, &mut cmd, record) {
        Ok(_) => {
            lp.run(RunMode::Default).unwrap();
            assert!(lp.state[0].success());
            assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "65534");
        }
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(1), "EPERM: {e}");
            assert_eq!(lp.handle_count(), count);
        }
    }
    let _ = std::fs::remove_file(out);
}

fn tempfile(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("evloop-process-{name}-{}-{:?}", std::process::id(), Instant::now()))
}

/// Arguments, environment (set, remove, clear), working directory, stdio to a file and to
/// /dev/null: all of std's `Command` reaches the child.
#[test]
fn command_settings_reach_the_child() {
    let mut lp = new_loop();
    let out = tempfile("settings");
    std::env::set_var("EVLOOP_TEST_INHERITED", "yes");
    let script = r#"printf '%s|%s|%s|%s|%s' "$1" "$EVLOOP_A" "${EVLOOP_TEST_INHERITED-unset}" "$(pwd)" "${HOME-unset}"; echo to-null >&2"#;
    let mut cmd = sh(script);
    cmd.args(["sh", "one arg"])
        .env("EVLOOP_A", "set")
        .env_remove("EVLOOP_TEST_INHERITED")
        .current_dir("/")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    Process::spawn(&mut lp, &mut cmd, record).unwrap();
    lp.run(RunMode::Default).unwrap();
    let home = std::env::var("HOME").unwrap_or_else(|_| "unset".into());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("one arg|set|unset|/|{home}"));

    let mut cleared = sh(r#"printf '%s' "${HOME-unset}""#);
    cleared.env_clear().stdout(std::fs::File::create(&out).unwrap());
    Process::spawn(&mut lp, &mut cleared, record).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "unset");
    assert!(lp.state.iter().all(|s| s.success()));
    std::fs::remove_file(out).unwrap();
}

/// `Stdio::piped()` slots come back as `Pipe` streams; an existing descriptor
/// (`Stdio::from(OwnedFd)`) is the child's stdio as given.
#[test]
fn piped_slots_and_existing_descriptors() {
    let mut lp = Loop::with_state(Vec::new()).unwrap();
    common::time_limit(&mut lp, 30);
    let (mut theirs_r, ours_w) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cmd = sh("read line; echo \"got $line\"; echo side >&2");
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(OwnedFd::from(ours_w))).stderr(Stdio::piped());
    let spawned = Process::spawn(&mut lp, &mut cmd, |lp, p, status| {
        assert!(status.success());
        p.close(lp).unwrap();
    })
    .unwrap();
    drop(cmd); // the Command holds our copy of the socket's write end
    assert!(spawned.stdout.is_none(), "not piped: the descriptor given");
    let stdin = spawned.stdin.unwrap();
    assert!(stdin.is_writable(&lp) && !stdin.is_readable(&lp));
    stdin.write(&mut lp, b"hello\n").unwrap();
    stdin
        .shutdown(&mut lp, move |lp, r| {
            r.unwrap();
            stdin.close(lp).unwrap();
        })
        .unwrap();
    let stderr = spawned.stderr.unwrap();
    stderr
        .read_start(&mut lp, |lp, p, data| match data.unwrap() {
            [] => p.close(lp).unwrap(),
            bytes => lp.state.extend_from_slice(bytes),
        })
        .unwrap();
    assert!(!lp.run(RunMode::Default).unwrap());
    assert_eq!(lp.state, b"side\n");
    let mut out = String::new();
    theirs_r.read_to_string(&mut out).unwrap();
    assert_eq!(out, "got hello\n");
}

/// An unreferenced process does not keep the loop running; detached in its own group.
#[test]
fn unreferenced_detached_process() {
    let mut lp = new_loop();
    let mut cmd = Command::new("sleep");
    cmd.arg("100").process_group(0);
    let p = Process::spawn(&mut lp, &mut cmd, record).unwrap().process;
    p.unref(&mut lp).unwrap();
    let started = Instant::now();
    assert!(!lp.run(RunMode::Default).unwrap(), "nothing referenced is alive");
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid = p.id(&lp).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let pgrp: u32 = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(pgrp, pid, "a process group of its own");
    p.ref_(&mut lp).unwrap();
    p.kill(&mut lp, Signal::SIGTERM).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state[0].signal(), Some(15));
}

/// `Process::detach`: the child leads a session (and process group) of its own, as libuv's
/// detached processes do.
#[test]
fn detach_gives_a_session_of_its_own() {
    let mut lp = new_loop();
    let mut cmd = Command::new("sleep");
    cmd.arg("100");
    let p = Process::spawn(&mut lp, Process::detach(&mut cmd), record).unwrap().process;
    let pid = p.id(&lp).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<u32> =
        stat[stat.rfind(')').unwrap() + 4..].split_whitespace().take(3).map(|f| f.parse().unwrap()).collect();
    let (pgrp, session) = (fields[1], fields[2]);
    assert_eq!((pgrp, session), (pid, pid), "its own process group and session");
    assert_ne!(session, std::process::id(), "not ours");
    p.kill(&mut lp, Signal::SIGTERM).unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state[0].signal(), Some(15));
}

/// A child that exits once its stdin (a socket whose other end the test holds) ends, its
/// pid, and the test's end.
fn waiting_for_stdin(lp: &mut Loop<Vec<ExitStatus>>) -> (Process, u32, std::os::unix::net::UnixStream) {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut cmd = sh("read x");
    cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
    let process = Process::spawn(lp, &mut cmd, record).unwrap().process;
    let pid = process.id(lp).unwrap();
    (process, pid, ours)
}

/// A handle closed before its child exits: the loop is not kept alive by it, and the child
/// is still reaped when it exits (no zombie) by the loop's next iterations, its callback
/// never called.
#[test]
fn closed_before_exit_still_reaped() {
    let mut lp = new_loop();
    let (process, pid, stdin) = waiting_for_stdin(&mut lp);
    process.close(&mut lp).unwrap();
    assert!(!lp.run(RunMode::Default).unwrap(), "a closed process keeps nothing alive");
    // Something else keeps the loop iterating, as in a program that goes on.
    let ticker = evloop::Timer::new(&mut lp, |_, _| {});
    ticker.start(&mut lp, Duration::from_millis(1), Duration::from_millis(1)).unwrap();
    drop(stdin); // the child reads its end and exits
    until(&mut lp, "the orphan reaped", |_| !is_our_child(pid));
    assert!(lp.state.is_empty(), "a closed handle's exit callback never runs");
    ticker.close(&mut lp).unwrap();
}

/// A loop dropped while its child runs: the child is not killed, and is reaped when it exits.
#[test]
fn dropped_loop_leaves_no_zombie() {
    let mut lp = new_loop();
    let (_, pid, stdin) = waiting_for_stdin(&mut lp);
    drop(lp);
    assert_eq!(proc_stat(pid).map(|(s, _)| s == 'Z'), Some(false), "still running, not killed");
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_our_child(pid) {
        assert!(Instant::now() < deadline, "the child of a dropped loop was not reaped");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// 1,000 short processes, at most 64 at a time: every exit callback runs once, with success,
/// and none of them is left a zombie.
#[test]
fn a_thousand_short_processes_leave_no_zombie() {
    const TOTAL: usize = 1000;
    const AT_ONCE: usize = 64;
    struct St {
        started: usize,
        running: usize,
        statuses: Vec<ExitStatus>,
        pids: Vec<u32>,
    }
    fn start_next(lp: &mut Loop<St>) {
        while lp.state.started < TOTAL && lp.state.running < AT_ONCE {
            lp.state.started += 1;
            lp.state.running += 1;
            let p = Process::spawn(lp, &mut Command::new("true"), |lp, p, status| {
                lp.state.statuses.push(status);
                lp.state.running -= 1;
                p.close(lp).unwrap();
                start_next(lp);
            })
            .unwrap()
            .process;
            let pid = p.id(lp).unwrap();
            lp.state.pids.push(pid);
        }
    }
    common::ensure_fd_limit(4096);
    let mut lp =
        Loop::with_state(St { started: 0, running: 0, statuses: Vec::new(), pids: Vec::new() }).unwrap();
    common::time_limit(&mut lp, 60);
    start_next(&mut lp);
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.statuses.len(), TOTAL);
    assert!(lp.state.statuses.iter().all(|s| s.success()));
    let zombies: Vec<u32> = lp.state.pids.iter().copied().filter(|&pid| is_our_zombie(pid)).collect();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    let children: Vec<u32> = lp.state.pids.iter().copied().filter(|&pid| is_our_child(pid)).collect();
    assert!(children.is_empty(), "not reaped: {children:?}");
}

/// A huge environment: 1 MiB of variables works; past the kernel's limit, spawn fails with
/// E2BIG (raw OS error 7), clearly, and leaves no handle.
#[test]
fn huge_environment() {
    let mut lp = new_loop();
    let value = "x".repeat(1023);
    let mut cmd = sh(r#"test "${#EVLOOP_BIG_1023}" -eq 1023"#);
    for i in 0..1024 {
        cmd.env(format!("EVLOOP_BIG_{i}"), &value);
    }
    match Process::spawn(&mut lp, &mut cmd, record) {
        Ok(_) => {
            lp.run(RunMode::Default).unwrap();
            assert!(lp.state[0].success(), "the child saw its 1 MiB environment");
        }
        Err(e) => assert_eq!(e.raw_os_error(), Some(7), "only E2BIG may refuse it: {e}"),
    }
    let count = lp.handle_count();
    let mut too_big = Command::new("true");
    let value = "y".repeat(100_000);
    for i in 0..1000 {
        too_big.env(format!("EVLOOP_HUGE_{i}"), &value); // 100 MB
    }
    let err = Process::spawn(&mut lp, &mut too_big, record).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(7), "E2BIG: {err}");
    assert_eq!(lp.handle_count(), count);
}

/// A child the host spawned with plain std is none of evloop's business: its exit status
/// stays for the host's `wait`, even when it exits while evloop reaps its own.
#[test]
fn a_host_child_is_not_reaped() {
    let mut host_child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let host_pid = host_child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !is_our_zombie(host_pid) {
        assert!(Instant::now() < deadline, "the host's child did not exit");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut lp = new_loop();
    for _ in 0..3 {
        Process::spawn(&mut lp, &mut Command::new("true"), record).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state.len(), 3);
    assert!(is_our_zombie(host_pid), "the host's child is still the host's to reap");
    assert_eq!(host_child.wait().unwrap().code(), Some(7));
}

/// Every test of this file again, in a copy of this binary that learns exits through
/// SIGCHLD.
#[test]
fn every_test_again_through_sigchld() -> io::Result<()> {
    if through_sigchld() {
        return Ok(());
    }
    let out = Command::new(std::env::current_exe()?)
        .args(["--skip", "every_test_again_through_sigchld", "--test-threads", "2"])
        .env("EVLOOP_CHILD_WAIT", "sigchld")
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "through SIGCHLD:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("test result: ok"), "{text}");
    Ok(())
}

/// 16 MiB through `cat` and back, byte-exact, with backpressure on both pipes: the program
/// writes to cat's stdin only while `write` says the queue is below the high-water mark
/// (and again from `on_drain`), and stops reading cat's stdout after every MiB, resuming on
/// the next iteration, so that cat blocks on its full stdout meanwhile.
#[test]
fn sixteen_mib_round_trip_through_cat() {
    const SIZE: usize = 16 << 20;
    const CHUNK: usize = 16 * 1024;
    const HIGH_WATER: usize = 64 * 1024;
    #[derive(Default)]
    struct St {
        sent: usize,
        received: Vec<u8>,
        status: Option<ExitStatus>,
        most_queued: usize,
        write_pauses: usize,
        read_pauses: usize,
    }
    fn pump(lp: &mut Loop<St>, stdin: evloop::Pipe, data: &[u8]) {
        while lp.state.sent < SIZE {
            let end = (lp.state.sent + CHUNK).min(SIZE);
            let below = stdin.write(lp, &data[lp.state.sent..end]).unwrap();
            lp.state.sent = end;
            lp.state.most_queued = lp.state.most_queued.max(stdin.write_queue_size(lp).unwrap());
            if !below {
                lp.state.write_pauses += 1;
                return; // on_drain goes on
            }
        }
        stdin
            .shutdown(lp, move |lp, r| {
                r.unwrap();
                stdin.close(lp).unwrap();
            })
            .unwrap();
    }
    let data = std::rc::Rc::new(common::pattern(SIZE));
    let mut lp = Loop::with_state(St::default()).unwrap();
    common::time_limit(&mut lp, 60);
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let spawned = Process::spawn(&mut lp, &mut cmd, |lp, p, status| {
        lp.state.status = Some(status);
        p.close(lp).unwrap();
    })
    .unwrap();
    let (stdin, stdout) = (spawned.stdin.unwrap(), spawned.stdout.unwrap());
    stdin.set_high_water_mark(&mut lp, HIGH_WATER).unwrap();
    let on_drain = data.clone();
    stdin.on_drain(&mut lp, move |lp, stdin| pump(lp, stdin, &on_drain)).unwrap();
    pump(&mut lp, stdin, &data);
    let mut next_pause = 1 << 20;
    stdout
        .read_start(&mut lp, move |lp, stdout, d| match d.unwrap() {
            [] => stdout.close(lp).unwrap(),
            bytes => {
                lp.state.received.extend_from_slice(bytes);
                if lp.state.received.len() >= next_pause {
                    next_pause += 1 << 20;
                    lp.state.read_pauses += 1;
                    stdout.read_stop(lp).unwrap();
                    lp.defer(move |lp| stdout.read_resume(lp).unwrap());
                }
            }
        })
        .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert!(lp.state.status.is_some_and(|s| s.success()));
    assert_eq!(lp.state.received.len(), SIZE);
    assert!(lp.state.received == *data, "what came back differs from what was sent");
    assert!(lp.state.write_pauses > 0, "the writer reached the high-water mark and waited");
    assert!(lp.state.most_queued < HIGH_WATER + CHUNK, "queued at most: {}", lp.state.most_queued);
    assert_eq!(lp.state.read_pauses, 16, "the reader paused after each MiB");
}

//! The `parallel` example against real commands: prefixes, the exit code, the -j limit, and
//! Ctrl-C.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

fn parallel(args: &[&str]) -> Command {
    let mut cmd = Command::new(common::example_path("parallel"));
    cmd.args(args);
    cmd
}

/// Runs the example with `input` on stdin (bounded: it is killed after 60 s).
fn run(args: &[&str], input: &str) -> Output {
    let mut child = parallel(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("build the examples first: cargo build --examples");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return;
            }
        }
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    });
    let out = child.wait_with_output().unwrap();
    drop(watchdog);
    out
}

fn sorted_lines(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn prefixes_every_line_and_exits_with_the_failures() {
    let input = "echo one\nexit 3\n\nprintf 'a\\nb'\necho err >&2\nfalse\nkill -9 $$\n";
    let out = run(&["-j", "4"], input);
    assert_eq!(sorted_lines(&out), ["1: one", "4: a", "4: b", "5: err"]);
    assert_eq!(out.status.code(), Some(3), "exit 3, false and a kill failed");
}

#[test]
fn the_exit_code_is_capped_at_255() {
    let out = run(&["-j16"], &"exit 1\n".repeat(300));
    assert_eq!(out.status.code(), Some(255));
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_arguments_are_refused() {
    for args in [&["-j", "0"][..], &["-j"], &["--what"]] {
        let out = run(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

/// At most N at a time: every command logs its start and end to one file (O_APPEND, one
/// small write each); the count running never exceeds N. And N really run together: the
/// first command waits for a file that the second creates, which only works if both run.
#[test]
fn at_most_n_commands_run_at_once() {
    let dir = std::env::temp_dir().join(format!("evloop-parallel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let flag = dir.join("flag");
    let mut input = format!(
        "i=0; while [ ! -e {f} ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; test -e {f}\ntouch {f}\n",
        f = flag.display()
    );
    for _ in 0..10 {
        input += &format!("echo s >> {l}; sleep 0.05; echo e >> {l}\n", l = log.display());
    }
    let out = run(&["-j", "3"], &input);
    assert_eq!(out.status.code(), Some(0), "the rendezvous needs two at once: {out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut running, mut most) = (0i32, 0i32);
    for event in text.lines() {
        running += if event == "s" { 1 } else { -1 };
        most = most.max(running);
    }
    assert_eq!(text.lines().count(), 20);
    assert!(most <= 3, "{most} ran at once with -j 3");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `kill -INT`: the running commands get SIGTERM, none more starts, and it exits with 130.
#[test]
fn sigint_kills_the_children_and_exits_130() {
    let mut child = parallel(&["-j", "2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("build the examples first: cargo build --examples");
    let input = "echo $$; exec sleep 100\necho $$; exec sleep 100\necho never\n";
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut pids = Vec::new();
    for _ in 0..2 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let pid: u32 = line.trim().split(": ").nth(1).unwrap().parse().unwrap();
        pids.push(pid);
    }
    // Both sleep: each shell has become `sleep` (exec).
    let deadline = Instant::now() + Duration::from_secs(10);
    for &pid in &pids {
        while !std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
            assert!(Instant::now() < deadline, "the commands did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let status = common::wait_within(&mut child, 10, "parallel after SIGINT");
    assert_eq!(status.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert_eq!(rest, "", "the third command never started");
    for pid in pids {
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |c| c.trim() != "sleep"),
            "child {pid} still sleeps"
        );
    }
}

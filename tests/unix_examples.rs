//! The server examples on a Unix domain socket (`unix:PATH`), end to end: `echo_server`
//! against socat, `echo_client` and a plain std client; `http_hello` against
//! `curl --unix-socket`. A missing client skips its test (`common::have_client`).
//! Run `cargo build --examples` first: stale binaries are refused.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{fresh_example, have_client, start_listening, TempDir};

/// An example serving on a socket path in a fresh temporary directory; killed when dropped
/// (then the directory goes).
struct UnixServer {
    child: Child,
    _dir: TempDir,
    path: PathBuf,
}

impl UnixServer {
    fn start(example: &str, test: &str) -> UnixServer {
        let dir = TempDir::new(test);
        let path = dir.join("server.sock");
        let mut cmd = Command::new(fresh_example(example));
        cmd.arg(format!("unix:{}", path.display()));
        let (child, listening) = start_listening(cmd);
        assert_eq!(listening, format!("unix:{}", path.display()));
        UnixServer { child, _dir: dir, path }
    }

    /// Sends SIGTERM and waits (at most 10 s) for the exit status.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the server did not exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn socat_gets_its_bytes_back_from_echo_server_on_a_path() {
    if !have_client("socat_gets_its_bytes_back_from_echo_server_on_a_path", "socat") {
        return;
    }
    let server = UnixServer::start("echo_server", "socat-echo");
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "printf 'hello over unix\\n' | timeout 10 socat - UNIX-CONNECT:{}",
                server.path.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello over unix\n");
}

#[test]
fn echo_client_checks_every_echo_over_a_path() {
    let server = UnixServer::start("echo_server", "client-echo");
    let out = Command::new(fresh_example("echo_client"))
        .args([&format!("unix:{}", server.path.display()), "10", "100", "512"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("10 connections x 100 messages x 512 B"), "{stdout}");
}

/// A std client's bytes come back, with the end after its FIN; SIGTERM then ends the
/// server gracefully (exit 0) and its socket file is gone.
#[test]
fn echo_server_on_a_path_echoes_then_removes_its_socket_file_on_exit() {
    let mut server = UnixServer::start("echo_server", "std-echo");
    assert!(server.path.exists());
    let mut s = UnixStream::connect(&server.path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"ping");
    drop(s);
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(!server.path.exists(), "the socket file is removed on exit");
}

#[test]
fn threads_with_a_unix_path_is_refused_with_a_clear_message() {
    let out = Command::new(fresh_example("echo_server"))
        .args(["unix:/tmp/evloop-never-bound.sock", "--threads", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--threads 2 serves TCP only"), "{stderr}");
    assert!(!Path::new("/tmp/evloop-never-bound.sock").exists());
}

#[test]
fn curl_gets_hello_world_over_a_path() {
    if !have_client("curl_gets_hello_world_over_a_path", "curl") {
        return;
    }
    let mut server = UnixServer::start("http_hello", "curl-hello");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--unix-socket"])
        .arg(&server.path)
        .arg("http://x/")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Hello, World!");
    let status = server.terminate();
    assert!(status.success(), "{status}");
    assert!(!server.path.exists(), "the socket file is removed on exit");
}

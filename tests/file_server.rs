//! The file_server example against curl: contents by sha256, listings, HEAD, 404, traversal
//! attempts, and a 1 GiB file streamed with bounded memory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{example_path, have_client, start_example};

struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let dir = std::env::temp_dir().join(format!("evloop-fileserver-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("hello.txt"), "hello, file server\n").unwrap();
        std::fs::write(dir.join("sub/inner.txt"), "inner\n").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("escape")).unwrap();
        std::os::unix::fs::symlink(dir.join("hello.txt"), dir.join("inside")).unwrap();
        Root(dir)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn server(root: &Path) -> common::Example {
    let mut cmd = Command::new(example_path("file_server"));
    cmd.arg("127.0.0.1:0").arg(root);
    start_example(cmd)
}

/// Runs `curl -s ARGS` and returns its stdout.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").arg("-s").arg("--max-time").arg("60").args(args).output().unwrap();
    assert!(out.status.success(), "curl {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256_of_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

#[test]
fn serves_files_listings_head_and_404() {
    if !have_client("file_server::serves_files", "curl") {
        return;
    }
    let root = Root::new("basic");
    let s = server(&root.0);
    let base = format!("http://{}", s.addr);
    assert_eq!(curl(&[&format!("{base}/hello.txt")]), "hello, file server\n");
    assert_eq!(curl(&[&format!("{base}/")]), "escape\nhello.txt\ninside\nsub/\n");
    assert_eq!(curl(&[&format!("{base}/sub/")]), "inner.txt\n");
    assert_eq!(
        curl(&[&format!("{base}/inside")]),
        "hello, file server\n",
        "a symlink within the root is fine"
    );
    let head = curl(&["-I", &format!("{base}/hello.txt")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Length: 19\r\n"), "{head}");
    assert_eq!(curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("{base}/missing")]), "404");
    // Two requests on one connection.
    let out = Command::new("curl")
        .args(["-sv", &format!("{base}/hello.txt"), &format!("{base}/sub/inner.txt")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello, file server\ninner\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Re-using existing connection"));
}

#[test]
fn paths_that_escape_the_root_are_forbidden() {
    if !have_client("file_server::paths_that_escape", "curl") {
        return;
    }
    let root = Root::new("escape");
    let s = server(&root.0);
    let base = format!("http://{}", s.addr);
    for (args, what) in [
        (vec!["--path-as-is", "/../../etc/passwd"], "dot-dot"),
        (vec!["--path-as-is", "/sub/../../etc/passwd"], "dot-dot after a directory"),
        (vec!["/%2e%2e/%2e%2e/etc/passwd"], "percent-encoded dot-dot"),
        (vec!["/escape"], "a symlink out of the root"),
    ] {
        let (flags, path) = args.split_at(args.len() - 1);
        let mut full: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        full.extend(["-o", "/dev/null", "-w", "%{http_code}"].map(String::from));
        full.push(format!("{base}{}", path[0]));
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        assert_eq!(curl(&full), "403", "{what}");
    }
}

#[test]
fn a_large_file_arrives_intact() {
    if !have_client("file_server::a_large_file", "curl") {
        return;
    }
    let root = Root::new("large");
    let path = root.0.join("large.bin");
    let data: Vec<u8> = (0..48u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let s = server(&root.0);
    let out = Command::new("sh")
        .args(["-c", &format!("curl -s --max-time 60 http://{}/large.bin | sha256sum", s.addr)])
        .output()
        .unwrap();
    let got = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(got, sha256_of_file(&path));
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_one_gib_file_streams_with_bounded_memory() {
    if !have_client("file_server::a_one_gib_file", "curl") {
        return;
    }
    const GIB: u64 = 1 << 30;
    let root = Root::new("gib");
    let path = root.0.join("sparse.bin");
    std::fs::File::create(&path).unwrap().set_len(GIB).unwrap(); // sparse: no disk used
    let s = server(&root.0);
    let size = curl(&["-o", "/dev/null", "-w", "%{size_download}", &format!("http://{}/sparse.bin", s.addr)]);
    assert_eq!(size.trim(), GIB.to_string());
    let peak = peak_rss_kib(s.child.id());
    assert!(peak < 64 * 1024, "the server's peak RSS was {peak} KiB for a 1 GiB file");
}

/// Graceful shutdown with a real `kill -TERM` while a large file is mid-transfer: the
/// transfer completes, byte for byte; a connection waiting for its next request ends at
/// once; new connections are refused; the server exits 0.
#[test]
fn sigterm_mid_transfer_completes_it_and_exits_0() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let root = Root::new("sigterm");
    let big = common::pattern(8 << 20);
    std::fs::write(root.0.join("big.bin"), &big).unwrap();
    let mut server = server(&root.0);
    let limit = Some(Duration::from_secs(10));
    // A connection idle between requests.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.set_read_timeout(limit).unwrap();
    idle.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = Vec::new();
    while !first.ends_with(b"hello, file server\n") {
        let mut chunk = [0u8; 1024];
        let n = idle.read(&mut chunk).unwrap();
        assert!(n > 0 && first.len() < 4096, "{}", String::from_utf8_lossy(&first));
        first.extend_from_slice(&chunk[..n]);
    }
    // A transfer in flight: read a little, then signal, then the rest.
    let mut transfer = TcpStream::connect(server.addr).unwrap();
    transfer.set_read_timeout(limit).unwrap();
    transfer.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut got = vec![0u8; 64 << 10];
    transfer.read_exact(&mut got).unwrap();
    // A request whose head is half sent when the signal comes.
    let mut late = TcpStream::connect(server.addr).unwrap();
    late.set_read_timeout(limit).unwrap();
    late.write_all(b"GET /hello.txt HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(100)); // let it arrive (not needed for correctness)
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the idle connection just ends");
    drop(idle);
    late.write_all(b"Host: x\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    late.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("Connection: close") && answer.ends_with("hello, file server\n"), "{answer}");
    drop(late);
    transfer.read_to_end(&mut got).unwrap();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    assert!(head.contains("200 OK") && head.contains(&format!("Content-Length: {}", big.len())), "{head}");
    assert!(
        got[head_end..] == big[..],
        "the file arrived whole: {} of {} bytes",
        got.len() - head_end,
        big.len()
    );
    assert!(TcpStream::connect(server.addr).is_err(), "new connections are refused");
    drop(transfer);
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(exit.code(), Some(0), "{exit}");
}

//! Running out of file descriptors, in a child process under `prlimit`.

use super::*;

/// The environment variable that lets [`emfile_episode_under_prlimit`] run: set by
/// [`after_an_emfile_episode_only_the_listener_and_its_streams_are_left`], which runs it in a
/// child process under `prlimit`, since it uses up every descriptor of its process.
const EMFILE_CHILD: &str = "EVLOOP_TEST_EMFILE_CHILD";

#[test]
fn after_an_emfile_episode_only_the_listener_and_its_streams_are_left() {
    if !common::have_client("after_an_emfile_episode", "prlimit") {
        return;
    }
    let mut child = std::process::Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "emfile::emfile_episode_under_prlimit",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the child test did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok. 1 passed"), "the child test did not run:\n{stdout}\n{stderr}");
}

/// Run by [`after_an_emfile_episode_only_the_listener_and_its_streams_are_left`] in a child
/// process under a limit of 64 descriptors.
#[test]
#[ignore = "uses up every descriptor of its process: run in a child process under prlimit"]
fn emfile_episode_under_prlimit() {
    use evloop::{Handle, HandleKind};
    use std::time::Instant;
    if std::env::var_os(EMFILE_CHILD).is_none() {
        // Run by hand with --ignored: it would take every descriptor of this process.
        eprintln!("emfile_episode_under_prlimit runs only as the child of its outer test");
        return;
    }
    /// Opens /dev/null until the process is out of descriptors (EMFILE).
    fn use_up_descriptors() -> Vec<std::fs::File> {
        let mut files = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => files.push(f),
                Err(e) if e.raw_os_error() == Some(24) => return files,
                Err(e) => panic!("{e}"),
            }
            assert!(files.len() < 64, "the limit of 64 descriptors is not in force");
        }
    }
    /// The open handles of each kind.
    fn handles_of<S>(lp: &mut Loop<S>, kind: HandleKind) -> Vec<Handle> {
        let mut found = Vec::new();
        lp.walk(|lp, h| {
            if h.kind(lp).ok() == Some(kind) {
                found.push(h);
            }
        });
        found
    }
    /// Runs single iterations until `done`, for at most 10 s.
    fn run_until(
        lp: &mut Loop<Vec<TcpStream>>,
        what: &str,
        done: impl Fn(&mut Loop<Vec<TcpStream>>) -> bool,
    ) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done(lp) {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            lp.run(RunMode::Once).unwrap();
        }
    }
    const CLIENTS: usize = 4;

    let mut lp = Loop::with_state(Vec::<TcpStream>::new()).unwrap();
    let server = TcpListener::bind(&mut lp, any_port(), |lp, stream| lp.state.push(stream)).unwrap();
    let addr = server.local_addr(&lp).unwrap();
    // The clients wait in the backlog; then the process is out of descriptors.
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
    let filler = use_up_descriptors();
    run_until(&mut lp, "accept fails and the back-off timer opens", |lp| lp.handle_count() == 2);
    assert!(lp.state.is_empty());
    // The timer is the loop's own: walk does not show it, so walking and closing everything
    // cannot close it under its listener.
    let mut walked = Vec::new();
    lp.walk(|_, h| walked.push(h));
    assert_eq!(walked, vec![Handle::from(server)]);

    // Descriptors come back: every client is accepted, and the episode is over.
    drop(filler);
    run_until(&mut lp, "every client is accepted", |lp| lp.state.len() == CLIENTS);
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), 1 + CLIENTS, "the listener and the streams, no back-off timer");
    assert_eq!(handles_of(&mut lp, HandleKind::TcpListener), vec![Handle::from(server)]);
    let streams: Vec<Handle> = lp.state.iter().map(|&s| Handle::from(s)).collect();
    assert_eq!(handles_of(&mut lp, HandleKind::TcpStream), streams);

    // A second episode opens a fresh timer, and closing the listener during it closes it.
    clients.push(std::net::TcpStream::connect(addr).unwrap());
    let filler = use_up_descriptors();
    run_until(&mut lp, "the second episode starts", |lp| lp.handle_count() == 1 + CLIENTS + 1);
    assert_eq!(lp.state.len(), CLIENTS, "the new client waits");
    server.close(&mut lp).unwrap();
    lp.run(RunMode::NoWait).unwrap();
    assert_eq!(lp.handle_count(), CLIENTS, "the listener closed, and its back-off timer with it");
    drop(filler);
    for s in std::mem::take(&mut lp.state) {
        s.close(&mut lp).unwrap();
    }
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.handle_count(), 0);
    drop(clients);
}

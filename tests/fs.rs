//! Every fs operation against a temporary directory, with its errors.

mod common;

use std::io::ErrorKind;
use std::path::Path;

use evloop::fs::{self, File, OpenOptions, PathError};
use evloop::{is_cancelled, Loop, RunMode};

use common::TempDir;

type Log = Vec<String>;

/// Runs one request to completion and returns its result.
fn run<T: 'static>(
    start: impl FnOnce(&mut Loop<Option<std::io::Result<T>>>) -> std::io::Result<evloop::WorkRequest>,
) -> std::io::Result<T> {
    let mut lp = Loop::with_state(None).unwrap();
    start(&mut lp).unwrap();
    lp.run(RunMode::Default).unwrap();
    lp.state.take().expect("the callback ran")
}

macro_rules! call {
    ($f:path, $($arg:expr),*) => {
        run(|lp| $f(lp, $($arg),*, |lp, r| lp.state = Some(r)))
    };
}

fn path_of(e: &std::io::Error) -> &Path {
    e.get_ref().and_then(|inner| inner.downcast_ref::<PathError>()).expect("a PathError inside").path()
}

#[test]
fn write_read_and_metadata() {
    let dir = TempDir::new("rw");
    let f = dir.join("a.txt");
    call!(fs::write, &f, "hello evloop").unwrap();
    assert_eq!(call!(fs::read, &f).unwrap(), b"hello evloop");
    assert_eq!(call!(fs::read_to_string, &f).unwrap(), "hello evloop");
    let m = call!(fs::metadata, &f).unwrap();
    assert!(m.is_file());
    assert_eq!(m.len(), 12);
}

#[test]
fn directories_create_list_and_remove() {
    let dir = TempDir::new("dirs");
    call!(fs::create_dir, dir.join("one")).unwrap();
    call!(fs::create_dir_all, dir.join("two/three/four")).unwrap();
    call!(fs::write, dir.join("two/file"), "x").unwrap();
    let mut names: Vec<String> = call!(fs::read_dir, dir.join("two"))
        .unwrap()
        .iter()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, vec!["file", "three"]);
    call!(fs::remove_dir, dir.join("one")).unwrap();
    let e = call!(fs::remove_dir, dir.join("two")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DirectoryNotEmpty);
    call!(fs::remove_dir_all, dir.join("two")).unwrap();
    assert!(!dir.join("two").exists());
}

#[test]
fn rename_copy_links_and_canonicalize() {
    let dir = TempDir::new("links");
    let a = dir.join("a");
    call!(fs::write, &a, "contents").unwrap();
    call!(fs::rename, &a, dir.join("b")).unwrap();
    assert!(!a.exists());
    assert_eq!(call!(fs::copy, dir.join("b"), dir.join("c")).unwrap(), 8);
    call!(fs::hard_link, dir.join("c"), dir.join("d")).unwrap();
    call!(fs::symlink, dir.join("d"), dir.join("e")).unwrap();
    assert_eq!(call!(fs::read_link, dir.join("e")).unwrap(), dir.join("d"));
    assert!(call!(fs::symlink_metadata, dir.join("e")).unwrap().file_type().is_symlink());
    assert!(call!(fs::metadata, dir.join("e")).unwrap().is_file());
    let canon = call!(fs::canonicalize, dir.join("e")).unwrap();
    assert_eq!(canon, std::fs::canonicalize(dir.join("d")).unwrap());
    call!(fs::remove_file, dir.join("e")).unwrap();
    assert!(!dir.join("e").exists());
}

#[test]
fn set_permissions_and_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perm");
    let f = dir.join("secret");
    call!(fs::write, &f, "s").unwrap();
    call!(fs::set_permissions, &f, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o400);
    // Tests may run as root, which file modes do not stop; a read-only sysctl refuses
    // everyone (EACCES).
    let e = call!(fs::write, "/proc/sys/kernel/osrelease", "no").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert_eq!(path_of(&e), Path::new("/proc/sys/kernel/osrelease"));
}

#[test]
fn errors_carry_the_path_and_the_os_error() {
    let dir = TempDir::new("errors");
    let missing = dir.join("missing.txt");
    let e = call!(fs::read, &missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("missing.txt"), "{e}");
    assert_eq!(path_of(&e), missing);
    let source = std::error::Error::source(e.get_ref().unwrap()).unwrap();
    assert!(source.downcast_ref::<std::io::Error>().unwrap().raw_os_error().is_some());

    call!(fs::write, dir.join("plain"), "x").unwrap();
    let e = call!(fs::create_dir, dir.join("plain/sub")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotADirectory, "{e}");
    let e = call!(fs::read_dir, dir.join("plain")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotADirectory, "{e}");
    let e = call!(fs::rename, dir.join("nope"), dir.join("other")).unwrap_err();
    assert!(e.to_string().contains("nope") && e.to_string().contains("other"), "{e}");
}

#[test]
fn file_handle_positioned_and_sequential_io() {
    let dir = TempDir::new("file");
    let path = dir.join("f.bin");
    let mut lp = Loop::with_state(Log::new()).unwrap();
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true).truncate(true);
    File::open(&mut lp, &path, &opts, |lp, f| {
        let f = f.unwrap();
        f.write(lp, b"0123456789", move |lp, n| {
            lp.state.push(format!("wrote {}", n.unwrap()));
            f.write_at(lp, 2, b"ab", move |lp, _| {
                f.read_at(lp, 0, 100, move |lp, d| {
                    lp.state.push(String::from_utf8(d.unwrap()).unwrap());
                    f.set_len(lp, 4, move |lp, r| {
                        r.unwrap();
                        f.sync_all(lp, move |lp, r| {
                            r.unwrap();
                            f.metadata(lp, move |lp, m| {
                                lp.state.push(format!("len {}", m.unwrap().len()));
                                f.sync_data(lp, move |lp, r| {
                                    r.unwrap();
                                    f.close(lp).unwrap();
                                })
                                .unwrap();
                            })
                            .unwrap();
                        })
                        .unwrap();
                    })
                    .unwrap();
                })
                .unwrap();
            })
            .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["wrote 10", "01ab456789", "len 4"]);

    // Sequential reads advance the file's own position.
    let mut lp = Loop::with_state(Log::new()).unwrap();
    File::open(&mut lp, &path, OpenOptions::new().read(true), |lp, f| {
        let f = f.unwrap();
        f.read(lp, 3, move |lp, d| {
            lp.state.push(String::from_utf8(d.unwrap()).unwrap());
            f.read(lp, 3, move |lp, d| {
                lp.state.push(format!("[{}]", String::from_utf8(d.unwrap()).unwrap()));
                f.close(lp).unwrap();
            })
            .unwrap();
        })
        .unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["01a", "[b]"]);
}

#[test]
fn a_file_closed_with_requests_in_flight_completes_them_with_an_error() {
    let dir = TempDir::new("closing");
    let path = dir.join("big");
    std::fs::write(&path, vec![1u8; 1 << 20]).unwrap();
    let mut lp = Loop::with_state(Log::new()).unwrap();
    File::open(&mut lp, &path, OpenOptions::new().read(true), |lp, f| {
        let f = f.unwrap();
        for _ in 0..4 {
            f.read_at(lp, 0, 1 << 20, |lp, r| {
                lp.state.push(if r.is_err_and(|e| is_cancelled(&e)) { "cancelled" } else { "other" }.into());
            })
            .unwrap();
        }
        f.close(lp).unwrap();
        assert!(f.read_at(lp, 0, 1, |_, _| {}).is_err(), "a closing file refuses new requests");
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    assert_eq!(lp.state, vec!["cancelled"; 4]);
}

#[test]
fn opening_a_missing_file_fails_with_its_path() {
    let dir = TempDir::new("open");
    let path = dir.join("absent");
    let e = run(|lp| {
        File::open(lp, &path, OpenOptions::new().read(true), |lp, r| lp.state = Some(r.map(|_| ())))
    })
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("absent"), "{e}");
}

/// The operating system's error inside an fs error: the `source()` of the inner error (a
/// [`PathError`]), for path functions and `File` requests alike.
fn os_error_of(e: &std::io::Error) -> &std::io::Error {
    let inner = e.get_ref().expect("an inner error");
    std::error::Error::source(inner).and_then(|s| s.downcast_ref()).expect("the OS error as source")
}

/// Opens `path` with `options` and runs `request` on the file, returning the request's error.
fn file_error(
    path: &Path,
    options: &OpenOptions,
    request: impl FnOnce(&mut Loop<Option<std::io::Error>>, File) -> std::io::Result<evloop::WorkRequest>
        + 'static,
) -> std::io::Error {
    let mut lp = Loop::with_state(None).unwrap();
    let mut request = Some(request);
    File::open(&mut lp, path, options, move |lp, f| {
        let f = f.unwrap();
        (request.take().unwrap())(lp, f).unwrap();
    })
    .unwrap();
    lp.run(RunMode::Default).unwrap();
    lp.state.take().expect("the request failed")
}

/// Checks that a `File` request's error carries the OS error `errno` the way the path
/// functions' errors do, with `message` as its text.
fn assert_file_error(e: &std::io::Error, errno: i32, path: &Path, message: &str) {
    let os = os_error_of(e);
    assert_eq!(os.raw_os_error(), Some(errno), "{e}");
    assert_eq!(e.kind(), os.kind(), "{e}");
    assert_eq!(e.raw_os_error(), None, "like the path functions, the OS error is the source");
    let via_io_source = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(via_io_source.and_then(|s| s.raw_os_error()), Some(errno));
    assert_eq!(path_of(e), path, "the path the file was opened with");
    // "op path: OS error", as for the path functions.
    let (op, os_message) = message.split_once(": ").unwrap();
    assert_eq!(e.to_string(), format!("{op} {}: {os_message}", path.display()));
}

#[test]
fn file_request_errors_keep_the_os_error_and_path_like_path_functions() {
    const EBADF: i32 = 9;
    const EISDIR: i32 = 21;
    let dir = TempDir::new("file-errors");
    let path = dir.join("read-only");
    std::fs::write(&path, "contents").unwrap();
    let read_only = OpenOptions::new().read(true).clone();

    // Writing to a file opened read-only: EBADF.
    let e = file_error(&path, &read_only, |lp, f| {
        f.write_at(lp, 0, b"x", move |lp, r| {
            lp.state = r.err();
            f.close(lp).unwrap();
        })
    });
    assert_file_error(&e, EBADF, &path, "write_at: Bad file descriptor (os error 9)");
    let e = file_error(&path, &read_only, |lp, f| {
        f.write(lp, b"x", move |lp, r| {
            lp.state = r.err();
            f.close(lp).unwrap();
        })
    });
    assert_file_error(&e, EBADF, &path, "write: Bad file descriptor (os error 9)");
    let e = file_error(&path, &read_only, |lp, f| {
        f.set_len(lp, 0, move |lp, r| {
            lp.state = r.err();
            f.close(lp).unwrap();
        })
    });
    // ftruncate on a descriptor not open for writing is EINVAL on Linux.
    assert_file_error(&e, 22, &path, "set_len: Invalid argument (os error 22)");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(std::fs::read(&path).unwrap(), b"contents");

    // Reading a directory opened as a file: EISDIR, as `fs::read` of the directory gives.
    let e = file_error(&dir.0, &read_only, |lp, f| {
        f.read_at(lp, 0, 10, move |lp, r| {
            lp.state = r.err();
            f.close(lp).unwrap();
        })
    });
    assert_file_error(&e, EISDIR, &dir.0, "read_at: Is a directory (os error 21)");
    assert_eq!(e.kind(), ErrorKind::IsADirectory);
    let e = file_error(&dir.0, &read_only, |lp, f| {
        f.read(lp, 10, move |lp, r| {
            lp.state = r.err();
            f.close(lp).unwrap();
        })
    });
    assert_file_error(&e, EISDIR, &dir.0, "read: Is a directory (os error 21)");
    assert_eq!(e.kind(), ErrorKind::IsADirectory);

    let by_path = call!(fs::read, &dir.0).unwrap_err();
    assert_eq!(os_error_of(&by_path).raw_os_error(), Some(EISDIR));
    assert_eq!(by_path.kind(), ErrorKind::IsADirectory);
    assert_eq!(by_path.raw_os_error(), None);
    assert_eq!(path_of(&by_path), dir.0);
    assert_eq!(by_path.to_string(), format!("read {}: Is a directory (os error 21)", dir.0.display()));
}

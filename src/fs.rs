//! File-system requests on the thread pool, with `std::fs`'s names (libuv's `uv_fs_*`).
//!
//! Each function runs the `std::fs` operation of the same name on a worker and calls back on
//! the loop thread with its `io::Result`. Errors keep their [`io::ErrorKind`] and carry the
//! path: the inner error is a [`PathError`] whose `source()` is the operating system's error.
//! Errors of requests on an open [`File`] are built the same way, with the path it was
//! opened with.
//!
//! ```
//! use evloop::{fs, Loop, RunMode};
//!
//! let dir = std::env::temp_dir().join(format!("evloop-doc-{}", std::process::id()));
//! let file = dir.join("hello.txt");
//! let mut lp = Loop::with_state(String::new())?;
//! fs::create_dir_all(&mut lp, &dir, move |lp, r| {
//!     r.unwrap();
//!     fs::write(lp, file.clone(), "hello", move |lp, r| {
//!         r.unwrap();
//!         fs::read_to_string(lp, &file, |lp, r| lp.state = r.unwrap()).unwrap();
//!     })
//!     .unwrap();
//! })?;
//! lp.run(RunMode::Default)?;
//! assert_eq!(lp.state, "hello");
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs as stdfs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use std::fs::{DirEntry, Metadata, OpenOptions, Permissions};

use crate::error::cancelled;
use crate::event_loop::Loop;
use crate::handle::{common_handle_methods, Extra, Handle, HandleKind};
use crate::pool::{Lane, WorkRequest};

/// The error of a file-system request: which operation, on which path(s), and the operating
/// system's error as its `source()`.
///
/// Requests on an open [`File`] give the same error, with the path the file was opened with.
#[derive(Debug)]
pub struct PathError {
    op: &'static str,
    path: PathBuf,
    to: Option<PathBuf>,
    source: io::Error,
}

impl PathError {
    /// The path the operation was on (the source path, for two-path operations; the path
    /// it was opened with, for a request on an open [`File`]).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.to {
            Some(to) => write!(f, "{} {} -> {}: {}", self.op, self.path.display(), to.display(), self.source),
            None => write!(f, "{} {}: {}", self.op, self.path.display(), self.source),
        }
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn with_path(op: &'static str, path: &Path, to: Option<&Path>, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), PathError { op, path: path.to_owned(), to: to.map(Path::to_owned), source: e })
}

/// Runs `f(path)` on the pool and reports its result, its error tagged with `op` and `path`.
fn on_path<S, T: Send + 'static>(
    lp: &mut Loop<S>,
    op: &'static str,
    path: &Path,
    f: impl FnOnce(&Path) -> io::Result<T> + Send + 'static,
    callback: impl FnOnce(&mut Loop<S>, io::Result<T>) + 'static,
) -> io::Result<WorkRequest> {
    let path = path.to_owned();
    lp.submit_work(
        Lane::Fast,
        move || f(&path).map_err(|e| with_path(op, &path, None, e)),
        move |lp, r| callback(lp, r.and_then(|inner| inner)),
    )
}

/// Like `on_path`, for operations on two paths.
fn on_paths<S, T: Send + 'static>(
    lp: &mut Loop<S>,
    op: &'static str,
    from: &Path,
    to: &Path,
    f: impl FnOnce(&Path, &Path) -> io::Result<T> + Send + 'static,
    callback: impl FnOnce(&mut Loop<S>, io::Result<T>) + 'static,
) -> io::Result<WorkRequest> {
    let (from, to) = (from.to_owned(), to.to_owned());
    lp.submit_work(
        Lane::Fast,
        move || f(&from, &to).map_err(|e| with_path(op, &from, Some(&to), e)),
        move |lp, r| callback(lp, r.and_then(|inner| inner)),
    )
}

/// Defines a one-path request that forwards to the `std::fs` function of the same name.
macro_rules! one_path_ops {
    ($( $(#[$doc:meta])* $name:ident -> $out:ty; )*) => {$(
        $(#[$doc])*
        pub fn $name<S>(
            lp: &mut Loop<S>,
            path: impl AsRef<Path>,
            callback: impl FnOnce(&mut Loop<S>, io::Result<$out>) + 'static,
        ) -> io::Result<WorkRequest> {
            on_path(lp, stringify!($name), path.as_ref(), |p| stdfs::$name(p), callback)
        }
    )*};
}

/// Defines a two-path request that forwards to the `std::fs` function of the same name.
macro_rules! two_path_ops {
    ($( $(#[$doc:meta])* $name:ident -> $out:ty; )*) => {$(
        $(#[$doc])*
        pub fn $name<S>(
            lp: &mut Loop<S>,
            from: impl AsRef<Path>,
            to: impl AsRef<Path>,
            callback: impl FnOnce(&mut Loop<S>, io::Result<$out>) + 'static,
        ) -> io::Result<WorkRequest> {
            on_paths(lp, stringify!($name), from.as_ref(), to.as_ref(), |a, b| stdfs::$name(a, b), callback)
        }
    )*};
}

one_path_ops! {
    /// Reads a whole file ([`std::fs::read`]).
    read -> Vec<u8>;
    /// Reads a whole file as UTF-8 ([`std::fs::read_to_string`]).
    read_to_string -> String;
    /// Metadata, following symlinks ([`std::fs::metadata`]).
    metadata -> Metadata;
    /// Metadata of the path itself, not following a symlink ([`std::fs::symlink_metadata`]).
    symlink_metadata -> Metadata;
    /// Creates a directory ([`std::fs::create_dir`]).
    create_dir -> ();
    /// Creates a directory and its missing parents ([`std::fs::create_dir_all`]).
    create_dir_all -> ();
    /// Removes a file ([`std::fs::remove_file`]).
    remove_file -> ();
    /// Removes an empty directory ([`std::fs::remove_dir`]).
    remove_dir -> ();
    /// Removes a directory and everything in it ([`std::fs::remove_dir_all`]).
    remove_dir_all -> ();
    /// The absolute path with symlinks resolved ([`std::fs::canonicalize`]).
    canonicalize -> PathBuf;
    /// The target of a symlink ([`std::fs::read_link`]).
    read_link -> PathBuf;
}

two_path_ops! {
    /// Renames a file or directory, replacing `to` if it is a file ([`std::fs::rename`]).
    rename -> ();
    /// Copies a file's contents and permissions; gives the bytes copied ([`std::fs::copy`]).
    copy -> u64;
    /// Makes `to` a hard link to `from` ([`std::fs::hard_link`]).
    hard_link -> ();
}

/// Writes `contents` to a file, creating or truncating it ([`std::fs::write`]).
pub fn write<S>(
    lp: &mut Loop<S>,
    path: impl AsRef<Path>,
    contents: impl AsRef<[u8]>,
    callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
) -> io::Result<WorkRequest> {
    let contents = contents.as_ref().to_vec();
    on_path(lp, "write", path.as_ref(), move |p| stdfs::write(p, contents), callback)
}

/// The entries of a directory, in the order the system gives them ([`std::fs::read_dir`]).
pub fn read_dir<S>(
    lp: &mut Loop<S>,
    path: impl AsRef<Path>,
    callback: impl FnOnce(&mut Loop<S>, io::Result<Vec<DirEntry>>) + 'static,
) -> io::Result<WorkRequest> {
    on_path(lp, "read_dir", path.as_ref(), |p| stdfs::read_dir(p)?.collect(), callback)
}

/// Makes `link` a symbolic link to `original` (Unix).
#[cfg(unix)]
pub fn symlink<S>(
    lp: &mut Loop<S>,
    original: impl AsRef<Path>,
    link: impl AsRef<Path>,
    callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
) -> io::Result<WorkRequest> {
    on_paths(
        lp,
        "symlink",
        original.as_ref(),
        link.as_ref(),
        |a, b| std::os::unix::fs::symlink(a, b),
        callback,
    )
}

/// Sets a file's permissions ([`std::fs::set_permissions`]).
pub fn set_permissions<S>(
    lp: &mut Loop<S>,
    path: impl AsRef<Path>,
    permissions: Permissions,
    callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
) -> io::Result<WorkRequest> {
    on_path(lp, "set_permissions", path.as_ref(), move |p| stdfs::set_permissions(p, permissions), callback)
}

/// An open file whose reads and writes run on the thread pool.
///
/// Positioned I/O ([`read_at`](File::read_at), [`write_at`](File::write_at)) is safe to issue
/// concurrently. Sequential [`read`](File::read) and [`write`](File::write) use the file's
/// own position, like `std::io::Read`; issue the next one from the previous one's callback.
/// Requests still in flight when the file is closed complete with a
/// [`Cancelled`](crate::Cancelled) error; the descriptor itself is closed once they are done.
///
/// ```
/// use evloop::fs::{File, OpenOptions};
/// use evloop::{Loop, RunMode};
///
/// let path = std::env::temp_dir().join(format!("evloop-file-doc-{}", std::process::id()));
/// let mut lp = Loop::with_state(Vec::new())?;
/// let mut options = OpenOptions::new();
/// options.read(true).write(true).create(true).truncate(true);
/// File::open(&mut lp, &path, &options, |lp, file| {
///     let file = file.unwrap();
///     file.write_at(lp, 0, b"hello, file", move |lp, written| {
///         assert_eq!(written.unwrap(), 11);
///         file.read_at(lp, 7, 4, move |lp, data| {
///             lp.state = data.unwrap();
///             file.close(lp).unwrap();
///         })
///         .unwrap();
///     })
///     .unwrap();
/// })?;
/// lp.run(RunMode::Default)?;
/// assert_eq!(lp.state, b"file");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Copy, Clone, PartialEq, Eq, Hash, Debug)]
pub struct File {
    handle: Handle,
}

/// An open file and the path it was opened with (for its errors).
pub(crate) struct OpenFile {
    file: stdfs::File,
    path: PathBuf,
}

common_handle_methods!(File, File);

impl File {
    /// Opens `path` with `options` on the pool; `callback` gets the open file.
    pub fn open<S>(
        lp: &mut Loop<S>,
        path: impl AsRef<Path>,
        options: &OpenOptions,
        callback: impl FnOnce(&mut Loop<S>, io::Result<File>) + 'static,
    ) -> io::Result<WorkRequest> {
        let options = options.clone();
        on_path(
            lp,
            "open",
            path.as_ref(),
            move |p| options.open(p).map(|file| OpenFile { file, path: p.to_path_buf() }),
            move |lp, r| {
                let file = r.map(|f| {
                    let handle =
                        lp.open_handle(HandleKind::File, Box::new(|_, _| {}), Extra::File(Arc::new(f)));
                    // An open file keeps nothing alive by itself; its requests do.
                    File { handle }
                });
                callback(lp, file)
            },
        )
    }

    /// Runs `f` on the pool with the open file, and reports its result unless the file was
    /// closed in the meantime.
    fn request<S, T: Send + 'static>(
        &self,
        lp: &mut Loop<S>,
        op: &'static str,
        f: impl FnOnce(&stdfs::File) -> io::Result<T> + Send + 'static,
        callback: impl FnOnce(&mut Loop<S>, io::Result<T>) + 'static,
    ) -> io::Result<WorkRequest> {
        let file = lp
            .handles
            .state(self.handle, HandleKind::File, |e| match e {
                Extra::File(file) => Some(file),
                _ => None,
            })?
            .clone();
        let handle = self.handle;
        lp.submit_work(
            Lane::Fast,
            move || f(&file.file).map_err(|e| with_path(op, &file.path, None, e)),
            move |lp, r| {
                let closed = lp.handles.get(handle).is_none_or(|b| b.closing);
                callback(lp, if closed { Err(cancelled()) } else { r.and_then(|inner| inner) })
            },
        )
    }

    /// Reads up to `len` bytes at `offset`; fewer at the end of the file.
    pub fn read_at<S>(
        &self,
        lp: &mut Loop<S>,
        offset: u64,
        len: usize,
        callback: impl FnOnce(&mut Loop<S>, io::Result<Vec<u8>>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(lp, "read_at", move |f| read_at(f, offset, len), callback)
    }

    /// Writes all of `data` at `offset`; gives the bytes written.
    pub fn write_at<S>(
        &self,
        lp: &mut Loop<S>,
        offset: u64,
        data: impl AsRef<[u8]>,
        callback: impl FnOnce(&mut Loop<S>, io::Result<usize>) + 'static,
    ) -> io::Result<WorkRequest> {
        let data = data.as_ref().to_vec();
        self.request(lp, "write_at", move |f| write_all_at(f, offset, &data).map(|()| data.len()), callback)
    }

    /// Reads up to `len` bytes at the file's position, advancing it.
    pub fn read<S>(
        &self,
        lp: &mut Loop<S>,
        len: usize,
        callback: impl FnOnce(&mut Loop<S>, io::Result<Vec<u8>>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(
            lp,
            "read",
            move |mut f| {
                let mut buf = vec![0; len];
                let n = f.read(&mut buf)?;
                buf.truncate(n);
                Ok(buf)
            },
            callback,
        )
    }

    /// Writes all of `data` at the file's position, advancing it.
    pub fn write<S>(
        &self,
        lp: &mut Loop<S>,
        data: impl AsRef<[u8]>,
        callback: impl FnOnce(&mut Loop<S>, io::Result<usize>) + 'static,
    ) -> io::Result<WorkRequest> {
        let data = data.as_ref().to_vec();
        self.request(lp, "write", move |mut f| f.write_all(&data).map(|()| data.len()), callback)
    }

    /// Flushes data and metadata to the device ([`std::fs::File::sync_all`]).
    pub fn sync_all<S>(
        &self,
        lp: &mut Loop<S>,
        callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(lp, "sync_all", |f| f.sync_all(), callback)
    }

    /// Flushes data to the device ([`std::fs::File::sync_data`]).
    pub fn sync_data<S>(
        &self,
        lp: &mut Loop<S>,
        callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(lp, "sync_data", |f| f.sync_data(), callback)
    }

    /// Truncates or extends the file ([`std::fs::File::set_len`]).
    pub fn set_len<S>(
        &self,
        lp: &mut Loop<S>,
        size: u64,
        callback: impl FnOnce(&mut Loop<S>, io::Result<()>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(lp, "set_len", move |f| f.set_len(size), callback)
    }

    /// The file's metadata ([`std::fs::File::metadata`]).
    pub fn metadata<S>(
        &self,
        lp: &mut Loop<S>,
        callback: impl FnOnce(&mut Loop<S>, io::Result<Metadata>) + 'static,
    ) -> io::Result<WorkRequest> {
        self.request(lp, "metadata", |f| f.metadata(), callback)
    }
}

#[cfg(unix)]
fn read_at(f: &stdfs::File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match f.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(unix)]
fn write_all_at(f: &stdfs::File, offset: u64, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    f.write_all_at(data, offset)
}

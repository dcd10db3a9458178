//! Builds `uvbench`, the libuv side of the suite (the C files in `c/`), as a program in
//! `OUT_DIR`, against the system libuv that `pkg-config` finds. Its path reaches the suite
//! as `BENCH_SUITE_UVBENCH`; without libuv the path is empty, the build still succeeds and
//! the libuv column says it was skipped.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: [&str; 6] = ["c/main.c", "c/loop.c", "c/tcp.c", "c/threads.c", "c/udp.c", "c/process.c"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=c");
    for var in ["PKG_CONFIG", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PKG_CONFIG_SYSROOT_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let (path, version) = match libuv() {
        Some(uv) => (build_uvbench(&out_dir, &uv), uv.version),
        None => {
            println!(
                "cargo:warning=libuv not found by pkg-config: the libuv column will be skipped \
                 (apt-get install libuv1-dev pkg-config)"
            );
            (String::new(), String::new())
        }
    };
    println!("cargo:rustc-env=BENCH_SUITE_UVBENCH={path}");
    println!("cargo:rustc-env=BENCH_SUITE_LIBUV_VERSION={version}");
    println!("cargo:rustc-env=BENCH_SUITE_TOKIO_VERSION={}", locked_version("tokio"));
}

/// The version of `package` in the workspace's Cargo.lock, for the report ("?" if unknown).
fn locked_version(package: &str) -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let name = format!("name = \"{package}\"");
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim() == name {
            if let Some(v) = lines.next().and_then(|l| l.trim().strip_prefix("version = ")) {
                return v.trim_matches('"').to_string();
            }
        }
    }
    "?".into()
}

struct Libuv {
    cflags: Vec<String>,
    libs: Vec<String>,
    version: String,
}

/// Asks `pkg-config` (or `$PKG_CONFIG`) for libuv; `None` if it or libuv is missing.
fn libuv() -> Option<Libuv> {
    let pkg_config = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let query = |args: &[&str]| -> Option<String> {
        let out = Command::new(&pkg_config).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let split = |s: String| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    Some(Libuv {
        cflags: split(query(&["--cflags", "libuv"])?),
        libs: split(query(&["--libs", "libuv"])?),
        version: query(&["--modversion", "libuv"])?,
    })
}

/// Compiles and links `uvbench` with the C compiler the `cc` crate picks.
fn build_uvbench(out_dir: &Path, uv: &Libuv) -> String {
    let exe = out_dir.join("uvbench");
    let compiler = cc::Build::new().opt_level(2).debug(false).get_compiler();
    let mut cmd = compiler.to_command();
    cmd.args(["-O2", "-Wall", "-Wextra", "-std=gnu99"])
        .args(&uv.cflags)
        .args(SOURCES)
        .arg("-o")
        .arg(&exe)
        .args(&uv.libs);
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run the C compiler ({cmd:?}): {e}"));
    assert!(status.success(), "building uvbench failed: {cmd:?}");
    exe.to_str().expect("OUT_DIR is not UTF-8").to_string()
}

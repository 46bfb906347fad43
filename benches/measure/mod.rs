//! A child process's wall time and peak resident memory, for the benches that run the real
//! `kubeward` binary. Peak memory is the kernel's `ru_maxrss`: each run goes through a copy of
//! the bench binary (`--measure-child`) whose only child is the measured process, so
//! `getrusage(RUSAGE_CHILDREN)` in that copy is that process alone.

#![allow(dead_code)] // each bench uses what it needs

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `struct rusage` of 64-bit Linux: two `timeval`s, then 14 `long`s, `ru_maxrss` (KiB) first.
#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

unsafe extern "C" {
    // std links the C library already.
    fn getrusage(who: i32, usage: *mut Rusage) -> i32;
}

const RUSAGE_CHILDREN: i32 = -1;

/// In the bench's `main`, first: when this process is the wrapper, runs the measured child
/// and returns `true` (the bench then exits).
pub fn wrapper_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--measure-child") || args.len() < 4 {
        return false;
    }
    let out = std::fs::File::create(&args[2]).expect("output file");
    let started = Instant::now();
    let status = Command::new(&args[3])
        .args(&args[4..])
        .stdout(Stdio::from(out))
        .stderr(Stdio::null())
        .status()
        .expect("the measured program runs");
    let wall = started.elapsed();
    let mut usage = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: `usage` is a live, writable `struct rusage` of the size the kernel writes.
    let rc = unsafe { getrusage(RUSAGE_CHILDREN, &mut usage) };
    assert_eq!(rc, 0, "getrusage");
    println!(
        "{} {} {}",
        status.code().unwrap_or(-1),
        wall.as_micros(),
        usage.maxrss
    );
    true
}

/// One measured run.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub exit: i32,
    pub wall: Duration,
    pub maxrss_kib: u64,
}

impl Sample {
    pub fn ms(&self) -> f64 {
        self.wall.as_secs_f64() * 1e3
    }

    pub fn mib(&self) -> f64 {
        self.maxrss_kib as f64 / 1024.0
    }
}

/// Runs `program ARGS` in `dir` with its stdout written to `out`, measured.
pub fn run(program: &Path, args: &[&str], dir: &Path, out: &Path) -> Sample {
    let me = std::env::current_exe().expect("own path");
    let output = Command::new(me)
        .arg("--measure-child")
        .arg(out)
        .arg(program)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("wrapper runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<u64> = text
        .split_whitespace()
        .map(|f| f.parse::<i64>().map_or(0, |n| n.max(0) as u64))
        .collect();
    assert_eq!(fields.len(), 3, "wrapper printed {text:?}");
    Sample {
        exit: i32::try_from(fields[0]).unwrap_or(-1),
        wall: Duration::from_micros(fields[1]),
        maxrss_kib: fields[2],
    }
}

/// The `kubeward` binary the bench was built with (release).
pub fn kubeward() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kubeward"))
}

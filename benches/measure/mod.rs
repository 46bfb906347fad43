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
    parse_sample(&output.stdout)
}

/// What a wrapper printed: exit code, wall time in µs, peak RSS in KiB.
fn parse_sample(stdout: &[u8]) -> Sample {
    let text = String::from_utf8_lossy(stdout);
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

/// Processes run together: each one's sample, and the peak of their summed proportional set
/// size (PSS: a page shared by several, as the binary's text and the repository's pack file
/// are, counts once in the sum), sampled every few milliseconds: what they held at once.
pub struct Together {
    pub samples: Vec<Sample>,
    pub peak_pss_kib: u64,
}

/// The `Pss:` line of a process's `smaps_rollup`, in KiB (0 once it is gone).
fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The children of a process (the measured program of a wrapper).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Starts `program ARGS` once per entry of `runs` (its arguments and stdout file), in `dir`,
/// all at once, each through its own wrapper (as [`run`]: a small process forks it, so its
/// peak is its own), and waits for all of them.
pub fn run_together(
    program: &Path,
    runs: &[(Vec<String>, std::path::PathBuf)],
    dir: &Path,
) -> Together {
    let me = std::env::current_exe().expect("own path");
    let wrappers: Vec<std::process::Child> = runs
        .iter()
        .map(|(args, out)| {
            Command::new(&me)
                .arg("--measure-child")
                .arg(out)
                .arg(program)
                .args(args)
                .current_dir(dir)
                .stdout(Stdio::piped())
                .spawn()
                .expect("wrapper runs")
        })
        .collect();
    let pids: Vec<u32> = wrappers.iter().map(std::process::Child::id).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let now: u64 = pids
                    .iter()
                    .flat_map(|&pid| children_of(pid))
                    .map(pss_kib)
                    .sum();
                peak = peak.max(now);
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        });
        let samples: Vec<Sample> = wrappers
            .into_iter()
            .map(|wrapper| {
                let output = wrapper.wait_with_output().expect("wrapper runs");
                parse_sample(&output.stdout)
            })
            .collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        Together {
            samples,
            peak_pss_kib: sampler.join().expect("the sampler"),
        }
    })
}

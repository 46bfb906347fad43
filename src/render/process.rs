//! A render tool run as untrusted work: a cleared environment, its own process group, a time
//! limit and a cap on what it may print; the whole group is killed at either.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a tool run ended when it gave no output to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {tool}: {message}")]
    Start { tool: String, message: String },
    #[error("{tool} did not finish within {seconds} s")]
    TimeLimit { tool: String, seconds: u64 },
    #[error("{tool} printed more than {cap} bytes")]
    OutputTooLarge { tool: String, cap: usize },
    #[error("{tool} failed: {message}")]
    Failed { tool: String, message: String },
}

/// Runs `program args` in `dir` with only `env`, within `time_limit` and `max_output` bytes of
/// stdout; its stdout.
pub fn run(
    program: &Path,
    args: &[&str],
    dir: &Path,
    env: &[(&str, String)],
    time_limit: Duration,
    max_output: usize,
) -> Result<Vec<u8>, RunError> {
    use std::os::unix::process::CommandExt;
    let tool = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    // Go's runtime keeps its heap near this (helm and kubectl are Go programs).
    command.env("GOMEMLIMIT", "512MiB");
    // SAFETY: only async-signal-safe calls between fork and exec (prctl, setrlimit, open,
    // write, close).
    unsafe {
        command.pre_exec(|| {
            // Dies with the review that started it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            // Go reserves far more address space than it uses: the review's own address-space
            // limit would stop it at start-up. Its memory is bounded by GOMEMLIMIT, the time
            // limit and the output cap, and the kernel kills it first when memory runs out.
            let open = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            libc::setrlimit(libc::RLIMIT_AS, &open);
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| RunError::Start {
        tool: tool.clone(),
        message: e.to_string(),
    })?;
    let group = child.id() as libc::pid_t;
    let kill = || {
        // SAFETY: kill(2) on the group the child leads; called only before it is reaped.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    };
    let mut stdout = child.stdout.take().ok_or_else(|| RunError::Start {
        tool: tool.clone(),
        message: "no stdout".into(),
    })?;
    let mut stderr = child.stderr.take().ok_or_else(|| RunError::Start {
        tool: tool.clone(),
        message: "no stderr".into(),
    })?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let read = (&mut stdout)
            .take(max_output as u64 + 1)
            .read_to_end(&mut out);
        (read.is_ok(), out)
    });
    let errors = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + time_limit;
    let mut reader = Some(reader);
    let mut output: Option<Vec<u8>> = None;
    let status = loop {
        // Reaping happens only here, so the group is killed before it could be reused.
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => {}
            Err(_) => break None,
        }
        if reader.as_ref().is_some_and(|r| r.is_finished()) {
            let (_, out) = reader
                .take()
                .map(|r| r.join().unwrap_or((false, Vec::new())))
                .unwrap_or_default();
            if out.len() > max_output {
                // Still writing: it would block on a full pipe until the deadline.
                kill();
                let _ = child.wait();
                return Err(RunError::OutputTooLarge {
                    tool,
                    cap: max_output,
                });
            }
            output = Some(out);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let Some(status) = status else {
        kill();
        let _ = child.wait();
        return Err(RunError::TimeLimit {
            tool,
            seconds: time_limit.as_secs(),
        });
    };
    let out = match (output, reader) {
        (Some(out), _) => out,
        (None, Some(r)) => r.join().unwrap_or((false, Vec::new())).1,
        (None, None) => Vec::new(),
    };
    let err = errors.join().unwrap_or_default();
    if out.len() > max_output {
        return Err(RunError::OutputTooLarge {
            tool,
            cap: max_output,
        });
    }
    if !status.success() {
        let message = String::from_utf8_lossy(&err);
        let message = message.trim();
        return Err(RunError::Failed {
            tool,
            message: message.chars().take(2_000).collect(),
        });
    }
    Ok(out)
}

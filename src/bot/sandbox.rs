//! Reviews run in a child process of `serve`, so that no pull request can take down intake or
//! the other workers: whatever the input does to the review (memory, time, a crash), it does it
//! to one disposable process.
//!
//! The child is `kubeward review-process` (the same binary; tests name it through
//! `CARGO_BIN_EXE_kubeward`). It gets a request on stdin naming the bare cache and three
//! commits, reads the repository without the network, and answers on stdout with JSON lines:
//! first the policy's `incomplete` (so a review cut off later still concludes as the policy
//! says), then the plan. It never sees a credential: the parent fetches, the environment is
//! cleared, and the request holds only paths and commit ids.
//!
//! Limits, from the outside in: the parent kills the child's process group at the deadline; the
//! child's address space is capped (`RLIMIT_AS`), its OOM score is the highest, it dies with
//! its parent (`PR_SET_PDEATHSIG`), and it writes no core dumps. Budgets inside the review
//! (per file, per review) are the first line of defence; these limits are the second.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::config::Incomplete;
use crate::owners::Flavor;
use crate::pipeline::{PipelineError, ReviewBudgets, ReviewOptions, Revisions};
use crate::review::ReviewPlan;

/// The subcommand the child runs.
pub const SUBCOMMAND: &str = "review-process";
/// Most bytes of a request the child reads.
const MAX_REQUEST_BYTES: u64 = 64 * 1024;
/// How much of the child's stderr the parent keeps, for the reason it died.
const STDERR_TAIL: usize = 16 * 1024;

/// How review processes are started and limited.
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    /// The kubeward binary to run as the child.
    pub program: PathBuf,
    /// The child's address space in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Most bytes the child may answer with (the plan as JSON).
    pub max_output_bytes: usize,
}

impl SandboxSettings {
    /// The running binary with `memory_bytes`, answers up to 256 MiB.
    pub fn current_exe(memory_bytes: u64) -> std::io::Result<SandboxSettings> {
        Ok(SandboxSettings {
            program: std::env::current_exe()?,
            memory_bytes,
            max_output_bytes: 256 << 20,
        })
    }
}

/// Below this the review process cannot start its threads and allocator: a configuration
/// mistake, not a limit.
pub const MIN_MEMORY_BYTES: u64 = 128 << 20;

/// The default address space of one review process: the memory this process may use (its
/// cgroup's `memory.max`, else the machine's) shared by the workers, between 256 MiB and
/// 4 GiB.
pub fn default_memory_bytes(workers: usize) -> u64 {
    let available = cgroup_memory_max()
        .or_else(machine_memory)
        .unwrap_or(4 << 30);
    (available / workers.max(1) as u64).clamp(256 << 20, 4 << 30)
}

/// `memory.max` of this process's cgroup (v2), or `memory.limit_in_bytes` (v1).
fn cgroup_memory_max() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        // v2: "0::/path"; v1: "N:memory:/path".
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        let text = std::fs::read_to_string(file).ok()?;
        // "max" (v2) or a huge number (v1) means no limit.
        return text
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&bytes| bytes < 1 << 50);
    }
    None
}

fn machine_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the parent asks of a review process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildRequest {
    /// The bare cache, already fetched and locked by the parent.
    pub git_dir: PathBuf,
    pub merge_base: String,
    pub head: String,
    pub base_tip: String,
    pub forge: Flavor,
    pub budgets: ReviewBudgets,
    /// How the overlays the change touches are rendered (the tool's path: the child's
    /// environment has no PATH).
    pub render: crate::render::review::RenderOptions,
    /// A review of `merge_base..head`, or a snapshot of the whole of `head`.
    #[serde(default)]
    pub task: ChildTask,
    /// The view store in the cache folder, shared by every review process.
    #[serde(default)]
    pub views: Option<crate::views::StoreSettings>,
}

/// What a child process is asked to do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChildTask {
    #[default]
    Review,
    /// Audit every manifest of `head` with its own policy and CODEOWNERS (a default-branch
    /// snapshot); `merge_base` and `base_tip` are not read.
    Snapshot,
}

/// A snapshot's answer: the open findings of the commit with their owners.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotAnswer {
    pub findings: Vec<crate::ownership::OwnedFinding>,
    /// Render targets that could not be rendered, and why.
    pub not_rendered: Vec<(String, String)>,
}

/// Time spent per stage, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChildTimings {
    pub git: f64,
    pub parse: f64,
    pub audit: f64,
    pub plan: f64,
}

/// One line of a review process's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "camelCase")]
enum ChildMessage {
    /// Sent before the heavy work: how an incomplete review concludes.
    #[serde(rename_all = "camelCase")]
    Policy {
        incomplete: Incomplete,
    },
    Plan {
        plan: Box<ReviewPlan>,
        timings: ChildTimings,
    },
    Snapshot {
        snapshot: SnapshotAnswer,
    },
    /// The policy on the base branch is invalid.
    ConfigError {
        message: String,
    },
    Error {
        message: String,
    },
}

/// How a review in a child process ended, when it gave no plan.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildFailure {
    /// The policy on the base branch is invalid.
    Config(String),
    /// The review did not finish by the deadline; its process group was killed.
    TimeLimit { incomplete: Option<Incomplete> },
    /// The review ran out of its memory.
    OutOfMemory { incomplete: Option<Incomplete> },
    /// The answer was larger than the parent takes.
    OutputTooLarge { incomplete: Option<Incomplete> },
    /// The review process crashed (a signal or an unexpected exit): a bug or an input we do
    /// not survive. Not retried: the same input would crash it again.
    Crashed(String),
    /// A review error the process reported (git, rules): may be retried.
    Error(String),
}

/// Runs the review of `request` in a child process, killed at `time_limit`.
pub async fn review_in_child(
    settings: &SandboxSettings,
    request: &ChildRequest,
    time_limit: Duration,
) -> Result<(ReviewPlan, ChildTimings), ChildFailure> {
    let answer = run_in_child(settings, request, time_limit).await?;
    answer
        .plan
        .map(|plan| *plan)
        .ok_or_else(|| ChildFailure::Error("the review process gave no plan".into()))
}

/// Runs the snapshot of `request.head` in a child process, killed at `time_limit`.
pub async fn snapshot_in_child(
    settings: &SandboxSettings,
    request: &ChildRequest,
    time_limit: Duration,
) -> Result<SnapshotAnswer, ChildFailure> {
    let request = ChildRequest {
        task: ChildTask::Snapshot,
        ..request.clone()
    };
    let answer = run_in_child(settings, &request, time_limit).await?;
    answer
        .snapshot
        .ok_or_else(|| ChildFailure::Error("the review process gave no snapshot".into()))
}

/// Runs `request` in a child process and returns its answer, which holds a plan or a
/// snapshot when the process succeeded.
async fn run_in_child(
    settings: &SandboxSettings,
    request: &ChildRequest,
    time_limit: Duration,
) -> Result<Answer, ChildFailure> {
    let mut child = spawn(settings).map_err(|e| {
        ChildFailure::Error(format!(
            "cannot start the review process {}: {e}",
            settings.program.display()
        ))
    })?;
    // Declared after `child`, so dropped first: the group is killed before the child is
    // reaped, while its id cannot belong to anyone else.
    let mut group = GroupKiller(child.id());
    let request_json = serde_json::to_vec(request)
        .map_err(|e| ChildFailure::Error(format!("cannot encode the review request: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A child that dies at once closes its stdin: its exit status says why, below.
        let _ = stdin.write_all(&request_json).await;
        drop(stdin);
    }
    let stderr = child
        .stderr
        .take()
        .map(|stderr| tokio::spawn(stderr_tail(stderr)));
    let Some(stdout) = child.stdout.take() else {
        return Err(ChildFailure::Error(
            "the review process has no stdout".into(),
        ));
    };
    let mut answer = Answer::default();
    let deadline = tokio::time::sleep(time_limit);
    tokio::pin!(deadline);
    let ending = {
        let read = read_answer(stdout, settings.max_output_bytes, &mut answer);
        tokio::pin!(read);
        tokio::select! {
            over_cap = &mut read => {
                if over_cap {
                    Ending::OutputTooLarge
                } else {
                    // Output closed: the process is exiting; it still has the deadline to do it.
                    tokio::select! {
                        status = child.wait() => Ending::Exited(status),
                        _ = &mut deadline => Ending::TimeLimit,
                    }
                }
            }
            _ = &mut deadline => Ending::TimeLimit,
        }
    };
    let status = match ending {
        Ending::Exited(status) => status,
        Ending::TimeLimit | Ending::OutputTooLarge => {
            group.kill();
            group.disarm();
            let _ = child.wait().await;
            let incomplete = answer.incomplete;
            return Err(match ending {
                Ending::TimeLimit => ChildFailure::TimeLimit { incomplete },
                _ => ChildFailure::OutputTooLarge { incomplete },
            });
        }
    };
    // Reaped: its group id may be reused from now on.
    group.disarm();
    let status = status.map_err(|e| ChildFailure::Error(format!("waiting for the review: {e}")))?;
    let stderr = match stderr {
        Some(task) => task.await.unwrap_or_default(),
        None => String::new(),
    };
    if (answer.plan.is_some() || answer.snapshot.is_some()) && status.success() {
        return Ok(answer);
    }
    if let Some(message) = answer.config_error {
        return Err(ChildFailure::Config(message));
    }
    if let Some(message) = answer.error {
        return Err(ChildFailure::Error(message));
    }
    Err(classify_death(status, &stderr, answer.incomplete))
}

enum Ending {
    Exited(std::io::Result<std::process::ExitStatus>),
    TimeLimit,
    OutputTooLarge,
}

/// What the child has said so far.
#[derive(Default)]
struct Answer {
    incomplete: Option<Incomplete>,
    plan: Option<Box<(ReviewPlan, ChildTimings)>>,
    snapshot: Option<SnapshotAnswer>,
    config_error: Option<String>,
    error: Option<String>,
}

/// Reads the child's JSON lines until it closes stdout; true when it wrote more than `cap`.
async fn read_answer(stdout: tokio::process::ChildStdout, cap: usize, answer: &mut Answer) -> bool {
    let mut reader = BufReader::new(stdout.take(cap as u64 + 1));
    let mut total = 0usize;
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => total += n,
        }
        if total > cap {
            return true;
        }
        match serde_json::from_slice::<ChildMessage>(&line) {
            Ok(ChildMessage::Policy { incomplete }) => answer.incomplete = Some(incomplete),
            Ok(ChildMessage::Plan { plan, timings }) => {
                answer.plan = Some(Box::new((*plan, timings)));
            }
            Ok(ChildMessage::Snapshot { snapshot }) => answer.snapshot = Some(snapshot),
            Ok(ChildMessage::ConfigError { message }) => answer.config_error = Some(message),
            Ok(ChildMessage::Error { message }) => answer.error = Some(message),
            // Half a line from a process that died writing it: its exit status tells.
            Err(_) => {}
        }
    }
}

/// The last [`STDERR_TAIL`] bytes the child wrote to stderr.
async fn stderr_tail(stderr: tokio::process::ChildStderr) -> String {
    let mut reader = BufReader::new(stderr);
    let mut tail: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.extend_from_slice(&chunk[..n]);
                if tail.len() > STDERR_TAIL {
                    tail.drain(..tail.len() - STDERR_TAIL);
                }
            }
        }
    }
    String::from_utf8_lossy(&tail).into_owned()
}

fn classify_death(
    status: std::process::ExitStatus,
    stderr: &str,
    incomplete: Option<Incomplete>,
) -> ChildFailure {
    // Rust's allocation failure prints this and aborts.
    let allocation_failed = stderr.contains("memory allocation of");
    match status.signal() {
        Some(libc::SIGABRT) if allocation_failed => ChildFailure::OutOfMemory { incomplete },
        // Not ours (ours come only at the deadline or over the output cap): the kernel's OOM
        // killer picks the review first, by its score.
        Some(libc::SIGKILL) => ChildFailure::OutOfMemory { incomplete },
        Some(signal) => ChildFailure::Crashed(format!(
            "the review process died of signal {signal}{}",
            last_line(stderr)
        )),
        None if allocation_failed => ChildFailure::OutOfMemory { incomplete },
        None => ChildFailure::Crashed(format!(
            "the review process exited with {}{}",
            status
                .code()
                .map_or("no status".to_owned(), |c| format!("status {c}")),
            last_line(stderr)
        )),
    }
}

fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.chars().take(300).collect::<String>()))
        .unwrap_or_default()
}

fn spawn(settings: &SandboxSettings) -> std::io::Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&settings.program);
    command
        .arg(SUBCOMMAND)
        // Nothing of the parent's environment (tokens, database URLs) reaches the child.
        .env_clear()
        // mimalloc reserves 1 GiB of address space at a time by default, which alone would
        // exceed a small RLIMIT_AS; glibc's per-thread arenas (libgit2 allocates through it)
        // reserve 64 MiB each.
        .env("MIMALLOC_ARENA_RESERVE", "16MiB")
        .env("MALLOC_ARENA_MAX", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own group, so a deadline kills everything it started.
        .process_group(0);
    let memory = settings.memory_bytes.max(MIN_MEMORY_BYTES);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec, and only makes async-signal-safe system
    // calls (prctl, getppid, setrlimit, open, write, close, _exit) on values copied into it.
    unsafe {
        command.pre_exec(move || {
            // The death signal follows the *thread* that forked: spawned from an async task,
            // that is a runtime worker thread, which lives as long as the runtime.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            let limit = |resource, soft: u64, hard: libc::rlim_t| {
                let rlimit = libc::rlimit {
                    rlim_cur: soft as libc::rlim_t,
                    rlim_max: hard,
                };
                if libc::setrlimit(resource, &rlimit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            // The soft limit bounds the review's own parsing; the hard one stays open so the
            // render tools it starts (Go programs reserve gigabytes of address space they
            // never use) can run under limits of their own (render/process.rs).
            limit(libc::RLIMIT_AS, memory, libc::RLIM_INFINITY)?;
            // A core dump of a review would hold repository content, and fill the disk.
            limit(libc::RLIMIT_CORE, 0, 0)?;
            // The first process the kernel kills when memory runs out. Best effort: a
            // process may always raise its own score.
            let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY);
            if fd >= 0 {
                libc::write(fd, b"1000".as_ptr().cast(), 4);
                libc::close(fd);
            }
            Ok(())
        });
    }
    command.spawn()
}

/// Kills the child's process group when dropped (the job was given up from outside) or asked.
/// Disarmed once the child is reaped: a reaped group's id may be reused.
struct GroupKiller(Option<u32>);

impl GroupKiller {
    fn disarm(&mut self) {
        self.0 = None;
    }

    fn kill(&self) {
        if let Some(pid) = self.0.and_then(|pid| libc::pid_t::try_from(pid).ok()) {
            // SAFETY: kill(2) with a negative pid signals the group the child leads; armed only
            // while the child is not reaped, so the id is still its group's.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child's side: `kubeward review-process`. Reads the request on stdin, answers on stdout.
/// A snapshot of `commit`: every manifest, with the policy, CODEOWNERS and environments of
/// that commit, within the review's byte budget.
fn snapshot(
    repo: &crate::git::Repository,
    commit: git2::Oid,
    request: &ChildRequest,
) -> Result<ChildMessage, PipelineError> {
    let tools = crate::render::Tools {
        kubectl: request.render.kubectl.clone(),
        helm: request.render.helm.clone(),
    };
    let revision = crate::pipeline::audit_revision(
        repo,
        commit,
        request.forge,
        Some(&tools),
        request.budgets.max_bytes,
    )?;
    Ok(ChildMessage::Snapshot {
        snapshot: SnapshotAnswer {
            findings: crate::ownership::own(
                &revision.result.findings,
                &revision.owners,
                &revision.policy.environments,
            ),
            not_rendered: revision.not_rendered,
        },
    })
}

pub fn run_child() -> std::process::ExitCode {
    use std::io::{Read, Write};
    let mut input = Vec::new();
    let read = std::io::stdin()
        .take(MAX_REQUEST_BYTES)
        .read_to_end(&mut input);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut say = |message: &ChildMessage| -> bool {
        serde_json::to_writer(&mut out, message).is_ok()
            && out.write_all(b"\n").is_ok()
            && out.flush().is_ok()
    };
    let request: ChildRequest = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&input).map_err(|e| e.to_string()))
    {
        Ok(request) => request,
        Err(e) => {
            say(&ChildMessage::Error {
                message: format!("unreadable review request: {e}"),
            });
            return std::process::ExitCode::from(crate::cli::EXIT_USAGE);
        }
    };
    let failed = |message: String| ChildMessage::Error { message };
    let outcome = (|| -> Result<ChildMessage, ChildMessage> {
        let repo = git2::Repository::open_bare(&request.git_dir)
            .map(crate::git::Repository::from_git2)
            .map_err(|e| failed(format!("cannot open the cache: {e}")))?;
        let oid = |sha: &str| {
            git2::Oid::from_str(sha).map_err(|e| failed(format!("commit {sha:?}: {e}")))
        };
        if request.task == ChildTask::Snapshot {
            return snapshot(&repo, oid(&request.head)?, &request).map_err(|e| match e {
                PipelineError::Config(e) => ChildMessage::ConfigError {
                    message: e.to_string(),
                },
                e => failed(e.to_string()),
            });
        }
        let revisions = Revisions {
            merge_base: oid(&request.merge_base)?,
            head: oid(&request.head)?,
            base_tip: oid(&request.base_tip)?,
        };
        let options = ReviewOptions {
            forge: request.forge,
            config_override: None,
            fail_on: None,
            budgets: request.budgets,
            render: Some(request.render.clone()),
            progress: None,
            views: request.views.clone(),
        };
        let policy = match crate::pipeline::read_policy(&repo, &revisions, &options) {
            Ok(policy) => policy,
            Err(PipelineError::Config(e)) => {
                return Err(ChildMessage::ConfigError {
                    message: e.to_string(),
                });
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        say(&ChildMessage::Policy {
            incomplete: policy.incomplete,
        });
        let (plan, timings) =
            crate::pipeline::review_with_policy(&repo, &revisions, &options, &policy)
                .map_err(|e| failed(e.to_string()))?;
        Ok(ChildMessage::Plan {
            plan: Box::new(plan),
            timings: ChildTimings {
                git: timings.git.as_secs_f64(),
                parse: timings.parse.as_secs_f64(),
                audit: timings.audit.as_secs_f64(),
                plan: timings.plan.as_secs_f64(),
            },
        })
    })();
    match outcome {
        Ok(message) if say(&message) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(message) => {
            say(&message);
            std::process::ExitCode::FAILURE
        }
    }
}

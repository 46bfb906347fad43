//! Load: a real `kubeward serve` process (release build, embedded SQLite queue) under a stream of
//! signed deliveries, with a mock GitHub and a real git server on loopback.
//!
//! `cargo bench --bench load` prints:
//! - time to 202 (p50, p99) at a steady 200 deliveries/s, then the most deliveries per second
//!   the intake accepts (32 concurrent senders), each checked to be recorded;
//! - reviews completed per second for typical 5-file pull requests;
//! - the process's resident memory idle and at its busiest;
//! - an unsigned-body flood: 150 clients each slowly sending a 5 MiB body without a signature,
//!   against a fresh server with the default intake limits and, as the same run's baseline,
//!   one with them off; peak memory of each, and the time to 202 of signed deliveries sent
//!   meanwhile from another address, against the same deliveries sent before the flood.
//!
//! Goals: p99 time to 202 ≤ 20 ms at 200 deliveries/s with nothing lost; under 64 MiB idle
//! and 256 MiB busy; under the flood, under 256 MiB with every signed delivery answered 202
//! (figures: docs/benchmarks.md, README.md). `KUBEWARD_LOAD_SECONDS` (default 10) sets the
//! length of the steady phase, `KUBEWARD_LOAD_PRS` (default 40) the number of reviewed pull
//! requests, `KUBEWARD_LOAD_FLOOD_SECONDS` (default 15) the length of the flood;
//! `KUBEWARD_LOAD_FLOOD_ONLY=1` runs only the flood.

// The tests' git server; the bench uses only part of it.
#[allow(dead_code)]
#[path = "../tests/integration/support/git_http.rs"]
mod git_http;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kubeward::forge::github::api::Method;
use kubeward::forge::github::fake::FakeGitHub;
use kubeward::git::build;
use kubeward::server::github::github_signature;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SECRET: &str = "load-secret";

struct Forward(Arc<FakeGitHub>);

impl Respond for Forward {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "PUT" => Method::Put,
            _ => Method::Delete,
        };
        let path = match request.url.query() {
            Some(q) => format!("{}?{q}", request.url.path()),
            None => request.url.path().to_owned(),
        };
        let body: Option<Value> = serde_json::from_slice(&request.body).ok();
        let (status, reply) = self.0.handle(method, &path, body.as_ref());
        ResponseTemplate::new(status).set_body_json(reply)
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Signed `synchronize` deliveries for the ten intake pull requests, in turn.
fn intake_bodies(count: u64, heads: &[(u64, git2::Oid, git2::Oid)]) -> Vec<(Vec<u8>, String)> {
    (0..count)
        .map(|i| {
            let (n, base, head) = heads[(i as usize) % heads.len()];
            let mut payload = event(n, n, &base.to_string(), &head.to_string());
            payload["action"] = json!("synchronize");
            let body = serde_json::to_vec(&payload).expect("json");
            let signature = github_signature(SECRET, &body);
            (body, signature)
        })
        .collect()
}

/// How deliveries are sent: on a fixed schedule, or as fast as `connections` clients can.
#[derive(Clone, Copy)]
enum Pace {
    Every(Duration),
    Saturate { connections: usize },
}

/// What the sender saw: one time to answer per delivery, and how many were not 2xx.
struct Sent {
    latencies: Vec<Duration>,
    failed: u64,
    elapsed: Duration,
}

/// Sends the deliveries from a thread with its own runtime, so its timing is not held up by
/// the mock GitHub and git server of this process.
fn send_deliveries(
    url: String,
    bodies: Vec<(Vec<u8>, String)>,
    id_prefix: &'static str,
    pace: Pace,
) -> Sent {
    send_deliveries_from(url, bodies, id_prefix, pace, None)
}

/// [`send_deliveries`] from the loopback address `source` (another peer than 127.0.0.1).
fn send_deliveries_from(
    url: String,
    bodies: Vec<(Vec<u8>, String)>,
    id_prefix: &'static str,
    pace: Pace,
    source: Option<IpAddr>,
) -> Sent {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let client = reqwest::Client::builder()
                .local_address(source)
                .build()
                .expect("client");
            let limit = match pace {
                Pace::Every(_) => bodies.len().max(1),
                Pace::Saturate { connections } => connections,
            };
            let permits = Arc::new(tokio::sync::Semaphore::new(limit));
            let started = Instant::now();
            let mut tasks = Vec::with_capacity(bodies.len());
            for (i, (body, signature)) in bodies.into_iter().enumerate() {
                if let Pace::Every(interval) = pace {
                    let due = started + interval * i as u32;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let permit = permits.clone().acquire_owned().await.expect("semaphore");
                let client = client.clone();
                let url = url.clone();
                tasks.push(tokio::spawn(async move {
                    let sent = Instant::now();
                    let status = client
                        .post(format!("{url}/webhooks/github"))
                        .header("x-github-event", "pull_request")
                        .header("x-github-delivery", format!("{id_prefix}-{i}"))
                        .header("x-hub-signature-256", signature)
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    drop(permit);
                    (status, sent.elapsed())
                }));
            }
            let mut latencies = Vec::with_capacity(tasks.len());
            let mut failed = 0u64;
            for t in tasks {
                let (status, latency) = t.await.expect("task");
                if !(200..300).contains(&status) {
                    failed += 1;
                }
                latencies.push(latency);
            }
            latencies.sort();
            Sent {
                latencies,
                failed,
                elapsed: started.elapsed(),
            }
        })
    })
    .join()
    .expect("sender")
}

async fn deliveries_recorded(db: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(db)
        .await
        .expect("count")
}

/// Waits until the workers have no queued or running job; returns the peak memory meanwhile.
async fn drain(db: &sqlx::SqlitePool, pid: u32) -> u64 {
    let mut peak = 0;
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
                .fetch_one(db)
                .await
                .expect("count");
        peak = peak.max(rss_kib(pid));
        if open == 0 {
            return peak;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn deployment(i: u64, privileged: bool) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  namespace: load\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      containers:\n        - name: web\n          image: app:{i}\n          securityContext:\n            privileged: {privileged}\n"
    )
}

fn event(number: u64, installation: u64, base: &str, head: &str) -> Value {
    json!({
        "action": "opened",
        "number": number,
        "pull_request": pull(number, base, head),
        "repository": {"id": 1000 + number, "name": format!("load-{number}"), "full_name": format!("octo/load-{number}"), "private": false,
                       "owner": {"login": "octo", "id": 1, "type": "Organization"}},
        "installation": {"id": installation},
        "sender": {"login": "dev", "id": 2, "type": "User"},
    })
}

fn pull(number: u64, base: &str, head: &str) -> Value {
    json!({
        "number": number, "state": "open", "draft": false,
        "head": {"sha": head, "ref": format!("f{number}"), "repo": {"id": 1000 + number}},
        "base": {"sha": base, "ref": "main", "repo": {"id": 1000 + number}},
    })
}

/// Repository `octo/load-{number}`: main with five manifests, and a pull request changing
/// all five (one of them to a privileged container).
fn repository(root: &std::path::Path, fake: &FakeGitHub, number: u64) -> (git2::Oid, git2::Oid) {
    let repo =
        git2::Repository::init_bare(root.join(format!("octo/load-{number}.git"))).expect("init");
    let base_texts: Vec<(String, String)> = (0..5)
        .map(|i| (format!("apps/app-{i}.yaml"), deployment(i, false)))
        .collect();
    let base_files: Vec<(&str, &[u8])> = base_texts
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    let base =
        build::commit(&repo, Some("refs/heads/main"), &[], &base_files, "base").expect("base");
    let texts: Vec<(String, String)> = (0..5)
        .map(|i| {
            (
                format!("apps/app-{i}.yaml"),
                deployment(i + number * 10, i == 0),
            )
        })
        .collect();
    let files: Vec<(&str, &[u8])> = texts
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_bytes()))
        .collect();
    let head = build::commit(
        &repo,
        Some(&format!("refs/pull/{number}/head")),
        &[base],
        &files,
        "pr",
    )
    .expect("pr");
    fake.add_pull(number, pull(number, &base.to_string(), &head.to_string()));
    fake.set_merge_base(&base.to_string(), &head.to_string(), &base.to_string());
    (base, head)
}

/// A throwaway RSA key for the App's JWTs (the mock accepts any).
fn app_key(dir: &std::path::Path) -> String {
    let key = dir.join("app.pem");
    let status = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .expect("openssl");
    assert!(status.status.success(), "openssl genrsa failed");
    std::fs::read_to_string(key).expect("key")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let flood_seconds = env_number("KUBEWARD_LOAD_FLOOD_SECONDS", 15);
    if std::env::var("KUBEWARD_LOAD_FLOOD_ONLY").is_ok_and(|v| v == "1") {
        floods(flood_seconds);
        return;
    }
    let steady_seconds = env_number("KUBEWARD_LOAD_SECONDS", 10);
    let prs = env_number("KUBEWARD_LOAD_PRS", 40);

    // One repository per pull request (as an organisation with many repositories), one
    // installation each: GitHub's write pacing is per installation.
    let served = tempfile::tempdir().expect("temp");
    let fake = Arc::new(FakeGitHub::new("kubeward[bot]"));
    let heads: Vec<(u64, git2::Oid, git2::Oid)> = (1..=prs)
        .map(|n| {
            let (base, head) = repository(served.path(), &fake, n);
            (n, base, head)
        })
        .collect();
    // Pull requests for the intake phase, kept apart from the reviewed ones.
    let intake_heads: Vec<(u64, git2::Oid, git2::Oid)> = (5001..=5010u64)
        .map(|n| {
            let (base, head) = repository(served.path(), &fake, n);
            (n, base, head)
        })
        .collect();
    let git = git_http::serve(served.path().to_path_buf(), Some("ghs_fake")).await;
    let github = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Forward(fake.clone()))
        .mount(&github)
        .await;

    // The server, as a separate process so its memory is its own.
    let dir = tempfile::tempdir().expect("temp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let settings = dir.path().join("serve.yaml");
    std::fs::write(&settings, format!(
        "listen: 127.0.0.1:{port}\ndatabase: sqlite://{}\ncacheDir: {}\nworkers: 16\ngithub:\n  appId: '1'\n  apiUrl: {}\n  gitUrl: {}\n  botLogin: 'kubeward[bot]'\n  redeliverEveryMinutes: 1000\n",
        dir.path().join("queue.db").display(), dir.path().join("cache").display(), github.uri(), git.base_url)).expect("settings");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env("KUBEWARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("KUBEWARD_GITHUB_PRIVATE_KEY", app_key(dir.path()))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            ready.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_kib = rss_kib(pid);

    // Phase 1: a steady 200 deliveries per second: pushes to ten pull requests, each persisted
    // with its job before the 202; newer pushes supersede queued older ones, as in real life.
    let rate = 200u64;
    let total = rate * steady_seconds;
    let interval = Duration::from_micros(1_000_000 / rate);
    let bodies = intake_bodies(total, &intake_heads);
    let memory = std::thread::spawn(move || {
        let mut peak = 0;
        for _ in 0..(steady_seconds * 10) {
            peak = rss_kib(pid).max(peak);
            std::thread::sleep(Duration::from_millis(100));
        }
        peak
    });
    let steady = send_deliveries(url.clone(), bodies, "steady", Pace::Every(interval));
    let mut peak_kib = memory.join().expect("memory sampler").max(idle_kib);
    // Nothing lost: every delivery is in the queue's records; then let the workers drain.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("queue.db").display()
    ))
    .await
    .expect("queue db");
    let recorded = deliveries_recorded(&db).await;
    peak_kib = peak_kib.max(drain(&db, pid).await);

    // Phase 1b: capacity. As many deliveries again, sent as fast as 32 concurrent clients can:
    // the most the intake accepts per second on this machine, each still persisted before 202.
    let connections = 32;
    let burst = send_deliveries(
        url.clone(),
        intake_bodies(total, &intake_heads),
        "burst",
        Pace::Saturate { connections },
    );
    let recorded_after_burst = deliveries_recorded(&db).await;
    peak_kib = peak_kib.max(drain(&db, pid).await);

    // Phase 2: reviews of 5-file pull requests, one installation each (as many repositories).
    let review_started = Instant::now();
    for (n, base, head) in &heads {
        let n = *n;
        let body =
            serde_json::to_vec(&event(n, n, &base.to_string(), &head.to_string())).expect("json");
        let status = client
            .post(format!("{url}/webhooks/github"))
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", format!("review-{n}"))
            .header("x-hub-signature-256", github_signature(SECRET, &body))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, 202);
    }
    loop {
        peak_kib = peak_kib.max(rss_kib(pid));
        let done = fake
            .check_runs()
            .iter()
            .filter(|r| {
                r["status"] == "completed"
                    && heads
                        .iter()
                        .any(|(_, _, h)| r["head_sha"] == h.to_string().as_str())
            })
            .count();
        if done as u64 >= prs {
            break;
        }
        assert!(
            review_started.elapsed() < Duration::from_secs(600),
            "reviews did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let review_elapsed = review_started.elapsed();
    let _ = child.kill();
    let _ = child.wait();

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("load benchmark ({cpus} CPUs): kubeward serve, SQLite queue, 16 workers");
    println!(
        "intake: {total} deliveries at {rate}/s over {:.1} s: {:.0} accepted/s, {} not 2xx, {recorded} recorded; time to 202 p50 {:.1} ms, p99 {:.1} ms",
        steady.elapsed.as_secs_f64(),
        (total - steady.failed) as f64 / steady.elapsed.as_secs_f64(),
        steady.failed,
        percentile(&steady.latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&steady.latencies, 0.99).as_secs_f64() * 1000.0,
    );
    println!(
        "capacity: {total} deliveries from {connections} concurrent clients in {:.1} s: {:.0} accepted/s, {} not 2xx, {} recorded; time to 202 p50 {:.1} ms, p99 {:.1} ms",
        burst.elapsed.as_secs_f64(),
        (total - burst.failed) as f64 / burst.elapsed.as_secs_f64(),
        burst.failed,
        recorded_after_burst - recorded,
        percentile(&burst.latencies, 0.50).as_secs_f64() * 1000.0,
        percentile(&burst.latencies, 0.99).as_secs_f64() * 1000.0,
    );
    println!(
        "reviews: {prs} five-file pull requests in {:.1} s: {:.2} reviews/s",
        review_elapsed.as_secs_f64(),
        prs as f64 / review_elapsed.as_secs_f64()
    );
    println!(
        "memory: {:.1} MiB idle, {:.1} MiB at peak",
        idle_kib as f64 / 1024.0,
        peak_kib as f64 / 1024.0
    );
    floods(flood_seconds);
}

/// The unsigned-body flood, against the default intake limits, then with them off.
fn floods(seconds: u64) {
    let on = flood(seconds, "");
    let off = flood(
        seconds,
        // Limits off: a budget no flood reaches, no small-body share, no per-client cap.
        "bodyBudgetBytes: 1099511627776\nsmallBodyShareBytes: 0\nbodiesPerPeer: 0\n",
    );
    for (name, f) in [("default limits", &on), ("limits off (baseline)", &off)] {
        println!(
            "flood, {name}: {FLOOD_CLIENTS} clients x 5 MiB unsigned for {seconds} s: memory {:.1} MiB idle, {:.1} MiB at peak; bodies refused 503: {}, read and refused 401: {}, other: {}",
            f.idle_kib as f64 / 1024.0,
            f.peak_kib as f64 / 1024.0,
            f.refused,
            f.unsigned_read,
            f.other,
        );
        for (when, sent) in [
            ("before the flood", &f.quiet),
            ("during the flood", &f.flooded),
        ] {
            println!(
                "  signed deliveries {when}: {} sent, {} not 2xx; time to 202 p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                sent.latencies.len(),
                sent.failed,
                percentile(&sent.latencies, 0.50).as_secs_f64() * 1000.0,
                percentile(&sent.latencies, 0.99).as_secs_f64() * 1000.0,
                sent.latencies
                    .last()
                    .copied()
                    .unwrap_or_default()
                    .as_secs_f64()
                    * 1000.0,
            );
        }
    }
    println!(
        "flood: peak memory with the limits {:.2}x the baseline's; signed p50 during/before the flood {:.2}x (baseline {:.2}x)",
        on.peak_kib as f64 / off.peak_kib.max(1) as f64,
        ratio(&on.flooded, &on.quiet),
        ratio(&off.flooded, &off.quiet),
    );
}

fn ratio(during: &Sent, before: &Sent) -> f64 {
    percentile(&during.latencies, 0.50).as_secs_f64()
        / percentile(&before.latencies, 0.50).as_secs_f64().max(1e-9)
}

const FLOOD_CLIENTS: usize = 150;
const FLOOD_BODY: usize = 5 << 20;
/// 64 KiB every 100 ms: 5 MiB in 8 s, just inside the default 10 s read timeout, so an
/// accepted body is held as long as a client can make it.
const FLOOD_CHUNK: usize = 64 << 10;
const FLOOD_TICK: Duration = Duration::from_millis(100);
/// A refused client connects again after this.
const FLOOD_RETRY: Duration = Duration::from_millis(50);

struct FloodFigures {
    idle_kib: u64,
    peak_kib: u64,
    quiet: Sent,
    flooded: Sent,
    refused: u64,
    unsigned_read: u64,
    other: u64,
}

/// One server (token mode, one worker, no forge behind it: the signed deliveries' jobs fail
/// and wait, they do not compete for the CPU), `extra` settings appended; five signed
/// deliveries a second from 127.0.0.2 for 5 s alone, then for `seconds` during the flood from
/// 127.0.0.1.
fn flood(seconds: u64, extra: &str) -> FloodFigures {
    let dir = tempfile::tempdir().expect("temp");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let settings = dir.path().join("serve.yaml");
    std::fs::write(
        &settings,
        format!(
            "listen: 127.0.0.1:{port}\ndatabase: sqlite://{}\ncacheDir: {}\nworkers: 1\n{extra}github:\n  apiUrl: http://127.0.0.1:9\n  gitUrl: http://127.0.0.1:9\n  botLogin: 'kubeward[bot]'\n",
            dir.path().join("queue.db").display(),
            dir.path().join("cache").display()
        ),
    )
    .expect("settings");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .args(["serve", "--config"])
        .arg(&settings)
        .env("KUBEWARD_GITHUB_WEBHOOK_SECRET", SECRET)
        .env("KUBEWARD_GITHUB_TOKEN", "ghs_flood")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    let pid = child.id();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let url = format!("http://{address}");
    let started = Instant::now();
    while std::net::TcpStream::connect(address).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let idle_kib = rss_kib(pid);
    let signer: IpAddr = "127.0.0.2".parse().expect("ip");
    let sha = "1111111111111111111111111111111111111111";
    let signed = |count: u64, first: u64| -> Vec<(Vec<u8>, String)> {
        (first..first + count)
            .map(|n| {
                let mut payload = event(n, 1, sha, sha);
                payload["action"] = json!("synchronize");
                let body = serde_json::to_vec(&payload).expect("json");
                let signature = github_signature(SECRET, &body);
                (body, signature)
            })
            .collect()
    };
    let every = Duration::from_millis(200);
    let quiet = send_deliveries_from(
        url.clone(),
        signed(25, 1),
        "quiet",
        Pace::Every(every),
        Some(signer),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let flooders = {
        let (stop, counts) = (stop.clone(), counts.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let clients: Vec<_> = (0..FLOOD_CLIENTS)
                    .map(|_| tokio::spawn(flood_client(address, stop.clone(), counts.clone())))
                    .collect();
                for client in clients {
                    let _ = client.await;
                }
            })
        })
    };
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = rss_kib(pid).max(peak);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    // The flood's clients are all connected and sending before the first signed delivery.
    std::thread::sleep(Duration::from_secs(1));
    let count = (seconds.saturating_sub(1) * 1000 / every.as_millis() as u64).max(1);
    let flooded = send_deliveries_from(
        url,
        signed(count, 1000),
        "flooded",
        Pace::Every(every),
        Some(signer),
    );
    stop.store(true, Ordering::Relaxed);
    let peak_kib = sampler.join().expect("sampler").max(idle_kib);
    let _ = flooders.join();
    let _ = child.kill();
    let _ = child.wait();
    FloodFigures {
        idle_kib,
        peak_kib,
        quiet,
        flooded,
        refused: counts[0].load(Ordering::Relaxed),
        unsigned_read: counts[1].load(Ordering::Relaxed),
        other: counts[2].load(Ordering::Relaxed),
    }
}

/// One flooding client: declares a 5 MiB unsigned body and sends it slowly; whatever the
/// answer (503 at once, 401 once read, 408 if too slow), it connects again. `counts`: 503,
/// 401, anything else.
async fn flood_client(address: SocketAddr, stop: Arc<AtomicBool>, counts: Arc<[AtomicU64; 3]>) {
    let head = format!(
        "POST /webhooks/github HTTP/1.1\r\nHost: kubeward\r\nConnection: close\r\nContent-Type: application/json\r\nX-GitHub-Event: pull_request\r\nX-GitHub-Delivery: flood\r\nX-Hub-Signature-256: sha256={}\r\nContent-Length: {FLOOD_BODY}\r\n\r\n",
        "0".repeat(64)
    );
    let chunk = vec![b' '; FLOOD_CHUNK];
    let mut answer = [0u8; 16];
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut stream) = tokio::net::TcpStream::connect(address).await else {
            tokio::time::sleep(FLOOD_RETRY).await;
            continue;
        };
        let (mut read, mut write) = stream.split();
        let mut sent = 0;
        let mut tick = tokio::time::interval(FLOOD_TICK);
        let mut status = None;
        if write.write_all(head.as_bytes()).await.is_ok() {
            loop {
                tokio::select! {
                    n = read.read(&mut answer) => {
                        status = match n {
                            Ok(n) if n >= 12 => std::str::from_utf8(&answer[9..12]).ok().map(str::to_owned),
                            _ => None,
                        };
                        break;
                    }
                    _ = tick.tick(), if sent < FLOOD_BODY => {
                        let n = chunk.len().min(FLOOD_BODY - sent);
                        if write.write_all(&chunk[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
        }
        let slot = match status.as_deref() {
            Some("503") => 0,
            Some("401") => 1,
            _ => 2,
        };
        counts[slot].fetch_add(1, Ordering::Relaxed);
        drop(stream);
        tokio::time::sleep(FLOOD_RETRY).await;
    }
}

//! Dashboard: the platform team's pages over a large ownership store.
//!
//! `cargo bench --bench dashboard` fills a fresh SQLite store through the real write path
//! (`Queue::record_snapshot`) with 500 repositories × 2,000 open findings and 90 days of daily
//! snapshots (each day fixes, adds and moves a few findings per repository), then serves the
//! dashboard on 127.0.0.1 and times, over HTTP, the overview and a team's page (HTML and JSON)
//! for a platform user who sees everything and for a team lead granted one team. It prints
//! p50/p95/max per page, the store's size, and how many finding rows the snapshots hold
//! against what whole daily copies would.
//!
//! The same against PostgreSQL: `scripts/test.sh --release --bench dashboard` starts a
//! throwaway server and runs this with `KUBEWARD_TEST_DATABASE_URL` set, or set
//! `KUBEWARD_BENCH_DATABASE_URL` to a server where the role may create a database.
//! `KUBEWARD_DASH_REPOS`, `KUBEWARD_DASH_FINDINGS`, `KUBEWARD_DASH_DAYS` change the shape,
//! `KUBEWARD_DASH_REQUESTS` (default 40) the timed requests per page. Goal: p95 ≤ 200 ms for
//! the overview and a team page on both databases (docs/benchmarks.md).
//!
//! Filling takes 20–25 minutes per database at full size, so `KUBEWARD_DASH_KEEP=DIR` keeps
//! the filled stores (a SQLite file in DIR, a PostgreSQL database named after the shape) and a
//! later run with the same shape times the pages on them, after migrating them like any store.
//! `KUBEWARD_DASH_DATABASES=sqlite` or `=postgres` runs one of the two. On PostgreSQL the
//! bench runs `VACUUM (ANALYZE)` before timing, as autovacuum would on a running server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kubeward::audit::Severity;
use kubeward::dashboard::{Access, DashboardSettings, DashboardState, router};
use kubeward::ownership::OwnedFinding;
use kubeward::queue::Queue;
use kubeward::queue::ownership::{NewSnapshot, SnapshotCause};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;
const TEAMS: usize = 50;
const RULES: [&str; 20] = [
    "runAsRootAllowed",
    "runAsPrivileged",
    "hostNetworkSet",
    "hostPIDSet",
    "hostIPCSet",
    "cpuRequestsMissing",
    "cpuLimitsMissing",
    "memoryRequestsMissing",
    "memoryLimitsMissing",
    "readinessProbeMissing",
    "livenessProbeMissing",
    "tagNotSpecified",
    "pullPolicyNotAlways",
    "notReadOnlyRootFilesystem",
    "privilegeEscalationAllowed",
    "insecureCapabilities",
    "dangerousCapabilities",
    "automountServiceAccountToken",
    "deploymentMissingReplicas",
    "priorityClassNotSet",
];

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64, seeded: every run builds the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn team(i: usize) -> String {
    format!("@org/team-{i:02}")
}

/// Finding `id` of repository `repo`, moved `moves` times (a line down each time). Files are
/// services of 25 findings; each service has one owning team of the repository's three, every
/// tenth has two, every twentieth none.
fn finding(repo: usize, id: u32, moves: u32) -> OwnedFinding {
    let service = id / 25;
    let rule = RULES[id as usize % RULES.len()];
    let owners = if service % 20 == 19 {
        Vec::new()
    } else {
        let first = (repo * 7 + service as usize % 3) % TEAMS;
        let mut owners = vec![team(first)];
        if service.is_multiple_of(10) {
            owners.push(team((first + 1) % TEAMS));
        }
        owners
    };
    let key = format!("{:016x}", (repo as u64) << 32 | u64::from(id));
    OwnedFinding {
        fingerprint: key.clone(),
        key,
        rule: rule.to_owned(),
        severity: if id % 10 < 3 {
            Severity::Danger
        } else {
            Severity::Warning
        },
        path: format!("services/svc-{service}/deployment.yaml"),
        line: 10 + (id % 25) * 7 + moves,
        object: format!("Deployment team/svc-{service}"),
        message: format!("{rule}: container app-{} of svc-{service}", id % 3),
        owners,
        environments: vec![
            if service.is_multiple_of(2) {
                "prod"
            } else {
                "staging"
            }
            .to_owned(),
        ],
    }
}

/// One repository's open findings: ids with how often each moved.
struct RepoState {
    open: BTreeMap<u32, u32>,
    next_id: u32,
}

async fn fill(queue: &Queue, repos: usize, findings: usize, days: usize) -> Duration {
    let started = Instant::now();
    let start_ms = kubeward::queue::now_ms() - days as i64 * DAY_MS;
    let mut rng = Rng(0x6b75_6265_7761_7264);
    let mut states: Vec<RepoState> = (0..repos)
        .map(|_| RepoState {
            open: (0..findings as u32).map(|id| (id, 0)).collect(),
            next_id: findings as u32,
        })
        .collect();
    for day in 0..days {
        for (repo, state) in states.iter_mut().enumerate() {
            if day > 0 {
                // A day's work in a repository: some fixed, as many new, some moved.
                for _ in 0..8 {
                    let ids: Vec<u32> = state.open.keys().copied().collect();
                    if let Some(id) = ids.get(rng.below(ids.len().max(1))) {
                        state.open.remove(id);
                    }
                    state.open.insert(state.next_id, 0);
                    state.next_id += 1;
                }
                for _ in 0..4 {
                    let ids: Vec<u32> = state.open.keys().copied().collect();
                    if let Some(id) = ids.get(rng.below(ids.len().max(1))) {
                        *state.open.entry(*id).or_insert(0) += 1;
                    }
                }
            }
            let set: Vec<OwnedFinding> = state
                .open
                .iter()
                .map(|(id, moves)| finding(repo, *id, *moves))
                .collect();
            let name = format!("org/service-{repo:03}");
            queue
                .record_snapshot(&NewSnapshot {
                    forge: "github".into(),
                    repo_id: repo as i64 + 1,
                    repo_name: name.clone(),
                    installation_id: Some(1),
                    web_url: Some(format!("https://github.com/{name}")),
                    commit: format!("{:040x}", (day as u128) << 64 | repo as u128),
                    taken_at_ms: start_ms + day as i64 * DAY_MS + repo as i64 * 1_000,
                    cause: if day == 0 {
                        SnapshotCause::Installed
                    } else {
                        SnapshotCause::Schedule
                    },
                    reviewed: rng.below(4) != 0,
                    findings: set,
                })
                .await
                .expect("snapshot stored");
        }
        if day % 5 == 0 || day + 1 == days {
            eprintln!(
                "  day {}/{days} stored ({:.0} s)",
                day + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    started.elapsed()
}

async fn serve(queue: Queue) -> String {
    let settings: DashboardSettings = serde_json::from_value(json!({
        "trustedHeaders": {"fromCidrs": ["127.0.0.1/32"]},
        "access": [
            {"groups": ["platform"], "teams": ["*"]},
            {"users": ["lead"], "teams": [team(7)]}
        ]
    }))
    .expect("settings");
    let access = Access::new(&settings).expect("access");
    let app = router(Arc::new(DashboardState { queue, access }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(kubeward::server::listen::serve(
        listener,
        app,
        Duration::from_secs(30),
        Duration::from_secs(1),
        std::future::pending(),
    ));
    url
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn time_page(
    client: &reqwest::Client,
    url: &str,
    user: (&str, &str),
    requests: usize,
) -> (Duration, Duration, Duration, usize) {
    let mut times = Vec::with_capacity(requests);
    let mut bytes = 0;
    // One unmeasured request warms the connection and the database's cache.
    for i in 0..=requests {
        let started = Instant::now();
        let answer = client
            .get(url)
            .header("x-forwarded-user", user.0)
            .header("x-forwarded-groups", user.1)
            .send()
            .await
            .expect("answered");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        let body = answer.bytes().await.expect("body");
        if i > 0 {
            times.push(started.elapsed());
            bytes = body.len();
        }
    }
    times.sort();
    (
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        *times.last().expect("timed"),
        bytes,
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// `repos`x`findings`x`days`: names a kept store.
fn shape() -> (usize, usize, usize, String) {
    let repos = env_number("KUBEWARD_DASH_REPOS", 500);
    let findings = env_number("KUBEWARD_DASH_FINDINGS", 2_000);
    let days = env_number("KUBEWARD_DASH_DAYS", 90);
    (repos, findings, days, format!("{repos}x{findings}x{days}"))
}

fn runs(database: &str) -> bool {
    std::env::var("KUBEWARD_DASH_DATABASES").map_or(true, |v| v.split(',').any(|d| d == database))
}

async fn run(
    label: &str,
    url: &str,
    kept: bool,
    settle: impl std::future::Future<Output = ()>,
    size: impl std::future::Future<Output = u64>,
) {
    let (repos, findings, days, _) = shape();
    let requests = env_number("KUBEWARD_DASH_REQUESTS", 40);
    let queue = Queue::connect(url).await.expect("queue");
    let filled = if kept {
        eprintln!("{label}: timing the kept store");
        Duration::ZERO
    } else {
        eprintln!("{label}: filling {repos} repositories × {findings} findings × {days} days");
        fill(&queue, repos, findings, days).await
    };
    settle.await;
    let site = serve(queue.clone()).await;
    let client = reqwest::Client::new();
    let team_url = team(7).replace('@', "%40").replace('/', "%2F");
    let team_findings = queue.team_findings(&team(7)).await.expect("team").len();
    let filled = if kept {
        "kept from an earlier run".to_owned()
    } else {
        format!("filled in {:.0} s", filled.as_secs_f64())
    };
    println!(
        "\n{label}: {repos} repositories × {findings} open findings × {days} days, {filled}; {} owns {team_findings} of the open findings (its page lists 100 at a time)",
        team(7),
    );
    println!("| page | user | p50 ms | p95 ms | max ms | bytes |");
    println!("|---|---|---:|---:|---:|---:|");
    let platform = ("pat", "platform");
    let lead = ("lead", "");
    for (page, path, user) in [
        ("overview (HTML)", "/dashboard".to_owned(), platform),
        ("overview (JSON)", "/api/v1/overview".to_owned(), platform),
        (
            "overview, 90 days",
            "/dashboard?trendDays=90".to_owned(),
            platform,
        ),
        (
            "team page (HTML)",
            format!("/dashboard/teams/{team_url}"),
            platform,
        ),
        ("team (JSON)", format!("/api/v1/teams/{team_url}"), platform),
        (
            "team page, page 50",
            format!("/dashboard/teams/{team_url}?page=50"),
            platform,
        ),
        ("overview (HTML)", "/dashboard".to_owned(), lead),
        (
            "team page (HTML)",
            format!("/dashboard/teams/{team_url}"),
            lead,
        ),
    ] {
        let (p50, p95, max, bytes) =
            time_page(&client, &format!("{site}{path}"), user, requests).await;
        println!(
            "| {page} | {} | {} | {} | {} | {bytes} |",
            if user.0 == "pat" {
                "platform (all)"
            } else {
                "team lead (one team)"
            },
            ms(p50),
            ms(p95),
            ms(max)
        );
    }
    let stored: i64 = queue
        .snapshots("github", 1)
        .await
        .expect("snapshots")
        .iter()
        .map(|s| s.added + s.removed + s.moved)
        .sum();
    println!(
        "\nstore: {:.0} MiB; repository 1 holds {stored} snapshot finding rows for {days} snapshots, where whole daily copies would hold {}",
        size.await as f64 / 1_048_576.0,
        findings * days
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no flag: a short
    // check that it still works, not a measurement.
    let measuring = std::env::args().any(|a| a == "--bench");
    if !measuring && std::env::var_os("KUBEWARD_DASH_REPOS").is_none() {
        // SAFETY: single-threaded here, before the runtime starts.
        unsafe {
            std::env::set_var("KUBEWARD_DASH_REPOS", "5");
            std::env::set_var("KUBEWARD_DASH_FINDINGS", "200");
            std::env::set_var("KUBEWARD_DASH_DAYS", "5");
            std::env::set_var("KUBEWARD_DASH_REQUESTS", "3");
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (.., shape) = shape();
        let keep = std::env::var_os("KUBEWARD_DASH_KEEP").map(std::path::PathBuf::from);
        let temp = tempfile::tempdir().expect("temp");
        if runs("sqlite") {
            let dir = keep.clone().unwrap_or_else(|| temp.path().to_owned());
            std::fs::create_dir_all(&dir).expect("the store's folder");
            let file = dir.join(format!("dashboard-{shape}.db"));
            // A kept store is reused only once its fill finished (the marker is written last).
            let marker = dir.join(format!("dashboard-{shape}.filled"));
            let kept = keep.is_some() && marker.exists();
            if !kept {
                for s in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{s}", file.display()));
                }
            }
            let sqlite_url = format!("sqlite://{}", file.display());
            run("SQLite", &sqlite_url, kept, async {}, async {
                ["", "-wal"]
                    .iter()
                    .filter_map(|s| std::fs::metadata(format!("{}{s}", file.display())).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .await;
            if keep.is_some() {
                std::fs::write(&marker, b"").expect("marker");
            }
        }
        if !runs("postgres") {
            return;
        }
        let pg = std::env::var("KUBEWARD_BENCH_DATABASE_URL")
            .or_else(|_| std::env::var("KUBEWARD_TEST_DATABASE_URL"))
            .ok();
        let Some(pg) = pg else {
            println!("\nPostgreSQL: skipped (set KUBEWARD_BENCH_DATABASE_URL, or run scripts/test.sh --release --bench dashboard)");
            return;
        };
        // A database of its own, so a test database is never mixed with the bench's rows.
        let (server, _) = pg.rsplit_once('/').expect("a database URL");
        let admin = sqlx::PgPool::connect(&pg).await.expect("PostgreSQL");
        let name = if keep.is_some() {
            format!("kubeward_bench_{shape}")
        } else {
            format!("kubeward_bench_{}", std::process::id())
        };
        let kept_name = format!("{name}_filled");
        let exists = |db: String| {
            let admin = admin.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
                    .bind(db)
                    .fetch_one(&admin)
                    .await
                    .expect("databases")
                    > 0
            }
        };
        // A kept database is renamed once filled, so an interrupted fill is never reused.
        let kept = keep.is_some() && exists(kept_name.clone()).await;
        let name = if kept {
            kept_name.clone()
        } else {
            if exists(name.clone()).await {
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("drop an unfinished bench database");
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&admin)
                .await
                .expect("create the bench database");
            name
        };
        let url = format!("{server}/{name}");
        let size_pool = admin.clone();
        let size_name = name.clone();
        // What autovacuum does on a running server, done now: the fill (or a migration of a
        // kept store) leaves dead rows and no statistics, which no long-lived store has.
        let settle_url = url.clone();
        let settle = async move {
            let pool = sqlx::PgPool::connect(&settle_url)
                .await
                .expect("bench database");
            sqlx::query("VACUUM (ANALYZE)")
                .execute(&pool)
                .await
                .expect("vacuum");
            pool.close().await;
        };
        run("PostgreSQL", &url, kept, settle, async move {
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size($1)")
                .bind(&size_name)
                .fetch_one(&size_pool)
                .await
                .map(|n| u64::try_from(n).unwrap_or(0))
                .unwrap_or(0)
        })
        .await;
        if keep.is_some() && !kept {
            // The dashboard's pool may still hold connections: end them, then rename.
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .execute(&admin)
                .await
                .expect("end the bench's connections");
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER DATABASE {name} RENAME TO {kept_name}"
            )))
            .execute(&admin)
            .await
            .expect("mark the bench database filled");
        }
    });
}

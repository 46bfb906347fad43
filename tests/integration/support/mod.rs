//! Shared test support.
//!
//! - [`npm`]: the GitHub fixtures installed from npm by `scripts/test.sh`.
//! - [`github_openapi`]: checks requests to GitHub against its OpenAPI description and limits.
//! - [`github_graphql`]: checks GraphQL requests against GitHub's published GraphQL schema.
//! - [`mock_github`]: a recording mock GitHub over HTTP, backed by the in-memory fake.
//! - [`gitlab_fake`]: an in-memory GitLab the GitLab tests serve or call directly.
//! - [`git_http`]: a real git smart-HTTP server on loopback.
//! - [`manifests`]: small manifests several areas audit.
//! - [`polaris`]: Polaris's vendored per-check fixtures.
//! - [`queue_scenarios`]: the queue's behaviour, run against every backend.
//! - [`browser`]: headless Chromium and the W3C HTML validator, for the dashboard's pages.

pub mod browser;
pub mod git_http;
pub mod github_graphql;
pub mod github_openapi;
pub mod gitlab_fake;
pub mod gitlab_replies;
pub mod manifests;
pub mod mock_github;
pub mod npm;
pub mod polaris;
#[macro_use]
pub mod queue_scenarios;

use std::time::{SystemTime, UNIX_EPOCH};

/// A loopback port nothing listens on right now, for a server started in another process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A temporary folder that is its own repository root (so no `.kubeward.yaml` above it is
/// found), with these files in it.
pub fn workspace(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join(".git")).expect("mkdir .git");
    for (name, bytes) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, bytes).expect("write");
    }
    dir
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// Starts `count` workers on `queue` that poll every 20 ms, until `stop` turns true.
pub fn spawn_workers(
    queue: &kubeward::queue::Queue,
    runners: &kubeward::bot::worker::Runners,
    count: usize,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    use kubeward::bot::worker::{WorkerSettings, run};
    for i in 0..count {
        tokio::spawn(run(
            format!("w{i}"),
            queue.clone(),
            runners.clone(),
            WorkerSettings {
                poll_interval: std::time::Duration::from_millis(20),
                ..WorkerSettings::default()
            },
            stop.clone(),
        ));
    }
}

/// The view store the bot tests share.
pub fn shared_view_store() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
        .path()
}

/// The limits bot tests review under: reviews in child processes of the real binary (not the
/// test harness, which `current_exe()` would name), with a 512 MiB address space.
pub fn review_limits(
    max_changed_manifests: usize,
    time_limit: std::time::Duration,
) -> kubeward::bot::fetch::ReviewLimits {
    kubeward::bot::fetch::ReviewLimits {
        max_fetch_bytes: 64 << 20,
        fetch_depth: 50,
        time_limit,
        budgets: kubeward::pipeline::ReviewBudgets {
            max_changed_manifests,
            max_bytes: 64 << 20,
            max_nodes: 2_000_000,
            max_scalar_bytes: 128 << 20,
            max_documents: 100_000,
        },
        sandbox: kubeward::bot::sandbox::SandboxSettings {
            program: env!("CARGO_BIN_EXE_kubeward").into(),
            memory_bytes: 512 << 20,
            max_output_bytes: 64 << 20,
        },
        // One view store for every bot test of the run, as one serve has: every second review
        // of a repository (a push, a rescan) takes its unchanged files from it.
        views: Some(kubeward::views::StoreSettings {
            dir: shared_view_store().to_path_buf(),
            max_bytes: 256 << 20,
        }),
        // The pinned kubectl scripts/test.sh unpacks, never whatever a machine has on PATH.
        render: kubeward::render::review::RenderOptions {
            kubectl: std::env::var_os("KUBEWARD_TEST_KUBECTL")
                .filter(|p| !p.is_empty())
                .map(Into::into),
            helm: std::env::var_os("KUBEWARD_TEST_HELM")
                .filter(|p| !p.is_empty())
                .map(Into::into),
            ..Default::default()
        },
    }
}

//! `kubeward serve`: the webhook server and its workers, with a graceful shutdown that lets
//! running jobs finish (or puts them back in the queue).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use super::fetch::ReviewLimits;
use super::github::{BotSettings, GitAccess, GitHubWorker};
use super::gitlab::{GitLabBotSettings, GitLabWorker};
use super::runner::{BoxFuture, JobRunner};
use super::sandbox::{MIN_MEMORY_BYTES, SandboxSettings, default_memory_bytes};
use super::worker::{WorkerSettings, run as run_worker};
use crate::forge::github::api::{ApiError, GitHubApi, segment};
use crate::forge::github::client::{GitHubAuth, GitHubClient, GitHubClientConfig, WriteLimits};
use crate::forge::gitlab::GitLabApi;
use crate::forge::gitlab::client::{GitLabClient, GitLabClientConfig, normalize_instance_url};
use crate::forge::job::{FORGE_GITHUB, FORGE_GITLAB, RepoRef};
use crate::git::cache::GitCache;
use crate::pipeline::ReviewBudgets;
use crate::queue::{Queue, QueueConfig};
use crate::server::gitlab::{DEFAULT_TIMESTAMP_TOLERANCE, GitLabHooks};
use crate::server::settings::{GitLabSecrets, GitLabSettings, LogFormat, Secrets, ServeSettings};
use crate::server::{AppState, GitHubHooks, router_with_limits};

/// Git over HTTPS from the configured git base URL, with the installation token.
pub struct HttpsGit {
    pub base_url: String,
    pub client: Arc<GitHubClient>,
}

impl GitAccess for HttpsGit {
    fn url(&self, repo: &RepoRef) -> String {
        format!(
            "{}/{}/{}.git",
            self.base_url.trim_end_matches('/'),
            segment(&repo.owner),
            segment(&repo.name)
        )
    }

    fn credentials(
        &self,
        installation: u64,
    ) -> BoxFuture<'_, Result<Option<(String, String)>, ApiError>> {
        Box::pin(async move {
            let token = self
                .client
                .installation_token(installation)
                .await
                .map_err(|e| ApiError::Other(e.to_string()))?;
            Ok(Some((
                "x-access-token".to_owned(),
                token.expose().to_owned(),
            )))
        })
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Installs the one TLS provider the process uses (aws-lc-rs), before any client is built.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// How long delivery ids and finished jobs are kept: longer than GitHub's three days of
/// redeliverable deliveries, so a late redelivery is still recognised.
const HISTORY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Queues the scheduled snapshots that are due and folds deltas past their retention. Every
/// replica does this; one delivery key per interval window queues each round once.
async fn schedule_snapshots(
    queue: &Queue,
    settings: &crate::server::settings::SnapshotSettings,
    folded_at_ms: &mut i64,
) {
    let now = crate::queue::now_ms();
    if settings.interval_hours > 0 {
        let interval = (settings.interval_hours * 3_600_000) as i64;
        match queue.repositories_due(now - interval).await {
            Ok(due) if !due.is_empty() => {
                let jobs = super::snapshot::scheduled_jobs(&due);
                let key = format!("snapshot-schedule:{}", now / interval);
                match queue.enqueue_delivery("schedule", &key, jobs).await {
                    Ok(Some(ids)) => info!(jobs = ids.len(), "scheduled snapshots queued"),
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, "cannot queue the scheduled snapshots"),
                }
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot list the repositories due a snapshot"),
        }
    }
    // Folding reads every repository's snapshots: hourly is plenty for a retention in days.
    if now - *folded_at_ms < 3_600_000 {
        return;
    }
    *folded_at_ms = now;
    let retention = (settings.retention_days.max(1) * 86_400_000) as i64;
    match queue.fold_snapshots(now - retention).await {
        Ok(n) if n > 0 => info!(folded = n, "old snapshot deltas folded into checkpoints"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot fold old snapshots"),
    }
}

/// How many redeliveries of one delivery the bot asks for.
const MAX_REDELIVERIES: usize = 3;

/// Asks GitHub to redeliver the App's failed deliveries we never processed: GitHub does not
/// redeliver by itself, and a required check would otherwise hang after an outage.
pub async fn redeliver_failed(
    client: &GitHubClient,
    queue: &Queue,
) -> Result<usize, anyhow::Error> {
    let deliveries = client
        .app_paginate("/app/hook/deliveries")
        .await
        .context("listing the App's deliveries")?;
    let ok = |d: &serde_json::Value| {
        d.get("status_code")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| (200..300).contains(&s))
    };
    // One delivery has several attempts: any success settles it, whatever the listing order.
    let mut seen: std::collections::HashSet<String> = deliveries
        .iter()
        .filter(|d| ok(d))
        .filter_map(|d| d.get("guid").and_then(|g| g.as_str()).map(str::to_owned))
        .collect();
    // The listing keeps our earlier requests as `redelivery` attempts: a delivery that fails
    // every time (a rotated secret, a payload we refuse) is asked for a few times, not every
    // sweep for three days, and replicas sharing the App see the same count.
    let mut redeliveries: HashMap<&str, usize> = HashMap::new();
    for d in &deliveries {
        if d.get("redelivery").and_then(|r| r.as_bool()) == Some(true)
            && let Some(guid) = d.get("guid").and_then(|g| g.as_str())
        {
            *redeliveries.entry(guid).or_default() += 1;
        }
    }
    let mut asked = 0;
    for d in &deliveries {
        let Some(guid) = d.get("guid").and_then(|g| g.as_str()) else {
            continue;
        };
        // Recorded under the same key the webhook handler uses.
        let key = crate::server::delivery::delivery_key(guid);
        if seen.contains(guid) || queue.delivery_seen("github", &key).await.unwrap_or(false) {
            continue;
        }
        if redeliveries.get(guid).copied().unwrap_or(0) >= MAX_REDELIVERIES {
            if seen.insert(guid.to_owned()) {
                warn!(
                    delivery = guid,
                    "a delivery failed after {MAX_REDELIVERIES} redeliveries: not asking again"
                );
            }
            continue;
        }
        let Some(id) = d.get("id").and_then(|i| i.as_u64()) else {
            continue;
        };
        seen.insert(guid.to_owned());
        let path = format!("/app/hook/deliveries/{id}/attempts");
        match client
            .app_request(
                reqwest::Method::POST,
                &path,
                None,
                crate::forge::github::client::WriteKind::Idempotent,
            )
            .await
        {
            Ok(_) => asked += 1,
            Err(e) => warn!(error = %e, "cannot ask for a redelivery"),
        }
    }
    Ok(asked)
}

/// The GitLab side of `serve`: the API client, the worker (sharing the git cache) and the
/// webhook settings. Every URL comes from the configured instance URL.
pub fn gitlab_parts(
    settings: &ServeSettings,
    gitlab: &GitLabSettings,
    secrets: &GitLabSecrets,
    cache: Arc<GitCache>,
) -> anyhow::Result<(Arc<GitLabWorker>, Arc<GitLabClient>, GitLabHooks)> {
    let client = Arc::new(
        GitLabClient::new(GitLabClientConfig::new(
            &gitlab.instance_url,
            secrets.token.clone(),
        ))
        .context("building the GitLab client")?,
    );
    let git_base = match &gitlab.git_url {
        Some(url) => normalize_instance_url(url).context("gitlab.gitUrl")?,
        None => client.instance_url().to_owned(),
    };
    let host = reqwest::Url::parse(client.instance_url())
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| {
                u.port()
                    .map_or_else(|| h.to_owned(), |p| format!("{h}_{p}"))
            })
        })
        .unwrap_or_else(|| "gitlab".to_owned());
    let worker = Arc::new(GitLabWorker {
        api: client.clone() as Arc<dyn GitLabApi>,
        cache,
        git_token: Some(secrets.token.clone()),
        settings: GitLabBotSettings {
            bot_username: gitlab.bot_username.clone(),
            review_drafts: settings.review_drafts,
            host,
            review: review_limits(settings)?,
            git_base_url: git_base,
            git_username: gitlab.git_username.clone(),
        },
    });
    let hooks = GitLabHooks {
        bindings: secrets.hooks.clone(),
        bot_username: gitlab.bot_username.clone(),
        timestamp_tolerance: DEFAULT_TIMESTAMP_TOLERANCE,
    };
    Ok((worker, client, hooks))
}

/// The limits every review runs under, whichever forge it is for.
pub fn review_limits(settings: &ServeSettings) -> anyhow::Result<ReviewLimits> {
    let memory_bytes = settings
        .review
        .memory_limit_bytes
        .unwrap_or_else(|| default_memory_bytes(settings.workers));
    if memory_bytes < MIN_MEMORY_BYTES {
        anyhow::bail!(
            "review.memoryLimitBytes is {memory_bytes}: a review process needs at least {MIN_MEMORY_BYTES}"
        );
    }
    let sandbox = match &settings.review.program {
        Some(program) => SandboxSettings {
            program: program.clone(),
            memory_bytes,
            max_output_bytes: 256 << 20,
        },
        None => SandboxSettings::current_exe(memory_bytes)
            .context("finding this program, to run reviews in child processes")?,
    };
    Ok(ReviewLimits {
        max_fetch_bytes: settings.max_fetch_bytes,
        fetch_depth: settings.fetch_depth,
        // Publishing has the rest of the job's time.
        time_limit: Duration::from_secs(settings.job_timeout_seconds.saturating_sub(30).max(30)),
        budgets: {
            let default = ReviewBudgets::within_memory(memory_bytes);
            let review = &settings.review;
            ReviewBudgets {
                max_changed_manifests: settings.max_changed_files,
                max_bytes: review.max_review_bytes.unwrap_or(default.max_bytes),
                max_nodes: review.max_review_nodes.unwrap_or(default.max_nodes),
                max_scalar_bytes: review
                    .max_review_scalar_bytes
                    .unwrap_or(default.max_scalar_bytes),
                max_documents: review.max_review_documents.unwrap_or(default.max_documents),
            }
        },
        sandbox,
        render: {
            let found = crate::render::Tools::from_path();
            crate::render::review::RenderOptions {
                kubectl: settings.review.kubectl.clone().or(found.kubectl),
                helm: settings.review.helm.clone().or(found.helm),
                ..Default::default()
            }
        },
        views: match settings
            .review
            .view_store_max_bytes
            .unwrap_or(crate::views::DEFAULT_MAX_BYTES)
        {
            0 => None,
            max_bytes => Some(crate::views::StoreSettings {
                dir: settings.cache_dir.join("views"),
                max_bytes,
            }),
        },
    })
}

pub async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    install_crypto();
    init_logging(settings.log_format);
    if settings.github.is_none() && settings.gitlab.is_none() {
        anyhow::bail!("the settings have neither a `github:` nor a `gitlab:` section");
    }
    let env = |k: &str| std::env::var(k).ok();
    // Secrets first: a missing one stops start-up before anything listens.
    let github_secrets = settings
        .github
        .as_ref()
        .map(|g| Secrets::load(g, &env))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e.0))?;
    let gitlab_secrets = settings
        .gitlab
        .as_ref()
        .map(|g| GitLabSecrets::load(g, &env))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e.0))?;
    // Histograms with buckets, not summaries: bucket counts add up across replicas, quantiles
    // do not. Bounds in seconds, from a fast API call to a review at its time limit.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
            300.0, 600.0,
        ])
        .and_then(|builder| builder.install_recorder())
        .ok();
    // A database URL with a password is a secret: the environment may give it instead.
    let database =
        std::env::var("KUBEWARD_DATABASE_URL").unwrap_or_else(|_| settings.database.clone());
    let queue_config = QueueConfig::default().with_deferral_limits(
        settings.max_deferrals,
        settings.max_deferred_minutes.saturating_mul(60_000),
    );
    let queue = Queue::connect_with(&database, queue_config)
        .await
        .with_context(|| format!("opening the queue at {}", redact_url(&database)))?;
    let cache = Arc::new(GitCache::new(&settings.cache_dir, settings.cache_max_bytes));
    let review_limits = review_limits(&settings)?;
    let mut runners: std::collections::HashMap<String, Arc<dyn JobRunner>> =
        std::collections::HashMap::new();
    let mut github_hooks = None;
    let mut github_client = None;
    let mut app_mode = false;
    let mut every = Duration::from_secs(10 * 60);
    if let (Some(github_settings), Some(secrets)) = (&settings.github, &github_secrets) {
        let auth = match (
            &github_settings.app_id,
            &secrets.private_key,
            &secrets.token,
        ) {
            (Some(app_id), Some(key), _) => GitHubAuth::App {
                app_id: app_id.clone(),
                private_key_pem: key.clone(),
            },
            (_, _, Some(token)) => GitHubAuth::Token(token.clone()),
            _ => anyhow::bail!("no GitHub credentials"),
        };
        app_mode = matches!(auth, GitHubAuth::App { .. });
        let client = Arc::new(
            GitHubClient::new(GitHubClientConfig {
                limits: WriteLimits {
                    per_minute: github_settings.content_writes_per_minute,
                    per_hour: github_settings.content_writes_per_hour,
                    review_share_percent: github_settings.review_write_share_percent,
                    check_reserve_percent: github_settings.check_write_reserve_percent,
                    ..WriteLimits::default()
                },
                ..GitHubClientConfig::new(&github_settings.api_url, auth, "kubeward")
            })
            .context("building the GitHub client")?,
        );
        let host = github_settings
            .git_url
            .split("://")
            .nth(1)
            .unwrap_or(&github_settings.git_url)
            .split('/')
            .next()
            .unwrap_or("github")
            .to_owned();
        let worker = Arc::new(GitHubWorker {
            api: client.clone() as Arc<dyn GitHubApi>,
            git: Arc::new(HttpsGit {
                base_url: github_settings.git_url.clone(),
                client: client.clone(),
            }),
            cache: cache.clone(),
            settings: BotSettings {
                bot_login: github_settings.bot_login.clone(),
                review_drafts: settings.review_drafts,
                host,
                details_url: None,
                review: review_limits.clone(),
                max_annotations: github_settings.max_annotations,
            },
        });
        runners.insert(FORGE_GITHUB.to_owned(), worker as Arc<dyn JobRunner>);
        github_hooks = Some(GitHubHooks {
            secrets: secrets.webhook_secrets.clone(),
            app_id: github_settings
                .app_id
                .as_deref()
                .and_then(|a| a.parse().ok()),
            bot_login: github_settings.bot_login.clone(),
        });
        every = Duration::from_secs(github_settings.redeliver_every_minutes.max(1) * 60);
        github_client = Some(client);
    }
    let mut gitlab_hooks = None;
    let mut gitlab_client = None;
    if let (Some(gitlab_settings), Some(secrets)) = (&settings.gitlab, &gitlab_secrets) {
        let (worker, client, hooks) =
            gitlab_parts(&settings, gitlab_settings, secrets, cache.clone())?;
        runners.insert(FORGE_GITLAB.to_owned(), worker as Arc<dyn JobRunner>);
        gitlab_hooks = Some(hooks);
        gitlab_client = Some(client);
    }
    let state = AppState {
        queue: queue.clone(),
        github: github_hooks,
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_settings = WorkerSettings {
        job_timeout: Duration::from_secs(settings.job_timeout_seconds),
        lease: Duration::from_secs(settings.lease_seconds.max(1)),
        ..WorkerSettings::default()
    };
    let runners: crate::bot::worker::Runners = Arc::new(runners);
    let mut workers = Vec::new();
    for i in 0..settings.workers.max(1) {
        workers.push(tokio::spawn(run_worker(
            format!("{}-{i}", std::process::id()),
            queue.clone(),
            runners.clone(),
            worker_settings.clone(),
            stop_rx.clone(),
        )));
    }
    // Housekeeping: metrics upkeep, pruning the queue's history, cache eviction, redelivery of
    // failed GitHub deliveries (GitLab has no API to ask again: only a person's "Resend
    // Request" sends a refused delivery a second time).
    let housekeeping = {
        let snapshot_settings = settings.snapshots.clone();
        let mut folded_at_ms = 0;
        let queue = queue.clone();
        let cache = cache.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                if let Some(client) = github_client.as_ref().filter(|_| app_mode) {
                    match redeliver_failed(client, &queue).await {
                        Ok(n) if n > 0 => {
                            info!(count = n, "asked GitHub to redeliver failed deliveries")
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "redelivery check failed"),
                    }
                }
                schedule_snapshots(&queue, &snapshot_settings, &mut folded_at_ms).await;
                let before = crate::queue::now_ms() - HISTORY_RETENTION.as_millis() as i64;
                match queue.prune(before).await {
                    Ok(pruned) => tracing::debug!(?pruned, "pruned the queue's history"),
                    Err(e) => warn!(error = %e, "cannot prune the queue's history"),
                }
                let _ = tokio::task::spawn_blocking({
                    let cache = cache.clone();
                    move || cache.evict()
                })
                .await;
                if let Some(m) = &metrics {
                    m.run_upkeep();
                }
                let waits = github_client.as_ref().map_or(0, |c| c.rate_limit_waits())
                    + gitlab_client.as_ref().map_or(0, |c| c.rate_limit_waits());
                metrics::counter!("kubeward_rate_limit_waits_total").absolute(waits);
                tokio::time::sleep(every).await;
            }
        })
    };
    if let Some(dashboard) = &settings.dashboard {
        let access = crate::dashboard::Access::new(dashboard)
            .map_err(|e| anyhow::anyhow!("invalid settings: {e}"))?;
        anyhow::ensure!(
            dashboard.listen != settings.listen,
            "dashboard.listen must differ from listen: the dashboard is never served beside the public webhook"
        );
        let listener = tokio::net::TcpListener::bind(&dashboard.listen)
            .await
            .with_context(|| format!("binding the dashboard's {}", dashboard.listen))?;
        info!(listen = %dashboard.listen, "the dashboard API is serving");
        let app = crate::dashboard::router(std::sync::Arc::new(crate::dashboard::DashboardState {
            queue: queue.clone(),
            access,
        }));
        let read_timeout = Duration::from_secs(settings.read_timeout_seconds);
        let grace = worker_settings.shutdown_grace;
        tokio::spawn(async move {
            crate::server::listen::serve(listener, app, read_timeout, grace, shutdown_signal())
                .await;
        });
    }
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    info!(listen = %settings.listen, workers = settings.workers, forges = ?runners.keys().collect::<Vec<_>>(), "kubeward is serving");
    let read_timeout = Duration::from_secs(settings.read_timeout_seconds);
    let app = router_with_limits(state, gitlab_hooks, settings.intake_limits(), read_timeout);
    crate::server::listen::serve(
        listener,
        app,
        read_timeout,
        worker_settings.shutdown_grace,
        shutdown_signal(),
    )
    .await;
    info!("shutting down: finishing or re-queueing work in flight");
    let _ = stop_tx.send(true);
    housekeeping.abort();
    for w in workers {
        let _ = w.await;
    }
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://[redacted]@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ownership::{NewSnapshot, SnapshotCause};
    use crate::server::settings::SnapshotSettings;

    fn snapshot(repo_id: i64, taken_at_ms: i64) -> NewSnapshot {
        NewSnapshot {
            forge: "github".into(),
            repo_id,
            repo_name: format!("octo/repo{repo_id}"),
            installation_id: Some(77),
            web_url: None,
            commit: format!("{repo_id:040x}"),
            taken_at_ms,
            cause: SnapshotCause::Push,
            reviewed: true,
            findings: Vec::new(),
        }
    }

    /// One round queues a snapshot of each repository whose latest one is older than the
    /// interval, at its tip; running it again in the same window queues nothing more.
    #[tokio::test]
    async fn the_schedule_queues_due_repositories_once_per_window() {
        let queue = Queue::connect("sqlite::memory:").await.expect("queue");
        let now = crate::queue::now_ms();
        let day = 86_400_000;
        queue
            .record_snapshot(&snapshot(1, now - 2 * day))
            .await
            .expect("old");
        queue
            .record_snapshot(&snapshot(2, now - 60_000))
            .await
            .expect("fresh");
        let settings = SnapshotSettings::default();
        let mut folded_at = 0;
        schedule_snapshots(&queue, &settings, &mut folded_at).await;
        schedule_snapshots(&queue, &settings, &mut folded_at).await;
        let stats = queue.stats(now).await.expect("stats");
        assert_eq!(
            stats.queued, 1,
            "only repo1 is due, and only once: {stats:?}"
        );
        let job = queue
            .claim("test", std::time::Duration::from_secs(30), now + 1)
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!((job.kind.as_str(), job.repo_id), ("snapshot", 1));
        assert_eq!(job.payload["commit"], serde_json::Value::Null, "at its tip");
        assert_eq!(job.payload["cause"], "schedule");
        assert!(folded_at > 0, "retention ran");
    }

    /// Snapshots run on the default branch's lane: a newer push supersedes a queued one, and
    /// leaves the repository's pull requests' work alone.
    #[tokio::test]
    async fn a_newer_push_supersedes_a_queued_snapshot() {
        use crate::forge::job::{FORGE_GITHUB, GitHubJob, RepoRef};
        let queue = Queue::connect("sqlite::memory:").await.expect("queue");
        let repo = RepoRef {
            id: 4242,
            owner: "octo".into(),
            name: "shop".into(),
        };
        let push = |commit: &str| GitHubJob::Snapshot {
            installation: 77,
            repo: repo.clone(),
            commit: Some(commit.into()),
            cause: SnapshotCause::Push,
            web_url: None,
        };
        let review = GitHubJob::Review {
            installation: 77,
            repo: repo.clone(),
            number: 7,
            head_sha: "c".repeat(40),
            trigger: "opened".into(),
            new_check_run: false,
            previous_head: None,
        };
        queue
            .enqueue(review.to_new_job(FORGE_GITHUB))
            .await
            .expect("review");
        let first = queue
            .enqueue(push(&"a".repeat(40)).to_new_job(FORGE_GITHUB))
            .await
            .expect("first");
        let second = queue
            .enqueue(push(&"b".repeat(40)).to_new_job(FORGE_GITHUB))
            .await
            .expect("second");
        assert_eq!(second.superseded, vec![first.id]);
        let stats = queue.stats(crate::queue::now_ms()).await.expect("stats");
        assert_eq!(
            stats.queued, 2,
            "the newer snapshot and the review: {stats:?}"
        );
    }
}

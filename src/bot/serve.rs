//! `kubeward serve`: the webhook server and its workers, with a graceful shutdown that lets
//! running jobs finish (or puts them back in the queue).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tracing::{info, warn};

use super::github::{BotSettings, BoxFuture, GitAccess, GitHubWorker};
use super::job::RepoRef;
use super::worker::{WorkerSettings, run as run_worker};
use crate::forge::github::api::{ApiError, GitHubApi, segment};
use crate::forge::github::client::{GitHubAuth, GitHubClient, GitHubClientConfig};
use crate::git::cache::GitCache;
use crate::queue::Queue;
use crate::server::settings::{LogFormat, Secrets, ServeSettings};
use crate::server::{AppState, GitHubHooks, router};

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
    let mut asked = 0;
    for d in &deliveries {
        let Some(guid) = d.get("guid").and_then(|g| g.as_str()) else {
            continue;
        };
        if seen.contains(guid) || queue.delivery_seen("github", guid).await.unwrap_or(false) {
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

pub async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    install_crypto();
    init_logging(settings.log_format);
    let github_settings = settings
        .github
        .clone()
        .context("the settings have no `github:` section")?;
    let env = |k: &str| std::env::var(k).ok();
    let secrets = Secrets::load(&github_settings, &env).map_err(|e| anyhow::anyhow!(e.0))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let queue = Queue::connect(&settings.database)
        .await
        .with_context(|| format!("opening the queue at {}", redact_url(&settings.database)))?;
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
    let app_mode = matches!(auth, GitHubAuth::App { .. });
    let client = Arc::new(
        GitHubClient::new(GitHubClientConfig::new(
            &github_settings.api_url,
            auth,
            "kubeward",
        ))
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
        cache: Arc::new(GitCache::new(&settings.cache_dir, settings.cache_max_bytes)),
        settings: BotSettings {
            bot_login: github_settings.bot_login.clone(),
            review_drafts: settings.review_drafts,
            max_fetch_bytes: settings.max_fetch_bytes,
            max_changed_files: settings.max_changed_files,
            fetch_depth: settings.fetch_depth,
            host,
            details_url: None,
            review_time_limit: Duration::from_secs(
                settings.job_timeout_seconds.saturating_sub(30).max(30),
            ),
        },
    });
    let app_id = github_settings
        .app_id
        .as_deref()
        .and_then(|a| a.parse().ok());
    let state = AppState {
        queue: queue.clone(),
        github: Some(GitHubHooks {
            secrets: secrets.webhook_secrets.clone(),
            app_id,
            bot_login: github_settings.bot_login.clone(),
        }),
        metrics: metrics.clone(),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker_settings = WorkerSettings {
        job_timeout: Duration::from_secs(settings.job_timeout_seconds),
        lease: Duration::from_secs(settings.lease_seconds.max(1)),
        ..WorkerSettings::default()
    };
    let runners: crate::bot::worker::Runners =
        std::sync::Arc::new(std::collections::HashMap::from([(
            "github".to_owned(),
            worker.clone() as std::sync::Arc<dyn crate::bot::github::JobRunner>,
        )]));
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
    // Housekeeping: metrics upkeep, cache eviction, redelivery of failed deliveries.
    let housekeeping = {
        let queue = queue.clone();
        let client = client.clone();
        let cache = worker.cache.clone();
        let every = Duration::from_secs(github_settings.redeliver_every_minutes.max(1) * 60);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            loop {
                if app_mode {
                    match redeliver_failed(&client, &queue).await {
                        Ok(n) if n > 0 => {
                            info!(count = n, "asked GitHub to redeliver failed deliveries")
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "redelivery check failed"),
                    }
                }
                let _ = tokio::task::spawn_blocking({
                    let cache = cache.clone();
                    move || cache.evict()
                })
                .await;
                if let Some(m) = &metrics {
                    m.run_upkeep();
                }
                metrics::counter!("kubeward_rate_limit_waits_total")
                    .absolute(client.rate_limit_waits());
                tokio::time::sleep(every).await;
            }
        })
    };
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    info!(listen = %settings.listen, workers = settings.workers, "kubeward is serving");
    axum::serve(
        listener,
        router(
            state,
            settings.max_body_bytes,
            Duration::from_secs(settings.read_timeout_seconds),
        ),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving")?;
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

//! GitHub jobs: each becomes the one review flow (`review.rs`) on a [`GitHubPull`]; only the
//! re-requested check, which names a head rather than a pull request, is GitHub's own.

use std::sync::Arc;

use serde_json::Value;

use super::fetch::ReviewLimits;
use super::review::{Flow, Reviewer, Work, conclude_abandoned, run};
use super::runner::{BotError, BoxFuture, Cancel, JobOutcome, JobRunner};
use crate::forge::CommandRequest;
use crate::forge::github::adapter::{GitHubPull, pulls_with_head};
use crate::forge::github::api::GitHubApi;
use crate::forge::job::{FORGE_GITHUB, GitHubJob, RepoRef};
use crate::git::cache::GitCache;

pub use crate::forge::github::adapter::GitAccess;

#[derive(Debug, Clone)]
pub struct BotSettings {
    /// Our own login: comments by anyone else are never treated as ours.
    pub bot_login: String,
    pub review_drafts: bool,
    /// The forge host, part of the cache key.
    pub host: String,
    /// Link from the check run to the service.
    pub details_url: Option<String>,
    /// Fetch cap, time limit, budgets and the review process.
    pub review: ReviewLimits,
    /// Check-run annotations per run; the check's summary counts the rest.
    pub max_annotations: usize,
}

pub struct GitHubWorker {
    pub api: Arc<dyn GitHubApi>,
    pub git: Arc<dyn GitAccess>,
    pub cache: Arc<GitCache>,
    pub settings: BotSettings,
}

fn job_spec(payload: &Value) -> Result<GitHubJob, BotError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| BotError::Review(format!("unreadable job payload: {e}")))
}

impl JobRunner for GitHubWorker {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            self.run(&spec, cancel, last_attempt).await
        })
    }

    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>> {
        Box::pin(async move {
            let spec = job_spec(payload)?;
            let (installation, repo, number, heads) = match &spec {
                GitHubJob::Review {
                    installation,
                    repo,
                    number,
                    head_sha,
                    ..
                } => (*installation, repo, *number, vec![head_sha.clone()]),
                GitHubJob::Command {
                    installation,
                    repo,
                    number,
                    ..
                } => (*installation, repo, *number, Vec::new()),
                // A snapshot has no check or status to conclude.
                GitHubJob::Snapshot { .. } => return Ok(()),
                // A re-request names its head; its pull request may be unknown yet.
                GitHubJob::Rerequest {
                    installation,
                    repo,
                    head_sha,
                    pull_numbers,
                } => match pull_numbers.as_slice() {
                    [number] => (*installation, repo, *number, vec![head_sha.clone()]),
                    _ => {
                        let pull = self.pull(*installation, repo, 0);
                        let heads = [head_sha.clone()];
                        return conclude_abandoned(&pull, &heads, false, reason).await;
                    }
                },
            };
            conclude_abandoned(&self.pull(installation, repo, number), &heads, true, reason).await
        })
    }
}

impl GitHubWorker {
    /// Audits the default branch at `commit` (its tip when `None`) and hands the snapshot to
    /// the worker to store.
    async fn snapshot(
        &self,
        installation: u64,
        repo: &RepoRef,
        commit: Option<&str>,
        cause: crate::queue::ownership::SnapshotCause,
        web_url: Option<String>,
    ) -> Result<JobOutcome, BotError> {
        let refspec = super::snapshot::snapshot_refspec(commit)?;
        let credentials = self.git.credentials(installation).await?;
        let target = super::snapshot::SnapshotTarget {
            key: crate::git::cache::CacheKey {
                forge: FORGE_GITHUB.into(),
                host: self.settings.host.clone(),
                repo_id: repo.id,
            },
            name: format!("{}/{}", repo.owner, repo.name),
            installation_id: Some(installation as i64),
            web_url,
            cause,
            flavor: crate::owners::Flavor::GitHub,
        };
        super::snapshot::take_snapshot(
            self.cache.clone(),
            target,
            self.git.url(repo),
            credentials.map(|(user, password)| (user, password.into())),
            refspec,
            &self.settings.review,
        )
        .await
    }

    fn pull<'a>(&'a self, installation: u64, repo: &'a RepoRef, number: u64) -> GitHubPull<'a> {
        GitHubPull {
            api: self.api.as_ref(),
            git: self.git.as_ref(),
            installation,
            repo,
            number,
            bot_login: &self.settings.bot_login,
            host: &self.settings.host,
            max_annotations: self.settings.max_annotations,
        }
    }

    fn flow(&self) -> Flow<'_> {
        Flow {
            reviewer: Reviewer::Fetch {
                cache: &self.cache,
                limits: &self.settings.review,
            },
            review_drafts: self.settings.review_drafts,
        }
    }

    pub async fn run(
        &self,
        spec: &GitHubJob,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        let flow = self.flow();
        match spec {
            GitHubJob::Review {
                installation,
                repo,
                number,
                head_sha,
                new_check_run,
                previous_head,
                ..
            } => {
                let work = Work::Review {
                    expected_head: Some(head_sha.clone()),
                    new_status: *new_check_run,
                    previous_head: previous_head.clone(),
                };
                let pull = self.pull(*installation, repo, *number);
                run(&pull, &work, &flow, cancel, last_attempt).await
            }
            GitHubJob::Command {
                installation,
                repo,
                number,
                comment_id,
                login,
                command,
            } => {
                let work = Work::Command(CommandRequest {
                    comment_id: *comment_id,
                    login: Some(login.clone()),
                    command: Some(command.clone()),
                });
                let pull = self.pull(*installation, repo, *number);
                run(&pull, &work, &flow, cancel, last_attempt).await
            }
            GitHubJob::Snapshot {
                installation,
                repo,
                commit,
                cause,
                web_url,
            } => {
                self.snapshot(
                    *installation,
                    repo,
                    commit.as_deref(),
                    *cause,
                    web_url.clone(),
                )
                .await
            }
            GitHubJob::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                // Queued as one pull request's work: run it.
                if let [number] = pull_numbers.as_slice() {
                    let work = Work::Review {
                        expected_head: Some(head_sha.clone()),
                        new_status: true,
                        previous_head: None,
                    };
                    let pull = self.pull(*installation, repo, *number);
                    return run(&pull, &work, &flow, cancel, last_attempt).await;
                }
                let numbers = if pull_numbers.is_empty() {
                    pulls_with_head(self.api.as_ref(), *installation, repo, head_sha).await?
                } else {
                    pull_numbers.clone()
                };
                if numbers.is_empty() {
                    return Ok(JobOutcome::Skipped(format!(
                        "no open pull request has head {head_sha}"
                    )));
                }
                // One job per pull request, serialised with (and superseded by) its work.
                let jobs = numbers
                    .iter()
                    .map(|n| {
                        GitHubJob::Rerequest {
                            installation: *installation,
                            repo: repo.clone(),
                            head_sha: head_sha.clone(),
                            pull_numbers: vec![*n],
                        }
                        .to_new_job(FORGE_GITHUB)
                    })
                    .collect();
                Ok(JobOutcome::HandOff {
                    jobs,
                    why: format!("head {head_sha} is the head of pull request(s) {numbers:?}"),
                })
            }
        }
    }
}

//! GitLab jobs: each becomes the one review flow (`review.rs`) on a [`GitLabMergeRequest`],
//! once the project, read by id, is known to lie inside the groups its webhook secret is
//! bound to.

use std::sync::Arc;

use serde_json::Value;

use super::fetch::ReviewLimits;
use super::review::{Flow, Reviewer, Work, conclude_abandoned, run};
use super::runner::{BotError, BoxFuture, Cancel, JobOutcome, JobRunner};
use crate::forge::gitlab::adapter::GitLabMergeRequest;
use crate::forge::gitlab::reply::{Project, parse};
use crate::forge::gitlab::{GitLabApi, Request, in_group, project_path};
use crate::forge::job::GitLabJob;
use crate::forge::{CommandRequest, Secret};
use crate::git::cache::GitCache;

pub use crate::forge::gitlab::adapter::clone_url;

#[derive(Debug, Clone)]
pub struct GitLabBotSettings {
    /// Our own username (the token's user): our notes are ours, our comments never commands.
    pub bot_username: String,
    pub review_drafts: bool,
    /// The instance's host, part of the cache key.
    pub host: String,
    /// Fetch cap, time limit, budgets and the review process.
    pub review: ReviewLimits,
    /// Where repositories are cloned from: the configured instance URL. The clone URL is this
    /// plus the project's `path_with_namespace` read from the API by id, never a URL from a
    /// payload.
    pub git_base_url: String,
    /// The user name for git over HTTPS with a token (`oauth2`, or the bot's username).
    pub git_username: String,
}

pub struct GitLabWorker {
    pub api: Arc<dyn GitLabApi>,
    pub cache: Arc<GitCache>,
    /// Given to git as the password, through the credentials callback only. `None` for
    /// repositories that need none (local tests).
    pub git_token: Option<Secret>,
    pub settings: GitLabBotSettings,
}

fn gitlab_job(payload: &Value) -> Result<GitLabJob, BotError> {
    serde_json::from_value(payload.clone())
        .map_err(|e| BotError::Review(format!("unreadable GitLab job payload: {e}")))
}

impl JobRunner for GitLabWorker {
    fn run_job<'a>(
        &'a self,
        payload: &'a Value,
        cancel: &'a Cancel,
        last_attempt: bool,
    ) -> BoxFuture<'a, Result<JobOutcome, BotError>> {
        Box::pin(async move {
            let job = gitlab_job(payload)?;
            self.run(&job, cancel, last_attempt).await
        })
    }

    fn conclude_abandoned<'a>(
        &'a self,
        payload: &'a Value,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<(), BotError>> {
        Box::pin(async move {
            let job = gitlab_job(payload)?;
            let (GitLabJob::Review {
                project_id, iid, ..
            }
            | GitLabJob::Command {
                project_id, iid, ..
            }) = &job
            else {
                // A snapshot has no status to conclude.
                return Ok(());
            };
            // Only the status is written: no clone path needed.
            let merge_request = self.merge_request(*project_id, "", *iid);
            conclude_abandoned(&merge_request, &[], true, reason).await
        })
    }
}

impl GitLabWorker {
    fn merge_request<'a>(
        &'a self,
        project_id: u64,
        path_with_namespace: &'a str,
        iid: u64,
    ) -> GitLabMergeRequest<'a> {
        GitLabMergeRequest {
            api: self.api.as_ref(),
            project_id,
            path_with_namespace,
            iid,
            bot_username: &self.settings.bot_username,
            host: &self.settings.host,
            git_base_url: &self.settings.git_base_url,
            git_username: &self.settings.git_username,
            git_token: self.git_token.as_ref(),
        }
    }

    pub async fn run(
        &self,
        job: &GitLabJob,
        cancel: &Cancel,
        last_attempt: bool,
    ) -> Result<JobOutcome, BotError> {
        if let GitLabJob::Snapshot {
            project_id,
            commit,
            cause,
            web_url,
            allowed_groups,
        } = job
        {
            return self
                .snapshot(
                    *project_id,
                    commit.as_deref(),
                    *cause,
                    web_url.clone(),
                    allowed_groups,
                )
                .await;
        }
        let (project_id, iid, allowed_groups, work) = match job {
            GitLabJob::Review {
                project_id,
                iid,
                head_sha,
                allowed_groups,
                ..
            } => (
                *project_id,
                *iid,
                allowed_groups,
                Work::Review {
                    expected_head: head_sha.clone(),
                    new_status: false,
                    previous_head: None,
                },
            ),
            GitLabJob::Command {
                project_id,
                iid,
                note_id,
                allowed_groups,
            } => (
                *project_id,
                *iid,
                allowed_groups,
                Work::Command(CommandRequest {
                    comment_id: *note_id,
                    login: None,
                    command: None,
                }),
            ),
            GitLabJob::Snapshot { .. } => {
                return Err(BotError::Review("a snapshot is not a review".into()));
            }
        };
        let Some(path) = self.project_path(project_id, allowed_groups).await? else {
            return Ok(JobOutcome::Skipped(format!(
                "project {project_id} is outside the groups its webhook secret is bound to"
            )));
        };
        let merge_request = self.merge_request(project_id, &path, iid);
        let flow = Flow {
            reviewer: Reviewer::Fetch {
                cache: &self.cache,
                limits: &self.settings.review,
            },
            review_drafts: self.settings.review_drafts,
        };
        run(&merge_request, &work, &flow, cancel, last_attempt).await
    }

    /// Audits the default branch at `commit` and hands the snapshot to the worker to store.
    async fn snapshot(
        &self,
        project_id: u64,
        commit: Option<&str>,
        cause: crate::queue::ownership::SnapshotCause,
        web_url: Option<String>,
        allowed_groups: &[String],
    ) -> Result<JobOutcome, BotError> {
        let Some(path) = self.project_path(project_id, allowed_groups).await? else {
            return Ok(JobOutcome::Skipped(format!(
                "project {project_id} is outside the groups its webhook secret is bound to"
            )));
        };
        let url = clone_url(&self.settings.git_base_url, &path).map_err(BotError::Review)?;
        let target = super::snapshot::SnapshotTarget {
            key: crate::git::cache::CacheKey {
                forge: crate::forge::job::FORGE_GITLAB.into(),
                host: self.settings.host.clone(),
                repo_id: project_id as i64,
            },
            name: path,
            installation_id: None,
            web_url,
            cause,
            flavor: crate::owners::Flavor::GitLab,
        };
        super::snapshot::take_snapshot(
            self.cache.clone(),
            target,
            url,
            self.git_token
                .as_ref()
                .map(|token| (self.settings.git_username.clone(), token.clone())),
            super::snapshot::snapshot_refspec(commit)?,
            &self.settings.review,
        )
        .await
    }

    /// The project's path, read by id; `None` if it lies outside the groups the delivery's
    /// secret is bound to.
    async fn project_path(
        &self,
        project_id: u64,
        allowed_groups: &[String],
    ) -> Result<Option<String>, BotError> {
        let path = project_path(project_id, "");
        let reply = self.api.call(Request::get(path.clone())).await?;
        let project: Project = parse(&format!("GET {path}"), &reply.body)?;
        let path = project.path_with_namespace;
        if !allowed_groups.is_empty() && !allowed_groups.iter().any(|g| in_group(&path, g)) {
            tracing::warn!(project = project_id, path = %path, "the project is outside the groups its webhook secret is bound to");
            return Ok(None);
        }
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_membership_is_by_whole_path_segments() {
        assert!(in_group("platform/shop", "platform"));
        assert!(in_group("platform/infra/shop", "platform/infra"));
        assert!(in_group("Platform/shop", "platform/"));
        assert!(!in_group("platform-evil/shop", "platform"));
        assert!(!in_group("platform", "platform"));
        assert!(!in_group("other/platform/shop", "platform"));
        assert!(!in_group("platform/shop", ""));
    }

    #[test]
    fn clone_urls_come_from_the_configured_base_and_a_checked_path() {
        assert_eq!(
            clone_url("https://gitlab.example.com/", "platform/infra/shop").as_deref(),
            Ok("https://gitlab.example.com/platform/infra/shop.git")
        );
        for bad in [
            "shop",
            "../x",
            "a/../b",
            "a//b",
            "a/b c",
            "a/b?x",
            "a/b@evil.com",
        ] {
            assert!(
                clone_url("https://gitlab.example.com", bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn jobs_are_keyed_by_project_and_merge_request() {
        let job = GitLabJob::Review {
            project_id: 42,
            iid: 7,
            head_sha: Some("abc".into()),
            trigger: "open".into(),
            allowed_groups: vec![],
        };
        let row = job.to_new_job();
        assert_eq!(
            (
                row.kind.as_str(),
                row.forge.as_str(),
                row.repo_id,
                row.pr_number
            ),
            ("gitlab-review", "gitlab", 42, Some(7))
        );
        assert!(row.supersedes);
        assert_eq!(row.payload["type"], "gitlabReview");
        let back: GitLabJob = serde_json::from_value(row.payload).expect("round trip");
        assert_eq!(back, job);
        let command = GitLabJob::Command {
            project_id: 42,
            iid: 7,
            note_id: 9,
            allowed_groups: vec!["platform".into()],
        };
        assert!(!command.to_new_job().supersedes);
    }
}

//! The work a webhook asks for, as stored in the queue's payload: [`GitHubJob`] for GitHub,
//! [`GitLabJob`] for GitLab. The server's routes build them; the bot's workers read them back.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::queue::NewJob;

/// A repository as the forge names it; the id is what keys caches and queues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoRef {
    pub id: i64,
    pub owner: String,
    pub name: String,
}

/// A GitHub job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum GitHubJob {
    /// Review a pull request at a head commit.
    Review {
        installation: u64,
        repo: RepoRef,
        number: u64,
        head_sha: String,
        /// Why: `opened`, `synchronize`, `rescan`...
        trigger: String,
        /// A re-requested check gets a new check run.
        new_check_run: bool,
        /// The head this push replaced: its unfinished check runs are concluded `cancelled`
        /// (a review of it may have been superseded after it started, then never resumed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_head: Option<String>,
    },
    /// A slash command in a pull-request comment.
    Command {
        installation: u64,
        repo: RepoRef,
        number: u64,
        comment_id: u64,
        login: String,
        command: String,
    },
    /// Audit the default branch whole and store a snapshot of its open findings (a push to
    /// it, the installation gaining it, the schedule).
    Snapshot {
        installation: u64,
        repo: RepoRef,
        /// The commit; `None`: the default branch's tip when the job runs.
        commit: Option<String>,
        cause: crate::queue::ownership::SnapshotCause,
        /// The repository's web page, for links to files at the snapshot's commit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        web_url: Option<String>,
    },
    /// A re-requested check run or suite: map the head commit to its pull request first (fork
    /// PRs arrive with no pull request listed).
    Rerequest {
        installation: u64,
        repo: RepoRef,
        head_sha: String,
        pull_numbers: Vec<u64>,
    },
}

pub const FORGE_GITHUB: &str = "github";

/// The queue's `pr_number` of a repository's default-branch work (snapshots): pull and merge
/// request numbers start at 1, so this lane is the branch's own, superseded like a PR's.
pub const DEFAULT_BRANCH_LANE: u64 = 0;
/// The `forge` column of GitLab jobs (see [`GitLabJob`]).
pub const FORGE_GITLAB: &str = "gitlab";

impl GitHubJob {
    pub fn kind(&self) -> &'static str {
        match self {
            GitHubJob::Review { .. } => "review",
            GitHubJob::Command { .. } => "command",
            GitHubJob::Rerequest { .. } => "rerequest",
            GitHubJob::Snapshot { .. } => "snapshot",
        }
    }

    pub fn to_new_job(&self, forge: &str) -> NewJob {
        let (installation, repo, pr, head, supersedes) = match self {
            // The default branch's lane: a newer push supersedes a queued snapshot.
            GitHubJob::Snapshot {
                installation,
                repo,
                commit,
                ..
            } => (
                *installation,
                repo,
                Some(DEFAULT_BRANCH_LANE),
                commit.clone(),
                true,
            ),
            GitHubJob::Review {
                installation,
                repo,
                number,
                head_sha,
                ..
            } => (
                *installation,
                repo,
                Some(*number),
                Some(head_sha.clone()),
                true,
            ),
            GitHubJob::Command {
                installation,
                repo,
                number,
                ..
            } => (*installation, repo, Some(*number), None, false),
            // Known to belong to one pull request: queued as that PR's work, so it runs one at
            // a time with the PR's other jobs and a newer push supersedes it.
            GitHubJob::Rerequest {
                installation,
                repo,
                head_sha,
                pull_numbers,
            } => {
                let pr = match pull_numbers.as_slice() {
                    [one] => Some(*one),
                    _ => None,
                };
                (*installation, repo, pr, Some(head_sha.clone()), false)
            }
        };
        NewJob {
            kind: self.kind().to_owned(),
            forge: forge.to_owned(),
            installation_id: Some(installation as i64),
            repo_id: repo.id,
            pr_number: pr.map(|n| n as i64),
            head_sha: head,
            payload: serde_json::to_value(self).unwrap_or(Value::Null),
            supersedes,
            run_at_ms: None,
        }
    }
}

/// Queue `kind` of a GitLab review job.
pub const GITLAB_KIND_REVIEW: &str = "gitlab-review";
/// Queue `kind` of a GitLab default-branch snapshot job.
pub const GITLAB_KIND_SNAPSHOT: &str = "gitlab-snapshot";

/// Queue `kind` of a GitLab slash-command job.
pub const GITLAB_KIND_COMMAND: &str = "gitlab-command";

/// A GitLab job, as stored in the queue's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum GitLabJob {
    /// Review a merge request (opened, reopened, pushed to, retargeted, marked ready).
    #[serde(rename = "gitlabReview", rename_all = "camelCase")]
    Review {
        project_id: u64,
        iid: u64,
        /// The head the event was about; a newer head means a newer job is coming.
        head_sha: Option<String>,
        /// Why: `open`, `push`, `target branch`...
        trigger: String,
        /// The delivery was authenticated by a secret bound to these groups: the project must
        /// be in one of them (checked through the API). Empty: bound to the project itself.
        #[serde(default)]
        allowed_groups: Vec<String>,
    },
    /// A `/kubeward` comment on a merge request. The note is re-read by id; its text and author
    /// decide, not the webhook's.
    #[serde(rename = "gitlabCommand", rename_all = "camelCase")]
    Command {
        project_id: u64,
        iid: u64,
        note_id: u64,
        #[serde(default)]
        allowed_groups: Vec<String>,
    },
    /// Audit the default branch at a commit and store a snapshot (a push to it).
    #[serde(rename = "gitlabSnapshot", rename_all = "camelCase")]
    Snapshot {
        project_id: u64,
        /// The commit; `None`: the default branch's tip when the job runs (the schedule).
        commit: Option<String>,
        cause: crate::queue::ownership::SnapshotCause,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        web_url: Option<String>,
        #[serde(default)]
        allowed_groups: Vec<String>,
    },
}

impl GitLabJob {
    pub fn kind(&self) -> &'static str {
        match self {
            GitLabJob::Review { .. } => GITLAB_KIND_REVIEW,
            GitLabJob::Command { .. } => GITLAB_KIND_COMMAND,
            GitLabJob::Snapshot { .. } => GITLAB_KIND_SNAPSHOT,
        }
    }

    /// The queue row: keyed by project id and merge request iid, so a push supersedes queued
    /// reviews of the same merge request and closing it drops them.
    pub fn to_new_job(&self) -> NewJob {
        let (project_id, iid, head_sha, supersedes) = match self {
            GitLabJob::Review {
                project_id,
                iid,
                head_sha,
                ..
            } => (*project_id, *iid, head_sha.clone(), true),
            GitLabJob::Command {
                project_id, iid, ..
            } => (*project_id, *iid, None, false),
            // The default branch's lane, like GitHub's.
            GitLabJob::Snapshot {
                project_id, commit, ..
            } => (*project_id, DEFAULT_BRANCH_LANE, commit.clone(), true),
        };
        NewJob {
            kind: self.kind().to_owned(),
            forge: FORGE_GITLAB.to_owned(),
            installation_id: None,
            repo_id: project_id as i64,
            pr_number: Some(iid as i64),
            head_sha,
            payload: serde_json::to_value(self).unwrap_or(Value::Null),
            supersedes,
            run_at_ms: None,
        }
    }
}

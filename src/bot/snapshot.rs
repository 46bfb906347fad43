//! A default-branch snapshot job, for either forge: fetch the one commit, audit it whole in a
//! review process, and hand the snapshot to the worker to store (`JobOutcome::Snapshot`).
//! Each forge's worker only says where to fetch from and what the repository is called.

use std::sync::Arc;

use super::fetch::{ReviewLimits, SNAPSHOT_REF, fetch_and_snapshot};
use super::runner::{BotError, JobOutcome};
use crate::forge::FetchPlan;
use crate::forge::Secret;
use crate::forge::job::{FORGE_GITHUB, FORGE_GITLAB, GitHubJob, GitLabJob, RepoRef};
use crate::git::cache::{CacheKey, GitCache};
use crate::owners::Flavor;
use crate::queue::NewJob;
use crate::queue::ownership::{NewSnapshot, SnapshotCause, SnapshotRepo};

/// The repository a snapshot is of.
pub struct SnapshotTarget {
    pub key: CacheKey,
    /// `owner/name`, the GitLab path.
    pub name: String,
    pub installation_id: Option<i64>,
    pub web_url: Option<String>,
    pub cause: SnapshotCause,
    pub flavor: Flavor,
}

/// The refspec that fetches `commit` (the remote's default branch, `HEAD`, when `None`).
pub fn snapshot_refspec(commit: Option<&str>) -> Result<String, BotError> {
    let target = match commit {
        Some(sha) => {
            git2::Oid::from_str(sha)
                .map_err(|e| BotError::Review(format!("snapshot commit {sha:?}: {e}")))?;
            sha.to_owned()
        }
        None => "HEAD".to_owned(),
    };
    Ok(format!("+{target}:{SNAPSHOT_REF}"))
}

pub async fn take_snapshot(
    cache: Arc<GitCache>,
    target: SnapshotTarget,
    url: String,
    credentials: Option<(String, Secret)>,
    refspec: String,
    limits: &ReviewLimits,
) -> Result<JobOutcome, BotError> {
    let plan = FetchPlan {
        url,
        credentials,
        refspecs: vec![refspec],
    };
    let forge = target.key.forge.clone();
    let repo_id = target.key.repo_id;
    let fetched = fetch_and_snapshot(cache, target.key, plan, target.flavor, limits)
        .await
        .map_err(|failure| BotError::Review(format!("the snapshot failed: {failure:?}")))?;
    Ok(JobOutcome::Snapshot {
        snapshot: Box::new(NewSnapshot {
            forge,
            repo_id,
            repo_name: target.name,
            installation_id: target.installation_id,
            web_url: target.web_url,
            commit: fetched.commit,
            taken_at_ms: crate::queue::now_ms(),
            cause: target.cause,
            reviewed: false,
            findings: fetched.answer.findings,
        }),
        covering: fetched.covering,
    })
}

/// The schedule's snapshot jobs for `repos` (their latest snapshot is older than the
/// interval), each at its default branch's tip when it runs.
pub fn scheduled_jobs(repos: &[SnapshotRepo]) -> Vec<NewJob> {
    repos
        .iter()
        .filter_map(|r| match r.forge.as_str() {
            FORGE_GITHUB => {
                let installation = u64::try_from(r.installation_id?).ok()?;
                let (owner, name) = r.name.split_once('/')?;
                Some(
                    GitHubJob::Snapshot {
                        installation,
                        repo: RepoRef {
                            id: r.repo_id,
                            owner: owner.to_owned(),
                            name: name.to_owned(),
                        },
                        commit: None,
                        cause: SnapshotCause::Schedule,
                        web_url: r.web_url.clone(),
                    }
                    .to_new_job(FORGE_GITHUB),
                )
            }
            FORGE_GITLAB => Some(
                GitLabJob::Snapshot {
                    project_id: u64::try_from(r.repo_id).ok()?,
                    commit: None,
                    cause: SnapshotCause::Schedule,
                    web_url: r.web_url.clone(),
                    // Accepted when its first push was: the project id is the API's.
                    allowed_groups: Vec::new(),
                }
                .to_new_job(),
            ),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_snapshots_each_known_repository_on_its_branch_lane() {
        let repo = |forge: &str, id: i64, name: &str, installation: Option<i64>| SnapshotRepo {
            forge: forge.into(),
            repo_id: id,
            name: name.into(),
            installation_id: installation,
            web_url: None,
        };
        let jobs = scheduled_jobs(&[
            repo("github", 1, "octo/shop", Some(7)),
            repo("github", 2, "no-installation/x", None),
            repo("gitlab", 3, "platform/shop", None),
        ]);
        assert_eq!(jobs.len(), 2);
        assert!(jobs.iter().all(|j| j.supersedes
            && j.pr_number == Some(crate::forge::job::DEFAULT_BRANCH_LANE as i64)
            && j.head_sha.is_none()));
        assert_eq!(jobs[0].kind, "snapshot");
        assert_eq!(jobs[1].kind, crate::forge::job::GITLAB_KIND_SNAPSHOT);
    }
}

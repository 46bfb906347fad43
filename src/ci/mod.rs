//! `kubeward ci`: the bot's review in a CI job, without an App or a service. It reviews the
//! checked-out repository with local git, then publishes through the same forge adapters and
//! the same review flow as the bot (`bot/review.rs`), so running a job twice posts nothing
//! twice. When it may not write (a fork's read-only token), it says what it found in the job
//! itself: annotations, a job summary, SARIF, a GitLab Code Quality report.
//!
//! What a pull request controls here is the working tree, the head commit and (on
//! `pull_request`) the workflow itself. Policy and CODEOWNERS are read from the base commit's
//! git objects, `--fail-on` can only tighten the policy, and nothing of the head is run.

pub mod actions;
pub mod codequality;
mod github;
mod gitlab;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use git2::Oid;

use crate::bot::runner::ReviewFailure;
use crate::config::FailOn;
use crate::git::Repository;
use crate::git::cache::{FetchBudget, FetchRequest, fetch_into};
use crate::owners::Flavor;
use crate::pipeline::{PipelineError, ReviewBudgets, ReviewOptions, Revisions, policy_at};
use crate::review::{Conclusion, ReviewPlan};

/// The environment `kubeward ci` reads (the process's, or a test's).
pub type Env = BTreeMap<String, String>;

/// What the command line says.
#[derive(Debug, Clone, Default)]
pub struct CiArgs {
    /// The policy file's path in the repository, read at the base commit.
    pub config: Option<String>,
    /// Tightens the policy's `failOn`; never relaxes it.
    pub fail_on: Option<FailOn>,
    /// Where to write SARIF (code scanning).
    pub sarif: Option<PathBuf>,
    /// The variable holding the API token (default: `GITHUB_TOKEN`, `KUBEWARD_GITLAB_TOKEN`).
    pub token_env: Option<String>,
    /// The account the token posts as: our comments are recognised by it.
    pub bot_login: Option<String>,
    /// The GitLab Code Quality report (default `gl-code-quality-report.json`).
    pub codequality: Option<PathBuf>,
}

/// The final line the action reads its outputs from.
pub fn result_line(plan: &ReviewPlan) -> String {
    format!(
        "kubeward: conclusion={} new={} fixed={}",
        match plan.conclusion {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Neutral => "neutral",
        },
        plan.new_findings.len(),
        plan.fixed_findings.len()
    )
}

/// Runs in the CI job the environment describes; the exit status.
pub async fn run(
    args: &CiArgs,
    env: &Env,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<u8> {
    let is = |name: &str| env.get(name).is_some_and(|v| v == "true");
    if is("GITHUB_ACTIONS") {
        return github::run(args, env, out).await;
    }
    if is("GITLAB_CI") {
        return gitlab::run(args, env, out).await;
    }
    eprintln!(
        "kubeward ci: neither GitHub Actions (GITHUB_ACTIONS) nor GitLab CI (GITLAB_CI) is set; run `kubeward review` or `kubeward audit` elsewhere"
    );
    Ok(crate::cli::EXIT_USAGE)
}

/// Where missing commits can be fetched from.
pub(crate) struct Remote {
    pub url: String,
    /// `(user, password)`, given to git through its credential callback only (libgit2 ignores
    /// the `http.extraheader` actions/checkout sets).
    pub credentials: Option<(String, crate::forge::Secret)>,
    /// Refspecs that bring the head (`refs/pull/N/head`).
    pub head_refspec: String,
}

/// A change as the CI job knows it.
pub(crate) struct Checkout<'a> {
    pub path: &'a Path,
    pub base: &'a str,
    pub head: &'a str,
    pub flavor: Flavor,
    pub remote: Option<Remote>,
}

/// What a CI review may fetch: enough for a deep history, not a runaway.
const MAX_FETCH_BYTES: u64 = 4 << 30;

/// Reviews the checkout: the same pipeline as `kubeward review`, with the policy read at the
/// base commit and `--fail-on` only tightening it.
pub(crate) fn review_checkout(
    checkout: &Checkout<'_>,
    args: &CiArgs,
) -> Result<ReviewPlan, ReviewFailure> {
    let other = |e: &dyn std::fmt::Display| ReviewFailure::Other(e.to_string());
    let repo = Repository::open(checkout.path).map_err(|e| other(&e))?;
    let base = Oid::from_str(checkout.base).map_err(|e| other(&e))?;
    let head = Oid::from_str(checkout.head).map_err(|e| other(&e))?;
    ensure_commits(&repo, checkout, base, head)?;
    let merge_base = match repo.merge_base(base, head) {
        Ok(oid) => oid,
        // A shallow checkout holds no common ancestor: fetch the whole history once.
        Err(_) => {
            fetch(&repo, checkout, &[base, head], Some(UNSHALLOW))?;
            repo.merge_base(base, head).map_err(|e| other(&e))?
        }
    };
    let revisions = Revisions {
        merge_base,
        head,
        base_tip: base,
    };
    let mut policy = policy_at(&repo, base, args.config.as_deref()).map_err(failure)?;
    if let Some(fail_on) = args.fail_on {
        policy.fail_on = stricter(policy.fail_on, fail_on);
    }
    let found = crate::render::Tools::from_path();
    let options = ReviewOptions {
        forge: checkout.flavor,
        config_override: None,
        fail_on: None,
        budgets: ReviewBudgets::within_memory(2 << 30),
        render: Some(crate::render::review::RenderOptions {
            kubectl: found.kubectl,
            helm: found.helm,
            ..Default::default()
        }),
        progress: None,
        // One review per job: nothing to keep between them.
        views: None,
    };
    crate::pipeline::review_with_policy(&repo, &revisions, &options, &policy)
        .map(|(plan, _)| plan)
        .map_err(failure)
}

/// libgit2's depth for "the whole history".
const UNSHALLOW: i32 = i32::MAX;

fn failure(error: PipelineError) -> ReviewFailure {
    match error {
        PipelineError::Config(e) => ReviewFailure::Config(e.to_string()),
        e => ReviewFailure::Other(e.to_string()),
    }
}

/// The stricter of two `failOn`s: a job's setting may tighten the base's, never relax it.
pub fn stricter(policy: FailOn, asked: FailOn) -> FailOn {
    let rank = |f: FailOn| match f {
        FailOn::Never => 0,
        FailOn::Danger => 1,
        FailOn::Warning => 2,
    };
    if rank(asked) > rank(policy) {
        asked
    } else {
        policy
    }
}

/// Fetches the base and head when the checkout lacks them (actions/checkout fetches only the
/// merge commit, one deep).
fn ensure_commits(
    repo: &Repository,
    checkout: &Checkout<'_>,
    base: Oid,
    head: Oid,
) -> Result<(), ReviewFailure> {
    let has = |oid: Oid| repo.inner().find_commit(oid).is_ok();
    let missing: Vec<Oid> = [base, head].into_iter().filter(|o| !has(*o)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    fetch(repo, checkout, &missing, None)?;
    match [base, head].into_iter().find(|o| !has(*o)) {
        Some(oid) => Err(ReviewFailure::Other(format!(
            "commit {oid} is not in the checkout and could not be fetched"
        ))),
        None => Ok(()),
    }
}

fn fetch(
    repo: &Repository,
    checkout: &Checkout<'_>,
    commits: &[Oid],
    depth: Option<i32>,
) -> Result<(), ReviewFailure> {
    let Some(remote) = &checkout.remote else {
        return Err(ReviewFailure::Other(
            "the checkout lacks commits the review needs, and no remote is known to fetch them"
                .into(),
        ));
    };
    let mut refspecs: Vec<String> = commits
        .iter()
        .map(|oid| format!("+{oid}:refs/kubeward/ci/{oid}"))
        .collect();
    refspecs.push(remote.head_refspec.clone());
    let budget = FetchBudget::new(MAX_FETCH_BYTES);
    let credentials = remote
        .credentials
        .as_ref()
        .map(|(user, password)| (user.as_str(), password.expose()));
    fetch_into(
        repo,
        &FetchRequest {
            url: &remote.url,
            refspecs: &refspecs,
            credentials,
            depth,
            budget: &budget,
        },
    )
    .map(|_| ())
    .map_err(|e| ReviewFailure::Other(e.to_string()))
}

/// SARIF of the plan's new findings, written to `path`.
pub(crate) fn write_sarif(path: &Path, plan: &ReviewPlan) -> anyhow::Result<()> {
    let sarif = crate::cli::plan_sarif(plan)?;
    std::fs::write(path, sarif).with_context(|| format!("writing {}", path.display()))
}

/// The exit status of a plan, as `kubeward review`'s.
pub(crate) fn exit_status(plan: &ReviewPlan) -> u8 {
    match plan.conclusion {
        Conclusion::Failure => crate::cli::EXIT_FINDINGS,
        Conclusion::Success | Conclusion::Neutral => crate::cli::EXIT_OK,
    }
}

/// The exit status of a review that made no plan, said on stderr.
pub(crate) fn failed(failure: &ReviewFailure) -> u8 {
    match failure {
        ReviewFailure::Config(message) => {
            eprintln!("kubeward ci: the base commit's policy is invalid: {message}");
            crate::cli::EXIT_USAGE
        }
        other => {
            eprintln!("kubeward ci: the review failed: {other:?}");
            crate::cli::EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_can_tighten_the_policy_but_never_relax_it() {
        use FailOn::*;
        assert_eq!(stricter(Danger, Warning), Warning);
        assert_eq!(stricter(Danger, Never), Danger);
        assert_eq!(stricter(Warning, Danger), Warning);
        assert_eq!(stricter(Never, Danger), Danger);
    }
}

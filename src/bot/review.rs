//! The one review flow, for every forge: read the change, skip what is closed, say why a
//! draft is not reviewed, open the status, fetch and review under one time limit, publish
//! through [`reconcile`], and conclude the status on every path.
//!
//! The choices both forges share (each tested on both):
//! - The change is reviewed as it is now, whatever head the job was queued for: deliveries
//!   arrive out of order and can be lost.
//! - A draft is not reviewed unless the settings say so; its status says why (GitHub: a
//!   neutral check, GitLab: a `skipped` status) and marking it ready reviews it.
//! - Fetching and reviewing share one time limit; publishing is not under it (once there is a
//!   plan, the status says its conclusion, never a neutral that required checks let pass).
//! - A review that fails says so on the status as a failure, before a retry too (a newer push
//!   may supersede the retry; the old head must not stay in progress), except when only
//!   waiting for a write budget: then the job is deferred and the status stays as it is.
//! - Comments are reconciled with what is posted: posted once, marked fixed when their
//!   findings are gone, reopened when they come back (see `review/reconcile.rs`).

use std::sync::Arc;
use std::time::Instant;

use super::fetch::{Commits, ReviewLimits, fetch_and_review, stage};
use super::runner::{BotError, Cancel, JobOutcome, ReviewFailure};
use crate::forge::command::Command;
use crate::forge::{Change, CommandRequest, Forge, ForgeResult, Outcome, StatusText, scan_key};
use crate::git::cache::GitCache;
use crate::review::reconcile::{Posted, reconcile, summary_with_refused};
use crate::review::{InlineComment, ReviewPlan};

/// What the flow needs besides the forge.
pub struct Flow<'a> {
    pub reviewer: Reviewer<'a>,
    pub review_drafts: bool,
}

/// Where the plan comes from.
pub enum Reviewer<'a> {
    /// The bot: fetch into the bare cache, review in a child process, under the limits.
    Fetch {
        cache: &'a Arc<GitCache>,
        limits: &'a ReviewLimits,
    },
    /// `kubeward ci`: the checkout was reviewed already, in the job's own process; the flow
    /// only publishes the outcome.
    Done(Box<Result<ReviewPlan, ReviewFailure>>),
}

/// What a job asks of the flow.
#[derive(Debug, Clone)]
pub enum Work {
    Review {
        /// The head the job was queued for (the change is reviewed as it is now).
        expected_head: Option<String>,
        /// A re-requested check wants a new run.
        new_status: bool,
        /// The head a push replaced: its unfinished statuses are cancelled.
        previous_head: Option<String>,
    },
    Command(CommandRequest),
}

/// Runs one job's work on one change.
pub async fn run<F: Forge>(
    forge: &F,
    work: &Work,
    flow: &Flow<'_>,
    cancel: &Cancel,
    last_attempt: bool,
) -> Result<JobOutcome, BotError> {
    match work {
        Work::Review {
            expected_head,
            new_status,
            previous_head,
        } => {
            if let Some(previous) = previous_head
                .as_ref()
                .filter(|p| Some(*p) != expected_head.as_ref())
            {
                cancel_replaced_head(forge, previous).await;
            }
            review(
                forge,
                expected_head.as_deref(),
                *new_status,
                flow,
                cancel,
                last_attempt,
            )
            .await
        }
        Work::Command(request) => match forge.authorize_command(request).await? {
            Err(why) => Ok(JobOutcome::Skipped(why)),
            Ok(Command::Help) => {
                forge.answer_help(request.comment_id).await?;
                Ok(JobOutcome::Skipped("help answered".into()))
            }
            Ok(Command::Rescan) => review(forge, None, false, flow, cancel, last_attempt).await,
        },
    }
}

/// Concludes `cancelled` what is still open on the head a push replaced: a review of it may
/// have been superseded after it started (released at a shutdown, say) and never resumed.
/// Best effort: the new head's review goes on regardless.
async fn cancel_replaced_head<F: Forge>(forge: &F, previous: &str) {
    let text = StatusText {
        title: "Superseded",
        summary: "A newer push superseded this review.",
    };
    match forge
        .conclude_unfinished(previous, Outcome::Cancelled, text)
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(cancelled = n, head = %previous, "concluded the replaced head's open statuses")
        }
        Err(e) => tracing::warn!(error = %e, "cannot conclude the replaced head's open statuses"),
    }
}

/// Fails what a given-up job left open: on the heads it names and, when it names a change, on
/// the change's current head (a review reviews the change as it is now). The worker calls
/// this when its time limit cut the job off on its last attempt, so that no required check
/// waits forever.
pub async fn conclude_abandoned<F: Forge>(
    forge: &F,
    job_heads: &[String],
    names_a_change: bool,
    reason: &str,
) -> Result<(), BotError> {
    let mut heads = job_heads.to_vec();
    if names_a_change {
        heads.push(forge.current_head().await?);
    }
    heads.retain(|head| !head.is_empty());
    heads.dedup();
    let summary = format!(
        "kubeward gave this review up: {reason}. Push again or comment `/kubeward rescan` to retry."
    );
    let text = StatusText {
        title: "kubeward could not finish this review",
        summary: &summary,
    };
    for head in heads {
        let concluded = forge
            .conclude_unfinished(&head, Outcome::Failure, text)
            .await?;
        tracing::info!(concluded, head = %head, "the statuses a given-up job left unfinished");
    }
    Ok(())
}

async fn review<F: Forge>(
    forge: &F,
    expected_head: Option<&str>,
    new_status: bool,
    flow: &Flow<'_>,
    cancel: &Cancel,
    last_attempt: bool,
) -> Result<JobOutcome, BotError> {
    let change = forge.change().await?;
    if !change.open {
        return Ok(JobOutcome::Skipped("the change is not open".into()));
    }
    // A plan made already (CI) is of the head the job checked out: a newer push has its own job.
    if let Reviewer::Done(done) = &flow.reviewer
        && let Ok(plan) = done.as_ref()
        && plan.head_sha != change.head
    {
        return Ok(JobOutcome::Skipped(format!(
            "the change moved on to {}; this job reviewed {}",
            change.head, plan.head_sha
        )));
    }
    if let Some(expected) = expected_head.filter(|h| *h != change.head) {
        tracing::info!(job_head = %expected, current_head = %change.head, "reviewing the current head");
    }
    // Never approximated by the base tip: later commits on the base branch would look
    // reverted by the change.
    let Some(merge_base) = change.merge_base.clone() else {
        let scan = scan_key(&change.head, "no-merge-base");
        let status = forge.open_status(&change, &scan, new_status).await?;
        let text = StatusText {
            title: "No merge base",
            summary: "The forge names no merge base of the base and head commits (unrelated histories?), so kubeward cannot tell what this change did.",
        };
        let id = forge
            .conclude_verdict(&change, &status, Outcome::Failure, text)
            .await?;
        return Ok(published(forge, Outcome::Failure, id));
    };
    let scan = scan_key(&change.head, &merge_base);
    if change.draft && !flow.review_drafts {
        let text = StatusText {
            title: "Draft: not reviewed",
            summary: "This change is a draft; kubeward reviews it when it is marked ready for review.",
        };
        forge.skip(&change, &scan, text).await?;
        return Ok(JobOutcome::Skipped(
            "a draft: reviewed when marked ready".into(),
        ));
    }
    let status = forge.open_status(&change, &scan, new_status).await?;
    // Whatever happens from here on, the status is concluded.
    let work = async {
        let reviewed = match &flow.reviewer {
            Reviewer::Done(outcome) => (**outcome).clone(),
            Reviewer::Fetch { cache, limits } => {
                let commits = Commits {
                    head: change.head.clone(),
                    merge_base,
                    base_tip: change.base_tip.clone(),
                };
                let fetch = async {
                    forge
                        .fetch_plan(&change)
                        .await
                        .map_err(|e| ReviewFailure::Other(e.to_string()))
                };
                let key = forge.cache_key()?;
                fetch_and_review(
                    (*cache).clone(),
                    key,
                    fetch,
                    commits,
                    forge.flavor(),
                    limits,
                )
                .await
            }
        };
        match reviewed {
            Ok(plan) => {
                if cancel.is_cancelled() {
                    let text = StatusText {
                        title: "Superseded",
                        summary: "A newer push or a closed change superseded this review.",
                    };
                    forge
                        .finish_status(&change, &status, Outcome::Cancelled, text)
                        .await?;
                    return Ok(JobOutcome::Skipped("cancelled".into()));
                }
                let started = Instant::now();
                let id = publish(forge, &change, &status, &plan).await?;
                stage("publish", started.elapsed());
                let mut outcome = published(forge, Outcome::of(plan.conclusion), id);
                if let (JobOutcome::Published { review, .. }, Ok(key)) =
                    (&mut outcome, forge.cache_key())
                {
                    *review = Some(Box::new(review_outcome(&key, forge.number(), &plan)));
                }
                Ok(outcome)
            }
            Err(failure) => match failure.verdict() {
                Some(verdict) => {
                    let outcome = Outcome::of(verdict.conclusion);
                    let text = StatusText {
                        title: &verdict.title,
                        summary: &verdict.summary,
                    };
                    let id = forge
                        .conclude_verdict(&change, &status, outcome, text)
                        .await?;
                    Ok(published(forge, outcome, id))
                }
                // Retried by the queue; concluded below meanwhile.
                None => Err(BotError::Review(match failure {
                    ReviewFailure::Other(message) => message,
                    other => format!("{other:?}"),
                })),
            },
        }
    };
    match work.await {
        // Only waiting for the write budget: deferred, not failed, and the status stays as it
        // is (publishing concluded it already if it got that far).
        Err(error) if error.retry_after().is_some() => Err(error),
        Err(error) => {
            let (title, will) = match last_attempt {
                true => (
                    "kubeward could not review this change",
                    "will not be retried",
                ),
                false => ("kubeward hit an error; retrying", "will be retried"),
            };
            let summary = format!("The review failed and {will}:\n\n```\n{error}\n```");
            let text = StatusText {
                title,
                summary: &summary,
            };
            if let Err(e) = forge
                .finish_status(&change, &status, Outcome::Failure, text)
                .await
            {
                tracing::warn!(error = %e, "cannot conclude the status of a failed review");
            }
            Err(error)
        }
        Ok(outcome) => Ok(outcome),
    }
}

fn published<F: Forge>(forge: &F, outcome: Outcome, id: u64) -> JobOutcome {
    JobOutcome::Published {
        conclusion: forge.says(outcome).into(),
        published_id: id,
        review: None,
    }
}

/// What a published review found: new and fixed findings, exemptions added, and the new
/// findings at or above `failOn` that would escape if it were merged as it is.
fn review_outcome(
    key: &crate::git::cache::CacheKey,
    number: u64,
    plan: &crate::review::ReviewPlan,
) -> crate::queue::ownership::ReviewOutcome {
    let new = &plan.new_findings;
    // Per owning team, as the pages show what a team's reviews caught.
    let mut teams: std::collections::BTreeMap<String, crate::queue::ownership::TeamOutcome> =
        Default::default();
    let findings = new
        .iter()
        .map(|f| (f, false))
        .chain(plan.fixed_findings.iter().map(|f| (f, true)));
    for (f, fixed) in findings {
        let owners = if f.owners.is_empty() {
            vec![crate::ownership::UNOWNED.to_owned()]
        } else {
            f.owners.clone()
        };
        for team in owners {
            let entry =
                teams
                    .entry(team.clone())
                    .or_insert_with(|| crate::queue::ownership::TeamOutcome {
                        team,
                        new_findings: 0,
                        fixed_findings: 0,
                        new_failing: 0,
                    });
            if fixed {
                entry.fixed_findings += 1;
            } else {
                entry.new_findings += 1;
                entry.new_failing += i64::from(plan.fail_on.fails(f.finding.severity));
            }
        }
    }
    crate::queue::ownership::ReviewOutcome {
        forge: key.forge.clone(),
        repo_id: key.repo_id,
        pr_number: number as i64,
        head_sha: plan.head_sha.clone(),
        reviewed_at_ms: crate::queue::now_ms(),
        new_findings: new.len() as i64,
        fixed_findings: plan.fixed_findings.len() as i64,
        exemptions_added: new
            .iter()
            .filter(|f| f.finding.rule == crate::audit::EXEMPTION_ADDED)
            .count() as i64,
        new_failing: new
            .iter()
            .filter(|f| plan.fail_on.fails(f.finding.severity))
            .count() as i64,
        teams: teams.into_values().collect(),
    }
}

/// Publishes the plan and concludes the status; the id the job records. When a write budget
/// runs out on the way, the status gets the plan's conclusion first (saying that the rest
/// follows) and the error goes up so the job is deferred; running it again goes on from what
/// landed.
async fn publish<F: Forge>(
    forge: &F,
    change: &Change<F::Extra>,
    status: &F::Status,
    plan: &ReviewPlan,
) -> ForgeResult<u64> {
    let published = publish_all(forge, change, status, plan).await;
    if let Err(error) = &published
        && let Some(wait) = error.retry_after()
    {
        forge
            .conclude_before_waiting(change, status, plan, wait)
            .await;
    }
    published
}

async fn publish_all<F: Forge>(
    forge: &F,
    change: &Change<F::Extra>,
    status: &F::Status,
    plan: &ReviewPlan,
) -> ForgeResult<u64> {
    let posted = forge.our_comments(change).await?;
    let states: Vec<Posted> = posted.iter().map(|p| p.state.clone()).collect();
    let actions = reconcile(plan, &states);
    let refused: Vec<&InlineComment> = match actions.post_inline.is_empty() {
        true => Vec::new(),
        false => forge
            .post_inline(change, &actions.post_inline)
            .await?
            .into_iter()
            .filter_map(|i| actions.post_inline.get(i).copied())
            .collect(),
    };
    for file in &actions.post_file {
        forge.post_file(change, file).await?;
    }
    let handles = |indices: &[usize]| -> Vec<&F::Comment> {
        indices.iter().map(|&i| &posted[i].handle).collect()
    };
    let marked = forge
        .mark(
            change,
            &handles(&actions.mark_fixed),
            &handles(&actions.reopen),
        )
        .await?;
    let summary = summary_with_refused(&plan.summary, forge.name(), &refused);
    let summary_id = forge.upsert_summary(change, &summary).await?;
    let id = forge
        .conclude_plan(change, status, plan, &refused, summary_id)
        .await?;
    tracing::info!(
        forge = forge.name(),
        posted = actions.post_inline.len() + actions.post_file.len() - refused.len(),
        already_posted = actions.already_posted,
        marked_fixed = marked.fixed,
        reopened = marked.reopened,
        refused = refused.len(),
        "published"
    );
    Ok(id)
}

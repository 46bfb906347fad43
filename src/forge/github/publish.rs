//! Publishing a ReviewPlan on a pull request, idempotently: running the same job twice leaves
//! the pull request exactly as running it once.
//!
//! - One check run per scan (head SHA + merge-base), found again by its `external_id`.
//! - Inline comments only for fingerprints not already on the PR (read from the hidden marker of
//!   our own comments), in one review; a 422 is retried once with only the comments GitHub's own
//!   diff of the pull request can anchor.
//! - Comments whose findings were fixed are edited to say so and their threads resolved,
//!   unless a person replied or resolved the thread (GitHub shows resolution only in GraphQL).
//! - One summary comment, created once and then edited in place.
//! - At most `max_annotations` check-run annotations, the most severe first; the check's
//!   summary counts the rest.
//! - Opening and concluding the check draw on the part of the installation's write budget kept
//!   for checks. When the budget runs out mid-publish ([`ApiError::RateLimited`]), the check is
//!   concluded with the plan's conclusion before the error goes up (the job is deferred and
//!   posts the rest when it resumes), so a required check does not wait on comments.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use super::api::{ApiError, ApiReply, ApiRequest, GitHubApi, graphql, repo_path};
use super::reply::{ChangedFile, CheckRun, Comment, list_all_as, parse};
use crate::diff::{Hunk, one_hunk_shows, parse_unified_hunks};
use crate::review::reconcile::Posted;
use crate::review::render::{SUMMARY_MARKER, parse_marker, truncate};
use crate::review::{Annotation, Conclusion, FileComment, InlineComment, ReviewPlan};

/// GitHub's name for our check run.
pub const CHECK_NAME: &str = "kubeward";
/// At most this many annotations per check-run request.
pub const ANNOTATIONS_PER_REQUEST: usize = 50;
/// Annotations per check run unless configured: one file can yield tens of thousands of
/// findings, and each 50 annotations cost a content-creating request.
pub const DEFAULT_MAX_ANNOTATIONS: usize = 200;
/// Room kept in the check's summary for what the adapter appends to the plan's.
const SUMMARY_CHARS: usize = 60_000;
/// Ends the summary of a check concluded while the rest of its publication waits for the write
/// budget: the job's conclusion replaces it, or, if the job is given up, the give-up does.
pub const PUBLISHING_MARKER: &str = "<!-- kubeward:publishing -->";
const FIXED_PREFIX: &str = "✅ **Fixed**";

/// The pull request a job publishes to.
#[derive(Debug, Clone)]
pub struct Target {
    pub installation: u64,
    pub owner: String,
    pub repo: String,
    pub number: u64,
    pub head_sha: String,
    /// Our own login (`kubeward[bot]`); only comments by it are ours.
    pub bot_login: String,
}

impl Target {
    fn path(&self, rest: &str) -> String {
        repo_path(&self.owner, &self.repo, rest)
    }
}

pub use crate::forge::scan_key;

pub use crate::forge::Outcome;

/// A check run's `conclusion` for an outcome. A skipped review (a draft) is `neutral`: GitHub
/// hides `skipped` check runs, and the check should say why it did not judge.
pub fn conclusion(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
        Outcome::Neutral | Outcome::Skipped => "neutral",
        Outcome::Cancelled => "cancelled",
    }
}

/// Finds this scan's check run, or creates it `in_progress`. `new_run` forces a new one (a
/// re-requested check must get a new run).
pub async fn start_check(
    api: &dyn GitHubApi,
    target: &Target,
    scan: &str,
    new_run: bool,
) -> Result<u64, ApiError> {
    if !new_run && let Some(run) = find_check(api, target, scan).await? {
        return Ok(run.id);
    }
    let body = json!({
        "name": CHECK_NAME,
        "head_sha": target.head_sha,
        "external_id": scan,
        "status": "in_progress",
        "output": {"title": "Reviewing", "summary": "kubeward is reviewing this change."},
    });
    // From the budget kept for checks: every pull request gets its check opened.
    let create = |body| ApiRequest::post(target.path("/check-runs"), body).reserved();
    let endpoint = format!("POST {}", target.path("/check-runs"));
    let created = |reply: ApiReply| parse::<CheckRun>(&endpoint, &reply.body).map(|r| r.id);
    match api.call(target.installation, create(body.clone())).await {
        Ok(reply) => created(reply),
        // The create may have landed: look before creating again.
        Err(ApiError::Unconfirmed(_)) => match find_check(api, target, scan).await? {
            Some(run) => Ok(run.id),
            None => created(api.call(target.installation, create(body)).await?),
        },
        Err(e) => Err(e),
    }
}

async fn find_check(
    api: &dyn GitHubApi,
    target: &Target,
    scan: &str,
) -> Result<Option<CheckRun>, ApiError> {
    Ok(check_runs_of_head(api, target, "")
        .await?
        .into_iter()
        .filter(|r| r.external_id.as_deref() == Some(scan))
        .max_by_key(|r| r.id))
}

/// Our check runs on the target's head, every one of them (`filter=all`: the default,
/// `latest`, hides the earlier runs), narrowed by `query` (`&status=…`).
async fn check_runs_of_head(
    api: &dyn GitHubApi,
    target: &Target,
    query: &str,
) -> Result<Vec<CheckRun>, ApiError> {
    let path = format!(
        "/commits/{}/check-runs?check_name={CHECK_NAME}&filter=all{query}",
        target.head_sha
    );
    list_all_as(
        api,
        target.installation,
        &target.path(&path),
        Some("check_runs"),
    )
    .await
}

/// Concludes every run of ours on the target's head that is not finished, with this outcome,
/// title and summary; how many there were. Unfinished: not completed, or concluded early by a
/// publication still waiting for the write budget ([`PUBLISHING_MARKER`]), whose "the rest
/// follows" would otherwise stay on it after its job was given up or superseded.
pub async fn conclude_unfinished_checks(
    api: &dyn GitHubApi,
    target: &Target,
    outcome: Outcome,
    title: &str,
    summary: &str,
) -> Result<usize, ApiError> {
    let runs = check_runs_of_head(api, target, "").await?;
    let unfinished = |run: &&CheckRun| {
        run.status.as_deref() != Some("completed")
            || run
                .output
                .as_ref()
                .and_then(|o| o.summary.as_deref())
                .is_some_and(|s| s.contains(PUBLISHING_MARKER))
    };
    let mut concluded = 0;
    for run in runs.iter().filter(unfinished) {
        finish_check(api, target, run.id, outcome, title, summary).await?;
        concluded += 1;
    }
    Ok(concluded)
}

/// Ends a check run without a plan (skipped draft, superseded, failed job).
pub async fn finish_check(
    api: &dyn GitHubApi,
    target: &Target,
    check_run_id: u64,
    outcome: Outcome,
    title: &str,
    summary: &str,
) -> Result<(), ApiError> {
    let body = json!({
        "status": "completed",
        "conclusion": conclusion(outcome),
        "output": {"title": truncate(title, 200), "summary": truncate(summary, 60_000)},
    });
    api.call(
        target.installation,
        ApiRequest::patch(target.path(&format!("/check-runs/{check_run_id}")), body),
    )
    .await
    .map(|_| ())
}

/// A comment of ours on the pull request.
#[derive(Debug, Clone)]
pub struct Ours {
    id: u64,
    fingerprints: Vec<String>,
    body: String,
    replied: bool,
}

pub(crate) async fn our_review_comments(
    api: &dyn GitHubApi,
    target: &Target,
) -> Result<Vec<Ours>, ApiError> {
    let all: Vec<Comment> = list_all_as(
        api,
        target.installation,
        &target.path(&format!("/pulls/{}/comments", target.number)),
        None,
    )
    .await?;
    // A thread a person took part in is theirs too: never re-posted, edited or resolved.
    let replied_to: HashSet<u64> = all
        .iter()
        .filter(|c| !c.by(&target.bot_login))
        .filter_map(|c| c.in_reply_to_id)
        .collect();
    Ok(all
        .iter()
        .filter(|c| c.by(&target.bot_login))
        .filter_map(|c| {
            let body = c.body();
            let fingerprints = parse_marker(body)?;
            let id = c.id;
            Some(Ours {
                id,
                fingerprints,
                body: body.to_owned(),
                replied: replied_to.contains(&id),
            })
        })
        .collect())
}

fn review_comment_json(c: &InlineComment) -> Value {
    let mut comment = json!({
        "path": c.path,
        "line": c.line,
        "side": c.side,
        "body": c.body,
    });
    if let Some(start) = c.start_line {
        comment["start_line"] = json!(start);
        comment["start_side"] = json!("RIGHT");
    }
    comment
}

/// The plan's conclusion on the check, without annotations (so not a content write), while
/// the rest of the publishing waits for the write budget. Best effort: without it the check
/// stays in progress until the job resumes.
pub(crate) async fn conclude_before_waiting(
    api: &dyn GitHubApi,
    target: &Target,
    plan: &ReviewPlan,
    check_run_id: u64,
    max_annotations: usize,
    retry_after: std::time::Duration,
) {
    let minutes = retry_after.as_secs().div_ceil(60).max(1);
    let note = format!(
        "kubeward has more to post on this pull request (comments, annotations): the \
         installation's GitHub write budget is spent for now, and it goes on in about {minutes} \
         min. This conclusion stands."
    );
    let hidden = annotations(plan, &[]).len().saturating_sub(max_annotations);
    let summary = check_summary(
        plan,
        &[
            &note,
            &hidden_note(hidden, max_annotations),
            PUBLISHING_MARKER,
        ],
    );
    let body = json!({
        "status": "completed",
        "conclusion": conclusion_of(plan),
        "output": {"title": truncate(&plan.title, 200), "summary": summary},
    });
    let path = target.path(&format!("/check-runs/{check_run_id}"));
    if let Err(e) = api
        .call(target.installation, ApiRequest::patch(path, body))
        .await
    {
        tracing::warn!(error = %e, "cannot conclude the check before waiting for the write budget");
    }
}

/// Posts the inline comments as one review; the indices of those GitHub refused. GitHub
/// rejects a whole review (422) without saying which comment: its own diff of the pull request
/// says which lines it accepts, so the review is retried once with the comments it can anchor.
pub(crate) async fn post_inline(
    api: &dyn GitHubApi,
    target: &Target,
    fresh: &[&InlineComment],
) -> Result<Vec<usize>, ApiError> {
    match post_review(api, target, fresh).await {
        Ok(()) => Ok(Vec::new()),
        Err(ApiError::Status { status: 422, .. }) => {
            let accepted = match github_diff(api, target).await {
                Ok(diff) => diff,
                // Not a refusal of the comments: wait for the budget, then try again.
                Err(e @ ApiError::RateLimited { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read GitHub's diff after a refused review");
                    HashMap::new()
                }
            };
            let (kept, mut refused): (Vec<usize>, Vec<usize>) =
                (0..fresh.len()).partition(|&i| github_can_anchor(&accepted, fresh[i]));
            if !kept.is_empty() {
                let comments: Vec<&InlineComment> = kept.iter().map(|&i| fresh[i]).collect();
                match post_review(api, target, &comments).await {
                    Ok(()) => {}
                    Err(e @ ApiError::RateLimited { .. }) => return Err(e),
                    Err(_) => refused.extend(kept),
                }
            }
            refused.sort_unstable();
            Ok(refused)
        }
        Err(e) => Err(e),
    }
}

/// Posts a comment on a whole file. A refusal other than the rate limit is left: the finding
/// is in the summary and the check's annotations anyway.
pub(crate) async fn post_file(
    api: &dyn GitHubApi,
    target: &Target,
    file: &FileComment,
) -> Result<(), ApiError> {
    let body = json!({
        "body": file.body,
        "commit_id": target.head_sha,
        "path": file.path,
        "subject_type": "file",
    });
    let path = target.path(&format!("/pulls/{}/comments", target.number));
    match api
        .call(target.installation, ApiRequest::post(path, body))
        .await
    {
        Ok(_) => Ok(()),
        // Posted when the job resumes (it is not on the pull request yet).
        Err(e @ ApiError::RateLimited { .. }) => Err(e),
        Err(e) => {
            tracing::warn!(path = %file.path, error = %e, "GitHub refused a file comment");
            Ok(())
        }
    }
}

/// Says "fixed" on our comments whose findings are gone and restores those whose finding came
/// back. Whether a person resolved a thread is only known to GraphQL; without that answer no
/// thread is touched, since editing one a person closed is worse than leaving it.
pub(crate) async fn mark(
    api: &dyn GitHubApi,
    target: &Target,
    fixed: &[&Ours],
    back: &[&Ours],
) -> Result<crate::forge::Marked, ApiError> {
    let mut marked = crate::forge::Marked::default();
    if fixed.is_empty() && back.is_empty() {
        return Ok(marked);
    }
    let threads = review_threads(api, target).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read review threads: fixed findings are not marked this time");
        HashMap::new()
    });
    for comment in fixed {
        let Some(thread) = threads.get(&comment.id) else {
            continue;
        };
        if thread.resolved {
            continue;
        }
        let short = &target.head_sha[..target.head_sha.len().min(7)];
        let body = format!(
            "{FIXED_PREFIX} in `{short}`.\n\n<details><summary>The original comment</summary>\n\n{}\n</details>\n\n{}",
            strip_marker(&comment.body),
            marker_line(&comment.body)
        );
        api.call(
            target.installation,
            ApiRequest::patch(
                target.path(&format!("/pulls/comments/{}", comment.id)),
                json!({"body": body}),
            ),
        )
        .await?;
        marked.fixed += 1;
        // Cosmetic next to the edit: a failure must not fail the review (and its check).
        if let Err(e) = graphql(
            api,
            target.installation,
            ApiRequest::graphql_mutation(RESOLVE_THREAD, json!({"thread": thread.id})),
        )
        .await
        {
            tracing::warn!(error = %e, comment = comment.id, "cannot resolve the thread of a fixed finding");
        }
    }
    for comment in back {
        // A thread a person resolved after we marked it is theirs.
        let Some(thread) = threads.get(&comment.id) else {
            continue;
        };
        api.call(
            target.installation,
            ApiRequest::patch(
                target.path(&format!("/pulls/comments/{}", comment.id)),
                json!({"body": original_of(&comment.body)}),
            ),
        )
        .await?;
        marked.reopened += 1;
        if thread.resolved
            && let Err(e) = graphql(
                api,
                target.installation,
                ApiRequest::graphql_mutation(UNRESOLVE_THREAD, json!({"thread": thread.id})),
            )
            .await
        {
            tracing::warn!(error = %e, comment = comment.id, "cannot reopen the thread of a finding that came back");
        }
    }
    Ok(marked)
}

/// Our comments as [`reconcile`](crate::review::reconcile) sees them.
pub(crate) fn posted_state(comment: &Ours) -> Posted {
    Posted {
        fingerprints: comment.fingerprints.clone(),
        marked_fixed: comment.body.starts_with(FIXED_PREFIX),
        // Known only from the review threads, read by `mark` when something is to change.
        resolved_by_person: false,
        replied: comment.replied,
    }
}

/// The review threads of a pull request, 100 per page (GraphQL only: REST has no threads).
pub const REVIEW_THREADS: &str = "query($owner: String!, $repo: String!, $number: Int!, $cursor: String) { \
    repository(owner: $owner, name: $repo) { pullRequest(number: $number) { \
    reviewThreads(first: 100, after: $cursor) { pageInfo { hasNextPage endCursor } \
    nodes { id isResolved comments(first: 1) { nodes { fullDatabaseId } } } } } } }";

/// Reopens one review thread; repeating it changes nothing.
pub const UNRESOLVE_THREAD: &str = "mutation($thread: ID!) { \
    unresolveReviewThread(input: {threadId: $thread}) { thread { id isResolved } } }";

/// Resolves one review thread; repeating it changes nothing.
pub const RESOLVE_THREAD: &str = "mutation($thread: ID!) { \
    resolveReviewThread(input: {threadId: $thread}) { thread { id isResolved } } }";

/// GraphQL allows 100 threads per page; this bounds the listing at 5,000 threads.
const MAX_THREAD_PAGES: usize = 50;

/// A review thread, as GraphQL shows it.
#[derive(Debug)]
struct Thread {
    id: String,
    resolved: bool,
}

/// The review threads of the pull request, by the REST id of their first comment (ours are
/// always first: the bot never replies in a thread).
async fn review_threads(
    api: &dyn GitHubApi,
    target: &Target,
) -> Result<HashMap<u64, Thread>, ApiError> {
    let mut threads = HashMap::new();
    let mut cursor = Value::Null;
    for _ in 0..MAX_THREAD_PAGES {
        let variables = json!({
            "owner": target.owner,
            "repo": target.repo,
            "number": target.number,
            "cursor": cursor,
        });
        let data = graphql(
            api,
            target.installation,
            ApiRequest::graphql_query(REVIEW_THREADS, variables),
        )
        .await?;
        let page = &data["repository"]["pullRequest"]["reviewThreads"];
        let nodes = page["nodes"]
            .as_array()
            .ok_or_else(|| ApiError::Other("GraphQL: no review threads in the answer".into()))?;
        for node in nodes {
            // `fullDatabaseId` is a BigInt, sent as a string (`databaseId` is 32-bit and
            // deprecated: review comment ids outgrew it).
            let first = &node["comments"]["nodes"][0]["fullDatabaseId"];
            let first = first
                .as_str()
                .and_then(|id| id.parse::<u64>().ok())
                .or_else(|| first.as_u64());
            if let (Some(first), Some(id)) = (first, node["id"].as_str()) {
                let resolved = node["isResolved"].as_bool().unwrap_or(true);
                threads.insert(
                    first,
                    Thread {
                        id: id.to_owned(),
                        resolved,
                    },
                );
            }
        }
        let next = &page["pageInfo"]["endCursor"];
        if page["pageInfo"]["hasNextPage"].as_bool() != Some(true) || !next.is_string() {
            return Ok(threads);
        }
        cursor = next.clone();
    }
    // Threads past the cap are unknown, so their comments are left as they are.
    tracing::warn!(
        threads = threads.len(),
        "more review threads than are read; the rest are left alone"
    );
    Ok(threads)
}

/// GitHub's diff of the pull request: the hunks of each file it shows (files without a `patch`,
/// too large or binary, have none).
async fn github_diff(
    api: &dyn GitHubApi,
    target: &Target,
) -> Result<HashMap<String, Vec<Hunk>>, ApiError> {
    let files: Vec<ChangedFile> = list_all_as(
        api,
        target.installation,
        &target.path(&format!("/pulls/{}/files", target.number)),
        None,
    )
    .await?;
    Ok(files
        .iter()
        .map(|f| {
            let path = f.filename.as_str();
            let hunks = match f.patch.as_deref() {
                Some(patch) => parse_unified_hunks(patch).unwrap_or_else(|e| {
                    tracing::warn!(path, error = %e, "cannot read GitHub's diff of a file");
                    Vec::new()
                }),
                None => Vec::new(),
            };
            (path.to_owned(), hunks)
        })
        .collect())
}

/// Whether GitHub accepts the comment: one of its hunks shows every line the comment spans.
fn github_can_anchor(diff: &HashMap<String, Vec<Hunk>>, comment: &InlineComment) -> bool {
    let start = comment.start_line.unwrap_or(comment.line);
    diff.get(&comment.path)
        .is_some_and(|hunks| one_hunk_shows(hunks, start, comment.line).is_some())
}

fn strip_marker(body: &str) -> String {
    let trimmed = body.trim_end();
    match trimmed.rfind('\n') {
        Some(i) if parse_marker(&trimmed[i..]).is_some() => trimmed[..i].to_owned(),
        _ => trimmed.to_owned(),
    }
}

/// The comment as it was before we marked it fixed: the text kept in its details block, and
/// its marker.
fn original_of(fixed: &str) -> String {
    const OPEN: &str = "<summary>The original comment</summary>\n\n";
    let inner = fixed
        .find(OPEN)
        .map(|at| &fixed[at + OPEN.len()..])
        .and_then(|rest| rest.rfind("\n</details>").map(|end| rest[..end].to_owned()))
        .unwrap_or_else(|| strip_marker(fixed));
    format!("{inner}\n\n{}", marker_line(fixed))
}

fn marker_line(body: &str) -> String {
    body.trim_end().lines().last().unwrap_or("").to_owned()
}

async fn post_review(
    api: &dyn GitHubApi,
    target: &Target,
    comments: &[&InlineComment],
) -> Result<(), ApiError> {
    let body = json!({
        "commit_id": target.head_sha,
        "event": "COMMENT",
        "body": format!("kubeward found {} new problem(s) on the changed lines.", comments.len()),
        "comments": comments.iter().map(|c| review_comment_json(c)).collect::<Vec<_>>(),
    });
    let path = target.path(&format!("/pulls/{}/reviews", target.number));
    match api
        .call(
            target.installation,
            ApiRequest::post(path.clone(), body.clone()),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(ApiError::Unconfirmed(_)) => {
            // Look before posting again: the review may have landed.
            let now = our_review_comments(api, target).await?;
            let landed: HashSet<&str> = now
                .iter()
                .flat_map(|c| c.fingerprints.iter().map(String::as_str))
                .collect();
            if comments
                .iter()
                .all(|c| c.fingerprints.iter().all(|f| landed.contains(f.as_str())))
            {
                Ok(())
            } else {
                api.call(target.installation, ApiRequest::post(path, body))
                    .await
                    .map(|_| ())
            }
        }
        Err(e) => Err(e),
    }
}

pub(crate) async fn upsert_summary(
    api: &dyn GitHubApi,
    target: &Target,
    summary: &str,
) -> Result<u64, ApiError> {
    let path = target.path(&format!("/issues/{}/comments", target.number));
    let find = |comments: Vec<Comment>| {
        comments
            .into_iter()
            .find(|c| c.by(&target.bot_login) && c.body().contains(SUMMARY_MARKER))
    };
    let existing = find(list_all_as(api, target.installation, &path, None).await?);
    if let Some(comment) = existing {
        let id = comment.id;
        if comment.body.as_deref() != Some(summary) {
            api.call(
                target.installation,
                ApiRequest::patch(
                    target.path(&format!("/issues/comments/{id}")),
                    json!({"body": summary}),
                ),
            )
            .await?;
        }
        return Ok(id);
    }
    let endpoint = format!("POST {path}");
    let created = |reply: ApiReply| parse::<Comment>(&endpoint, &reply.body).map(|c| c.id);
    match api
        .call(
            target.installation,
            ApiRequest::post(path.clone(), json!({"body": summary})),
        )
        .await
    {
        Ok(reply) => created(reply),
        Err(ApiError::Unconfirmed(_)) => {
            match find(list_all_as(api, target.installation, &path, None).await?) {
                Some(c) => Ok(c.id),
                None => created(
                    api.call(
                        target.installation,
                        ApiRequest::post(path.clone(), json!({"body": summary})),
                    )
                    .await?,
                ),
            }
        }
        Err(e) => Err(e),
    }
}

fn annotation_json(a: &Annotation) -> Value {
    let level = match a.severity {
        crate::audit::Severity::Danger => "failure",
        _ => "warning",
    };
    json!({
        "path": a.path,
        "start_line": a.line,
        "end_line": a.end_line.max(a.line),
        "annotation_level": level,
        "title": truncate(&a.title, 255),
        "message": truncate(&a.message, 60_000),
    })
}

/// Annotations for new findings that are not inline comments: over the inline limit, file-level,
/// summary-only, or refused by GitHub. The most severe first, in the plan's order otherwise
/// (the same on every run, which resuming after a lost answer relies on).
fn annotations(plan: &ReviewPlan, moved: &[&InlineComment]) -> Vec<Annotation> {
    let inline: HashSet<&str> = plan
        .inline_comments
        .iter()
        .filter(|c| !moved.iter().any(|m| m.path == c.path && m.line == c.line))
        .flat_map(|c| c.fingerprints.iter().map(String::as_str))
        .collect();
    let mut seen = HashSet::new();
    let mut out: Vec<Annotation> = Vec::new();
    for f in &plan.new_findings {
        if inline.contains(f.finding.fingerprint.as_str()) || !seen.insert(f.finding.fingerprint) {
            continue;
        }
        out.push(Annotation {
            path: f.finding.path.to_string(),
            line: f.finding.line.max(1),
            end_line: f.finding.line.max(1),
            severity: f.finding.severity,
            title: format!("{} ({})", f.finding.rule, f.finding.severity.as_str()),
            message: crate::review::render::neutralize(&f.finding.message),
            fingerprint: f.finding.fingerprint.to_string(),
        });
    }
    // Stable: equal severities keep the plan's order.
    out.sort_by_key(|a| std::cmp::Reverse(a.severity));
    out
}

fn conclusion_of(plan: &ReviewPlan) -> &'static str {
    match plan.conclusion {
        Conclusion::Success => "success",
        Conclusion::Failure => "failure",
        Conclusion::Neutral => "neutral",
    }
}

/// What the check's summary says of the annotations left out.
fn hidden_note(hidden: usize, max_annotations: usize) -> String {
    match hidden {
        0 => String::new(),
        1 => format!(
            "1 more finding is not shown as an annotation (kubeward shows at most {max_annotations} per check run)."
        ),
        n => format!(
            "{n} more findings are not shown as annotations (kubeward shows at most {max_annotations} per check run)."
        ),
    }
}

/// The check's summary: the plan's, then `notes` (each its own paragraph), within GitHub's
/// limit whatever the plan's length.
fn check_summary(plan: &ReviewPlan, notes: &[&str]) -> String {
    let notes: Vec<&str> = notes.iter().copied().filter(|n| !n.is_empty()).collect();
    let tail: String = notes.iter().map(|n| format!("\n\n{n}")).collect();
    let room = SUMMARY_CHARS.saturating_sub(tail.chars().count());
    format!("{}{tail}", truncate(&plan.summary, room))
}

/// Concludes the check run and adds the annotations that are not on it yet, at most
/// `max_annotations` of them. Annotations append on every update, so an update whose answer
/// was lost is never re-sent blindly: the run is read again and the work goes on from what
/// landed.
pub(crate) async fn complete_check(
    api: &dyn GitHubApi,
    target: &Target,
    plan: &ReviewPlan,
    check_run_id: u64,
    moved: &[&InlineComment],
    max_annotations: usize,
) -> Result<(), ApiError> {
    let path = target.path(&format!("/check-runs/{check_run_id}"));
    let conclusion = conclusion_of(plan);
    let mut all = annotations(plan, moved);
    let hidden = all.len().saturating_sub(max_annotations);
    all.truncate(max_annotations);
    let summary = check_summary(plan, &[&hidden_note(hidden, max_annotations)]);
    let output = |batch: &[Annotation]| {
        json!({
            "title": truncate(&plan.title, 200),
            "summary": summary,
            "annotations": batch.iter().map(annotation_json).collect::<Vec<_>>(),
        })
    };
    let mut progress = CheckProgress::read(api, target, &path, conclusion, &summary).await?;
    let mut rereads = 0;
    while !progress.concluded || progress.annotations < all.len() {
        let batch = &all[progress.annotations.min(all.len())..];
        let batch = &batch[..batch.len().min(ANNOTATIONS_PER_REQUEST)];
        let body = match progress.concluded {
            true => json!({"output": output(batch)}),
            false => {
                json!({"status": "completed", "conclusion": conclusion, "output": output(batch)})
            }
        };
        // Without annotations the update is idempotent: retried like one, and not counted as
        // content creation. The concluding update draws on the budget kept for checks.
        let request = match batch.is_empty() {
            true => ApiRequest::patch(path.clone(), body),
            false => ApiRequest::patch_appending(path.clone(), body),
        };
        let request = match progress.concluded {
            true => request,
            false => request.reserved(),
        };
        match api.call(target.installation, request).await {
            Ok(_) => {
                progress.concluded = true;
                progress.annotations += batch.len();
            }
            Err(ApiError::Unconfirmed(why)) if rereads < MAX_REREADS => {
                rereads += 1;
                tracing::warn!(error = %why, "a check-run update may not have landed: reading the run again");
                progress = CheckProgress::read(api, target, &path, conclusion, &summary).await?;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// How many times a check-run update with a lost answer is followed by a fresh read.
const MAX_REREADS: usize = 3;

/// What a check run already says of this plan.
struct CheckProgress {
    /// Completed with this conclusion and summary.
    concluded: bool,
    /// Annotations on the run (this plan's come in a fixed order, so the first ones are these).
    annotations: usize,
}

impl CheckProgress {
    async fn read(
        api: &dyn GitHubApi,
        target: &Target,
        path: &str,
        conclusion: &str,
        summary: &str,
    ) -> Result<CheckProgress, ApiError> {
        let reply = api.call(target.installation, ApiRequest::get(path)).await?;
        let run: CheckRun = parse(&format!("GET {path}"), &reply.body)?;
        let output = run.output.unwrap_or_default();
        Ok(CheckProgress {
            concluded: run.status.as_deref() == Some("completed")
                && run.conclusion.as_deref() == Some(conclusion)
                && output.summary.as_deref() == Some(summary),
            annotations: output.annotations_count.unwrap_or(0) as usize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::github::fake::FakeGitHub;

    #[tokio::test]
    async fn review_threads_are_read_across_pages() {
        let fake = FakeGitHub::new("kubeward[bot]");
        let roots: Vec<u64> = (0..250)
            .map(|i| fake.add_review_comment_by("kubeward[bot]", None, &format!("c{i}")))
            .collect();
        fake.add_review_comment_by("dev", Some(roots[0]), "a reply is no thread");
        fake.resolve_thread(roots[120]);
        let target = Target {
            installation: 1,
            owner: "o".into(),
            repo: "r".into(),
            number: 7,
            head_sha: "a".repeat(40),
            bot_login: "kubeward[bot]".into(),
        };
        let threads = review_threads(&fake, &target).await.expect("threads");
        assert_eq!(threads.len(), 250);
        let resolved: Vec<u64> = roots
            .iter()
            .copied()
            .filter(|r| threads[r].resolved)
            .collect();
        assert_eq!(resolved, [roots[120]]);
        let pages = fake
            .request_log()
            .iter()
            .filter(|r| *r == "POST /graphql")
            .count();
        assert_eq!(pages, 3);
    }
}

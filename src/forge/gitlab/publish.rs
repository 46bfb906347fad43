//! Publishing a [`ReviewPlan`] on a GitLab merge request, idempotently: running the same job
//! twice, or a rescan of the same head, leaves the merge request as running it once.
//!
//! - Inline findings become discussions with a `text` position on the merge request's diff
//!   (`diff_refs` of its latest version; both paths; `new_line` for added lines, `old_line`
//!   and `new_line` for unchanged ones). Each ends with the hidden fingerprint marker, and a
//!   finding whose fingerprint already sits in one of our discussions is not posted again.
//! - Discussions whose findings are all gone are resolved, unless a person replied in them;
//!   one we resolved comes back if its finding does.
//! - One summary note, found again by its marker and edited in place.
//! - A commit status named [`STATUS_NAME`] on the head: pending → running → success/failed,
//!   never moved backwards (GitLab refuses a transition to the same or an earlier state).

use std::collections::HashSet;

use serde_json::{Value, json};

use super::reply::{CommitStatus, Discussion, Note, list_all_as, parse};
use super::{ApiError, GitLabApi, Reply, Request, merge_request_path, project_path, str_at};
use crate::review::reconcile::Posted;
use crate::review::render::{parse_marker, truncate};
use crate::review::{Conclusion, FileComment, InlineComment};

/// The commit status's `name` (GitLab's "context").
pub const STATUS_NAME: &str = "kubeward";
/// GitLab's limit for a status description and target URL.
pub const MAX_STATUS_TEXT: usize = 255;

/// The SHAs a position must carry: the merge request's `diff_refs`, read from the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiffRefs {
    /// The merge-base of source and target: the base side of the diff.
    pub base_sha: String,
    /// The target branch's head when this version of the merge request was made.
    pub start_sha: String,
    pub head_sha: String,
}

impl DiffRefs {
    /// `diff_refs` of a merge request from the API, if GitLab has computed them.
    pub fn from_merge_request(merge_request: &Value) -> Option<DiffRefs> {
        let sha = |key: &str| {
            str_at(merge_request, &["diff_refs", key])
                .filter(|s| s.len() >= 40 && s.chars().all(|c| c.is_ascii_hexdigit()))
                .map(str::to_owned)
        };
        Some(DiffRefs {
            base_sha: sha("base_sha")?,
            start_sha: sha("start_sha")?,
            head_sha: sha("head_sha")?,
        })
    }
}

/// The merge request a job publishes to.
#[derive(Debug, Clone)]
pub struct Target {
    pub project_id: u64,
    pub iid: u64,
    pub diff_refs: DiffRefs,
    /// Our own username: only notes by it are ours.
    pub bot_username: String,
    /// The project the commit status goes to: the merge request's source project, as GitLab
    /// asks, or the target project when the source (a fork) refuses us.
    pub status_project_id: u64,
    /// The status's `ref`: the source branch, or `refs/merge-requests/<iid>/head` on the target.
    pub status_ref: Option<String>,
    /// The merge request's page (from the API), linked from the status.
    pub web_url: Option<String>,
}

impl Target {
    fn path(&self, rest: &str) -> String {
        merge_request_path(self.project_id, self.iid, rest)
    }

    /// Where this merge request's notes go.
    pub fn notes(&self) -> NoteTarget<'_> {
        NoteTarget {
            project_id: self.project_id,
            iid: self.iid,
            bot_username: &self.bot_username,
        }
    }

    pub fn head_sha(&self) -> &str {
        &self.diff_refs.head_sha
    }
}

/// A merge request's notes, and who we are there: enough for [`upsert_note`] (a help reply
/// needs no diff refs).
#[derive(Debug, Clone, Copy)]
pub struct NoteTarget<'a> {
    pub project_id: u64,
    pub iid: u64,
    pub bot_username: &'a str,
}

/// A commit status state, in GitLab's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Running,
    Success,
    Failed,
    Canceled,
    /// Not reviewed on purpose (a draft): shown, and replaced by the review when it runs.
    Skipped,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Running => "running",
            StatusState::Success => "success",
            StatusState::Failed => "failed",
            StatusState::Canceled => "canceled",
            StatusState::Skipped => "skipped",
        }
    }

    fn rank(state: &str) -> u8 {
        match state {
            "created" => 0,
            "pending" => 1,
            "running" => 2,
            _ => 3,
        }
    }

    /// The final state of a plan.
    pub fn of(conclusion: Conclusion) -> StatusState {
        match conclusion {
            Conclusion::Success => StatusState::Success,
            Conclusion::Failure => StatusState::Failed,
            // A commit status has no neutral: `success` does not block the merge, which is
            // what the policy's `incomplete: neutral` asked for; the description says why.
            Conclusion::Neutral => StatusState::Success,
        }
    }
}

/// The latest state of our status on the head, if any.
async fn current_status(api: &dyn GitLabApi, target: &Target) -> Result<Option<String>, ApiError> {
    let mut path = project_path(
        target.status_project_id,
        &format!(
            "/repository/commits/{}/statuses?name={STATUS_NAME}",
            target.head_sha()
        ),
    );
    if let Some(reference) = &target.status_ref {
        path.push_str(&format!("&ref={}", encode(reference)));
    }
    let statuses: Vec<CommitStatus> = list_all_as(api, &path).await?;
    Ok(statuses
        .into_iter()
        .filter(|s| s.name.as_deref() == Some(STATUS_NAME))
        .max_by_key(|s| s.id)
        .and_then(|s| s.status))
}

/// Sets the status to failed if it is still pending or running; whether it was.
pub async fn fail_if_unfinished(
    api: &dyn GitLabApi,
    target: &Target,
    description: &str,
) -> Result<bool, ApiError> {
    let live = current_status(api, target)
        .await?
        .is_some_and(|s| matches!(s.as_str(), "created" | "pending" | "running"));
    if live {
        set_status(api, target, StatusState::Failed, description).await?;
    }
    Ok(live)
}

/// Sets our commit status on the head. A status already at or past `state` (a retried job) is
/// left alone unless `state` is final; a finished one is followed by a new run.
pub async fn set_status(
    api: &dyn GitLabApi,
    target: &Target,
    state: StatusState,
    description: &str,
) -> Result<(), ApiError> {
    let wanted = state.as_str();
    for attempt in 0..2 {
        let current = current_status(api, target).await?;
        // After a lost answer: what we sent is what GitLab has.
        if attempt > 0 && current.as_deref() == Some(wanted) {
            return Ok(());
        }
        if let Some(current) = current.as_deref() {
            let live = matches!(current, "created" | "pending" | "running");
            let is_final = StatusState::rank(wanted) == 3;
            if live && !is_final && StatusState::rank(current) >= StatusState::rank(wanted) {
                return Ok(());
            }
        }
        let mut body = json!({
            "state": wanted,
            "name": STATUS_NAME,
            "description": truncate(description, MAX_STATUS_TEXT),
        });
        if let Some(reference) = &target.status_ref {
            body["ref"] = json!(reference);
        }
        if let Some(url) = target
            .web_url
            .as_ref()
            .filter(|u| u.len() <= MAX_STATUS_TEXT)
        {
            body["target_url"] = json!(url);
        }
        let path = project_path(
            target.status_project_id,
            &format!("/statuses/{}", target.head_sha()),
        );
        match api.call(Request::post(path, body)).await {
            Ok(_) => return Ok(()),
            // Another attempt (or worker) moved it first: the state machine refuses repeats.
            Err(ApiError::Status {
                status: 400,
                message,
                ..
            }) if message.contains("Cannot transition status") => return Ok(()),
            // Look at what landed, then decide again: a status is not content, but GitLab
            // refuses a repeated transition, so reading first keeps the retry clean.
            Err(ApiError::Unconfirmed { .. }) if attempt == 0 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A discussion we started.
#[derive(Debug, Clone)]
pub struct Ours {
    id: String,
    fingerprints: Vec<String>,
    resolved: bool,
    /// We resolved it (so we may reopen it).
    resolved_by_us: bool,
    /// A person wrote in it: theirs too, never resolved or reopened by us.
    replied: bool,
}

pub(crate) async fn our_discussions(
    api: &dyn GitLabApi,
    target: &Target,
) -> Result<Vec<Ours>, ApiError> {
    let all: Vec<Discussion> = list_all_as(api, &target.path("/discussions")).await?;
    let bot = target.bot_username.as_str();
    Ok(all
        .into_iter()
        .filter_map(|d| {
            let first = d.notes.first()?;
            if !first.by(bot) || first.system {
                return None;
            }
            let fingerprints = parse_marker(first.body.as_deref()?)?;
            let replied = d.notes.iter().skip(1).any(|n| !n.system && !n.by(bot));
            let resolved = first.resolved == Some(true);
            let resolved_by_us = resolved
                && first
                    .resolved_by
                    .as_ref()
                    .is_some_and(|a| a.username == bot);
            Some(Ours {
                id: d.id,
                fingerprints,
                resolved,
                resolved_by_us,
                replied,
            })
        })
        .collect())
}

/// The `position` of an inline comment: a `text` position on the diff of `refs`. Both paths
/// are always given (GitLab requires them even for added files); an unchanged line carries
/// its line on both sides, an added one only its new line.
pub fn text_position(comment: &InlineComment, refs: &DiffRefs) -> Value {
    let mut position = json!({
        "position_type": "text",
        "base_sha": refs.base_sha,
        "start_sha": refs.start_sha,
        "head_sha": refs.head_sha,
        "old_path": comment.old_path.as_deref().unwrap_or(&comment.path),
        "new_path": comment.path,
        "new_line": comment.line,
    });
    if let Some(old_line) = comment.old_line {
        position["old_line"] = json!(old_line);
    }
    position
}

/// The `position` of a file-level comment (GitLab 16.4+).
pub fn file_position(comment: &FileComment, refs: &DiffRefs) -> Value {
    json!({
        "position_type": "file",
        "base_sha": refs.base_sha,
        "start_sha": refs.start_sha,
        "head_sha": refs.head_sha,
        "old_path": comment.old_path.as_deref().unwrap_or(&comment.path),
        "new_path": comment.path,
    })
}

/// Starts a discussion, once: after an unconfirmed POST, it looks for the fingerprints before
/// posting again.
async fn start_discussion(
    api: &dyn GitLabApi,
    target: &Target,
    body: Value,
    fingerprints: &[String],
) -> Result<(), ApiError> {
    let path = target.path("/discussions");
    match api.call(Request::post(path.clone(), body.clone())).await {
        Ok(_) => Ok(()),
        Err(ApiError::Unconfirmed { .. }) => {
            let landed: HashSet<String> = our_discussions(api, target)
                .await?
                .into_iter()
                .flat_map(|d| d.fingerprints)
                .collect();
            if fingerprints.iter().all(|f| landed.contains(f)) {
                Ok(())
            } else {
                api.call(Request::post(path, body)).await.map(|_| ())
            }
        }
        Err(e) => Err(e),
    }
}

/// GitLab refuses a position it cannot place with 400 (or 422 on some versions).
fn is_refused(error: &ApiError) -> bool {
    matches!(error.status(), Some(400 | 422))
}

/// Our discussions as [`reconcile`](crate::review::reconcile) sees them.
pub(crate) fn posted_state(discussion: &Ours) -> Posted {
    Posted {
        fingerprints: discussion.fingerprints.clone(),
        marked_fixed: discussion.resolved && discussion.resolved_by_us,
        resolved_by_person: discussion.resolved && !discussion.resolved_by_us,
        replied: discussion.replied,
    }
}

/// Starts one discussion per inline comment; the indices of those whose position GitLab
/// refused (they are listed in the summary).
pub(crate) async fn post_inline(
    api: &dyn GitLabApi,
    target: &Target,
    comments: &[&InlineComment],
) -> Result<Vec<usize>, ApiError> {
    let mut refused = Vec::new();
    for (i, comment) in comments.iter().enumerate() {
        let body = json!({
            "body": comment.body,
            "position": text_position(comment, &target.diff_refs),
        });
        match start_discussion(api, target, body, &comment.fingerprints).await {
            Ok(()) => {}
            Err(e) if is_refused(&e) => {
                tracing::warn!(path = %comment.path, line = comment.line, error = %e, "GitLab refused the position; listing it in the summary");
                refused.push(i);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

/// Starts a discussion on a whole file; instances before 16.4 know no file positions, so
/// a refused one becomes a plain discussion naming the file.
pub(crate) async fn post_file(
    api: &dyn GitLabApi,
    target: &Target,
    file: &FileComment,
) -> Result<(), ApiError> {
    let body = json!({
        "body": file.body,
        "position": file_position(file, &target.diff_refs),
    });
    match start_discussion(api, target, body, &file.fingerprints).await {
        Err(e) if is_refused(&e) => {
            let body = json!({"body": format!("On {}:\n\n{}", crate::review::render::code(&file.path), file.body)});
            start_discussion(api, target, body, &file.fingerprints).await
        }
        outcome => outcome,
    }
}

/// Resolves the threads of findings no longer reported and reopens those whose finding is back.
pub(crate) async fn mark(
    api: &dyn GitLabApi,
    target: &Target,
    fixed: &[&Ours],
    back: &[&Ours],
) -> Result<crate::forge::Marked, ApiError> {
    let mut marked = crate::forge::Marked::default();
    let changes = fixed
        .iter()
        .map(|d| (d, true))
        .chain(back.iter().map(|d| (d, false)));
    for (discussion, resolve) in changes {
        api.call(Request::put(
            target.path(&format!(
                "/discussions/{}?resolved={resolve}",
                encode(&discussion.id)
            )),
            None,
        ))
        .await?;
        if resolve {
            marked.fixed += 1;
        } else {
            marked.reopened += 1;
        }
    }
    Ok(marked)
}

/// Creates or edits our note holding `marker`; returns its id. An unchanged note is not
/// touched, and an unconfirmed create is looked for before creating again.
pub async fn upsert_note(
    api: &dyn GitLabApi,
    merge_request: &NoteTarget<'_>,
    marker: &str,
    body: &str,
) -> Result<u64, ApiError> {
    let path = merge_request_path(merge_request.project_id, merge_request.iid, "/notes");
    let listing = format!("{path}?sort=asc&order_by=created_at");
    let find = |notes: Vec<Note>| {
        notes
            .into_iter()
            .find(|n| n.by(merge_request.bot_username) && !n.system && n.body().contains(marker))
    };
    if let Some(note) = find(list_all_as(api, &listing).await?) {
        let id = note.id;
        if note.body.as_deref() != Some(body) {
            api.call(Request::put(
                format!("{path}/{id}"),
                Some(json!({"body": body})),
            ))
            .await?;
        }
        return Ok(id);
    }
    let endpoint = format!("POST {path}");
    let created = |reply: Reply| parse::<Note>(&endpoint, &reply.body).map(|n| n.id);
    match api
        .call(Request::post(path.clone(), json!({"body": body})))
        .await
    {
        Ok(reply) => created(reply),
        Err(ApiError::Unconfirmed { .. }) => match find(list_all_as(api, &listing).await?) {
            Some(note) => Ok(note.id),
            None => created(
                api.call(Request::post(path.clone(), json!({"body": body})))
                    .await?,
            ),
        },
        Err(e) => Err(e),
    }
}

/// A path segment or query value, percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Severity;
    use crate::review::HunkRef;

    fn refs() -> DiffRefs {
        DiffRefs {
            base_sha: "b".repeat(40),
            start_sha: "s".repeat(40),
            head_sha: "h".repeat(40),
        }
    }

    fn comment(old_path: Option<&str>, line: u32, old_line: Option<u32>) -> InlineComment {
        InlineComment {
            path: "apps/web.yaml".into(),
            old_path: old_path.map(str::to_owned),
            line,
            start_line: None,
            side: "RIGHT".to_owned(),
            old_line,
            hunk: HunkRef {
                old_start: 1,
                old_lines: 5,
                new_start: 1,
                new_lines: 6,
            },
            body: "body".into(),
            fingerprints: vec!["kw1-x".into()],
            owners: vec![],
            suggestion: None,
            severity: Severity::Danger,
        }
    }

    #[test]
    fn added_lines_carry_only_their_new_line() {
        let p = text_position(&comment(None, 12, None), &refs());
        assert_eq!(p["position_type"], "text");
        assert_eq!(
            p["old_path"], "apps/web.yaml",
            "added files name the path twice"
        );
        assert_eq!(p["new_path"], "apps/web.yaml");
        assert_eq!(p["new_line"], 12);
        assert!(p.get("old_line").is_none());
        assert_eq!(p["base_sha"], "b".repeat(40));
        assert_eq!(p["start_sha"], "s".repeat(40));
        assert_eq!(p["head_sha"], "h".repeat(40));
    }

    #[test]
    fn unchanged_lines_carry_both_lines_and_renames_both_paths() {
        let p = text_position(&comment(Some("apps/shop.yaml"), 12, Some(10)), &refs());
        assert_eq!(p["old_path"], "apps/shop.yaml");
        assert_eq!(p["new_path"], "apps/web.yaml");
        assert_eq!(
            (p["old_line"].as_u64(), p["new_line"].as_u64()),
            (Some(10), Some(12))
        );
    }

    #[test]
    fn diff_refs_must_be_full_shas() {
        let mr = json!({"diff_refs": {"base_sha": "a".repeat(40), "start_sha": "b".repeat(40), "head_sha": "c".repeat(40)}});
        assert!(DiffRefs::from_merge_request(&mr).is_some());
        assert!(DiffRefs::from_merge_request(&json!({"diff_refs": null})).is_none());
        let short = json!({"diff_refs": {"base_sha": "a", "start_sha": "b", "head_sha": "c"}});
        assert!(DiffRefs::from_merge_request(&short).is_none());
    }

    #[test]
    fn status_ranks_never_go_backwards() {
        assert!(StatusState::rank("running") > StatusState::rank("pending"));
        assert!(StatusState::rank("success") > StatusState::rank("running"));
        assert_eq!(
            encode("refs/merge-requests/7/head"),
            "refs%2Fmerge-requests%2F7%2Fhead"
        );
    }
}

//! An in-memory GitHub: enough of pull requests, review comments, issue comments and check runs
//! to answer what the bot asks, recording every request. `kubeward testdrive` publishes to it
//! (a dry run that shows what GitHub would show), and tests serve it over HTTP.
//!
//! Like GitHub, it rejects a whole review when one comment is outside the diff (422), and
//! it answers the two GraphQL operations the bot sends (listing review threads, resolving one).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use serde_json::{Value, json};

use super::api::{ApiError, ApiFuture, ApiReply, ApiRequest, GitHubApi, Method};

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub body: Option<Value>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    pulls: HashMap<u64, Value>,
    review_comments: Vec<Value>,
    /// Review threads that are resolved, by the id of their first comment.
    resolved_threads: HashSet<u64>,
    issue_comments: Vec<Value>,
    reviews: Vec<Value>,
    check_runs: Vec<Value>,
    permissions: HashMap<String, String>,
    /// Lines each path shows on the new side of the diff; absent: any line is accepted. Only
    /// these paths are listed by `GET /pulls/{n}/files`.
    diff_lines: HashMap<String, HashSet<u64>>,
    merge_bases: HashMap<String, String>,
    requests: Vec<Recorded>,
}

/// A fake GitHub. `bot_login` is the author of everything the bot creates.
pub struct FakeGitHub {
    bot_login: String,
    state: Mutex<State>,
}

/// What a person sees on the pull request, without ids and timestamps: equal snapshots mean
/// equal pull requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub review_comments: Vec<CommentView>,
    pub issue_comments: Vec<String>,
    /// `(head_sha, status, conclusion, summary, annotation count)`.
    pub check_runs: Vec<(String, String, String, String, usize)>,
}

/// A review comment as a person sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommentView {
    pub path: String,
    pub start_line: Option<u64>,
    pub line: u64,
    pub side: String,
    pub body: String,
    /// Whether the comment is a reply in someone's thread.
    pub reply: bool,
    /// Whether its thread is resolved.
    pub resolved: bool,
}

/// The GraphQL node id of the thread opened by review comment `root`.
fn thread_id(root: u64) -> String {
    format!("PRRT_kw{root}")
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn page(items: &[Value], query: &str) -> Vec<Value> {
    let per_page = query_param(query, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30usize);
    let page = query_param(query, "page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1usize)
        .max(1);
    items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

fn not_found() -> (u16, Value) {
    (404, json!({"message": "Not Found"}))
}

impl FakeGitHub {
    pub fn new(bot_login: &str) -> FakeGitHub {
        FakeGitHub {
            bot_login: bot_login.to_owned(),
            state: Mutex::new(State {
                next_id: 1000,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Declares a pull request (as GitHub's `GET /pulls/{n}` returns it).
    pub fn add_pull(&self, number: u64, pull: Value) {
        self.state().pulls.insert(number, pull);
    }

    pub fn set_permission(&self, login: &str, role: &str) {
        self.state()
            .permissions
            .insert(login.to_owned(), role.to_owned());
    }

    /// The new-side lines GitHub would accept comments on, for `path`.
    pub fn set_diff_lines(&self, path: &str, lines: impl IntoIterator<Item = u64>) {
        self.state()
            .diff_lines
            .insert(path.to_owned(), lines.into_iter().collect());
    }

    pub fn set_merge_base(&self, base: &str, head: &str, merge_base: &str) {
        self.state()
            .merge_bases
            .insert(format!("{base}...{head}"), merge_base.to_owned());
    }

    /// A comment by someone else, e.g. a reply in one of our threads.
    pub fn add_review_comment_by(&self, login: &str, in_reply_to: Option<u64>, body: &str) -> u64 {
        let mut state = self.state();
        state.next_id += 1;
        let id = state.next_id;
        state.review_comments.push(json!({
            "id": id, "body": body, "user": {"login": login, "type": "User"},
            "in_reply_to_id": in_reply_to,
        }));
        id
    }

    /// A person resolves the thread that review comment `root` opened.
    pub fn resolve_thread(&self, root: u64) {
        self.state().resolved_threads.insert(root);
    }

    /// Whether the thread that review comment `root` opened is resolved.
    pub fn thread_resolved(&self, root: u64) -> bool {
        self.state().resolved_threads.contains(&root)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    pub fn review_comments(&self) -> Vec<Value> {
        self.state().review_comments.clone()
    }

    pub fn issue_comments(&self) -> Vec<Value> {
        self.state().issue_comments.clone()
    }

    pub fn check_runs(&self) -> Vec<Value> {
        self.state().check_runs.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        let root_of = |c: &Value| c["in_reply_to_id"].as_u64().or(c["id"].as_u64());
        let mut review_comments: Vec<_> = state
            .review_comments
            .iter()
            .map(|c| CommentView {
                path: c["path"].as_str().unwrap_or("").to_owned(),
                start_line: c["start_line"].as_u64(),
                line: c["line"].as_u64().unwrap_or(0),
                side: c["side"].as_str().unwrap_or("").to_owned(),
                body: c["body"].as_str().unwrap_or("").to_owned(),
                reply: c["in_reply_to_id"].as_u64().is_some(),
                resolved: root_of(c).is_some_and(|r| state.resolved_threads.contains(&r)),
            })
            .collect();
        review_comments.sort();
        let issue_comments = state
            .issue_comments
            .iter()
            .map(|c| c["body"].as_str().unwrap_or("").to_owned())
            .collect();
        let check_runs = state
            .check_runs
            .iter()
            .map(|r| {
                (
                    r["head_sha"].as_str().unwrap_or("").to_owned(),
                    r["status"].as_str().unwrap_or("").to_owned(),
                    r["conclusion"].as_str().unwrap_or("").to_owned(),
                    r["output"]["summary"].as_str().unwrap_or("").to_owned(),
                    r["output"]["annotations_count"].as_u64().unwrap_or(0) as usize,
                )
            })
            .collect();
        Snapshot {
            review_comments,
            issue_comments,
            check_runs,
        }
    }

    /// Answers one request as GitHub would.
    pub fn handle(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut state = self.state();
        state.requests.push(Recorded {
            method,
            path: path_and_query.to_owned(),
            body: body.cloned(),
        });
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let bot = json!({"login": self.bot_login, "type": "Bot"});
        match (method, parts.as_slice()) {
            (Method::Post, ["app", "installations", _, "access_tokens"]) => (
                201,
                json!({"token": "ghs_fake", "expires_at": "2099-01-01T00:00:00Z", "permissions": {}}),
            ),
            (Method::Get, ["repos", _, _, "pulls", n]) => {
                match n.parse::<u64>().ok().and_then(|n| state.pulls.get(&n)) {
                    Some(pull) => (200, pull.clone()),
                    None => not_found(),
                }
            }
            (Method::Get, ["repos", _, _, "pulls", n, "comments"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let items: Vec<Value> = state
                    .review_comments
                    .iter()
                    .filter(|c| c["pull"].as_u64().is_none_or(|p| p == n))
                    .cloned()
                    .collect();
                (200, Value::Array(page(&items, query)))
            }
            (Method::Get, ["repos", _, _, "pulls", _, "files"]) => {
                let mut files: Vec<Value> = state
                    .diff_lines
                    .iter()
                    .map(|(path, lines)| json!({"filename": path, "status": "modified", "patch": patch_showing(lines)}))
                    .collect();
                files.sort_by(|a, b| a["filename"].as_str().cmp(&b["filename"].as_str()));
                (200, Value::Array(page(&files, query)))
            }
            (Method::Post, ["repos", _, _, "pulls", n, "reviews"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let body = body.cloned().unwrap_or(Value::Null);
                let comments = body["comments"].as_array().cloned().unwrap_or_default();
                for c in &comments {
                    let path = c["path"].as_str().unwrap_or("");
                    let line = c["line"].as_u64().unwrap_or(0);
                    let start = c["start_line"].as_u64().unwrap_or(line);
                    let valid = match state.diff_lines.get(path) {
                        Some(lines) => (start..=line).all(|l| lines.contains(&l)),
                        None => true,
                    };
                    if !valid {
                        return (
                            422,
                            json!({"message": "Unprocessable Entity", "errors": ["Pull request review thread line must be part of the diff"]}),
                        );
                    }
                }
                state.next_id += 1;
                let review_id = state.next_id;
                for c in comments {
                    state.next_id += 1;
                    let id = state.next_id;
                    let mut stored = c.clone();
                    stored["id"] = json!(id);
                    stored["pull"] = json!(n);
                    stored["user"] = bot.clone();
                    stored["pull_request_review_id"] = json!(review_id);
                    stored["commit_id"] = body["commit_id"].clone();
                    state.review_comments.push(stored);
                }
                let review = json!({"id": review_id, "state": "COMMENTED", "body": body["body"], "user": bot});
                state.reviews.push(review.clone());
                (200, review)
            }
            (Method::Post, ["repos", _, _, "pulls", n, "comments"]) => {
                state.next_id += 1;
                let mut stored = body.cloned().unwrap_or(Value::Null);
                stored["id"] = json!(state.next_id);
                stored["pull"] = json!(n.parse::<u64>().unwrap_or(0));
                stored["user"] = bot;
                state.review_comments.push(stored.clone());
                (201, stored)
            }
            (Method::Patch, ["repos", _, _, "pulls", "comments", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                match state
                    .review_comments
                    .iter_mut()
                    .find(|c| c["id"].as_u64() == Some(id))
                {
                    Some(c) => {
                        c["body"] = body.map(|b| b["body"].clone()).unwrap_or(Value::Null);
                        (200, c.clone())
                    }
                    None => not_found(),
                }
            }
            // Each issue's (pull request's) own comments, as on GitHub.
            (Method::Get, ["repos", _, _, "issues", n, "comments"]) => {
                let n: u64 = n.parse().unwrap_or(0);
                let items: Vec<Value> = state
                    .issue_comments
                    .iter()
                    .filter(|c| c["issue"].as_u64().is_none_or(|i| i == n))
                    .cloned()
                    .collect();
                (200, Value::Array(page(&items, query)))
            }
            (Method::Post, ["repos", _, _, "issues", n, "comments"]) => {
                state.next_id += 1;
                let n: u64 = n.parse().unwrap_or(0);
                let comment = json!({"id": state.next_id, "body": body.map(|b| b["body"].clone()), "user": bot, "issue": n});
                state.issue_comments.push(comment.clone());
                (201, comment)
            }
            (Method::Patch, ["repos", _, _, "issues", "comments", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                match state
                    .issue_comments
                    .iter_mut()
                    .find(|c| c["id"].as_u64() == Some(id))
                {
                    Some(c) => {
                        c["body"] = body.map(|b| b["body"].clone()).unwrap_or(Value::Null);
                        (200, c.clone())
                    }
                    None => not_found(),
                }
            }
            (Method::Get, ["repos", _, _, "commits", sha, "check-runs"]) => {
                let name = query_param(query, "check_name");
                let runs: Vec<Value> = state
                    .check_runs
                    .iter()
                    .filter(|r| r["head_sha"].as_str() == Some(sha))
                    .filter(|r| {
                        name.as_deref()
                            .is_none_or(|n| r["name"].as_str() == Some(n))
                    })
                    .cloned()
                    .collect();
                let shown = page(&runs, query);
                (200, json!({"total_count": runs.len(), "check_runs": shown}))
            }
            (Method::Post, ["repos", _, _, "check-runs"]) => {
                state.next_id += 1;
                let mut run = body.cloned().unwrap_or(Value::Null);
                run["id"] = json!(state.next_id);
                let count = run["output"]["annotations"].as_array().map_or(0, Vec::len);
                if let Some(output) = run.get_mut("output").and_then(Value::as_object_mut) {
                    output.remove("annotations");
                    output.insert("annotations_count".into(), json!(count));
                }
                state.check_runs.push(run.clone());
                (201, run)
            }
            (Method::Get | Method::Patch, ["repos", _, _, "check-runs", id]) => {
                let id: u64 = id.parse().unwrap_or(0);
                let Some(run) = state
                    .check_runs
                    .iter_mut()
                    .find(|r| r["id"].as_u64() == Some(id))
                else {
                    return not_found();
                };
                if method == Method::Patch
                    && let Some(update) = body.and_then(Value::as_object)
                {
                    for (k, v) in update {
                        if k == "output" {
                            let added = v["annotations"].as_array().map_or(0, Vec::len);
                            let before = run["output"]["annotations_count"].as_u64().unwrap_or(0);
                            let mut output = v.clone();
                            if let Some(o) = output.as_object_mut() {
                                o.remove("annotations");
                                o.insert("annotations_count".into(), json!(before + added as u64));
                            }
                            run["output"] = output;
                        } else {
                            run[k] = v.clone();
                        }
                    }
                    if update.contains_key("conclusion") {
                        run["status"] = json!("completed");
                    }
                }
                (200, run.clone())
            }
            (Method::Get, ["repos", _, _, "collaborators", login, "permission"]) => {
                let role = state
                    .permissions
                    .get(*login)
                    .cloned()
                    .unwrap_or_else(|| "read".into());
                (
                    200,
                    json!({"permission": role, "role_name": role, "user": {"login": login}}),
                )
            }
            (Method::Get, ["repos", _, _, "compare", range]) => match state.merge_bases.get(*range)
            {
                Some(sha) => (200, json!({"merge_base_commit": {"sha": sha}})),
                None => not_found(),
            },
            (Method::Post, ["graphql"]) => graphql(&mut state, body),
            (Method::Get, ["repos", _, _, "pulls"]) => {
                let state_filter = query_param(query, "state").unwrap_or_else(|| "open".into());
                let mut pulls: Vec<(u64, Value)> = state
                    .pulls
                    .iter()
                    .filter(|(_, p)| {
                        state_filter == "all"
                            || p["state"].as_str().unwrap_or("open") == state_filter
                    })
                    .map(|(n, p)| (*n, p.clone()))
                    .collect();
                pulls.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
                let pulls: Vec<Value> = pulls.into_iter().map(|(_, p)| p).collect();
                (200, Value::Array(page(&pulls, query)))
            }
            _ => not_found(),
        }
    }

    /// Every request as a `method path` line, in order.
    pub fn request_log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method.as_str(), r.path))
            .collect()
    }

    /// Counts of requests per method.
    pub fn request_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for r in self.requests() {
            *counts.entry(r.method.as_str()).or_default() += 1;
        }
        counts
    }
}

/// A unified diff whose hunks show exactly `lines` on the new side, one hunk per run of
/// consecutive lines (what `GET /pulls/{n}/files` lists for the paths given diff lines).
fn patch_showing(lines: &HashSet<u64>) -> String {
    let mut sorted: Vec<u64> = lines.iter().copied().collect();
    sorted.sort_unstable();
    let mut patch = String::new();
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for line in sorted {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == line => *end = line,
            _ => runs.push((line, line)),
        }
    }
    for (start, end) in runs {
        patch.push_str(&format!("@@ -{start},0 +{start},{} @@\n", end - start + 1));
        for line in start..=end {
            patch.push_str(&format!("+line {line}\n"));
        }
    }
    patch
}

/// The GraphQL operations the bot sends: the review threads of a pull request (one page of
/// `first` threads after the cursor, which is an index) and `resolveReviewThread`. Anything else
/// is answered with a GraphQL error, as GitHub answers a query it cannot run.
fn graphql(state: &mut State, body: Option<&Value>) -> (u16, Value) {
    let query = body.and_then(|b| b["query"].as_str()).unwrap_or("");
    let variables = body.map(|b| b["variables"].clone()).unwrap_or(Value::Null);
    // Also matches `unresolveReviewThread`.
    if query.contains("resolveReviewThread") {
        let resolve = !query.contains("unresolveReviewThread");
        let root = variables["thread"]
            .as_str()
            .and_then(|t| t.strip_prefix("PRRT_kw"))
            .and_then(|n| n.parse::<u64>().ok());
        let Some(root) = root.filter(|r| {
            state
                .review_comments
                .iter()
                .any(|c| c["id"].as_u64() == Some(*r))
        }) else {
            return (
                200,
                json!({"data": null, "errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a node"}]}),
            );
        };
        if resolve {
            state.resolved_threads.insert(root);
        } else {
            state.resolved_threads.remove(&root);
        }
        return (
            200,
            json!({"data": {"resolveReviewThread": {"thread": {"id": thread_id(root), "isResolved": resolve}}}}),
        );
    }
    if query.contains("reviewThreads") {
        let number = variables["number"].as_u64().unwrap_or(0);
        let roots: Vec<u64> = state
            .review_comments
            .iter()
            .filter(|c| c["pull"].as_u64().is_none_or(|p| p == number))
            .filter(|c| c["in_reply_to_id"].as_u64().is_none())
            .filter_map(|c| c["id"].as_u64())
            .collect();
        let start: usize = variables["cursor"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + 100).min(roots.len());
        let nodes: Vec<Value> = roots[start.min(end)..end]
            .iter()
            .map(|root| {
                json!({
                    "id": thread_id(*root),
                    "isResolved": state.resolved_threads.contains(root),
                    "comments": {"nodes": [{"fullDatabaseId": root.to_string()}]},
                })
            })
            .collect();
        return (
            200,
            json!({"data": {"repository": {"pullRequest": {"reviewThreads": {
                "pageInfo": {"hasNextPage": end < roots.len(), "endCursor": end.to_string()},
                "nodes": nodes,
            }}}}}),
        );
    }
    (
        200,
        json!({"data": null, "errors": [{"message": "the fake GitHub does not know this query"}]}),
    )
}

impl GitHubApi for FakeGitHub {
    fn call(&self, _installation: u64, request: ApiRequest) -> ApiFuture<'_> {
        let (status, body) = self.handle(request.method, &request.path, request.body.as_ref());
        Box::pin(async move {
            if (200..300).contains(&status) {
                Ok(ApiReply::new(status, body))
            } else {
                Err(ApiError::Status {
                    method: request.method.as_str(),
                    path: request.path,
                    status,
                    message: body["message"].as_str().unwrap_or("").to_owned(),
                })
            }
        })
    }
}

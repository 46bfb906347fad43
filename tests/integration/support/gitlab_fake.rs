//! An in-memory GitLab: enough of projects, merge requests, discussions, notes, members and
//! commit statuses to answer what the bot asks, recording every request. Tests serve it over
//! HTTP (behind wiremock) or call it directly as a [`GitLabApi`].
//!
//! It is as strict as GitLab where the bot could go wrong:
//! - a `text` position must carry the merge request's current `diff_refs`, both paths, and the
//!   line pair of a line the diff shows (`new_line` alone for an added line, both for an
//!   unchanged one), else 400, as GitLab answers;
//! - commit statuses follow GitLab's state machine: a status that is pending or running
//!   cannot be set to the same or an earlier state (400 "Cannot transition status");
//!   descriptions and target URLs over 255 characters are refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{Value, json};

use kubeward::forge::gitlab::{API_PREFIX, ApiError, ApiFuture, GitLabApi, Method, Reply, Request};

#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub method: Method,
    /// Below `/api/v4`, with the query.
    pub path: String,
    pub body: Option<Value>,
}

/// One line the diff of a file shows: `(old_line, new_line)`; `None` on the side that lacks it.
pub type DiffLine = (Option<u32>, Option<u32>);

#[derive(Debug, Clone)]
struct FileDiff {
    old_path: String,
    lines: Vec<DiffLine>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    projects: HashMap<u64, Value>,
    merge_requests: HashMap<(u64, u64), Value>,
    /// Per merge request: discussions in creation order, each with its notes.
    discussions: HashMap<(u64, u64), Vec<Value>>,
    /// `(project, user) -> access level`.
    members: HashMap<(u64, u64), u64>,
    statuses: Vec<Value>,
    /// `(project, iid) -> new path -> diff`. Without an entry for a path any line is accepted.
    diffs: HashMap<(u64, u64), HashMap<String, FileDiff>>,
    requests: Vec<Recorded>,
}

/// A fake GitLab. Everything the bot creates is authored by `bot`.
pub struct FakeGitLab {
    bot: Value,
    state: Mutex<State>,
}

/// What a person sees on a merge request, without ids and timestamps.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The discussions on the diff, by path and line.
    pub discussions: Vec<ThreadView>,
    /// Bodies of notes outside positioned discussions.
    pub notes: Vec<String>,
}

/// A discussion on the diff as a person sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ThreadView {
    pub new_path: String,
    pub new_line: Option<u64>,
    pub old_line: Option<u64>,
    pub body: String,
    pub resolved: bool,
    pub replies: usize,
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| decode(v))
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let mut byte = [0u8];
                match hex::decode_to_slice(&bytes[i + 1..i + 3], &mut byte) {
                    Ok(()) => {
                        out.push(byte[0]);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page(items: &[Value], query: &str) -> Vec<Value> {
    let per_page = query_param(query, "per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(20usize)
        .clamp(1, 100);
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

fn not_found(what: &str) -> (u16, Value) {
    (404, json!({"message": format!("404 {what} Not Found")}))
}

fn bad_request(message: &str) -> (u16, Value) {
    (400, json!({"message": message}))
}

fn parse<T: std::str::FromStr>(text: &str) -> Option<T> {
    text.parse().ok()
}

impl FakeGitLab {
    pub fn new(bot_id: u64, bot_username: &str) -> FakeGitLab {
        FakeGitLab {
            bot: json!({"id": bot_id, "username": bot_username, "name": "kubeward", "bot": true}),
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

    /// Declares a project (as `GET /projects/:id` returns it).
    pub fn add_project(&self, id: u64, path_with_namespace: &str) {
        self.state().projects.insert(
            id,
            json!({
                "id": id,
                "path_with_namespace": path_with_namespace,
                "web_url": format!("https://gitlab.test/{path_with_namespace}"),
                "http_url_to_repo": format!("https://gitlab.test/{path_with_namespace}.git"),
            }),
        );
    }

    /// Declares or replaces a merge request (as `GET /projects/:id/merge_requests/:iid`
    /// returns it).
    pub fn set_merge_request(&self, project: u64, iid: u64, merge_request: Value) {
        self.state()
            .merge_requests
            .insert((project, iid), merge_request);
    }

    pub fn merge_request(&self, project: u64, iid: u64) -> Option<Value> {
        self.state().merge_requests.get(&(project, iid)).cloned()
    }

    /// Gives `user` an access level in `project` (10 guest … 30 developer, 40 maintainer).
    pub fn set_member(&self, project: u64, user: u64, access_level: u64) {
        self.state().members.insert((project, user), access_level);
    }

    /// The diff of one file of a merge request, as the lines GitLab shows.
    pub fn set_diff(
        &self,
        project: u64,
        iid: u64,
        old_path: &str,
        new_path: &str,
        lines: Vec<DiffLine>,
    ) {
        self.state()
            .diffs
            .entry((project, iid))
            .or_default()
            .insert(
                new_path.to_owned(),
                FileDiff {
                    old_path: old_path.to_owned(),
                    lines,
                },
            );
    }

    /// Forgets the diffs of a merge request (a new push replaces them).
    pub fn clear_diffs(&self, project: u64, iid: u64) {
        self.state().diffs.remove(&(project, iid));
    }

    /// A comment by a person on a merge request; returns the note id.
    pub fn add_note_by(
        &self,
        project: u64,
        iid: u64,
        user_id: u64,
        username: &str,
        body: &str,
        system: bool,
    ) -> u64 {
        let mut state = self.state();
        let author = json!({"id": user_id, "username": username});
        let note = Self::new_note(&mut state, author, body, None, iid, system);
        let id = note["id"].as_u64().unwrap_or(0);
        Self::new_discussion(&mut state, (project, iid), note, true);
        id
    }

    /// A reply by a person in a discussion.
    pub fn reply_by(
        &self,
        project: u64,
        iid: u64,
        discussion_id: &str,
        user_id: u64,
        username: &str,
        body: &str,
    ) {
        let mut state = self.state();
        let author = json!({"id": user_id, "username": username});
        let note = Self::new_note(&mut state, author, body, None, iid, false);
        if let Some(d) = state
            .discussions
            .get_mut(&(project, iid))
            .and_then(|ds| ds.iter_mut().find(|d| d["id"] == discussion_id))
            && let Some(notes) = d["notes"].as_array_mut()
        {
            notes.push(note);
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Every request as a `METHOD path` line, in order.
    pub fn request_log(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method.as_str(), r.path))
            .collect()
    }

    /// Counts of requests per method.
    // No GitLab test counts by method today; kept beside `requests` as the GitHub fake has it.
    #[allow(dead_code)]
    pub fn request_counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for r in self.requests() {
            *counts.entry(r.method.as_str()).or_default() += 1;
        }
        counts
    }

    pub fn discussions(&self, project: u64, iid: u64) -> Vec<Value> {
        self.state()
            .discussions
            .get(&(project, iid))
            .cloned()
            .unwrap_or_default()
    }

    /// Every commit status ever created, oldest first.
    pub fn statuses(&self) -> Vec<Value> {
        self.state().statuses.clone()
    }

    pub fn snapshot(&self, project: u64, iid: u64) -> Snapshot {
        let mut discussions = Vec::new();
        let mut notes = Vec::new();
        for d in self.discussions(project, iid) {
            let Some(list) = d["notes"].as_array() else {
                continue;
            };
            let Some(first) = list.first() else { continue };
            if first["position"].is_object() {
                discussions.push(ThreadView {
                    new_path: first["position"]["new_path"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                    new_line: first["position"]["new_line"].as_u64(),
                    old_line: first["position"]["old_line"].as_u64(),
                    body: first["body"].as_str().unwrap_or("").to_owned(),
                    resolved: first["resolved"].as_bool().unwrap_or(false),
                    replies: list.len() - 1,
                });
            } else {
                for n in list {
                    notes.push(n["body"].as_str().unwrap_or("").to_owned());
                }
            }
        }
        discussions.sort();
        Snapshot { discussions, notes }
    }

    fn new_note(
        state: &mut State,
        author: Value,
        body: &str,
        position: Option<Value>,
        iid: u64,
        system: bool,
    ) -> Value {
        state.next_id += 1;
        json!({
            "id": state.next_id,
            "type": if position.is_some() { json!("DiffNote") } else { Value::Null },
            "body": body,
            "author": author,
            "system": system,
            "noteable_type": "MergeRequest",
            "noteable_iid": iid,
            "resolvable": position.is_some(),
            "resolved": false,
            "resolved_by": null,
            "position": position,
        })
    }

    fn new_discussion(state: &mut State, key: (u64, u64), note: Value, individual: bool) -> Value {
        state.next_id += 1;
        let id = format!("{:040x}", state.next_id);
        let discussion = json!({"id": id, "individual_note": individual, "notes": [note]});
        state
            .discussions
            .entry(key)
            .or_default()
            .push(discussion.clone());
        discussion
    }

    /// Why GitLab would refuse this position, if it would.
    fn position_error(state: &State, key: (u64, u64), position: &Value) -> Option<String> {
        let merge_request = state.merge_requests.get(&key)?;
        let position_type = position["position_type"].as_str().unwrap_or("");
        if !matches!(position_type, "text" | "file") {
            return Some(format!("position_type {position_type:?} is not supported"));
        }
        for sha in ["base_sha", "start_sha", "head_sha"] {
            if position[sha] != merge_request["diff_refs"][sha] {
                return Some(format!(
                    "Note {{:position=>[\"{sha} does not match the merge request's diff refs\"]}}"
                ));
            }
        }
        let (Some(old_path), Some(new_path)) = (
            position["old_path"].as_str().filter(|p| !p.is_empty()),
            position["new_path"].as_str().filter(|p| !p.is_empty()),
        ) else {
            return Some("Note {:position=>[\"old_path and new_path are required\"]}".into());
        };
        let diff = state.diffs.get(&key).and_then(|d| d.get(new_path));
        if let Some(diff) = diff
            && diff.old_path != old_path
        {
            return Some(format!(
                "Note {{:position=>[\"old_path {old_path} is not the old path of {new_path}\"]}}"
            ));
        }
        if position_type == "file" {
            return None;
        }
        let line = |k: &str| position[k].as_u64().and_then(|l| u32::try_from(l).ok());
        let pair = (line("old_line"), line("new_line"));
        if pair == (None, None) {
            return Some("Note {:line_code=>[\"can't be blank\"]}".into());
        }
        match diff {
            Some(diff) if !diff.lines.contains(&pair) => Some(
                "Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}".into(),
            ),
            _ => None,
        }
    }

    /// Answers one request as GitLab would. `path_and_query` may start with `/api/v4`.
    pub fn handle(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut state = self.state();
        let path_and_query = path_and_query
            .strip_prefix(API_PREFIX)
            .unwrap_or(path_and_query);
        state.requests.push(Recorded {
            method,
            path: path_and_query.to_owned(),
            body: body.cloned(),
        });
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let body = body.cloned().unwrap_or(Value::Null);
        let bot = self.bot.clone();
        match (method, parts.as_slice()) {
            (Method::Get, ["projects", id]) => {
                match parse(id).and_then(|id| state.projects.get(&id)) {
                    Some(project) => (200, project.clone()),
                    None => not_found("Project"),
                }
            }
            (Method::Get, ["projects", id, "merge_requests", iid]) => {
                match (parse(id), parse(iid)) {
                    (Some(id), Some(iid)) => match state.merge_requests.get(&(id, iid)) {
                        Some(mr) => (200, mr.clone()),
                        None => not_found("Merge Request"),
                    },
                    _ => not_found("Merge Request"),
                }
            }
            (Method::Get, ["projects", id, "merge_requests", iid, "discussions"]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                let all = state.discussions.get(&key).cloned().unwrap_or_default();
                (200, Value::Array(page(&all, query)))
            }
            (Method::Post, ["projects", id, "merge_requests", iid, "discussions"]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                if !state.merge_requests.contains_key(&key) {
                    return not_found("Merge Request");
                }
                let Some(text) = body["body"].as_str().filter(|b| !b.is_empty()) else {
                    return bad_request("400 Bad request - body is missing");
                };
                let position = body.get("position").filter(|p| !p.is_null()).cloned();
                if let Some(p) = &position
                    && let Some(error) = Self::position_error(&state, key, p)
                {
                    return bad_request(&format!("400 Bad request - {error}"));
                }
                let note = Self::new_note(&mut state, bot, text, position, key.1, false);
                let discussion = Self::new_discussion(&mut state, key, note, false);
                (201, discussion)
            }
            (
                Method::Put,
                [
                    "projects",
                    id,
                    "merge_requests",
                    iid,
                    "discussions",
                    discussion,
                ],
            ) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                let resolved = match query_param(query, "resolved")
                    .or_else(|| body["resolved"].as_bool().map(|b| b.to_string()))
                    .as_deref()
                {
                    Some("true") => true,
                    Some("false") => false,
                    _ => return bad_request("400 Bad request - resolved is missing"),
                };
                let Some(d) = state
                    .discussions
                    .get_mut(&key)
                    .and_then(|ds| ds.iter_mut().find(|d| d["id"] == *discussion))
                else {
                    return not_found("Discussion");
                };
                if let Some(notes) = d["notes"].as_array_mut() {
                    for n in notes.iter_mut().filter(|n| n["resolvable"] == true) {
                        n["resolved"] = json!(resolved);
                        n["resolved_by"] = if resolved { bot.clone() } else { Value::Null };
                    }
                }
                (200, d.clone())
            }
            (Method::Get, ["projects", id, "merge_requests", iid, "notes"]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                let all: Vec<Value> = state
                    .discussions
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .flat_map(|d| d["notes"].as_array().cloned().unwrap_or_default())
                    .collect();
                (200, Value::Array(page(&all, query)))
            }
            (Method::Get, ["projects", id, "merge_requests", iid, "notes", note]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                let note_id: u64 = parse(note).unwrap_or(0);
                state
                    .discussions
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .flat_map(|d| d["notes"].as_array().cloned().unwrap_or_default())
                    .find(|n| n["id"].as_u64() == Some(note_id))
                    .map_or_else(|| not_found("Note"), |n| (200, n))
            }
            (Method::Post, ["projects", id, "merge_requests", iid, "notes"]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                if !state.merge_requests.contains_key(&key) {
                    return not_found("Merge Request");
                }
                let Some(text) = body["body"].as_str().filter(|b| !b.is_empty()) else {
                    return bad_request("400 Bad request - body is missing");
                };
                let note = Self::new_note(&mut state, bot, text, None, key.1, false);
                Self::new_discussion(&mut state, key, note.clone(), true);
                (201, note)
            }
            (Method::Put, ["projects", id, "merge_requests", iid, "notes", note]) => {
                let key = (parse(id).unwrap_or(0), parse(iid).unwrap_or(0));
                let note_id: u64 = parse(note).unwrap_or(0);
                let bot_id = bot["id"].clone();
                let found = state
                    .discussions
                    .get_mut(&key)
                    .into_iter()
                    .flatten()
                    .flat_map(|d| d["notes"].as_array_mut().into_iter().flatten())
                    .find(|n| n["id"].as_u64() == Some(note_id));
                match found {
                    Some(n) if n["author"]["id"] != bot_id => {
                        (403, json!({"message": "403 Forbidden"}))
                    }
                    Some(n) => {
                        n["body"] = body["body"].clone();
                        (200, n.clone())
                    }
                    None => not_found("Note"),
                }
            }
            (Method::Get, ["projects", id, "members", "all", user]) => {
                match state
                    .members
                    .get(&(parse(id).unwrap_or(0), parse(user).unwrap_or(0)))
                {
                    Some(level) => (
                        200,
                        json!({
                            "id": parse::<u64>(user).unwrap_or(0),
                            "username": format!("user{user}"),
                            "access_level": level,
                            "state": "active",
                        }),
                    ),
                    None => not_found(""),
                }
            }
            (Method::Post, ["projects", id, "statuses", sha]) => {
                let project: u64 = parse(id).unwrap_or(0);
                if !state.projects.contains_key(&project) {
                    return not_found("Project");
                }
                let wanted = body["state"].as_str().unwrap_or("");
                if !matches!(
                    wanted,
                    "pending" | "running" | "success" | "failed" | "canceled" | "skipped"
                ) {
                    return bad_request("400 Bad request - state does not have a valid value");
                }
                for field in ["description", "target_url", "name", "ref"] {
                    if body[field]
                        .as_str()
                        .is_some_and(|s| s.chars().count() > 255)
                    {
                        return bad_request(&format!("400 Bad request - {field} is too long"));
                    }
                }
                let name = body["name"].as_str().unwrap_or("default").to_owned();
                let reference = body["ref"].as_str().map(str::to_owned);
                // GitLab updates the live (pending or running) status of this name and ref, or
                // starts a new one.
                let live = state.statuses.iter_mut().rev().find(|s| {
                    s["project_id"] == project
                        && s["sha"] == *sha
                        && s["name"] == name.as_str()
                        && s["ref"].as_str().map(str::to_owned) == reference
                        && matches!(s["status"].as_str(), Some("pending" | "running"))
                });
                let from = live
                    .as_ref()
                    .and_then(|s| s["status"].as_str())
                    .unwrap_or("created")
                    .to_owned();
                let allowed = match wanted {
                    "pending" => from == "created",
                    "running" => matches!(from.as_str(), "created" | "pending"),
                    _ => true,
                };
                if !allowed {
                    return bad_request(&format!(
                        "Cannot transition status via :{} from :{from}",
                        match wanted {
                            "pending" => "enqueue",
                            _ => "run",
                        }
                    ));
                }
                if let Some(s) = live {
                    s["status"] = json!(wanted);
                    s["description"] = body["description"].clone();
                    s["target_url"] = body["target_url"].clone();
                    return (201, s.clone());
                }
                state.next_id += 1;
                let status = json!({
                    "id": state.next_id,
                    "project_id": project,
                    "sha": sha,
                    "ref": reference,
                    "name": name,
                    "status": wanted,
                    "description": body["description"],
                    "target_url": body["target_url"],
                    "author": bot,
                });
                state.statuses.push(status.clone());
                (201, status)
            }
            (Method::Get, ["projects", id, "repository", "commits", sha, "statuses"]) => {
                let project: u64 = parse(id).unwrap_or(0);
                // Projects we do not know stand for ones the token cannot see (forks).
                if !state.projects.contains_key(&project) {
                    return not_found("Project");
                }
                let name = query_param(query, "name");
                let reference = query_param(query, "ref");
                let all = query_param(query, "all").as_deref() == Some("true");
                let mut matching: Vec<Value> = state
                    .statuses
                    .iter()
                    .filter(|s| s["project_id"] == project && s["sha"] == *sha)
                    .filter(|s| name.as_deref().is_none_or(|n| s["name"] == n))
                    .filter(|s| reference.as_deref().is_none_or(|r| s["ref"] == r))
                    .cloned()
                    .collect();
                if !all {
                    // Only the latest status per name and ref.
                    let mut latest: Vec<Value> = Vec::new();
                    for s in matching.into_iter().rev() {
                        if !latest
                            .iter()
                            .any(|l| l["name"] == s["name"] && l["ref"] == s["ref"])
                        {
                            latest.push(s);
                        }
                    }
                    matching = latest;
                }
                (200, Value::Array(page(&matching, query)))
            }
            _ => not_found(""),
        }
    }
}

impl GitLabApi for FakeGitLab {
    fn call(&self, request: Request) -> ApiFuture<'_> {
        let (status, body) = self.handle(request.method, &request.path, request.body.as_ref());
        Box::pin(async move {
            if (200..300).contains(&status) {
                Ok(Reply::new(status, body))
            } else {
                Err(ApiError::Status {
                    method: request.method.as_str(),
                    path: request.path.split('?').next().unwrap_or("").to_owned(),
                    status,
                    message: body["message"].as_str().unwrap_or("").to_owned(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> FakeGitLab {
        let fake = FakeGitLab::new(99, "kubeward-bot");
        fake.add_project(1, "platform/shop");
        fake.set_merge_request(
            1,
            7,
            json!({"iid": 7, "state": "opened", "diff_refs": {"base_sha": "b", "start_sha": "s", "head_sha": "h"}}),
        );
        fake
    }

    #[test]
    fn statuses_follow_gitlabs_state_machine() {
        let fake = fake();
        let post = |state: &str| {
            fake.handle(
                Method::Post,
                "/api/v4/projects/1/statuses/h",
                Some(&json!({"state": state, "name": "kubeward"})),
            )
            .0
        };
        assert_eq!(post("pending"), 201);
        assert_eq!(post("pending"), 400, "pending → pending is refused");
        assert_eq!(post("running"), 201);
        assert_eq!(post("pending"), 400, "running → pending is refused");
        assert_eq!(post("success"), 201);
        assert_eq!(
            post("pending"),
            201,
            "a finished status is followed by a new one"
        );
        let states: Vec<_> = fake
            .statuses()
            .iter()
            .map(|s| s["status"].as_str().unwrap_or("").to_owned())
            .collect();
        assert_eq!(states, ["success", "pending"]);
    }

    #[test]
    fn positions_must_match_the_diff() {
        let fake = fake();
        fake.set_diff(
            1,
            7,
            "a.yaml",
            "a.yaml",
            vec![(Some(1), Some(1)), (None, Some(2))],
        );
        let post = |position: Value| {
            fake.handle(
                Method::Post,
                "/projects/1/merge_requests/7/discussions",
                Some(&json!({"body": "x", "position": position})),
            )
            .0
        };
        let p = |old: Option<u32>, new: Option<u32>| {
            json!({"position_type": "text", "base_sha": "b", "start_sha": "s", "head_sha": "h",
                   "old_path": "a.yaml", "new_path": "a.yaml", "old_line": old, "new_line": new})
        };
        assert_eq!(post(p(None, Some(2))), 201, "an added line");
        assert_eq!(post(p(Some(1), Some(1))), 201, "an unchanged line");
        assert_eq!(
            post(p(None, Some(1))),
            400,
            "an unchanged line needs both sides"
        );
        assert_eq!(post(p(None, Some(9))), 400, "outside the diff");
        let mut stale = p(None, Some(2));
        stale["head_sha"] = json!("old");
        assert_eq!(post(stale), 400);
        let mut one_path = p(None, Some(2));
        one_path["old_path"] = Value::Null;
        assert_eq!(post(one_path), 400);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            decode("refs%2Fmerge-requests%2F7%2Fhead"),
            "refs/merge-requests/7/head"
        );
        assert_eq!(decode("100%"), "100%");
    }
}

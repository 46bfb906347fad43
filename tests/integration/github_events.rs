//! Webhook parsing against GitHub's own example payloads (`@octokit/webhooks-examples`,
//! installed by `scripts/test.sh`), plus the slash-command grammar.
//!
//! Every example of every event is parsed. For the (event, action) pairs the bot models,
//! each extracted value is compared with the raw JSON field it comes from; everything else
//! must come out as `WebhookEvent::Other` with the example's event and action.

use std::collections::BTreeSet;

use crate::support::npm::{self, WebhookExample};
use kubeward::forge::github::events::{
    Account, AccountKind, CheckRunAction, CheckSuiteAction, Command, CommentAction, EventError,
    InstallationAction, InstallationRepositoriesAction, InstalledRepository, PullRequestAction,
    PullRequestState, Repository, WebhookEvent, parse_command, parse_event,
};
use serde_json::{Value, json};

// ----------------------------------------------------------------------------------------
// Expected values, read straight from the JSON.

fn u64_at(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no integer at {pointer}"))
}

fn opt_u64_at(v: &Value, pointer: &str) -> Option<u64> {
    v.pointer(pointer).and_then(Value::as_u64)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer}"))
}

fn present(v: &Value, pointer: &str) -> bool {
    v.pointer(pointer).is_some_and(|x| !x.is_null())
}

fn expected_repository(v: &Value) -> Repository {
    Repository {
        id: u64_at(v, "/repository/id"),
        owner: str_at(v, "/repository/owner/login").to_owned(),
        name: str_at(v, "/repository/name").to_owned(),
        full_name: str_at(v, "/repository/full_name").to_owned(),
        private: v.pointer("/repository/private") == Some(&Value::Bool(true)),
    }
}

fn expected_account(v: &Value, pointer: &str) -> Option<Account> {
    let a = v.pointer(pointer).filter(|a| !a.is_null())?;
    Some(Account {
        login: str_at(a, "/login").to_owned(),
        id: u64_at(a, "/id"),
        kind: match a.pointer("/type").and_then(Value::as_str) {
            Some("User") => AccountKind::User,
            Some("Bot") => AccountKind::Bot,
            Some("Organization") => AccountKind::Organization,
            other => AccountKind::Other(other.unwrap_or_default().to_owned()),
        },
    })
}

fn expected_numbers(v: &Value, pointer: &str) -> Vec<u64> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|pr| u64_at(pr, "/number"))
        .collect()
}

fn expected_listed(v: &Value, pointer: &str) -> Vec<InstalledRepository> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| InstalledRepository {
            id: u64_at(r, "/id"),
            full_name: str_at(r, "/full_name").to_owned(),
            private: r.pointer("/private") == Some(&Value::Bool(true)),
        })
        .collect()
}

/// What the parser must make of one delivery, decided from the raw JSON alone. Returns the
/// `(event, action)` label when the pair is modelled, `None` when it must be `Other`.
fn check_delivery(event: &str, payload: &Value) -> Option<String> {
    let body = serde_json::to_vec(payload).unwrap();
    let parsed = parse_event(event, &body)
        .unwrap_or_else(|e| panic!("{event}.{:?}: {e}", payload.get("action")));
    let action = payload.get("action").and_then(Value::as_str);
    let installation_id = opt_u64_at(payload, "/installation/id");
    let label = format!("{event}.{}", action.unwrap_or("-"));
    let modelled = match (event, &parsed) {
        ("pull_request", WebhookEvent::PullRequest(pr)) => {
            let expected_action = match action.unwrap() {
                "opened" => PullRequestAction::Opened,
                "synchronize" => PullRequestAction::Synchronize,
                "reopened" => PullRequestAction::Reopened,
                "ready_for_review" => PullRequestAction::ReadyForReview,
                "converted_to_draft" => PullRequestAction::ConvertedToDraft,
                "edited" => PullRequestAction::Edited {
                    base_changed: present(payload, "/changes/base"),
                },
                "closed" => PullRequestAction::Closed {
                    merged: payload.pointer("/pull_request/merged") == Some(&Value::Bool(true)),
                },
                other => panic!("pull_request.{other} must be Other"),
            };
            assert_eq!(pr.action, expected_action, "{label}");
            assert_eq!(pr.installation_id, installation_id, "{label}");
            assert_eq!(pr.repository, expected_repository(payload), "{label}");
            assert_eq!(pr.number, u64_at(payload, "/number"), "{label}");
            assert_eq!(
                pr.number,
                u64_at(payload, "/pull_request/number"),
                "{label}"
            );
            assert_eq!(pr.head_sha, str_at(payload, "/pull_request/head/sha"));
            assert_eq!(pr.head_ref, str_at(payload, "/pull_request/head/ref"));
            assert_eq!(
                pr.head_repo_id,
                opt_u64_at(payload, "/pull_request/head/repo/id")
            );
            assert_eq!(
                pr.is_from_fork(),
                opt_u64_at(payload, "/pull_request/head/repo/id")
                    != Some(u64_at(payload, "/repository/id"))
            );
            assert_eq!(pr.base_ref, str_at(payload, "/pull_request/base/ref"));
            assert_eq!(pr.base_sha, str_at(payload, "/pull_request/base/sha"));
            assert_eq!(
                pr.draft,
                payload.pointer("/pull_request/draft") == Some(&Value::Bool(true))
            );
            let state = match str_at(payload, "/pull_request/state") {
                "open" => PullRequestState::Open,
                "closed" => PullRequestState::Closed,
                other => PullRequestState::Other(other.to_owned()),
            };
            assert_eq!(pr.state, state, "{label}");
            assert_eq!(
                Some(pr.sender.clone()),
                expected_account(payload, "/sender")
            );
            assert_eq!(
                pr.before.as_deref(),
                payload.pointer("/before").and_then(Value::as_str),
                "{label}"
            );
            if pr.action == PullRequestAction::Synchronize {
                assert!(
                    pr.before.is_some(),
                    "{label}: a push names the head it replaced"
                );
            }
            true
        }
        ("issue_comment", WebhookEvent::IssueComment(c)) => {
            let expected_action = match action.unwrap() {
                "created" => CommentAction::Created,
                "edited" => CommentAction::Edited,
                "deleted" => CommentAction::Deleted,
                other => panic!("issue_comment.{other} must be Other"),
            };
            assert_eq!(c.action, expected_action, "{label}");
            assert_eq!(c.installation_id, installation_id, "{label}");
            assert_eq!(c.repository, expected_repository(payload), "{label}");
            assert_eq!(c.issue_number, u64_at(payload, "/issue/number"));
            assert_eq!(c.is_pull_request, present(payload, "/issue/pull_request"));
            assert_eq!(c.comment_id, u64_at(payload, "/comment/id"));
            assert_eq!(c.body, str_at(payload, "/comment/body"));
            assert_eq!(c.author, expected_account(payload, "/comment/user"));
            assert_eq!(
                c.via_github_app,
                present(payload, "/comment/performed_via_github_app")
            );
            assert_eq!(c.sender, expected_account(payload, "/sender"));
            assert_eq!(c.command(), parse_command(str_at(payload, "/comment/body")));
            true
        }
        ("check_run", WebhookEvent::CheckRun(run)) => {
            let expected_action = match action.unwrap() {
                "created" => CheckRunAction::Created,
                "completed" => CheckRunAction::Completed,
                "rerequested" => CheckRunAction::Rerequested,
                "requested_action" => CheckRunAction::RequestedAction {
                    identifier: payload
                        .pointer("/requested_action/identifier")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                other => panic!("check_run.{other} must be Other"),
            };
            assert_eq!(run.action, expected_action, "{label}");
            assert_eq!(run.installation_id, installation_id, "{label}");
            assert_eq!(run.repository, expected_repository(payload), "{label}");
            assert_eq!(run.check_run_id, u64_at(payload, "/check_run/id"));
            assert_eq!(run.name, str_at(payload, "/check_run/name"));
            assert_eq!(run.head_sha, str_at(payload, "/check_run/head_sha"));
            assert_eq!(run.app_id, opt_u64_at(payload, "/check_run/app/id"));
            assert_eq!(
                run.pull_requests,
                expected_numbers(payload, "/check_run/pull_requests")
            );
            assert_eq!(run.sender, expected_account(payload, "/sender"));
            true
        }
        ("check_suite", WebhookEvent::CheckSuite(suite)) => {
            let expected_action = match action.unwrap() {
                "requested" => CheckSuiteAction::Requested,
                "rerequested" => CheckSuiteAction::Rerequested,
                "completed" => CheckSuiteAction::Completed,
                other => panic!("check_suite.{other} must be Other"),
            };
            assert_eq!(suite.action, expected_action, "{label}");
            assert_eq!(suite.installation_id, installation_id, "{label}");
            assert_eq!(suite.repository, expected_repository(payload), "{label}");
            assert_eq!(suite.check_suite_id, opt_u64_at(payload, "/check_suite/id"));
            assert_eq!(suite.head_sha, str_at(payload, "/check_suite/head_sha"));
            assert_eq!(
                suite.head_branch.as_deref(),
                payload
                    .pointer("/check_suite/head_branch")
                    .and_then(Value::as_str)
            );
            assert_eq!(suite.app_id, opt_u64_at(payload, "/check_suite/app/id"));
            assert_eq!(
                suite.pull_requests,
                expected_numbers(payload, "/check_suite/pull_requests")
            );
            assert_eq!(suite.sender, expected_account(payload, "/sender"));
            true
        }
        ("installation", WebhookEvent::Installation(inst)) => {
            let expected_action = match action.unwrap() {
                "created" => InstallationAction::Created,
                "deleted" => InstallationAction::Deleted,
                "suspend" => InstallationAction::Suspend,
                "unsuspend" => InstallationAction::Unsuspend,
                "new_permissions_accepted" => InstallationAction::NewPermissionsAccepted,
                other => panic!("installation.{other} must be Other"),
            };
            assert_eq!(inst.action, expected_action, "{label}");
            assert_eq!(inst.installation_id, u64_at(payload, "/installation/id"));
            assert_eq!(
                inst.account,
                expected_account(payload, "/installation/account")
            );
            assert_eq!(inst.app_id, opt_u64_at(payload, "/installation/app_id"));
            assert_eq!(inst.repositories, expected_listed(payload, "/repositories"));
            assert_eq!(inst.sender, expected_account(payload, "/sender"));
            true
        }
        ("push", WebhookEvent::Push(push)) => {
            assert_eq!(push.git_ref, str_at(payload, "/ref"), "{label}");
            assert_eq!(push.after, str_at(payload, "/after"));
            assert_eq!(
                push.deleted,
                payload.pointer("/deleted") == Some(&Value::Bool(true))
            );
            assert_eq!(push.repository, expected_repository(payload));
            assert_eq!(
                push.default_branch.as_deref(),
                payload
                    .pointer("/repository/default_branch")
                    .and_then(Value::as_str)
            );
            assert_eq!(
                push.installation_id,
                opt_u64_at(payload, "/installation/id")
            );
            // Only a push that moves the default branch to a commit is snapshotted.
            let default = payload
                .pointer("/repository/default_branch")
                .and_then(Value::as_str)
                .unwrap_or("");
            assert_eq!(
                push.moves_default_branch(),
                str_at(payload, "/ref") == format!("refs/heads/{default}")
                    && payload.pointer("/deleted") != Some(&Value::Bool(true))
                    && str_at(payload, "/after").chars().any(|c| c != '0'),
                "{label}"
            );
            true
        }
        ("installation_repositories", WebhookEvent::InstallationRepositories(inst)) => {
            let expected_action = match action.unwrap() {
                "added" => InstallationRepositoriesAction::Added,
                "removed" => InstallationRepositoriesAction::Removed,
                other => panic!("installation_repositories.{other} must be Other"),
            };
            assert_eq!(inst.action, expected_action, "{label}");
            assert_eq!(inst.installation_id, u64_at(payload, "/installation/id"));
            assert_eq!(
                inst.repository_selection.as_deref(),
                payload
                    .pointer("/repository_selection")
                    .and_then(Value::as_str)
            );
            assert_eq!(inst.added, expected_listed(payload, "/repositories_added"));
            assert_eq!(
                inst.removed,
                expected_listed(payload, "/repositories_removed")
            );
            assert_eq!(inst.sender, expected_account(payload, "/sender"));
            true
        }
        (
            _,
            WebhookEvent::Other {
                event: e,
                action: a,
            },
        ) => {
            assert_eq!(e, event, "{label}");
            assert_eq!(a.as_deref(), action, "{label}");
            let modelled_actions: &[&str] = match event {
                "pull_request" => &[
                    "opened",
                    "synchronize",
                    "reopened",
                    "ready_for_review",
                    "edited",
                    "closed",
                    "converted_to_draft",
                ],
                "issue_comment" => &["created", "edited", "deleted"],
                "check_run" => &["created", "completed", "rerequested", "requested_action"],
                "check_suite" => &["requested", "rerequested", "completed"],
                "installation" => &[
                    "created",
                    "deleted",
                    "suspend",
                    "unsuspend",
                    "new_permissions_accepted",
                ],
                "installation_repositories" => &["added", "removed"],
                _ => &[],
            };
            assert!(
                !action.is_some_and(|a| modelled_actions.contains(&a)),
                "{label} is modelled but came out as Other"
            );
            false
        }
        (_, other) => panic!("{label} parsed as the wrong kind: {other:?}"),
    };
    assert_eq!(
        parsed.installation_id().is_some(),
        modelled && installation_id.is_some()
    );
    modelled.then_some(label)
}

// ----------------------------------------------------------------------------------------
// The examples.

#[test]
fn every_github_com_example_parses_to_the_values_in_its_json() {
    let mut modelled = BTreeSet::new();
    let mut others = BTreeSet::new();
    for WebhookExample { event, payload, .. } in npm::webhook_examples() {
        match check_delivery(event, payload) {
            Some(label) => modelled.insert(label),
            None => others.insert(event.clone()),
        };
    }
    // The examples really exercise what we model (pull_request.edited and synchronize-with-
    // fork cases are rare there; the synthetic tests below cover them).
    for label in [
        "pull_request.opened",
        "pull_request.synchronize",
        "pull_request.reopened",
        "pull_request.ready_for_review",
        "pull_request.closed",
        "pull_request.converted_to_draft",
        "issue_comment.created",
        "issue_comment.edited",
        "issue_comment.deleted",
        "check_run.created",
        "check_run.completed",
        "check_run.rerequested",
        "check_run.requested_action",
        "check_suite.requested",
        "check_suite.rerequested",
        "check_suite.completed",
        "installation.created",
        "installation.deleted",
        "installation.suspend",
        "installation.unsuspend",
        "installation.new_permissions_accepted",
        "installation_repositories.added",
        "installation_repositories.removed",
    ] {
        assert!(
            modelled.contains(label),
            "no {label} example was parsed; modelled: {modelled:?}"
        );
    }
    assert!(modelled.contains("push.-"), "no push example was parsed");
    for event in [
        "ping",
        "pull_request",
        "issues",
        "pull_request_review_comment",
    ] {
        assert!(others.contains(event), "no {event} example became Other");
    }
}

#[test]
fn every_ghes_example_parses_too() {
    let targets = npm::webhook_example_targets();
    assert!(targets.iter().any(|t| t == "api.github.com"), "{targets:?}");
    let mut count = 0;
    for target in targets.iter().filter(|t| t.starts_with("ghes-")) {
        for example in npm::load_webhook_examples(target) {
            check_delivery(&example.event, &example.payload);
            count += 1;
        }
    }
    assert!(count > 0, "no GHES examples in {targets:?}");
}

#[test]
fn ping_is_other_and_has_no_installation() {
    let ping = npm::webhook_example("ping", None);
    let parsed = parse_event("ping", &ping.body()).unwrap();
    assert_eq!(
        parsed,
        WebhookEvent::Other {
            event: "ping".into(),
            action: None
        }
    );
    assert_eq!(parsed.installation_id(), None);
    assert_eq!(parsed.repository(), None);
}

// ----------------------------------------------------------------------------------------
// Cases the examples lack, built from a real example.

fn pr_example(action: &str) -> Value {
    let mut payload = npm::webhook_example("pull_request", Some("opened"))
        .payload
        .clone();
    payload["action"] = json!(action);
    payload["installation"] = json!({ "id": 42, "node_id": "x" });
    payload
}

fn parse_pr(payload: &Value) -> kubeward::forge::github::events::PullRequestEvent {
    match parse_event("pull_request", &serde_json::to_vec(payload).unwrap()).unwrap() {
        WebhookEvent::PullRequest(pr) => pr,
        other => panic!("not a pull request: {other:?}"),
    }
}

#[test]
fn edited_flags_only_a_base_change() {
    let mut payload = pr_example("edited");
    payload["changes"] = json!({ "title": { "from": "old title" } });
    assert_eq!(
        parse_pr(&payload).action,
        PullRequestAction::Edited {
            base_changed: false
        }
    );
    check_delivery("pull_request", &payload);

    payload["changes"] = json!({
        "base": { "ref": { "from": "main" }, "sha": { "from": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e" } }
    });
    let pr = parse_pr(&payload);
    assert_eq!(pr.action, PullRequestAction::Edited { base_changed: true });
    assert_eq!(pr.installation_id, Some(42));
    check_delivery("pull_request", &payload);

    payload.as_object_mut().unwrap().remove("changes");
    assert_eq!(
        parse_pr(&payload).action,
        PullRequestAction::Edited {
            base_changed: false
        }
    );
}

#[test]
fn closed_carries_merged() {
    let mut payload = pr_example("closed");
    payload["pull_request"]["state"] = json!("closed");
    payload["pull_request"]["merged"] = json!(true);
    let pr = parse_pr(&payload);
    assert_eq!(pr.action, PullRequestAction::Closed { merged: true });
    assert_eq!(pr.state, PullRequestState::Closed);
    payload["pull_request"]["merged"] = Value::Null;
    assert_eq!(
        parse_pr(&payload).action,
        PullRequestAction::Closed { merged: false }
    );
}

#[test]
fn fork_and_deleted_fork_heads() {
    let mut payload = pr_example("synchronize");
    let pr = parse_pr(&payload);
    assert_eq!(pr.action, PullRequestAction::Synchronize);
    assert!(!pr.is_from_fork());

    payload["pull_request"]["head"]["repo"]["id"] = json!(999);
    let pr = parse_pr(&payload);
    assert_eq!(pr.head_repo_id, Some(999));
    assert!(pr.is_from_fork());

    payload["pull_request"]["head"]["repo"] = Value::Null;
    let pr = parse_pr(&payload);
    assert_eq!(pr.head_repo_id, None);
    assert!(pr.is_from_fork());
}

#[test]
fn a_minimal_pull_request_payload_is_enough() {
    let payload = json!({
        "action": "opened",
        "number": 7,
        "pull_request": {
            "head": { "sha": "abc", "ref": "feature", "repo": { "id": 1 } },
            "base": { "sha": "def", "ref": "main" },
            "state": "open"
        },
        "repository": { "id": 1, "name": "r", "full_name": "o/r" },
        "sender": { "login": "me", "id": 5 }
    });
    let pr = parse_pr(&payload);
    assert_eq!(pr.number, 7);
    assert_eq!(pr.repository.owner, "o", "owner falls back to full_name");
    assert!(!pr.repository.private && !pr.draft);
    assert_eq!(pr.installation_id, None);
    assert_eq!(pr.sender.kind, AccountKind::Other(String::new()));
}

#[test]
fn comment_on_a_pull_request_by_an_app() {
    let mut payload = npm::webhook_example("issue_comment", Some("created"))
        .payload
        .clone();
    payload["installation"] = json!({ "id": 7 });
    payload["issue"]["pull_request"] = json!({
        "url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1",
        "html_url": "https://github.com/Codertocat/Hello-World/pull/1",
        "diff_url": "https://github.com/Codertocat/Hello-World/pull/1.diff",
        "patch_url": "https://github.com/Codertocat/Hello-World/pull/1.patch",
        "merged_at": null
    });
    payload["comment"]["body"] = json!("/kubeward rescan\r\n\r\nplease");
    payload["comment"]["user"]["type"] = json!("Bot");
    payload["comment"]["user"]["login"] = json!("kubeward[bot]");
    payload["comment"]["performed_via_github_app"] = json!({ "id": 1, "slug": "kubeward" });
    let body = serde_json::to_vec(&payload).unwrap();
    let WebhookEvent::IssueComment(comment) = parse_event("issue_comment", &body).unwrap() else {
        panic!("not a comment");
    };
    assert!(comment.is_pull_request);
    assert!(comment.via_github_app);
    assert!(comment.author.as_ref().unwrap().is_bot());
    assert_eq!(comment.installation_id, Some(7));
    assert_eq!(comment.command(), Some(Command::Rescan));
    check_delivery("issue_comment", &payload);

    payload["issue"]["pull_request"] = Value::Null;
    payload["comment"]["performed_via_github_app"] = Value::Null;
    let body = serde_json::to_vec(&payload).unwrap();
    let WebhookEvent::IssueComment(comment) = parse_event("issue_comment", &body).unwrap() else {
        panic!("not a comment");
    };
    assert!(!comment.is_pull_request && !comment.via_github_app);
}

#[test]
fn unknown_events_and_actions_are_other() {
    // A push is modelled now: one without its commit is malformed, not ignored.
    assert!(
        parse_event("push", br#"{"ref": "refs/heads/main"}"#).is_err(),
        "a push needs `after` and `repository`"
    );
    for (event, body) in [
        ("ping", json!({ "zen": "Keep it logically awesome." })),
        ("pull_request", json!({ "action": "labeled" })),
        ("issue_comment", json!({ "action": "pinned" })),
        ("check_run", json!({ "action": "rerun_everything" })),
        ("installation", json!({ "action": "renamed" })),
        ("installation_repositories", json!({ "action": "shuffled" })),
        ("some_future_event", json!({ "action": 3 })),
    ] {
        let action = body
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_owned);
        assert_eq!(
            parse_event(event, &serde_json::to_vec(&body).unwrap()).unwrap(),
            WebhookEvent::Other {
                event: event.into(),
                action
            },
            "{event}"
        );
    }
}

#[test]
fn malformed_bodies_are_typed_errors() {
    let err = parse_event("pull_request", b"payload=%7B%7D").unwrap_err();
    assert!(matches!(err, EventError::NotJson { .. }), "{err}");
    let err = parse_event("ping", b"").unwrap_err();
    assert!(matches!(err, EventError::NotJson { .. }), "{err}");
    let err = parse_event("ping", b"\"zen\"").unwrap_err();
    assert!(matches!(err, EventError::NotAnObject { .. }), "{err}");

    let mut payload = pr_example("opened");
    payload["pull_request"]["head"]
        .as_object_mut()
        .unwrap()
        .remove("sha");
    let err = parse_event("pull_request", &serde_json::to_vec(&payload).unwrap()).unwrap_err();
    assert!(
        matches!(&err, EventError::Invalid { event, action, .. }
            if event == "pull_request" && action.as_deref() == Some("opened")),
        "{err}"
    );
    assert!(err.to_string().contains("sha"), "{err}");

    let mut payload = pr_example("opened");
    payload["number"] = json!("seven");
    let err = parse_event("pull_request", &serde_json::to_vec(&payload).unwrap()).unwrap_err();
    assert!(matches!(err, EventError::Invalid { .. }), "{err}");

    // A modelled event needs its action.
    let err = parse_event("check_suite", b"{}").unwrap_err();
    assert!(matches!(err, EventError::Invalid { .. }), "{err}");

    let err = parse_event("check_run", br#"{"action":"rerequested","check_run":{}}"#).unwrap_err();
    assert!(matches!(err, EventError::Invalid { .. }), "{err}");
}

// ----------------------------------------------------------------------------------------
// Slash commands.

#[test]
fn slash_commands_are_the_exact_first_line() {
    for (body, expected) in [
        ("/kubeward rescan", Some(Command::Rescan)),
        ("/kubeward help", Some(Command::Help)),
        ("  /kubeward rescan  ", Some(Command::Rescan)),
        (
            "/kubeward rescan\nbecause the base moved",
            Some(Command::Rescan),
        ),
        ("/kubeward rescan\r\n\r\nthanks!", Some(Command::Rescan)),
        ("/kubeward help\n/kubeward rescan", Some(Command::Help)),
        ("\t/kubeward rescan", None),
        ("/kubeward rescan please", None),
        ("/kubeward  rescan", None),
        ("/kubeward", None),
        ("/kubeward Rescan", None),
        ("/Kubeward rescan", None),
        ("/KUBEWARD HELP", None),
        ("/kubeward rescan!", None),
        ("please /kubeward rescan", None),
        ("thanks\n/kubeward rescan", None),
        ("\n/kubeward rescan", None),
        ("> /kubeward rescan", None),
        ("`/kubeward rescan`", None),
        ("```\n/kubeward rescan\n```", None),
        ("    /kubeward rescan", None),
        ("/kubeward-rescan", None),
        ("kubeward rescan", None),
        ("", None),
    ] {
        assert_eq!(parse_command(body), expected, "{body:?}");
    }
}

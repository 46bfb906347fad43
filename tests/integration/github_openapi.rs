//! The test-support validator for requests to GitHub (`support/github_openapi.rs`):
//! path matching against GitHub's OpenAPI description, body validation and the limits the
//! description does not state.

use crate::support::github_openapi::{
    check_limits, openapi_to_json_schema, operation_for, request_examples, validate_reply,
    validate_request,
};
use serde_json::{Value, json};

const SHA: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

fn review() -> Value {
    json!({
        "commit_id": SHA,
        "event": "COMMENT",
        "body": "kubeward found 2 problems in the changed manifests.",
        "comments": [
            { "path": "deploy/web.yaml", "line": 12, "side": "RIGHT", "body": "No CPU limit." },
            {
                "path": "deploy/web.yaml", "start_line": 20, "start_side": "RIGHT",
                "line": 24, "side": "RIGHT", "body": "Runs as root."
            }
        ]
    })
}

fn annotation(line: u64) -> Value {
    json!({
        "path": "deploy/web.yaml",
        "start_line": line,
        "end_line": line,
        "annotation_level": "warning",
        "message": "cpuLimitsMissing",
        "title": "CPU limit missing"
    })
}

fn check_run_update(annotations: usize) -> Value {
    json!({
        "status": "completed",
        "conclusion": "failure",
        "output": {
            "title": "kubeward: 51 findings",
            "summary": "Findings in the changed manifests.",
            "annotations": (1..=annotations as u64).map(annotation).collect::<Vec<_>>()
        }
    })
}

#[test]
fn paths_match_the_most_specific_template() {
    for (method, path, template, id) in [
        (
            "POST",
            "/repos/o/r/pulls/3/reviews",
            "/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
            "pulls/create-review",
        ),
        (
            "patch",
            "/repos/o/r/pulls/comments/77",
            "/repos/{owner}/{repo}/pulls/comments/{comment_id}",
            "pulls/update-review-comment",
        ),
        (
            "GET",
            "/repos/o/r/pulls/3/files?per_page=100&page=1",
            "/repos/{owner}/{repo}/pulls/{pull_number}/files",
            "pulls/list-files",
        ),
        (
            "GET",
            "/repos/o/r/pulls/comments?per_page=100&page=2",
            "/repos/{owner}/{repo}/pulls/comments",
            "pulls/list-review-comments-for-repo",
        ),
        (
            "GET",
            "/repos/o/r/pulls/3",
            "/repos/{owner}/{repo}/pulls/{pull_number}",
            "pulls/get",
        ),
        (
            "POST",
            "https://api.github.com/repos/o/r/check-runs",
            "/repos/{owner}/{repo}/check-runs",
            "checks/create",
        ),
        (
            "POST",
            &format!("/repos/o/r/statuses/{SHA}"),
            "/repos/{owner}/{repo}/statuses/{sha}",
            "repos/create-commit-status",
        ),
        (
            "POST",
            "/app/installations/12/access_tokens",
            "/app/installations/{installation_id}/access_tokens",
            "apps/create-installation-access-token",
        ),
        (
            "GET",
            "/repos/o/r/collaborators/some-user/permission",
            "/repos/{owner}/{repo}/collaborators/{username}/permission",
            "repos/get-collaborator-permission-level",
        ),
        // x-multi-segment parameters take several segments.
        (
            "GET",
            "/repos/o/r/git/ref/heads/feature/x",
            "/repos/{owner}/{repo}/git/ref/{ref}",
            "git/get-ref",
        ),
    ] {
        assert_eq!(
            operation_for(method, path),
            Ok((template.to_owned(), id.to_owned())),
            "{method} {path}"
        );
    }
    let err = operation_for("GET", "/repos/o/r/kubernetes/manifests").unwrap_err();
    assert!(err.contains("no operation"), "{err}");
    let err = operation_for("PUT", "/repos/o/r/pulls/3/reviews").unwrap_err();
    assert!(err.contains("GET, POST"), "{err}");
}

/// The writes the bot makes: GitHub's own example bodies for them pass the validator (which
/// checks the schema conversion on the operations that matter).
#[test]
fn githubs_examples_for_the_bots_writes_validate() {
    for (method, path) in [
        ("POST", "/repos/o/r/check-runs"),
        ("PATCH", "/repos/o/r/check-runs/9"),
        ("POST", "/repos/o/r/pulls/3/reviews"),
        ("POST", "/repos/o/r/pulls/3/comments"),
        ("PATCH", "/repos/o/r/pulls/comments/5"),
        ("POST", "/repos/o/r/issues/3/comments"),
        ("PATCH", "/repos/o/r/issues/comments/5"),
        ("POST", &format!("/repos/o/r/statuses/{SHA}")),
        ("POST", "/repos/o/r/issues/comments/5/reactions"),
        ("POST", "/app/installations/12/access_tokens"),
    ] {
        let examples = request_examples(method, path).unwrap();
        assert!(!examples.is_empty(), "{method} {path} has no examples");
        for (name, body) in examples {
            validate_request(method, path, Some(&body))
                .unwrap_or_else(|e| panic!("example {name:?}: {e}"));
        }
    }
}

#[test]
fn a_valid_review_passes_both_checks() {
    let path = "/repos/o/r/pulls/3/reviews";
    validate_request("POST", path, Some(&review())).unwrap();
    check_limits("POST", path, Some(&review())).unwrap();
}

#[test]
fn review_comment_sides_must_be_left_or_right() {
    let path = "/repos/o/r/pulls/3/reviews";
    let mut body = review();
    body["comments"][0]["side"] = json!("MIDDLE");
    // GitHub's description leaves `side` of a review's comments open...
    validate_request("POST", path, Some(&body)).unwrap();
    // ...the limits do not.
    let err = check_limits("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("comments[0].side"), "{err}");

    // The single-comment endpoint's schema has the enum itself.
    let comment = json!({
        "commit_id": SHA, "path": "deploy/web.yaml", "line": 3, "side": "MIDDLE", "body": "x"
    });
    let err = validate_request("POST", "/repos/o/r/pulls/3/comments", Some(&comment)).unwrap_err();
    assert!(err.contains("/side"), "{err}");
}

#[test]
fn review_line_ranges_are_consistent() {
    let path = "/repos/o/r/pulls/3/reviews";
    for (comment, complaint) in [
        (
            json!({ "path": "a", "body": "b", "start_line": 5, "line": 5 }),
            "start_line",
        ),
        (
            json!({ "path": "a", "body": "b", "start_line": 9, "line": 5 }),
            "start_line",
        ),
        (
            json!({ "path": "a", "body": "b", "start_line": 2 }),
            "line is required",
        ),
        (
            json!({ "path": "a", "body": "b", "line": 2, "start_side": "LEFT" }),
            "start_side",
        ),
        (
            json!({ "path": "a", "body": "b", "position": 4 }),
            "position",
        ),
        (json!({ "path": "a", "body": "b", "line": 0 }), "line is 0"),
    ] {
        let mut body = review();
        body["comments"] = json!([comment]);
        let err = check_limits("POST", path, Some(&body)).unwrap_err();
        assert!(err.contains(complaint), "{comment}: {err}");
    }
    let mut body = review();
    body.as_object_mut().unwrap().remove("event");
    let err = check_limits("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("PENDING"), "{err}");
    let mut body = review();
    body["body"] = json!("x".repeat(65537));
    let err = check_limits("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("65536"), "{err}");
}

#[test]
fn invalid_review_bodies_fail_the_schema() {
    let path = "/repos/o/r/pulls/3/reviews";
    let mut body = review();
    body["event"] = json!("REJECT");
    let err = validate_request("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("/event"), "{err}");

    let mut body = review();
    body["comments"][1].as_object_mut().unwrap().remove("path");
    let err = validate_request("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("/comments/1"), "{err}");

    let mut body = review();
    body["comments"][0]["line"] = json!("12");
    let err = validate_request("POST", path, Some(&body)).unwrap_err();
    assert!(err.contains("/comments/0/line"), "{err}");

    let err =
        validate_request("POST", "/repos/o/r/pulls/three/reviews", Some(&review())).unwrap_err();
    assert!(err.contains("pull_number"), "{err}");
}

#[test]
fn check_runs_with_up_to_50_annotations() {
    let path = "/repos/o/r/check-runs/9";
    let body = check_run_update(50);
    validate_request("PATCH", path, Some(&body)).unwrap();
    check_limits("PATCH", path, Some(&body)).unwrap();

    let body = check_run_update(51);
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("at most 50"), "{err}");
    assert!(validate_request("PATCH", path, Some(&body)).is_err());

    let create = json!({
        "name": "kubeward",
        "head_sha": SHA,
        "status": "in_progress",
        "started_at": "2026-05-01T12:00:00Z",
        "external_id": "scan-17"
    });
    validate_request("POST", "/repos/o/r/check-runs", Some(&create)).unwrap();
    check_limits("POST", "/repos/o/r/check-runs", Some(&create)).unwrap();
    let mut missing = create.clone();
    missing.as_object_mut().unwrap().remove("head_sha");
    let err = validate_request("POST", "/repos/o/r/check-runs", Some(&missing)).unwrap_err();
    assert!(err.contains("head_sha"), "{err}");
}

#[test]
fn check_run_output_limits() {
    let path = "/repos/o/r/check-runs/9";
    let mut body = check_run_update(1);
    body["output"]["annotations"][0]["end_line"] = json!(3);
    body["output"]["annotations"][0]["start_column"] = json!(2);
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("start_column"), "{err}");

    let mut body = check_run_update(1);
    body["output"]["annotations"][0]["title"] = json!("t".repeat(256));
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("title"), "{err}");

    let mut body = check_run_update(1);
    body["output"]["annotations"][0]["annotation_level"] = json!("error");
    assert!(check_limits("PATCH", path, Some(&body)).is_err());
    assert!(validate_request("PATCH", path, Some(&body)).is_err());

    let mut body = check_run_update(0);
    body["output"]["summary"] = json!("é".repeat(65536));
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("output.summary"), "{err}");
    body["output"]["summary"] = json!("é".repeat(65535));
    check_limits("PATCH", path, Some(&body)).unwrap();

    let mut body = check_run_update(0);
    body["output"].as_object_mut().unwrap().remove("title");
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("output.title"), "{err}");

    let mut body = check_run_update(0);
    body["actions"] = json!([{ "label": "Re-scan", "description": "Scan the head again", "identifier": "rescan-button-too-long" }]);
    let err = check_limits("PATCH", path, Some(&body)).unwrap_err();
    assert!(err.contains("identifier"), "{err}");

    // The description's own rule: a completed run needs a conclusion.
    let body = json!({ "status": "completed" });
    assert!(validate_request("PATCH", path, Some(&body)).is_err());
}

#[test]
fn commit_status_description_is_at_most_140_characters() {
    let path = format!("/repos/o/r/statuses/{SHA}");
    let mut body = json!({
        "state": "failure",
        "context": "kubeward",
        "target_url": null,
        "description": "2 problems in changed manifests"
    });
    validate_request("POST", &path, Some(&body)).unwrap();
    check_limits("POST", &path, Some(&body)).unwrap();
    body["description"] = json!("x".repeat(141));
    let err = check_limits("POST", &path, Some(&body)).unwrap_err();
    assert!(err.contains("140"), "{err}");
    body["state"] = json!("failed");
    assert!(validate_request("POST", &path, Some(&body)).is_err());
}

#[test]
fn bodies_query_strings_and_methods() {
    // An operation without a body.
    validate_request("POST", "/repos/o/r/check-runs/9/rerequest", None).unwrap();
    let err = validate_request("GET", "/repos/o/r/pulls/3/files", Some(&json!({}))).unwrap_err();
    assert!(err.contains("no request body"), "{err}");
    // A required body.
    let err = validate_request("POST", "/repos/o/r/check-runs", None).unwrap_err();
    assert!(err.contains("required"), "{err}");
    // Query parameters: documented names and types.
    validate_request("GET", "/repos/o/r/pulls/3/files?per_page=100&page=2", None).unwrap();
    let err = validate_request("GET", "/repos/o/r/pulls/3/files?per_page=many", None).unwrap_err();
    assert!(err.contains("per_page"), "{err}");
    let err = validate_request("GET", "/repos/o/r/pulls/3/files?perpage=1", None).unwrap_err();
    assert!(err.contains("perpage"), "{err}");
    // Issue comments (the summary comment).
    validate_request(
        "PATCH",
        "/repos/o/r/issues/comments/5",
        Some(&json!({ "body": "updated summary" })),
    )
    .unwrap();
    let err = check_limits(
        "POST",
        "/repos/o/r/issues/3/comments",
        Some(&json!({ "body": "y".repeat(65537) })),
    )
    .unwrap_err();
    assert!(err.contains("body"), "{err}");
}

#[test]
fn nullable_becomes_a_union_with_null() {
    assert_eq!(
        openapi_to_json_schema(json!({
            "type": "object",
            "properties": {
                "a": { "type": "string", "nullable": true, "example": "x", "x-github": {} },
                "b": { "type": "string", "enum": ["l", "r"], "nullable": true },
                "c": { "allOf": [{ "type": "integer" }], "nullable": true, "readOnly": true },
                "example": { "type": "string" }
            },
            "discriminator": { "propertyName": "a" }
        })),
        json!({
            "type": "object",
            "properties": {
                "a": { "type": ["string", "null"] },
                "b": { "type": ["string", "null"], "enum": ["l", "r", null] },
                "c": { "anyOf": [{ "type": "null" }, { "allOf": [{ "type": "integer" }] }] },
                "example": { "type": "string" }
            }
        })
    );
}

#[test]
fn the_bots_graphql_operations_validate_against_githubs_schema() {
    use crate::support::github_graphql::validate_request as validate_graphql;
    use kubeward::forge::github::publish::{RESOLVE_THREAD, REVIEW_THREADS, UNRESOLVE_THREAD};

    let threads = |variables: Value| json!({"query": REVIEW_THREADS, "variables": variables});
    let first_page = json!({"owner": "octo", "repo": "shop", "number": 7, "cursor": null});
    assert_eq!(validate_graphql(Some(&threads(first_page))), Ok(()));
    for mutation in [RESOLVE_THREAD, UNRESOLVE_THREAD] {
        assert_eq!(
            validate_graphql(Some(
                &json!({"query": mutation, "variables": {"thread": "PRRT_x"}})
            )),
            Ok(())
        );
    }

    // What the checker must refuse: a field GitHub does not have, a variable of the wrong
    // type, a missing required variable, one the operation does not declare, no query at all.
    let misspelled = REVIEW_THREADS.replace("isResolved", "resolved");
    let err = validate_graphql(Some(&json!({"query": misspelled, "variables": {
        "owner": "octo", "repo": "shop", "number": 7
    }})))
    .expect_err("unknown field");
    assert!(err.contains("resolved"), "{err}");
    let err = validate_graphql(Some(&threads(
        json!({"owner": "octo", "repo": "shop", "number": "7"}),
    )))
    .expect_err("number is an Int");
    assert!(err.contains("variables"), "{err}");
    validate_graphql(Some(&threads(json!({"owner": "octo", "repo": "shop"}))))
        .expect_err("number is required");
    validate_graphql(Some(&threads(
        json!({"owner": "octo", "repo": "shop", "number": 7, "extra": 1}),
    )))
    .expect_err("undeclared variable");
    validate_graphql(Some(&json!({"variables": {}}))).expect_err("no query");
    let old_id = REVIEW_THREADS.replace("fullDatabaseId", "databaseId");
    let err = validate_graphql(Some(&json!({"query": old_id, "variables": {
        "owner": "octo", "repo": "shop", "number": 7
    }})))
    .expect_err("deprecated field");
    assert!(err.contains("PullRequestReviewComment.databaseId"), "{err}");
}

/// The fake's replies are checked as GitHub would answer: a documented status, documented
/// field types. What the bot reads is then required by its typed replies.
#[test]
fn replies_must_have_a_documented_status_and_documented_types() {
    let created =
        json!({"id": 12, "name": "kubeward", "status": "in_progress", "external_id": "k"});
    validate_reply("POST", "/repos/o/r/check-runs", 201, &created).expect("GitHub's answer");
    let wrong_status = validate_reply("POST", "/repos/o/r/check-runs", 200, &created)
        .expect_err("check runs are created with 201");
    assert!(wrong_status.contains("201"), "{wrong_status}");
    let wrong_type = validate_reply(
        "POST",
        "/repos/o/r/check-runs",
        201,
        &json!({"id": "12", "status": "in_progress"}),
    )
    .expect_err("an id is an integer");
    assert!(wrong_type.contains("/id"), "{wrong_type}");
    let pull = json!({"number": 7, "state": "open", "draft": false,
        "head": {"sha": "a".repeat(40)}, "base": {"sha": "b".repeat(40)}});
    validate_reply("GET", "/repos/o/r/pulls/7", 200, &pull).expect("a pull request");
    let bad_state = json!({"number": 7, "state": "merged"});
    assert!(validate_reply("GET", "/repos/o/r/pulls/7", 200, &bad_state).is_err());
    // Errors are the forge's business: not checked.
    validate_reply("GET", "/repos/o/r/pulls/7", 404, &json!({"message": 1})).expect("not 2xx");
}

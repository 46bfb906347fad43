//! `kubeward review` on a real repository: defaults, formats and exit codes.

use std::process::Command;

use git2::Repository;
use kubeward::git::build;

const BAD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: 'x:1'}]\n";
const GOOD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: a, image: 'x:1'}]\n";

fn repo_with_pr() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/remotes/origin/main"),
        &[],
        &[("pod.yaml", GOOD.as_bytes())],
        "base",
    )
    .expect("base");
    repo.reference_symbolic(
        "refs/remotes/origin/HEAD",
        "refs/remotes/origin/main",
        true,
        "default branch",
    )
    .expect("origin/HEAD");
    build::commit(
        &repo,
        Some("refs/heads/pr"),
        &[base],
        &[("pod.yaml", BAD.as_bytes())],
        "pr",
    )
    .expect("pr");
    repo.set_head("refs/heads/pr").expect("HEAD");
    (dir, repo)
}

fn kubeward(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn defaults_to_head_against_the_upstream_default_branch() {
    let (dir, _repo) = repo_with_pr();
    let (code, stdout, stderr) = kubeward(dir.path(), &["review", "--format", "json"]);
    assert_eq!(code, Some(3), "{stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("JSON plan");
    let rules: Vec<&str> = plan["newFindings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(rules.contains(&"hostNetworkSet"), "{rules:?}");
    assert_eq!(plan["conclusion"], "failure");
    assert_eq!(plan["inlineComments"][0]["line"], 6);
    assert_eq!(plan["inlineComments"][0]["side"], "RIGHT");
}

#[test]
fn formats_and_fail_on() {
    let (dir, _repo) = repo_with_pr();
    let (code, text, _) = kubeward(
        dir.path(),
        &["review", "--base", "origin/main", "--head", "pr"],
    );
    assert_eq!(code, Some(3));
    assert!(text.contains("pod.yaml:6 danger hostNetworkSet"), "{text}");
    let (code, markdown, _) = kubeward(
        dir.path(),
        &["review", "--format", "markdown", "--fail-on", "never"],
    );
    assert_eq!(code, Some(0));
    assert!(
        markdown.contains("<!-- kubeward:summary v1 -->"),
        "{markdown}"
    );
    // The summary says what the exit status says.
    assert!(markdown.contains("**Passing**"), "{markdown}");
    assert!(!markdown.contains("**Failing**"), "{markdown}");
    let (_, json, _) = kubeward(
        dir.path(),
        &["review", "--format", "json", "--fail-on", "never"],
    );
    let plan: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(plan["conclusion"], "success");
    assert!(
        plan["summary"]
            .as_str()
            .is_some_and(|s| s.contains("**Passing**")),
        "{json}"
    );
    let (_, sarif, _) = kubeward(dir.path(), &["review", "--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF");
    assert_eq!(sarif["version"], "2.1.0");
    assert!(
        sarif["runs"][0]["results"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    );
}

#[test]
fn bad_revisions_and_missing_repositories_are_usage_errors() {
    let (dir, _repo) = repo_with_pr();
    let (code, _, stderr) = kubeward(dir.path(), &["review", "--base", "nope"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nope"));
    let empty = tempfile::tempdir().expect("temp dir");
    let (code, _, _) = kubeward(
        empty.path(),
        &["review", "--repo", empty.path().to_str().expect("utf-8")],
    );
    assert_eq!(code, Some(2));
}

#[test]
fn an_invalid_policy_on_the_base_branch_names_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[
            (".kubeward.yaml", "failOn: danger\nrulez: {}\n".as_bytes()),
            ("pod.yaml", GOOD.as_bytes()),
        ],
        "base",
    )
    .expect("base");
    build::commit(
        &repo,
        Some("refs/heads/pr"),
        &[base],
        &[
            (".kubeward.yaml", "failOn: danger\nrulez: {}\n".as_bytes()),
            ("pod.yaml", BAD.as_bytes()),
        ],
        "pr",
    )
    .expect("pr");
    let (code, _, stderr) = kubeward(dir.path(), &["review", "--base", "main", "--head", "pr"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(".kubeward.yaml:2:1") && stderr.contains("did you mean `rules`"),
        "{stderr}"
    );
}

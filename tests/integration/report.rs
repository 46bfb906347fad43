//! `kubeward report`: the ownership report of a repository at a commit, read from git objects
//! (policy, CODEOWNERS, manifests), grouped by CODEOWNERS team, rule and environment.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::render::kubectl;
use crate::review::Repo;

const PRIVILEGED: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: NAME
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: NAME}
  template:
    metadata:
      labels: {app: NAME}
    spec:
      containers:
        - name: NAME
          image: registry.example.com/NAME:1.0
          securityContext:
            privileged: true
";

fn deployment(name: &str) -> String {
    PRIVILEGED.replace("NAME", name)
}

/// A platform monorepo: two owned apps, a kustomize base copied into two overlays (one per
/// environment), and a legacy folder nobody owns.
fn monorepo(repo: &Repo) {
    let web = deployment("web");
    let api = deployment("api");
    let legacy = deployment("legacy");
    let base = deployment("shop");
    repo.commit(
        "main",
        &[],
        &[
            (
                ".github/CODEOWNERS",
                "apps/web/ @org/web\napps/api/ @org/api @org/sre\nbase/ @org/platform\noverlays/ @org/platform\n",
            ),
            (
                ".kubeward.yaml",
                "environments:\n  prod: overlays/prod\n  staging: overlays/staging\n",
            ),
            ("apps/web/deployment.yaml", &web),
            ("apps/api/deployment.yaml", &api),
            ("legacy/old.yaml", &legacy),
            ("base/kustomization.yaml", "resources: [deployment.yaml]\n"),
            ("base/deployment.yaml", &base),
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\nnamespace: shop-prod\n",
            ),
            (
                "overlays/staging/kustomization.yaml",
                "resources: [../../base]\nnamespace: shop-staging\n",
            ),
        ],
    );
}

fn report(repo: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kubeward"));
    command
        .arg("report")
        .arg(repo)
        .args(["--commit", "main"])
        .args(extra);
    match kubectl() {
        Some(k) => command.arg("--kubectl").arg(k),
        None => command.args(["--render", "never"]),
    };
    let out = command.output().expect("kubeward runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn team<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["overview"]["teams"]
        .as_array()
        .and_then(|teams| teams.iter().find(|t| t["team"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn the_report_groups_open_findings_by_owning_team_and_environment() {
    let repo = Repo::new();
    monorepo(&repo);
    let (code, stdout, stderr) = report(repo.path(), &["--format", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(json["schemaVersion"], "1");
    assert_eq!(json["codeowners"], ".github/CODEOWNERS");
    assert_eq!(json["commit"].as_str().map(str::len), Some(40));

    let findings = json["findings"].as_array().expect("findings");
    let privileged = |path: &str| {
        findings
            .iter()
            .filter(|f| f["rule"] == "privilegeEscalationAllowed" || f["rule"] == "runAsPrivileged")
            .filter(|f| f["path"] == path)
            .count()
    };
    assert!(privileged("apps/web/deployment.yaml") > 0, "{stdout}");
    // Each team sees its own files' findings, no one else's.
    let web = team(&json, "@org/web");
    let api = team(&json, "@org/api");
    assert!(web["danger"].as_u64() > Some(0), "{web}");
    assert_eq!(
        web["danger"], api["danger"],
        "the two apps are the same manifest"
    );
    assert_eq!(
        team(&json, "@org/sre")["danger"],
        api["danger"],
        "a second owner counts too"
    );
    for f in findings {
        let owners: Vec<&str> = f["owners"]
            .as_array()
            .map(|o| o.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        match f["path"].as_str().unwrap_or("") {
            p if p.starts_with("apps/web/") => assert_eq!(owners, ["@org/web"]),
            p if p.starts_with("apps/api/") => assert_eq!(owners, ["@org/api", "@org/sre"]),
            p if p.starts_with("legacy/") => assert!(owners.is_empty(), "{f}"),
            _ => {}
        }
    }
    // The legacy folder is nobody's: a team of its own, and a number of its own.
    let unowned = team(&json, "unowned");
    assert!(unowned["danger"].as_u64() > Some(0), "{stdout}");
    assert_eq!(json["overview"]["unowned"]["danger"], unowned["danger"]);
    let total = json["overview"]["open"]["danger"].as_u64().unwrap_or(0)
        + json["overview"]["open"]["warning"].as_u64().unwrap_or(0);
    assert_eq!(
        total as usize,
        findings.len(),
        "each finding once in the total"
    );

    if kubectl().is_some() {
        // The base copied into two overlays: the same findings in both environments, on the
        // base's lines, owned by the platform team.
        let envs: Vec<&str> = json["overview"]["environments"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["environment"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(envs, ["prod", "staging"], "{stdout}");
        let on_base: Vec<&Value> = findings
            .iter()
            .filter(|f| f["path"] == "base/deployment.yaml")
            .collect();
        assert!(!on_base.is_empty(), "{stdout}");
        assert!(
            on_base
                .iter()
                .all(|f| f["owners"] == serde_json::json!(["@org/platform"]))
        );
        let in_prod = on_base
            .iter()
            .filter(|f| {
                f["environments"]
                    .as_array()
                    .is_some_and(|e| e.contains(&"prod".into()))
            })
            .count();
        let in_staging = on_base
            .iter()
            .filter(|f| {
                f["environments"]
                    .as_array()
                    .is_some_and(|e| e.contains(&"staging".into()))
            })
            .count();
        assert!(in_prod > 0 && in_prod == in_staging, "{stdout}");
        assert_eq!(
            team(&json, "@org/platform")["environments"],
            serde_json::json!(["prod", "staging"])
        );
    }
}

#[test]
fn the_html_report_is_one_self_contained_file_with_every_team_and_escaped_text() {
    let repo = Repo::new();
    // A path is the pull request author's text: it must reach the page as text.
    let web = deployment("web");
    repo.commit(
        "main",
        &[],
        &[
            (".github/CODEOWNERS", "apps/ @org/web\n"),
            ("apps/<b>x</b>.yaml", &web),
            ("legacy/old.yaml", &web.replace("name: web", "name: old")),
        ],
    );
    let out = tempfile::tempdir().expect("temp");
    let file = out.path().join("report.html");
    let file_arg = file.to_string_lossy().into_owned();
    let (code, stdout, stderr) = report(repo.path(), &["--format", "html", "-o", &file_arg]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.is_empty(), "written to the file: {stdout}");
    assert!(stderr.contains("wrote the ownership report"), "{stderr}");
    let html = std::fs::read_to_string(&file).expect("report written");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(
        html.contains("@org/web") && html.contains("unowned"),
        "every team has a section"
    );
    assert!(
        html.contains("apps/&#60;b&#62;x&#60;/b&#62;.yaml")
            || html.contains("apps/&lt;b&gt;x&lt;/b&gt;.yaml"),
        "escaped"
    );
    assert!(!html.contains("<b>x</b>"), "never markup");
    assert!(
        !html.contains("<script") && !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained, no script"
    );
    assert!(html.contains("<svg"), "the teams chart");
    // Links inside the page go to the team sections that exist.
    for anchor in html.split("href=\"#").skip(1) {
        let id = anchor.split('"').next().unwrap_or("");
        assert!(html.contains(&format!("id=\"{id}\"")), "link to #{id}");
    }

    let (code, markdown, stderr) = report(repo.path(), &["--format", "markdown"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(markdown.contains("| @org/web |"), "{markdown}");
    assert!(markdown.contains("## unowned"), "{markdown}");
}

#[test]
fn a_folder_that_is_no_repository_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp");
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .arg("report")
        .arg(dir.path())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no git repository"));
}

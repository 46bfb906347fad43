//! Kustomize overlays rendered by the real `kubectl kustomize` (scripts/test.sh unpacks the
//! pinned one and sets KUBEWARD_TEST_KUBECTL): findings on their source lines, naming the
//! overlays; what kustomize changes (images, namespaces, prefixes) judged as rendered; what
//! would need the network or run programs refused and named.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::workspace;

/// The kubectl the tests render with, or `None` (then the test says so and passes).
pub(crate) fn kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("KUBEWARD_TEST_KUBECTL").filter(|p| !p.is_empty())?;
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "KUBEWARD_TEST_KUBECTL={} is not a file",
        path.display()
    );
    Some(path)
}

fn audit(dir: &Path, kubectl: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .current_dir(dir)
        .args(["audit", ".", "--format", "json", "--kubectl"])
        .arg(kubectl)
        .args(extra)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn findings(report: &Value) -> Vec<(String, String, u64, Vec<String>)> {
    report["findings"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|f| {
                    (
                        f["rule"].as_str().unwrap_or("").to_owned(),
                        f["path"].as_str().unwrap_or("").to_owned(),
                        f["line"].as_u64().unwrap_or(0),
                        f["targets"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const POLICY: &[u8] = b"checks:\n  runAsPrivileged: danger\n  tagNotSpecified: danger\n  hostNetworkSet: danger\n  defaultNamespace: warning\n";

const BASE_DEPLOY: &[u8] = b"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers:
        - name: app
          image: nginx
";

fn overlay(namespace: &str, patches: &str) -> String {
    format!(
        "resources: [../../base]\nnamespace: {namespace}\nnamePrefix: {namespace}-\nimages:\n  - name: nginx\n    newTag: \"1.27\"\n{patches}"
    )
}

const PRIVILEGED_PATCH: &[u8] = b"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: app
          securityContext:
            privileged: true
";

#[test]
fn overlays_are_judged_as_rendered_on_their_source_lines() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let prod = overlay("prod", "patches:\n  - path: privileged.yaml\n");
    let staging = overlay("staging", "");
    let dir = workspace(&[
        (".kubeward.yaml", POLICY),
        ("base/kustomization.yaml", b"resources: [deploy.yaml]\n"),
        ("base/deploy.yaml", BASE_DEPLOY),
        ("overlays/prod/kustomization.yaml", prod.as_bytes()),
        ("overlays/prod/privileged.yaml", PRIVILEGED_PATCH),
        ("overlays/staging/kustomization.yaml", staging.as_bytes()),
    ]);
    let (code, report, stderr) = audit(dir.path(), &kubectl, &[]);
    assert_eq!(code, Some(3), "{stderr}{report:#}");
    let found = findings(&report);
    let targets = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        found,
        [
            // The base's own problem, once, naming both overlays that render it.
            (
                "hostNetworkSet".to_owned(),
                "base/deploy.yaml".to_owned(),
                10,
                targets(&["overlays/prod", "overlays/staging"])
            ),
            // The overlay's patch sets it: said on the patch's line.
            (
                "runAsPrivileged".to_owned(),
                "overlays/prod/privileged.yaml".to_owned(),
                11,
                targets(&["overlays/prod"])
            ),
        ],
        "no tagNotSpecified (the overlays pin the tag), no defaultNamespace (they set one): {report:#}"
    );
    // Objects are what kustomize made them: namespace and prefix.
    let object = &report["findings"][1]["object"];
    assert_eq!(object["namespace"], "prod");
    assert_eq!(object["name"], "prod-web");
    // The annotations kubeward asked kustomize for are not part of the audited objects.
    assert!(!report.to_string().contains("config.kubernetes.io/origin"));

    // Configured targets instead of every entry point found.
    let configured = format!("{}render:\n  kustomize: [overlays/staging]\n", text(POLICY));
    std::fs::write(dir.path().join(".kubeward.yaml"), configured).expect("policy");
    let (_, report, _) = audit(dir.path(), &kubectl, &[]);
    let targets_named: std::collections::BTreeSet<String> =
        findings(&report).into_iter().flat_map(|f| f.3).collect();
    assert_eq!(
        targets_named.into_iter().collect::<Vec<_>>(),
        ["overlays/staging"],
        "{report:#}"
    );
    std::fs::write(dir.path().join(".kubeward.yaml"), POLICY).expect("policy");

    // Never rendering: the raw files as they are.
    let (_, raw, _) = audit(dir.path(), &kubectl, &["--render", "never"]);
    let rules: Vec<String> = findings(&raw).into_iter().map(|f| f.0).collect();
    assert!(rules.contains(&"tagNotSpecified".to_owned()), "{rules:?}");
}

#[test]
fn what_needs_the_network_or_a_missing_tool_is_named_and_never_passes_silently() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let dir = workspace(&[
        (".kubeward.yaml", POLICY),
        (
            "overlays/remote/kustomization.yaml",
            b"resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n",
        ),
    ]);
    let (code, report, stderr) = audit(dir.path(), &kubectl, &[]);
    assert_eq!(code, Some(0), "nothing else to judge: {stderr}");
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("overlays/remote") && errors.contains("remote resource"),
        "{report:#}"
    );
    let (code, _, stderr) = audit(dir.path(), &kubectl, &["--render", "always"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("remote resource"), "{stderr}");
    // Without the tool: named per target.
    let missing = dir.path().join("no-such-kubectl");
    let (_, report, _) = audit(dir.path(), &missing, &[]);
    assert!(
        report["errors"].to_string().contains("overlays/remote"),
        "{report:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Reviews: both sides rendered, what the change did judged on its source lines.

use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, review};
use kubeward::review::{AnchorKind, NotReviewedReason, ReviewPlan};

use crate::review::Repo;

fn review_rendered(repo: &Repo, kubectl: &Path, base: &str, head: &str) -> ReviewPlan {
    let git = kubeward::git::Repository::open(repo.path()).expect("open");
    let revisions = Revisions::resolve(&git, base, head).expect("revisions");
    review(
        &git,
        &revisions,
        &ReviewOptions {
            forge: Flavor::GitHub,
            config_override: None,
            fail_on: None,
            budgets: Default::default(),
            render: Some(kubeward::render::review::RenderOptions {
                kubectl: Some(kubectl.to_owned()),
                ..Default::default()
            }),
            progress: None,
            views: None,
        },
    )
    .expect("review")
    .0
}

fn new_findings(plan: &ReviewPlan) -> Vec<(String, String, u32, Vec<String>)> {
    plan.new_findings
        .iter()
        .map(|f| {
            (
                f.finding.rule.to_string(),
                f.finding.path.to_string(),
                f.finding.line,
                f.finding.targets.clone(),
            )
        })
        .collect()
}

fn borrow<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files.iter().map(|(p, t)| (*p, t.as_str())).collect()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn a_new_overlay_patch_is_judged_on_its_line_and_old_base_problems_stay_old() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let prod_before = overlay("prod", "");
    let prod_after = overlay("prod", "patches:\n  - path: privileged.yaml\n");
    let files = |prod: &str, patch: bool| {
        let mut f: Vec<(&str, String)> = vec![
            (".kubeward.yaml", text(POLICY).to_owned()),
            (
                "base/kustomization.yaml",
                "resources: [deploy.yaml]\n".to_owned(),
            ),
            ("base/deploy.yaml", text(BASE_DEPLOY).to_owned()),
            ("overlays/prod/kustomization.yaml", prod.to_owned()),
        ];
        if patch {
            f.push((
                "overlays/prod/privileged.yaml",
                text(PRIVILEGED_PATCH).to_owned(),
            ));
        }
        f
    };
    let repo = Repo::new();
    let before = files(&prod_before, false);
    let after = files(&prod_after, true);
    let base = repo.commit("main", &[], &borrow(&before));
    repo.commit("pr", &[base], &borrow(&after));
    let plan = review_rendered(&repo, &kubectl, "main", "pr");
    assert_eq!(
        new_findings(&plan),
        [(
            "runAsPrivileged".to_owned(),
            "overlays/prod/privileged.yaml".to_owned(),
            11,
            vec!["overlays/prod".to_owned()]
        )],
        "only the patch's problem: the base's hostNetwork is old {:#?}",
        plan.new_findings
    );
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(anchor.kind, AnchorKind::OwnLine, "{anchor:?}");
    assert_eq!(anchor.line, Some(11));
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert!(
        !plan.notes.iter().any(|n| n.contains("privileged.yaml")),
        "the patch was reviewed, not named: {:?}",
        plan.notes
    );

    // The overlay renamed (a new environments/ layout): the same target, nothing new.
    repo.commit(
        "moved",
        &[base],
        &[
            (".kubeward.yaml", text(POLICY)),
            ("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            ("base/deploy.yaml", text(BASE_DEPLOY)),
            ("environments/prod/kustomization.yaml", &prod_before),
        ],
    );
    let plan = review_rendered(&repo, &kubectl, "main", "moved");
    assert_eq!(new_findings(&plan), vec![], "{:#?}", plan.new_findings);

    // A transformer the change configured: said on its kustomization line.
    let to_default = prod_before.replace("namespace: prod", "namespace: default");
    repo.commit(
        "default-ns",
        &[base],
        &[
            (".kubeward.yaml", text(POLICY)),
            ("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            ("base/deploy.yaml", text(BASE_DEPLOY)),
            ("overlays/prod/kustomization.yaml", &to_default),
        ],
    );
    let plan = review_rendered(&repo, &kubectl, "main", "default-ns");
    let finding = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == "defaultNamespace")
        .unwrap_or_else(|| panic!("{:#?}", plan.new_findings));
    let anchor = finding.anchor.as_ref().expect("anchor");
    assert_eq!(
        anchor.new_path, "overlays/prod/kustomization.yaml",
        "{anchor:?}"
    );
    assert_eq!(anchor.line, Some(2), "the namespace line: {anchor:?}");
}

#[test]
fn an_overlay_that_cannot_be_rendered_makes_the_review_incomplete_and_untouched_ones_are_not_rendered()
 {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let remote = "resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n";
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", text(POLICY)),
            ("remote/kustomization.yaml", "resources: []\n"),
            ("local/kustomization.yaml", "resources: [cm.yaml]\n"),
            (
                "local/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            ),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", text(POLICY)),
            ("remote/kustomization.yaml", remote),
            ("local/kustomization.yaml", "resources: [cm.yaml]\n"),
            (
                "local/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
            ),
        ],
    );
    let plan = review_rendered(&repo, &kubectl, "main", "pr");
    assert!(plan.incomplete);
    let named: Vec<(&str, NotReviewedReason)> = plan
        .not_reviewed
        .iter()
        .map(|n| (n.path.as_str(), n.reason))
        .collect();
    assert_eq!(
        named,
        [("remote", NotReviewedReason::NotRendered)],
        "{:#?}",
        plan.not_reviewed
    );
    assert!(
        plan.not_reviewed[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("remote resource")),
        "{:#?}",
        plan.not_reviewed
    );
    // The untouched overlay was not rendered: with no tool at all, only the touched one is
    // named.
    let plan = review_rendered(&repo, Path::new("/nonexistent/kubectl"), "main", "pr");
    let named: Vec<&str> = plan.not_reviewed.iter().map(|n| n.path.as_str()).collect();
    assert_eq!(named, ["remote"]);
}

#[test]
fn targets_past_the_policys_budget_are_named() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let policy = format!("{}render:\n  maxTargets: 1\n", text(POLICY));
    let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}}}\n");
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[(".kubeward.yaml", &policy)]);
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", &policy),
            ("a/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("a/cm.yaml", &cm("a")),
            ("b/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("b/cm.yaml", &cm("b")),
        ],
    );
    let plan = review_rendered(&repo, &kubectl, "main", "pr");
    let named: Vec<(&str, NotReviewedReason)> = plan
        .not_reviewed
        .iter()
        .map(|n| (n.path.as_str(), n.reason))
        .collect();
    assert_eq!(named, [("b", NotReviewedReason::OverTargetBudget)]);
    assert!(plan.incomplete);
}

/// Kustomize semantics a raw audit gets wrong: a generated ConfigMap is the same object when
/// its data (and so its name's hash) changes; labels an overlay adds make a Service's
/// selector match.
#[test]
fn generated_names_and_added_labels_are_judged_as_kustomize_makes_them() {
    let Some(kubectl) = kubectl() else {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    };
    let policy = "checks:\n  sensitiveConfigmapContent: danger\n  serviceSelectsNothing: danger\n";
    let kustomization = |level: &str| {
        format!(
            "resources: [svc.yaml, deploy.yaml]\nnamespace: shop\nlabels:\n  - pairs: {{tier: web}}\n    includeSelectors: false\n    includeTemplates: true\nconfigMapGenerator:\n  - name: settings\n    literals: [DB_PASSWORD=hunter2, LOG_LEVEL={level}]\n"
        )
    };
    // The Service selects `tier: web`, which only the overlay's labels give the pods.
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {tier: web}\n  ports: [{port: 80}]\n";
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: app, image: 'web:1'}]\n";
    let repo = Repo::new();
    let base_k = kustomization("info");
    let head_k = kustomization("debug");
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", policy),
            ("app/kustomization.yaml", &base_k),
            ("app/svc.yaml", svc),
            ("app/deploy.yaml", deploy),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", policy),
            ("app/kustomization.yaml", &head_k),
            ("app/svc.yaml", svc),
            ("app/deploy.yaml", deploy),
        ],
    );
    let plan = review_rendered(&repo, &kubectl, "main", "pr");
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert_eq!(
        new_findings(&plan),
        vec![],
        "the ConfigMap's old secret is not new under its new hash, and the Service selects the labelled pods: {:#?}",
        plan.new_findings
    );
    assert_eq!(plan.fixed_findings.len(), 0, "{:#?}", plan.fixed_findings);
    // As they are, the files say otherwise: the raw Service selects nothing.
    let dir = workspace(&[
        (".kubeward.yaml", policy.as_bytes()),
        ("app/kustomization.yaml", head_k.as_bytes()),
        ("app/svc.yaml", svc.as_bytes()),
        ("app/deploy.yaml", deploy.as_bytes()),
    ]);
    let (_, raw, _) = audit(dir.path(), &kubectl, &["--render", "never"]);
    let rules: Vec<String> = findings(&raw).into_iter().map(|f| f.0).collect();
    assert!(
        rules.contains(&"serviceSelectsNothing".to_owned()),
        "{rules:?}"
    );
    let (_, rendered, _) = audit(dir.path(), &kubectl, &[]);
    let rules: Vec<String> = findings(&rendered).into_iter().map(|f| f.0).collect();
    assert_eq!(rules, ["sensitiveConfigmapContent"], "{rendered:#}");
}

/// The bot renders from its bare cache, in its review process: a pull request that adds an
/// overlay patch gets its comment on the patch's line, through the stand-in GitHub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_comments_on_the_overlay_patch_that_introduced_a_problem() {
    if kubectl().is_none() {
        eprintln!("skipped: no kubectl (scripts/test.sh sets KUBEWARD_TEST_KUBECTL)");
        return;
    }
    use crate::github_check_lifecycle::{github_with_pull, setup_files};
    let prod = overlay("prod", "patches:\n  - path: privileged.yaml\n");
    let base_files: &[(&str, &[u8])] = &[
        (".kubeward.yaml", POLICY),
        ("base/kustomization.yaml", b"resources: [deploy.yaml]\n"),
        ("base/deploy.yaml", BASE_DEPLOY),
    ];
    let (dir, git, base, head) = setup_files(
        base_files,
        &[
            ("overlays/prod/kustomization.yaml", prod.as_bytes()),
            ("overlays/prod/privileged.yaml", PRIVILEGED_PATCH),
        ],
    );
    let fake = github_with_pull(base, head);
    let limits = crate::support::review_limits(100, std::time::Duration::from_secs(60));
    crate::hostile_pr::review(&fake, &git, dir.path(), head, limits).await;
    let comments = fake.review_comments();
    let on_patch: Vec<&serde_json::Value> = comments
        .iter()
        .filter(|c| c["path"] == "overlays/prod/privileged.yaml")
        .collect();
    assert_eq!(on_patch.len(), 1, "{comments:#?} {:#?}", fake.check_runs());
    assert_eq!(on_patch[0]["line"], 11);
    assert!(
        on_patch[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains("runAsPrivileged")),
        "{on_patch:#?}"
    );
    let runs = fake.check_runs();
    assert_eq!(runs[0]["conclusion"], "failure", "{runs:#?}");
}

// ---------------------------------------------------------------------------------------------
// Helm charts, rendered by the real `helm template` (KUBEWARD_TEST_HELM).

pub(crate) fn helm() -> Option<PathBuf> {
    let path = std::env::var_os("KUBEWARD_TEST_HELM").filter(|p| !p.is_empty())?;
    Some(PathBuf::from(path))
}

const CHART: &str = "apiVersion: v2\nname: web\nversion: 1.0.0\n";
const TEMPLATE: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: \"web:{{ .Values.image.tag }}\"
          securityContext:
            privileged: {{ .Values.privileged }}
";

fn values(privileged: bool) -> String {
    format!("image:\n  tag: \"1.0\"\nprivileged: {privileged}\nreplicas: 2\n")
}

fn review_charts(repo: &Repo, helm: &Path, base: &str, head: &str) -> ReviewPlan {
    let git = kubeward::git::Repository::open(repo.path()).expect("open");
    let revisions = Revisions::resolve(&git, base, head).expect("revisions");
    review(
        &git,
        &revisions,
        &ReviewOptions {
            forge: Flavor::GitHub,
            config_override: None,
            fail_on: None,
            budgets: Default::default(),
            render: Some(kubeward::render::review::RenderOptions {
                helm: Some(helm.to_owned()),
                ..Default::default()
            }),
            progress: None,
            views: None,
        },
    )
    .expect("review")
    .0
}

#[test]
fn a_values_change_is_said_on_its_values_line_and_a_template_change_on_its_template_line() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  runAsPrivileged: danger\n";
    let chart = |values: &str, template: &str| -> Vec<(&'static str, String)> {
        vec![
            (".kubeward.yaml", policy.to_owned()),
            ("charts/web/Chart.yaml", CHART.to_owned()),
            ("charts/web/values.yaml", values.to_owned()),
            ("charts/web/templates/deploy.yaml", template.to_owned()),
            ("README.md", "x\n".to_owned()),
        ]
    };
    let repo = Repo::new();
    let base_files = chart(&values(false), TEMPLATE);
    let base = repo.commit("main", &[], &borrow(&base_files));
    let head_files = chart(&values(true), TEMPLATE);
    repo.commit("values", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "values");
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert_eq!(
        new_findings(&plan),
        [(
            "runAsPrivileged".to_owned(),
            "charts/web/templates/deploy.yaml".to_owned(),
            16,
            vec!["charts/web".to_owned()]
        )],
        "{:#?}",
        plan.new_findings
    );
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line),
        ("charts/web/values.yaml", Some(3)),
        "said on the values key the change set: {anchor:?}"
    );
    assert!(
        plan.inline_comments
            .iter()
            .any(|c| c.path == "charts/web/values.yaml" && c.line == 3),
        "{:#?}",
        plan.inline_comments
    );
    // The values file and template were reviewed, not named as not reviewed.
    assert!(plan.not_reviewed.is_empty(), "{:?}", plan.not_reviewed);

    // A template change: said on the template's line.
    let privileged_template = TEMPLATE.replace("{{ .Values.privileged }}", "true");
    let head_files = chart(&values(false), &privileged_template);
    repo.commit("template", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "template");
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line, anchor.kind),
        (
            "charts/web/templates/deploy.yaml",
            Some(16),
            AnchorKind::OwnLine
        ),
        "{anchor:?}"
    );

    // An untouched chart is not rendered: without helm, a change elsewhere names nothing.
    let mut readme = chart(&values(false), TEMPLATE);
    readme.retain(|(p, _)| *p != "README.md");
    readme.push(("README.md", "changed\n".to_owned()));
    repo.commit("readme", &[base], &borrow(&readme));
    let plan = review_charts(&repo, Path::new("/nonexistent/helm"), "main", "readme");
    assert!(plan.not_reviewed.is_empty(), "{:?}", plan.not_reviewed);

    // A chart whose render fails is named, and the review concludes incomplete.
    let broken = chart(&values(true), "{{ fail \"no\" }}\n");
    repo.commit("broken", &[base], &borrow(&broken));
    let plan = review_charts(&repo, &helm, "main", "broken");
    assert!(plan.incomplete);
    assert_eq!(plan.not_reviewed[0].path, "charts/web");
    assert_eq!(plan.not_reviewed[0].reason, NotReviewedReason::NotRendered);
}

/// The chart's values with some keys changed: `privileged` on line 3, after a changed tag.
fn values_with(tag: &str, privileged: bool, extra: &str) -> String {
    format!("image:\n  tag: \"{tag}\"\nprivileged: {privileged}\nreplicas: 2\n{extra}")
}

fn chart_repo(policy: &str, values: &str, template: &str) -> Vec<(&'static str, String)> {
    vec![
        (".kubeward.yaml", policy.to_owned()),
        ("charts/web/Chart.yaml", CHART.to_owned()),
        ("charts/web/values.yaml", values.to_owned()),
        ("charts/web/templates/deploy.yaml", template.to_owned()),
    ]
}

#[test]
fn the_values_key_that_caused_a_finding_is_found_by_rendering_and_its_fix_is_verified() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  runAsPrivileged: danger\n";
    let repo = Repo::new();
    let base_files = chart_repo(policy, &values_with("1.0", false, ""), TEMPLATE);
    let base = repo.commit("main", &[], &borrow(&base_files));
    // The tag changed on the line above: the first changed line is not the cause.
    let head_files = chart_repo(policy, &values_with("1.1", true, ""), TEMPLATE);
    repo.commit("values", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "values");
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert_eq!(plan.new_findings.len(), 1, "{:#?}", plan.new_findings);
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line, anchor.kind),
        ("charts/web/values.yaml", Some(3), AnchorKind::Suggestion),
        "{anchor:?}"
    );
    let comment = plan
        .inline_comments
        .iter()
        .find(|c| c.path == "charts/web/values.yaml")
        .expect("a comment on the values file");
    assert_eq!(comment.line, 3);
    assert_eq!(
        comment.suggestion.as_deref(),
        Some(&["privileged: false".to_owned()][..]),
        "the values key set back to a safe value, checked by a render"
    );
    // The summary lists it at its rendered place and says where it is commented.
    assert!(
        plan.summary
            .contains("inline on `charts/web/values.yaml` L3"),
        "{}",
        plan.summary
    );

    // The value reaches the field through an expression, not verbatim: the cause is found,
    // but no suggestion is offered.
    let negated = TEMPLATE.replace("{{ .Values.privileged }}", "{{ not .Values.unprivileged }}");
    let base_files = chart_repo(
        policy,
        "image:\n  tag: \"1.0\"\nunprivileged: true\n",
        &negated,
    );
    let base = repo.commit("negated-main", &[], &borrow(&base_files));
    let head_files = chart_repo(
        policy,
        "image:\n  tag: \"1.1\"\nunprivileged: false\n",
        &negated,
    );
    repo.commit("negated", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "negated-main", "negated");
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line, anchor.kind),
        ("charts/web/values.yaml", Some(3), AnchorKind::Cause),
        "{anchor:?}"
    );
    assert!(
        plan.inline_comments.iter().all(|c| c.suggestion.is_none()),
        "{:#?}",
        plan.inline_comments
    );

    // With no renders to spare, the finding is said on the chart's first changed line.
    let stingy = "checks:\n  runAsPrivileged: danger\nrender:\n  maxAttributionRenders: 0\n";
    let base_files = chart_repo(stingy, &values_with("1.0", false, ""), TEMPLATE);
    let base = repo.commit("stingy-main", &[], &borrow(&base_files));
    let head_files = chart_repo(stingy, &values_with("1.1", true, ""), TEMPLATE);
    repo.commit("stingy", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "stingy-main", "stingy");
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line),
        ("charts/web/values.yaml", Some(2)),
        "{anchor:?}"
    );
}

#[test]
fn among_many_changed_values_keys_bisection_finds_the_cause() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  runAsPrivileged: danger\n";
    // 30 labels the template ignores change with the one key that matters.
    let labels = |v: u32| -> String {
        let mut out = "labels:\n".to_owned();
        for i in 0..30 {
            out.push_str(&format!("  l{i:02}: \"{v}\"\n"));
        }
        out
    };
    let repo = Repo::new();
    let base_files = chart_repo(policy, &values_with("1.0", false, &labels(1)), TEMPLATE);
    let base = repo.commit("main", &[], &borrow(&base_files));
    let head_files = chart_repo(policy, &values_with("1.0", true, &labels(2)), TEMPLATE);
    repo.commit("many", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "many");
    assert_eq!(plan.new_findings.len(), 1, "{:#?}", plan.new_findings);
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line),
        ("charts/web/values.yaml", Some(3)),
        "{anchor:?}"
    );
}

#[test]
fn a_template_change_that_drops_a_security_context_is_said_in_the_template() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  privilegeEscalationAllowed: danger\n";
    let guarded = TEMPLATE.replace(
        "            privileged: {{ .Values.privileged }}\n",
        "            privileged: {{ .Values.privileged }}\n            allowPrivilegeEscalation: false\n",
    );
    let repo = Repo::new();
    let base_files = chart_repo(policy, &values_with("1.0", false, ""), &guarded);
    let base = repo.commit("main", &[], &borrow(&base_files));
    // Only deletions: the securityContext block goes.
    let dropped = guarded.replace(
        "          securityContext:\n            privileged: {{ .Values.privileged }}\n            allowPrivilegeEscalation: false\n",
        "",
    );
    let head_files = chart_repo(policy, &values_with("1.0", false, ""), &dropped);
    repo.commit("dropped", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "dropped");
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert_eq!(plan.new_findings.len(), 1, "{:#?}", plan.new_findings);
    let anchor = plan.new_findings[0].anchor.as_ref().expect("anchor");
    assert_eq!(
        anchor.new_path.as_str(),
        "charts/web/templates/deploy.yaml",
        "{anchor:?}"
    );
    // The deleted block ended the file, after the image line (14): the comment is there.
    let line = anchor.line.expect("a line comment");
    assert_eq!(
        (anchor.kind, line),
        (AnchorKind::SameObject, 14),
        "{anchor:?}"
    );
    assert!(
        plan.inline_comments
            .iter()
            .any(|c| c.path == "charts/web/templates/deploy.yaml" && c.line == line),
        "{:#?}",
        plan.inline_comments
    );
}

#[test]
fn a_configured_value_sets_file_is_where_its_finding_is_said() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  runAsPrivileged: danger\nrender:\n  helm:\n    charts/web:\n      - name: prod\n        valuesFiles: [env/prod.yaml]\n";
    let files = |prod: &str| {
        let mut files = chart_repo(policy, &values_with("1.0", false, ""), TEMPLATE);
        files.push(("env/prod.yaml", prod.to_owned()));
        files
    };
    let repo = Repo::new();
    let base_files = files("replicas: 3\n");
    let base = repo.commit("main", &[], &borrow(&base_files));
    let head_files = files("replicas: 4\nprivileged: true\n");
    repo.commit("prod", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "prod");
    assert!(!plan.incomplete, "{:?}", plan.not_reviewed);
    assert_eq!(plan.new_findings.len(), 1, "{:#?}", plan.new_findings);
    let f = &plan.new_findings[0];
    assert_eq!(f.finding.targets, ["charts/web (prod)"]);
    let anchor = f.anchor.as_ref().expect("anchor");
    assert_eq!(
        (anchor.new_path.as_str(), anchor.line, anchor.kind),
        ("env/prod.yaml", Some(2), AnchorKind::Suggestion),
        "{anchor:?}"
    );
}

#[test]
fn a_chart_whose_dependencies_would_be_downloaded_is_refused_by_name() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let policy = "checks:\n  runAsPrivileged: danger\n";
    let repo = Repo::new();
    let base_files = chart_repo(policy, &values_with("1.0", false, ""), TEMPLATE);
    let base = repo.commit("main", &[], &borrow(&base_files));
    let mut head_files = chart_repo(policy, &values_with("1.0", true, ""), TEMPLATE);
    head_files[1].1 = format!(
        "{CHART}dependencies:\n  - name: redis\n    version: 19.0.0\n    repository: oci://registry-1.docker.io/bitnamicharts\n"
    );
    repo.commit("oci", &[base], &borrow(&head_files));
    let plan = review_charts(&repo, &helm, "main", "oci");
    assert!(plan.incomplete, "never passed unjudged");
    let named = &plan.not_reviewed[0];
    assert_eq!(
        (named.path.as_str(), named.reason),
        ("charts/web", NotReviewedReason::NotRendered)
    );
    let detail = named.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("refused") && detail.contains("oci://registry-1.docker.io/bitnamicharts"),
        "{detail}"
    );
}

#[test]
fn path_exemptions_and_ignored_paths_reach_rendered_findings_through_their_source() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    for (policy, new) in [
        ("checks:\n  runAsPrivileged: danger\n", 1),
        (
            "checks:\n  runAsPrivileged: danger\nexemptions:\n- paths: [\"charts/web/**\"]\n  rules: [runAsPrivileged]\n  reason: the node agent\n",
            0,
        ),
        (
            "checks:\n  runAsPrivileged: danger\nignorePaths: [\"charts/web/**\"]\n",
            0,
        ),
    ] {
        let repo = Repo::new();
        let base_files = chart_repo(policy, &values_with("1.0", false, ""), TEMPLATE);
        let base = repo.commit("main", &[], &borrow(&base_files));
        let head_files = chart_repo(policy, &values_with("1.0", true, ""), TEMPLATE);
        repo.commit("head", &[base], &borrow(&head_files));
        // helm is given either way: an ignored chart is not rendered at all.
        let plan = review_charts(&repo, &helm, "main", "head");
        assert_eq!(
            plan.new_findings.len(),
            new,
            "{policy}: {:#?}",
            plan.new_findings
        );
        assert!(!plan.incomplete, "{policy}: {:?}", plan.not_reviewed);
        // Ignored files are named as ignored, as anywhere else.
        assert!(
            plan.not_reviewed
                .iter()
                .all(|n| n.reason == NotReviewedReason::Ignored),
            "{policy}: {:?}",
            plan.not_reviewed
        );
    }
}

#[test]
fn audit_renders_a_chart_hooks_included_and_points_at_its_template() {
    let Some(helm) = helm() else {
        eprintln!("skipped: no helm (scripts/test.sh sets KUBEWARD_TEST_HELM)");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let hook = "apiVersion: v1
kind: Pod
metadata:
  name: migrate
  annotations:
    \"helm.sh/hook\": pre-install
spec:
  containers:
    - name: migrate
      image: \"web:1.0\"
      securityContext:
        privileged: true
";
    for (path, text) in [
        (".kubeward.yaml", "checks:\n  runAsPrivileged: danger\n"),
        ("charts/web/Chart.yaml", CHART),
        ("charts/web/values.yaml", &values_with("1.0", false, "")),
        ("charts/web/templates/deploy.yaml", TEMPLATE),
        ("charts/web/templates/hook.yaml", hook),
    ] {
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(file, text).expect("write");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kubeward"))
        .current_dir(dir.path())
        .args(["audit", ".", "--format", "json", "--helm"])
        .arg(&helm)
        .output()
        .expect("runs");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        findings(&report),
        [(
            "runAsPrivileged".to_owned(),
            "charts/web/templates/hook.yaml".to_owned(),
            12,
            vec!["charts/web".to_owned()]
        )],
        "the hook is audited, at its template line, naming the chart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

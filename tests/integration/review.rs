//! The review on real git repositories built with git2: what a change introduced, fixed or
//! left alone, where each new finding is said, who owns it, and how to fix it.

use git2::{Oid, Repository as Git2};
use kubeward::fix::apply;
use kubeward::git::{Repository, build};
use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, review};
use kubeward::review::{AnchorKind, Conclusion, ReviewPlan};

pub(crate) struct Repo {
    _dir: tempfile::TempDir,
    git: Git2,
}

impl Repo {
    pub(crate) fn new() -> Repo {
        let dir = tempfile::tempdir().expect("temp dir");
        let git = Git2::init_bare(dir.path()).expect("init");
        Repo { _dir: dir, git }
    }

    /// The bare repository's folder.
    pub(crate) fn path(&self) -> &std::path::Path {
        self.git.path()
    }

    pub(crate) fn commit(&self, branch: &str, parents: &[Oid], files: &[(&str, &str)]) -> Oid {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (*p, c.as_bytes())).collect();
        build::commit(
            &self.git,
            Some(&format!("refs/heads/{branch}")),
            parents,
            &files,
            "change",
        )
        .expect("commit")
    }

    pub(crate) fn review(&self, base: &str, head: &str) -> ReviewPlan {
        self.review_as(base, head, Flavor::GitHub)
    }

    pub(crate) fn review_as(&self, base: &str, head: &str, forge: Flavor) -> ReviewPlan {
        let repo = Repository::open(self.git.path()).expect("open");
        let revisions = Revisions::resolve(&repo, base, head).expect("revisions");
        review(
            &repo,
            &revisions,
            &ReviewOptions {
                forge,
                config_override: None,
                fail_on: None,
                budgets: Default::default(),
                render: None,
                progress: None,
                views: None,
            },
        )
        .expect("review")
        .0
    }
}

fn new_rules(plan: &ReviewPlan) -> Vec<&str> {
    plan.new_findings
        .iter()
        .map(|f| f.finding.rule.as_str())
        .collect()
}

const POLICY: &str = "rules:\n  priorityClassNotSet: ignore\n  topologySpreadConstraint: ignore\n  missingNetworkPolicy: ignore\n  missingPodDisruptionBudget: ignore\n  automountServiceAccountToken: ignore\n  linuxHardening: ignore\n  pullPolicyNotAlways: ignore\n  insecureCapabilities: ignore\n  notReadOnlyRootFilesystem: ignore\n";

fn deployment(name: &str, labels: &str, container_extra: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: shop
  labels:
    app.kubernetes.io/instance: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {{{labels}}}
  template:
    metadata:
      labels: {{{labels}}}
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: web
          image: shop:1.0
          resources:
            limits: {{cpu: 100m, memory: 128Mi}}
            requests: {{cpu: 100m, memory: 128Mi}}
          readinessProbe:
            httpGet: {{path: /, port: 8080}}
          securityContext:
            allowPrivilegeEscalation: false
{container_extra}"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: shop
spec:
  selector:
    app: shop
  ports:
    - port: 80
";

#[test]
fn only_what_the_change_introduced_is_new_and_said_on_its_own_line() {
    let repo = Repo::new();
    // livenessProbe is missing from the start: pre-existing, never an inline comment.
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("k8s/shop.yaml", &deployment("shop", "app: shop", "")),
            ("k8s/svc.yaml", SERVICE),
        ],
    );
    let head_text = deployment("shop", "app: shop", "            privileged: true\n");
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("k8s/shop.yaml", &head_text),
            ("k8s/svc.yaml", SERVICE),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(new_rules(&plan), ["runAsPrivileged"]);
    let finding = &plan.new_findings[0];
    assert_eq!(finding.finding.line, 28);
    let anchor = finding.anchor.as_ref().expect("anchored");
    assert_eq!(anchor.line, Some(28));
    assert!(matches!(
        anchor.kind,
        AnchorKind::OwnLine | AnchorKind::Suggestion
    ));
    assert_eq!(
        plan.counts.pre_existing.warning, 1,
        "livenessProbeMissing is counted"
    );
    assert!(
        plan.pre_existing_findings
            .iter()
            .all(|f| f.anchor.is_none())
    );
    assert_eq!(plan.conclusion, Conclusion::Failure);
    // One inline comment, with a one-click fix that really fixes it.
    assert_eq!(plan.inline_comments.len(), 1);
    let comment = &plan.inline_comments[0];
    assert_eq!(
        (comment.path.as_str(), comment.line, comment.side.as_str()),
        ("k8s/shop.yaml", 28, "RIGHT")
    );
    let suggestion = comment
        .suggestion
        .as_ref()
        .expect("privileged has a mechanical fix");
    assert_eq!(
        suggestion,
        &vec!["            privileged: false".to_owned()]
    );
    assert!(
        comment
            .body
            .contains("```suggestion\n            privileged: false\n```")
    );
    assert!(comment.body.trim_end().ends_with("-->"));
    let fixed = apply(
        &head_text,
        &[kubeward::fix::Edit {
            start_line: 28,
            end_line: 28,
            lines: suggestion.clone(),
        }],
    );
    repo.commit(
        "pr-fixed",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("k8s/shop.yaml", &fixed),
            ("k8s/svc.yaml", SERVICE),
        ],
    );
    assert!(new_rules(&repo.review("main", "pr-fixed")).is_empty());
}

#[test]
fn a_fix_is_reported_as_fixed() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            (
                "a.yaml",
                &deployment("shop", "app: shop", "            privileged: true\n"),
            ),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("a.yaml", &deployment("shop", "app: shop", "")),
        ],
    );
    let plan = repo.review("main", "pr");
    assert!(plan.new_findings.is_empty());
    let fixed: Vec<&str> = plan
        .fixed_findings
        .iter()
        .map(|f| f.finding.rule.as_str())
        .collect();
    assert_eq!(fixed, ["runAsPrivileged"]);
    assert_eq!(plan.conclusion, Conclusion::Success);
}

#[test]
fn moving_renaming_reordering_and_reindenting_create_nothing_new() {
    let repo = Repo::new();
    let bad = deployment("shop", "app: shop", "            privileged: true\n");
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("a.yaml", &bad),
            ("b.yaml", SERVICE),
        ],
    );
    // Renamed file.
    repo.commit(
        "rename",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("deploy/a.yaml", &bad),
            ("b.yaml", SERVICE),
        ],
    );
    let plan = repo.review("main", "rename");
    assert!(plan.new_findings.is_empty(), "{:?}", new_rules(&plan));
    assert!(plan.fixed_findings.is_empty());
    // Object moved into another file.
    let merged = format!("{SERVICE}---\n{bad}");
    repo.commit(
        "move",
        &[base],
        &[(".kubeward.yaml", POLICY), ("b.yaml", &merged)],
    );
    let plan = repo.review("main", "move");
    assert!(plan.new_findings.is_empty(), "{:?}", new_rules(&plan));
    assert!(plan.fixed_findings.is_empty(), "{:?}", plan.fixed_findings);
    // Keys reordered and the file re-indented.
    let reordered = bad.replace("          image: shop:1.0\n", "").replace(
        "        - name: web\n",
        "        - image: shop:1.0\n          name: web\n",
    );
    let reindented = reordered.replace("\n  ", "\n    ");
    repo.commit(
        "reformat",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("a.yaml", &reindented),
            ("b.yaml", SERVICE),
        ],
    );
    let plan = repo.review("main", "reformat");
    assert!(plan.new_findings.is_empty(), "{:?}", new_rules(&plan));
    assert!(plan.fixed_findings.is_empty(), "{:?}", plan.fixed_findings);
}

#[test]
fn the_same_object_in_two_overlays_stays_two_objects() {
    let repo = Repo::new();
    let good = deployment("shop", "app: shop", "");
    let bad = deployment("shop", "app: shop", "            privileged: true\n");
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("staging/shop.yaml", &bad),
            ("prod/shop.yaml", &good),
        ],
    );
    // Prod gets the same problem staging already had: new in prod.
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("staging/shop.yaml", &bad),
            ("prod/shop.yaml", &bad),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(new_rules(&plan), ["runAsPrivileged"]);
    assert_eq!(plan.new_findings[0].finding.path, "prod/shop.yaml");

    // Prod's copy moves to a new file (too different for git to call it a rename) and gains
    // the problem while staging, which has it, stays where it is: still new in prod.
    let settings: String = (0..80).map(|i| format!("  key{i}: value-{i}\n")).collect();
    let moved_bad = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n{settings}---\n{}",
        bad.replace("replicas: 2", "replicas: 5")
    );
    repo.commit(
        "pr2",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            (
                "staging/shop.yaml",
                &bad.replace("replicas: 2", "replicas: 3"),
            ),
            ("prod/app.yaml", &moved_bad),
        ],
    );
    let plan = repo.review("main", "pr2");
    assert_eq!(
        new_rules(&plan),
        ["runAsPrivileged"],
        "{:#?}",
        plan.new_findings
    );
    assert_eq!(plan.new_findings[0].finding.path, "prod/app.yaml");
}

#[test]
fn a_finding_off_the_changed_lines_goes_to_the_nearest_changed_line_of_its_container() {
    let repo = Repo::new();
    let base_text = deployment(
        "shop",
        "app: shop",
        "            readOnlyRootFilesystem: true\n",
    );
    let base = repo.commit(
        "main",
        &[],
        &[(".kubeward.yaml", ""), ("a.yaml", &base_text)],
    );
    // Drops readOnlyRootFilesystem and adds a capability drop: the new finding points at the
    // unchanged `securityContext:` key, so it is said on the added line next to it.
    let head_text = deployment(
        "shop",
        "app: shop",
        "            capabilities: {drop: [ALL]}\n",
    );
    repo.commit(
        "pr",
        &[base],
        &[(".kubeward.yaml", ""), ("a.yaml", &head_text)],
    );
    let plan = repo.review("main", "pr");
    let f = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == "notReadOnlyRootFilesystem")
        .expect("new finding");
    assert_eq!(f.finding.line, 26, "found at the securityContext key");
    let anchor = f.anchor.as_ref().expect("anchored");
    assert_eq!(anchor.line, Some(28));
    assert!(matches!(
        anchor.kind,
        AnchorKind::SameContainer | AnchorKind::Suggestion
    ));
}

#[test]
fn a_relabelled_workload_breaking_an_untouched_service_is_said_on_the_labels() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("shop.yaml", &deployment("shop", "app: shop", "")),
            ("svc.yaml", SERVICE),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            ("shop.yaml", &deployment("shop", "app: shop-v2", "")),
            ("svc.yaml", SERVICE),
        ],
    );
    let plan = repo.review("main", "pr");
    let f = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == "serviceSelectsNothing")
        .expect("the untouched Service now selects nothing");
    assert_eq!(f.finding.path, "svc.yaml");
    let anchor = f.anchor.as_ref().expect("anchored");
    assert_eq!(anchor.kind, AnchorKind::Cause);
    assert_eq!(anchor.new_path, "shop.yaml");
    assert_eq!(anchor.line, Some(14));
}

/// A label change on a workload the finding's object never selected is not its cause.
#[test]
fn unrelated_label_changes_are_not_blamed_for_a_new_finding() {
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: other\n  namespace: shop\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: other}\n";
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            ("a.yaml", &deployment("shop", "app: shop", "")),
            ("b.yaml", &deployment("other", "app: other", "")),
            ("pdb.yaml", pdb),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            ("a.yaml", &deployment("shop", "app: shop, tier: web", "")),
            ("b.yaml", &deployment("other", "app: other", "")),
        ],
    );
    let plan = repo.review("main", "pr");
    let f = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == "missingPodDisruptionBudget" && f.finding.path == "b.yaml")
        .expect("deleting the PDB leaves `other` without one");
    let anchor = f.anchor.as_ref().expect("anchored");
    assert_ne!(anchor.kind, AnchorKind::Cause, "{anchor:?}");
    assert_ne!(anchor.new_path, "a.yaml", "{anchor:?}");
}

#[test]
fn an_added_exemption_is_itself_a_finding_naming_what_it_silences() {
    let repo = Repo::new();
    let with_host = deployment("shop", "app: shop", "").replace(
        "    spec:\n      securityContext:",
        "    spec:\n      hostNetwork: true\n      securityContext:",
    );
    let base = repo.commit(
        "main",
        &[],
        &[(".kubeward.yaml", POLICY), ("a.yaml", &with_host)],
    );
    let head_text = deployment("shop", "app: shop", "").replace(
        "    metadata:\n      labels: {app: shop}\n    spec:\n      securityContext:",
        "    metadata:\n      labels: {app: shop}\n      annotations:\n        kubeward.io/hostNetworkSet-exempt: \"true\"\n    spec:\n      hostNetwork: true\n      securityContext:",
    );
    repo.commit(
        "pr",
        &[base],
        &[(".kubeward.yaml", POLICY), ("a.yaml", &head_text)],
    );
    let plan = repo.review("main", "pr");
    let f = plan
        .new_findings
        .iter()
        .find(|f| f.finding.rule == "exemptionAdded")
        .expect("the added exemption is reported");
    assert!(
        f.finding.message.contains("hostNetworkSet"),
        "{}",
        f.finding.message
    );
    assert_eq!(f.finding.line, 16);
    assert!(!new_rules(&plan).contains(&"hostNetworkSet"));
    assert!(plan.fixed_findings.is_empty(), "silenced is not fixed");
    // Its comment says why it matters, what to do, and links its page like any rule.
    let comment = plan
        .inline_comments
        .iter()
        .find(|c| c.fingerprints.contains(&f.finding.fingerprint.to_string()))
        .expect("said inline");
    assert!(comment.body.contains("**Why:**"), "{}", comment.body);
    assert!(comment.body.contains("**Fix:**"), "{}", comment.body);
    assert!(
        comment.body.contains("exemptionAdded.md"),
        "{}",
        comment.body
    );
}

#[test]
fn policy_and_codeowners_come_from_the_base_branch_not_the_change() {
    let repo = Repo::new();
    let bad = deployment("shop", "app: shop", "            privileged: true\n");
    let owners = ".github/CODEOWNERS";
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            (owners, "*.yaml @platform\n"),
            ("a.yaml", &deployment("shop", "app: shop", "")),
        ],
    );
    let relaxed = format!("{POLICY}  runAsPrivileged: ignore\n");
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", &relaxed),
            (owners, "*.yaml @me\n"),
            ("a.yaml", &bad),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(
        new_rules(&plan),
        ["runAsPrivileged"],
        "the PR cannot relax its own policy"
    );
    assert_eq!(
        plan.new_findings[0].owners,
        ["@platform"],
        "nor re-assign its findings"
    );
    assert!(
        plan.summary.contains("Owned by `@\u{200b}platform`"),
        "{}",
        plan.summary
    );
}

#[test]
fn the_base_side_is_the_merge_base_not_the_base_tip() {
    let repo = Repo::new();
    let bad = deployment("shop", "app: shop", "            privileged: true\n");
    let fork = repo.commit("main", &[], &[(".kubeward.yaml", POLICY), ("a.yaml", &bad)]);
    // main fixes the problem after the PR branched off.
    repo.commit(
        "main",
        &[fork],
        &[
            (".kubeward.yaml", POLICY),
            ("a.yaml", &deployment("shop", "app: shop", "")),
        ],
    );
    // The PR touches the same object elsewhere; it did not reintroduce anything.
    let touched = bad.replace("replicas: 2", "replicas: 3");
    repo.commit(
        "pr",
        &[fork],
        &[(".kubeward.yaml", POLICY), ("a.yaml", &touched)],
    );
    let plan = repo.review("main", "pr");
    assert!(plan.new_findings.is_empty(), "{:?}", new_rules(&plan));
    assert_eq!(plan.counts.pre_existing.danger, 1);
}

#[test]
fn gitlab_plans_carry_both_paths_and_lines_for_positions() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", POLICY),
            ("old.yaml", &deployment("shop", "app: shop", "")),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", POLICY),
            (
                "new.yaml",
                &deployment("shop", "app: shop", "            privileged: true\n"),
            ),
        ],
    );
    let plan = repo.review_as("main", "pr", Flavor::GitLab);
    assert_eq!(new_rules(&plan), ["runAsPrivileged"]);
    let comment = &plan.inline_comments[0];
    assert_eq!(comment.path, "new.yaml");
    assert_eq!(comment.old_path.as_deref(), Some("old.yaml"));
    assert!(
        comment.body.contains("```suggestion:-0+0"),
        "{}",
        comment.body
    );
}

#[test]
fn fixes_on_one_block_become_one_suggestion_and_secrets_are_never_echoed() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[("a.yaml", &deployment("shop", "app: shop", ""))],
    );
    // One container loses its hardening and gains a secret: three fixable findings on the same
    // securityContext block, one suggestion; the secret's value appears nowhere.
    let head_text = deployment("shop", "app: shop", "            privileged: true\n          env:\n            - name: API_TOKEN\n              value: s3cr3t-value-123\n")
        .replace("            allowPrivilegeEscalation: false\n", "            allowPrivilegeEscalation: true\n");
    repo.commit("pr", &[base], &[("a.yaml", &head_text)]);
    let plan = repo.review("main", "pr");
    let rules = new_rules(&plan);
    assert!(
        rules.contains(&"privilegeEscalationAllowed") && rules.contains(&"runAsPrivileged"),
        "{rules:?}"
    );
    let with_suggestion: Vec<_> = plan
        .inline_comments
        .iter()
        .filter(|c| c.suggestion.is_some())
        .collect();
    assert_eq!(with_suggestion.len(), 1, "{:#?}", plan.inline_comments);
    let s = with_suggestion[0];
    assert_eq!((s.start_line, s.line), (Some(27), 28));
    assert!(s.fingerprints.len() >= 2);
    let lines = s.suggestion.as_ref().expect("suggestion");
    assert_eq!(
        lines.iter().filter(|l| l.contains("privileged:")).count(),
        1
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("allowPrivilegeEscalation:"))
            .count(),
        1
    );
    let everything = serde_json::to_string(&plan).expect("serialises");
    assert!(
        !everything.contains("s3cr3t-value-123"),
        "a secret value leaked into the plan"
    );
    assert!(rules.contains(&"sensitiveContainerEnvVar"));
}

#[test]
fn inline_comments_are_capped_and_the_rest_is_said_elsewhere() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", "review:\n  maxInlineComments: 2\n"),
            ("a.yaml", ""),
        ],
    );
    let many: String = (0..5)
        .map(|i| format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\nspec:\n  hostNetwork: true\n  containers: [{{name: a, image: 'x:1'}}]\n---\n"))
        .collect();
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", "review:\n  maxInlineComments: 2\n"),
            ("a.yaml", &many),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(plan.inline_comments.len(), 2);
    assert!(!plan.annotations.is_empty());
    assert!(
        plan.summary.contains("over the limit of 2 inline comments"),
        "{}",
        plan.summary
    );
    let lines: std::collections::HashSet<(String, u32)> = plan
        .inline_comments
        .iter()
        .map(|c| (c.path.clone(), c.line))
        .collect();
    assert_eq!(
        lines.len(),
        plan.inline_comments.len(),
        "one comment per line"
    );
}

#[test]
fn binary_mode_only_and_deleted_files_are_handled() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            (
                "gone.yaml",
                &deployment("shop", "app: shop", "            privileged: true\n"),
            ),
            ("logo.png", "\u{0}PNG"),
        ],
    );
    repo.commit("pr", &[base], &[("logo.png", "\u{0}PNG2\u{0}")]);
    let plan = repo.review("main", "pr");
    assert!(plan.new_findings.is_empty());
    assert!(
        plan.fixed_findings
            .iter()
            .any(|f| f.finding.rule == "runAsPrivileged" && f.finding.path == "gone.yaml")
    );
}

/// Padding a manifest past the size limit must not hide it silently: it is named, and the
/// review is incomplete, which fails by default.
#[test]
fn a_manifest_over_the_size_limit_is_named_in_the_summary() {
    let repo = Repo::new();
    let small = deployment("shop", "app: shop", "");
    let base = repo.commit(
        "main",
        &[],
        &[
            (".kubeward.yaml", "limits: {maxFileSize: 4000}\n"),
            ("big.yaml", &small),
        ],
    );
    let padded = format!(
        "{}{}",
        deployment("shop", "app: shop", "            privileged: true\n"),
        "# padding\n".repeat(500)
    );
    repo.commit(
        "pr",
        &[base],
        &[
            (".kubeward.yaml", "limits: {maxFileSize: 4000}\n"),
            ("big.yaml", &padded),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(
        plan.not_reviewed,
        vec![kubeward::review::NotReviewed {
            path: "big.yaml".into(),
            reason: kubeward::review::NotReviewedReason::TooLarge,
            detail: None,
        }]
    );
    assert!(plan.incomplete);
    assert_eq!(plan.conclusion, Conclusion::Failure);
    assert!(
        plan.summary
            .contains("`big.yaml`: larger than the size limit"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.contains("maxFileSize"),
        "how to proceed: {}",
        plan.summary
    );
}

#[test]
fn every_anchored_comment_is_on_a_line_the_diff_shows() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[("a.yaml", &deployment("shop", "app: shop", ""))],
    );
    let head_text = deployment(
        "web",
        "app: web",
        "            privileged: true\n            runAsUser: 0\n",
    );
    repo.commit("pr", &[base], &[("a.yaml", &head_text)]);
    let repo_handle = Repository::open(repo.git.path()).expect("open");
    let revisions = Revisions::resolve(&repo_handle, "main", "pr").expect("revisions");
    let changes = repo_handle
        .changes(revisions.merge_base, revisions.head, 1 << 20)
        .expect("diff");
    let plan = repo.review("main", "pr");
    assert!(!plan.inline_comments.is_empty());
    for c in &plan.inline_comments {
        let change = changes
            .iter()
            .find(|ch| ch.new_path.as_deref() == Some(c.path.as_str()))
            .expect("file in diff");
        let first = c.start_line.unwrap_or(c.line);
        assert!(
            change.one_hunk_shows(first, c.line).is_some(),
            "{}:{}-{} outside the diff",
            c.path,
            first,
            c.line
        );
    }
}

/// Applies each inline suggestion of the plan where the plan puts it (`start_line..=line` of
/// the head file), as a reviewer clicking "Commit suggestion" would.
pub(crate) fn apply_plan_suggestions(plan: &ReviewPlan, path: &str, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut comments: Vec<_> = plan
        .inline_comments
        .iter()
        .filter(|c| c.path == path && c.suggestion.is_some())
        .collect();
    comments.sort_by_key(|c| std::cmp::Reverse(c.line));
    for c in comments {
        let start = c.start_line.unwrap_or(c.line) as usize - 1;
        let end = c.line as usize;
        lines.splice(start..end, c.suggestion.clone().unwrap_or_default());
    }
    lines.join("\n") + "\n"
}

/// A finding without a fix sharing the last line of a multi-line suggestion: the comment must
/// still span every line the suggestion replaces, or applying it duplicates keys.
#[test]
fn a_suggestion_replaces_exactly_the_lines_its_comment_spans() {
    let base_text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: shop\n  template:\n    metadata:\n      labels:\n        app: shop\n    spec:\n      containers:\n        - name: web\n          image: shop:1.0\n          ports:\n            - containerPort: 8080\n          securityContext:\n            allowPrivilegeEscalation: false\n            readOnlyRootFilesystem: true\n            capabilities: {drop: [ALL]}\n            runAsNonRoot: true\n          readinessProbe:\n            httpGet: {path: /, port: 8080}\n";
    let head_text = base_text
        .replace("containerPort: 8080", "containerPort: 9090")
        .replace(
            "readOnlyRootFilesystem: true\n            capabilities: {drop: [ALL]}",
            "readOnlyRootFilesystem: false\n            capabilities: {add: [CHOWN]}",
        );
    for forge in [Flavor::GitHub, Flavor::GitLab] {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("d.yaml", base_text)]);
        repo.commit("pr", &[base], &[("d.yaml", &head_text)]);
        let plan = repo.review_as("main", "pr", forge);
        assert!(
            plan.inline_comments.iter().any(|c| c.suggestion.is_some()),
            "{:#?}",
            plan.inline_comments
        );
        for c in plan
            .inline_comments
            .iter()
            .filter(|c| c.suggestion.is_some())
        {
            let replaced = c.line - c.start_line.unwrap_or(c.line);
            if forge == Flavor::GitLab {
                assert!(
                    c.body.contains(&format!("```suggestion:-{replaced}+0")),
                    "GitLab's range matches the comment's: {}",
                    c.body
                );
            }
        }
        let fixed = apply_plan_suggestions(&plan, "d.yaml", &head_text);
        let parsed = kubeward::manifest::ManifestFile::parse(
            "d.yaml",
            &fixed,
            kubeward::yaml::Limits::default(),
        );
        assert_eq!(
            parsed.parse_errors().count(),
            0,
            "applied suggestions leave valid YAML:\n{fixed}"
        );
        let registry = kubeward::audit::Registry::builtin().expect("rules");
        let policy = kubeward::config::Policy::defaults(&registry);
        let after = kubeward::audit::audit(&[parsed], &policy);
        for rule in ["notReadOnlyRootFilesystem", "insecureCapabilities"] {
            assert!(
                !after.findings.iter().any(|f| f.rule == rule),
                "{rule} is fixed by its suggestion:\n{fixed}"
            );
        }
    }
}

/// A change that only deleted lines (the pod's `securityContext`) adds none to comment on: the
/// finding it introduced is said on a context line its hunk shows, inline, with both sides'
/// line numbers (GitLab needs them), not demoted to a file comment.
#[test]
fn a_finding_of_a_deletion_is_said_on_a_context_line_of_its_hunk() {
    let before = deployment("shop", "app: shop", "");
    let after = before.replace("      securityContext:\n        runAsNonRoot: true\n", "");
    assert_ne!(before, after);
    for forge in [Flavor::GitHub, Flavor::GitLab] {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("d.yaml", &before)]);
        repo.commit("pr", &[base], &[("d.yaml", &after)]);
        let plan = repo.review_as("main", "pr", forge);
        let finding = plan
            .new_findings
            .iter()
            .find(|f| f.finding.rule == "runAsRootAllowed")
            .unwrap_or_else(|| panic!("{:#?}", plan.new_findings));
        let anchor = finding.anchor.as_ref().expect("anchor");
        assert!(
            matches!(
                anchor.kind,
                AnchorKind::SameContainer | AnchorKind::SameObject
            ),
            "{anchor:?}"
        );
        let line = anchor.line.expect("a line");
        let comment = plan
            .inline_comments
            .iter()
            .find(|c| c.line == line && c.path == "d.yaml")
            .expect("an inline comment at the anchor");
        assert!(comment.body.contains("runAsRootAllowed"));
        let old = comment
            .old_line
            .expect("a context line has an old line too");
        assert_eq!(
            before.lines().nth(old as usize - 1),
            after.lines().nth(line as usize - 1),
            "the same line on both sides"
        );
    }
}

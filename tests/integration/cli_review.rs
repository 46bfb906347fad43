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

/// Commits `files` (path, bytes, mode) as the whole tree of `refname`, on top of `parents`;
/// all at the root (tree entries cannot hold a `/`).
fn commit_modes(
    repo: &Repository,
    refname: &str,
    parents: &[git2::Oid],
    files: &[(&str, &[u8], i32)],
) -> git2::Oid {
    let mut tree = repo.treebuilder(None).expect("tree");
    for (path, bytes, mode) in files {
        let blob = repo.blob(bytes).expect("blob");
        tree.insert(path, blob, *mode).expect("insert");
    }
    let tree = repo.find_tree(tree.write().expect("write")).expect("tree");
    let sig = git2::Signature::now("t", "t@example.com").expect("sig");
    let parents: Vec<git2::Commit<'_>> = parents
        .iter()
        .map(|p| repo.find_commit(*p).expect("parent"))
        .collect();
    let parents: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(Some(refname), &sig, &sig, "c", &tree, &parents)
        .expect("commit")
}

/// A change the review could not judge in full — a manifest that is not UTF-8, a manifest
/// replaced by a symbolic link — names what it did not judge, and exits as the base branch's
/// policy says for an incomplete review (failure by default).
#[test]
fn an_incomplete_review_names_what_it_did_not_judge_and_exits_per_policy() {
    const FILE: i32 = 0o100644;
    const LINK: i32 = 0o120000;
    let latin1: &[u8] = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: caf\xe9}\n";
    let broken: &[u8] = b"apiVersion: v1\nkind: Pod\nmetadata: {name: x\n";
    for (policy, broken_too, code, conclusion) in [
        (&b"failOn: danger\n"[..], true, 3, "failure"),
        (&b"failOn: danger\n"[..], false, 3, "failure"),
        (&b"incomplete: neutral\n"[..], false, 0, "neutral"),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = Repository::init(dir.path()).expect("init");
        let base = commit_modes(
            &repo,
            "refs/heads/main",
            &[],
            &[
                (".kubeward.yaml", policy, FILE),
                ("pod.yaml", GOOD.as_bytes(), FILE),
                ("link.yaml", GOOD.as_bytes(), FILE),
            ],
        );
        let mut head_files: Vec<(&str, &[u8], i32)> = vec![
            (".kubeward.yaml", policy, FILE),
            ("pod.yaml", GOOD.as_bytes(), FILE),
            ("link.yaml", b"pod.yaml", LINK),
            ("latin1.yaml", latin1, FILE),
        ];
        if broken_too {
            head_files.push(("broken.yaml", broken, FILE));
        }
        commit_modes(&repo, "refs/heads/pr", &[base], &head_files);
        let args = [
            "review", "--base", "main", "--head", "pr", "--format", "json",
        ];
        let (status, stdout, stderr) = kubeward(dir.path(), &args);
        assert_eq!(status, Some(code), "{stderr}{stdout}");
        let plan: serde_json::Value = serde_json::from_str(&stdout).expect("JSON plan");
        assert_eq!(plan["conclusion"], conclusion);
        assert_eq!(plan["incomplete"], true);
        let named: Vec<(String, String)> = plan["notReviewed"]
            .as_array()
            .expect("notReviewed")
            .iter()
            .map(|n| {
                (
                    n["path"].as_str().unwrap_or("").to_owned(),
                    n["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            named,
            [
                ("latin1.yaml".to_owned(), "notUtf8".to_owned()),
                ("link.yaml".to_owned(), "symlink".to_owned())
            ]
        );
        let summary = plan["summary"].as_str().expect("summary");
        assert!(summary.contains("`latin1.yaml`: not UTF-8"), "{summary}");
        assert!(
            summary.contains("`link.yaml`: a symbolic link"),
            "{summary}"
        );
        if broken_too {
            // A parse error reads as what is wrong, not as its rule's name twice.
            let line = summary
                .lines()
                .find(|l| l.contains("`parseError`"))
                .unwrap_or_else(|| panic!("{summary}"));
            assert!(
                line.contains(
                    "Document is not valid YAML: not valid YAML: while parsing a flow mapping"
                ),
                "{line}"
            );
            assert!(!line.contains("`parseError` parseError:"), "{line}");
        }
        let (_, text, _) = kubeward(dir.path(), &args[..5]);
        assert!(
            text.contains("link.yaml: not reviewed: a symbolic link (not followed)"),
            "{text}"
        );
        assert!(
            text.contains("latin1.yaml: not reviewed: not UTF-8"),
            "{text}"
        );
    }
}

/// A change to chart templates, a values file and a kustomize patch is not "No new problems":
/// every changed file the review did not judge is named, with why, in the title, the summary,
/// the plan's notes and the text output.
#[test]
fn changed_files_that_are_not_manifests_are_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let chart_template =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n";
    let kustomization = "resources: [base.yaml]\npatches:\n  - path: patch.yaml\n";
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[
            (
                "chart/Chart.yaml",
                b"apiVersion: v2\nname: c\nversion: 1.0.0\n".as_slice(),
            ),
            ("chart/values.yaml", b"replicas: 1\n"),
            ("chart/templates/deploy.yaml", chart_template.as_bytes()),
            ("k/kustomization.yaml", kustomization.as_bytes()),
            ("k/base.yaml", GOOD.as_bytes()),
            (
                "k/patch.yaml",
                b"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n",
            ),
        ],
        "base",
    )
    .expect("base");
    build::commit(
        &repo,
        Some("refs/heads/pr"),
        &[base],
        &[
            (
                "chart/Chart.yaml",
                b"apiVersion: v2\nname: c\nversion: 1.0.0\n".as_slice(),
            ),
            ("chart/values.yaml", b"replicas: 2\n"),
            (
                "chart/templates/deploy.yaml",
                format!("{chart_template}  labels: {{app: x}}\n").as_bytes(),
            ),
            ("k/kustomization.yaml", kustomization.as_bytes()),
            ("k/base.yaml", GOOD.as_bytes()),
            (
                "k/patch.yaml",
                b"apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {a: b}}\n",
            ),
        ],
        "pr",
    )
    .expect("pr");
    // Without rendering, the overlay's patch is one of the files named.
    let (code, stdout, stderr) = kubeward(
        dir.path(),
        &[
            "review", "--base", "main", "--head", "pr", "--format", "json", "--render", "never",
        ],
    );
    assert_eq!(code, Some(0), "informational only: {stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan");
    assert_eq!(plan["incomplete"], false);
    let notes: Vec<&str> = plan["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    for (path, why) in [
        ("chart/templates/deploy.yaml", "a Helm template"),
        ("chart/values.yaml", "no Kubernetes objects"),
        ("k/patch.yaml", "a kustomize patch"),
    ] {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(&format!("{path}: not reviewed: {why}"))),
            "{path}: {notes:?}"
        );
    }
    assert_eq!(
        plan["title"],
        "No new problems in the manifests; 3 other changed files not reviewed"
    );
    let summary = plan["summary"].as_str().expect("summary");
    assert!(
        summary.contains("`chart/templates/deploy.yaml`: a Helm template"),
        "{summary}"
    );
    let (_, text, _) = kubeward(
        dir.path(),
        &[
            "review", "--base", "main", "--head", "pr", "--render", "never",
        ],
    );
    assert!(
        text.contains("chart/values.yaml: not a manifest to review: no Kubernetes objects"),
        "{text}"
    );
}

/// A partial clone lacks blobs: a missing non-manifest blob is never read, and a missing
/// manifest blob makes the review incomplete, named, instead of failing it.
#[test]
fn missing_blobs_of_a_partial_clone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[
            ("README.md", b"old\n".as_slice()),
            ("pod.yaml", GOOD.as_bytes()),
        ],
        "base",
    )
    .expect("base");
    let head = build::commit(
        &repo,
        Some("refs/heads/pr"),
        &[base],
        &[
            ("README.md", b"new text nobody fetched\n".as_slice()),
            ("pod.yaml", GOOD.as_bytes()),
            ("gone.yaml", BAD.as_bytes()),
        ],
        "pr",
    )
    .expect("pr");
    let tree = repo.find_commit(head).expect("head").tree().expect("tree");
    let remove = |name: &str| {
        let id = tree.get_name(name).expect(name).id().to_string();
        let loose = dir
            .path()
            .join(".git/objects")
            .join(&id[..2])
            .join(&id[2..]);
        std::fs::remove_file(&loose).expect("a loose object");
    };
    remove("README.md");
    let (code, stdout, stderr) = kubeward(
        dir.path(),
        &[
            "review", "--base", "main", "--head", "pr", "--format", "json",
        ],
    );
    assert_eq!(code, Some(3), "BAD is reviewed and fails: {stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan");
    assert_eq!(plan["incomplete"], false, "{plan:#}");
    remove("gone.yaml");
    let (code, stdout, stderr) = kubeward(
        dir.path(),
        &[
            "review", "--base", "main", "--head", "pr", "--format", "json",
        ],
    );
    assert_eq!(code, Some(3), "incomplete fails by default: {stderr}");
    let plan: serde_json::Value = serde_json::from_str(&stdout).expect("plan");
    assert_eq!(plan["incomplete"], true);
    assert_eq!(plan["notReviewed"][0]["path"], "gone.yaml");
    assert_eq!(plan["notReviewed"][0]["reason"], "missingBlob");
}

const SHOP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\n  namespace: shop\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: shop}\n  template:\n    metadata:\n      labels: {app: shop}\n    spec:\n      containers:\n        - name: web\n          image: shop:1.0\n";
const SHOP_SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: shop\n  namespace: shop\nspec:\n  selector:\n    app: shop\n  ports:\n    - port: 80\n";

/// The text output names the revisions (as given, with short SHAs), prints each finding at its
/// own path and line, says in words where the review says it (another file's line with that
/// file), reads a parse error as a sentence, and shows no progress when stderr is not a
/// terminal.
#[test]
fn text_output_puts_each_finding_at_its_own_place_and_says_where_it_is_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[
            ("shop.yaml", SHOP.as_bytes()),
            ("svc.yaml", SHOP_SERVICE.as_bytes()),
        ],
        "base",
    )
    .expect("base");
    // The base branch moves on after the branch point: base tip and merge-base differ.
    let base_tip = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[base],
        &[
            ("README.md", b"docs\n".as_slice()),
            ("shop.yaml", SHOP.as_bytes()),
            ("svc.yaml", SHOP_SERVICE.as_bytes()),
        ],
        "docs",
    )
    .expect("base tip");
    let relabelled = SHOP.replace("app: shop}", "app: shop-v2}").replace(
        "image: shop:1.0\n",
        "image: shop:1.0\n          securityContext: {privileged: true}\n",
    );
    let head = build::commit(
        &repo,
        Some("refs/heads/pr"),
        &[base],
        &[
            ("shop.yaml", relabelled.as_bytes()),
            ("svc.yaml", SHOP_SERVICE.as_bytes()),
            ("pod.yaml", BAD.as_bytes()),
            (
                "broken.yaml",
                b"apiVersion: v1\nkind: Pod\nmetadata: {name: x\n",
            ),
        ],
        "pr",
    )
    .expect("pr");
    let short = |oid: git2::Oid| oid.to_string()[..7].to_owned();
    let (code, text, stderr) = kubeward(dir.path(), &["review", "--base", "main", "--head", "pr"]);
    assert_eq!(code, Some(3), "{stderr}");
    assert_eq!(stderr, "", "no progress when stderr is not a terminal");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "Reviewing main ({}) → pr ({}), merge-base {}",
            short(base_tip),
            short(head),
            short(base)
        )
    );
    for expected in [
        // The Service's own place; the comment goes on the Deployment's changed labels.
        "svc.yaml:7 warning serviceSelectsNothing The Service selector matches no pod template in its namespace (Service/shop/shop) — said on the workload whose labels caused it: shop.yaml:12",
        "shop.yaml:17 danger runAsPrivileged Should not be running as privileged (Deployment/shop/shop, container web) — said inline on its own line, with a one-click fix",
        "broken.yaml:4 danger: the document is not valid YAML: while parsing a flow mapping, did not find expected ',' or '}' — said as a file comment",
    ] {
        assert!(lines.contains(&expected), "{expected}\nin:\n{text}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("pod.yaml:6 danger hostNetworkSet Host network should not be configured (Pod/p) — said inline on its own line")),
        "{text}"
    );
    for debug_name in [
        "Cause",
        "SameContainer",
        "SameObject",
        "OwnLine",
        "parseError",
    ] {
        assert!(!text.contains(debug_name), "{debug_name} in:\n{text}");
    }
    assert!(
        text.ends_with("already there in changed objects\n"),
        "{text}"
    );
}

/// `kubeward review | head -1`, `kubeward audit | head -1`: the reader reads one line and closes
/// the pipe; the command ends quietly with the exit status the whole output would have had.
#[test]
fn a_reader_that_stops_early_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    // Far more output than a pipe holds, so the command is still writing when the pipe closes.
    // One Pod a file: what reviews fastest.
    let pods: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("pods/p{i}.yaml"),
                BAD.replace("name: p", &format!("name: p{i}")),
            )
        })
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[("pod.yaml", GOOD.as_bytes())],
        "base",
    )
    .expect("base");
    let mut head: Vec<(&str, &[u8])> = vec![("pod.yaml", GOOD.as_bytes())];
    head.extend(pods.iter().map(|(p, t)| (p.as_str(), t.as_bytes())));
    build::commit(&repo, Some("refs/heads/pr"), &[base], &head, "pr").expect("pr");
    std::fs::create_dir(dir.path().join("pods")).expect("mkdir");
    for (path, text) in &pods {
        std::fs::write(dir.path().join(path), text).expect("write");
    }
    let review = ["review", "--base", "main", "--head", "pr"];
    let audit = ["audit", "pods"];
    for (args, first) in [(&review[..], "Reviewing main"), (&audit[..], "pods/p")] {
        let (code, whole, _) = kubeward(dir.path(), args);
        assert_eq!(code, Some(3));
        assert!(whole.len() > 256 * 1024, "{} bytes", whole.len());
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubeward"))
            .current_dir(dir.path())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        let mut line = String::new();
        {
            let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
            stdout.read_line(&mut line).expect("one line");
        } // The read end closes here, as `head -1` exits.
        let out = child.wait_with_output().expect("ends");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(line.starts_with(first), "{args:?}: {line}");
        assert_eq!(stderr, "", "{args:?}");
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
    }
}

/// SARIF result files, as a set.
fn sarif_files(sarif: &str) -> std::collections::BTreeSet<String> {
    let sarif: serde_json::Value = serde_json::from_str(sarif).expect("SARIF");
    sarif["runs"][0]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_review_and_an_audit_of_the_same_tree_judge_the_same_files() {
    let policy = b"ignorePaths: [\"vendor/**\"]\n".as_slice();
    let files: &[(&str, &[u8])] = &[
        ("app/pod.yaml", BAD.as_bytes()),
        ("app/nested/pod.yml", BAD.as_bytes()),
        (".github/pod.yaml", BAD.as_bytes()),
        ("app/.hidden/pod.yaml", BAD.as_bytes()),
        ("app/.pod.yaml", BAD.as_bytes()),
        ("vendor/pod.yaml", BAD.as_bytes()),
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = Repository::init(dir.path()).expect("init");
    let base = build::commit(
        &repo,
        Some("refs/heads/main"),
        &[],
        &[(".kubeward.yaml", policy)],
        "base",
    )
    .expect("base");
    let mut head_files = vec![(".kubeward.yaml", policy)];
    head_files.extend_from_slice(files);
    build::commit(&repo, Some("refs/heads/pr"), &[base], &head_files, "pr").expect("pr");
    // The same tree on disk, for the audit.
    for (path, bytes) in &head_files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    let (_, review, stderr) = kubeward(
        dir.path(),
        &[
            "review", "--base", "main", "--head", "pr", "--format", "sarif",
        ],
    );
    let (_, audit, _) = kubeward(dir.path(), &["audit", "--format", "sarif"]);
    let expected: std::collections::BTreeSet<String> = ["app/nested/pod.yml", "app/pod.yaml"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(sarif_files(&review), expected, "review: {review}{stderr}");
    assert_eq!(sarif_files(&audit), expected, "audit: {audit}");
}

//! The view store on real repositories: a review that takes unchanged files' inventory views
//! from the store says exactly what a review that parses everything says, parses only what no
//! earlier review parsed, and is never served a view another policy or engine made.

use git2::Oid;
use kubeward::git::Repository;
use kubeward::owners::Flavor;
use kubeward::pipeline::{ReviewOptions, Revisions, Timings, review};
use kubeward::review::ReviewPlan;
use kubeward::views::StoreSettings;

/// The review tests' repository, with a view store of its own.
struct Repo {
    repo: crate::review::Repo,
    store: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            repo: crate::review::Repo::new(),
            store: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn commit(&self, branch: &str, parents: &[Oid], files: &[(String, String)]) -> Oid {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        self.repo.commit(branch, parents, &files)
    }

    /// The review's plan as JSON (what the bot publishes from), and its timings.
    fn review(
        &self,
        base: &str,
        head: &str,
        stored: bool,
        config: Option<&std::path::Path>,
    ) -> (String, Timings) {
        let repo = Repository::open(self.repo.path()).expect("open");
        let revisions = Revisions::resolve(&repo, base, head).expect("revisions");
        let (plan, timings): (ReviewPlan, Timings) = review(
            &repo,
            &revisions,
            &ReviewOptions {
                forge: Flavor::GitHub,
                config_override: config,
                fail_on: None,
                budgets: Default::default(),
                render: None,
                progress: None,
                views: stored.then(|| StoreSettings {
                    dir: self.store.path().to_path_buf(),
                    max_bytes: 64 << 20,
                }),
            },
        )
        .expect("review");
        (
            serde_json::to_string_pretty(&plan).expect("a plan serializes"),
            timings,
        )
    }

    fn packs(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self.store.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("store folder").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "pack") {
                    count += 1;
                }
            }
        }
        count
    }
}

fn app(name: &str, ns: &str, label: &str, extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  \
         labels: {{team: shop}}\n  annotations: {{owner: shop@example.com}}\nspec:\n  \
         replicas: 2\n  selector:\n    matchLabels: {{app: {label}}}\n  template:\n    \
         metadata:\n      labels: {{app: {label}}}\n    spec:\n{extra}      containers:\n        \
         - name: {name}\n          image: registry.example.com/{name}:1.0\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  \
         selector: {{app: {label}}}\n  ports: [{{port: 80}}]\n"
    )
}

/// A repository of `n` applications, one file each, plus a ConfigMap per ten.
fn base_files(n: usize) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = (0..n)
        .map(|i| {
            let name = format!("app-{i}");
            (
                format!("teams/t{}/{name}.yaml", i % 7),
                app(&name, "shop", &name, ""),
            )
        })
        .collect();
    for i in (0..n).step_by(10) {
        files.push((
            format!("teams/t{}/config-{i}.yaml", i % 7),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: config-{i}, namespace: shop}}\n\
                 data:\n  settings: \"{}\"\n",
                "x".repeat(200)
            ),
        ));
    }
    files
}

fn with(files: &[(String, String)], changes: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = files
        .iter()
        .filter(|(p, _)| !changes.iter().any(|(q, _)| q == p))
        .cloned()
        .collect();
    out.extend(changes.iter().filter(|(_, c)| !c.is_empty()).cloned());
    out
}

#[test]
fn a_review_from_the_store_is_the_plan_of_a_review_that_parses_everything() {
    let repo = Repo::new();
    let mut files = base_files(40);
    files.push((
        "services/app-3-public.yaml".into(),
        "apiVersion: v1\nkind: Service\nmetadata: {name: app-3-public, namespace: shop}\n\
         spec:\n  selector: {app: app-3}\n  ports: [{port: 443}]\n"
            .into(),
    ));
    let base = repo.commit("main", &[], &files);
    // The change relabels app-3's pods (its Service in the same file and the public one in an
    // untouched file keep selecting the old label), renames app-5's file and adds a
    // privileged copy of app-6 at a second path.
    let mut head_files: Vec<(String, String)> = files
        .iter()
        .filter(|(p, _)| !p.ends_with("/app-5.yaml"))
        .cloned()
        .collect();
    for (path, text) in head_files.iter_mut() {
        if path.ends_with("/app-3.yaml") {
            *text = text.replace("labels: {app: app-3}", "labels: {app: app-3-v2}");
        }
    }
    let moved = files
        .iter()
        .find(|(p, _)| p.ends_with("/app-5.yaml"))
        .expect("app-5");
    head_files.push(("moved/app-5.yaml".into(), moved.1.clone()));
    head_files.push((
        "copies/app-6.yaml".into(),
        app("app-6", "shop", "app-6", "      hostNetwork: true\n"),
    ));
    repo.commit("change", &[base], &head_files);

    let (cold, cold_timings) = repo.review("main", "change", true, None);
    let (warm, warm_timings) = repo.review("main", "change", true, None);
    let (parsed, _) = repo.review("main", "change", false, None);
    assert!(cold.contains("hostNetworkSet"), "the copy's finding is new");
    assert!(
        cold.contains("services/app-3-public.yaml"),
        "the relabel breaks the untouched Service"
    );
    assert!(cold == parsed, "a cold store changes nothing");
    assert!(warm == parsed, "a warm store changes nothing");
    assert!(
        cold_timings.blobs_parsed > 40,
        "cold: {}",
        cold_timings.blobs_parsed
    );
    assert_eq!(
        warm_timings.blobs_parsed, 0,
        "everything was stored by the first review"
    );
    assert_eq!(repo.packs(), 1);
}

#[test]
fn a_push_that_changes_five_files_parses_five_blobs() {
    let repo = Repo::new();
    let files = base_files(200);
    let base = repo.commit("main", &[], &files);
    let touched: Vec<String> = files
        .iter()
        .map(|(p, _)| p.clone())
        .filter(|p| p.contains("/app-"))
        .step_by(37)
        .take(5)
        .collect();
    let push = |n: usize| -> Vec<(String, String)> {
        let changes: Vec<(String, String)> = touched
            .iter()
            .map(|p| {
                let name = p.rsplit('/').next().unwrap_or("").trim_end_matches(".yaml");
                let extra = format!("      priorityClassName: push-{n}\n");
                (p.clone(), app(name, "shop", name, &extra))
            })
            .collect();
        with(&files, &changes)
    };
    let first = repo.commit("change", &[base], &push(1));
    let (_, one) = repo.review("main", "change", true, None);
    assert!(
        one.blobs_parsed >= files.len(),
        "the first review parses everything"
    );
    repo.commit("change", &[first], &push(2));
    let (warm, two) = repo.review("main", "change", true, None);
    assert_eq!(
        two.blobs_parsed, 5,
        "the second push parses its five new blobs only"
    );
    let (parsed, _) = repo.review("main", "change", false, None);
    assert!(warm == parsed, "the plans differ");
}

#[test]
fn one_blob_at_two_paths_is_judged_by_each_path() {
    let repo = Repo::new();
    let privileged = app("web", "shop", "web", "      hostNetwork: true\n");
    let mut files = base_files(10);
    let policy = "exemptions:\n- rules: [hostNetworkSet]\n  paths: [\"legacy/**\"]\n  \
                  reason: the legacy network\n";
    files.push((".kubeward.yaml".into(), policy.into()));
    let base = repo.commit("main", &[], &files);
    // An earlier change stores the blob, whole.
    let first = with(&files, &[("apps/web.yaml".into(), privileged.clone())]);
    repo.commit("first", &[base], &first);
    repo.review("main", "first", true, None);

    // The same blob arrives at an exempted path and at one that is not.
    let both = with(
        &files,
        &[
            ("legacy/web.yaml".into(), privileged.clone()),
            ("copies/web.yaml".into(), privileged),
        ],
    );
    repo.commit("both", &[base], &both);
    let (stored, timings) = repo.review("main", "both", true, None);
    let (parsed, _) = repo.review("main", "both", false, None);
    assert!(stored == parsed, "the plans differ");
    assert_eq!(timings.blobs_parsed, 0, "the blob comes from the store");
    let plan: serde_json::Value = serde_json::from_str(&stored).expect("JSON");
    let new_at = |path: &str| {
        plan["newFindings"]
            .as_array()
            .expect("new findings")
            .iter()
            .any(|f| f["path"] == path && f["rule"] == "hostNetworkSet")
    };
    assert!(!new_at("legacy/web.yaml"), "exempted by its path");
    assert!(new_at("copies/web.yaml"), "not exempted there");
}

#[test]
fn a_policy_change_is_never_served_a_stale_view() {
    let repo = Repo::new();
    let files = base_files(30);
    let base = repo.commit("main", &[], &files);
    let changed = with(
        &files,
        &[(
            "teams/t1/app-1.yaml".into(),
            app("app-1", "shop", "other", ""),
        )],
    );
    repo.commit("change", &[base], &changed);
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("policy");
        path
    };
    let default = policy("default.yaml", "rules: {}\n");
    // Tight parse limits make every file over budget: their views are parse errors.
    let tight = policy("tight.yaml", "limits:\n  maxFileNodes: 20\n");
    // A severity says nothing of how files parse: the views stay good.
    let severity = policy("severity.yaml", "rules:\n  runAsRootAllowed: warning\n");
    let (first, _) = repo.review("main", "change", true, Some(&default));
    let (tight_stored, _) = repo.review("main", "change", true, Some(&tight));
    let (tight_parsed, _) = repo.review("main", "change", false, Some(&tight));
    assert!(first != tight_parsed, "the limits change the review");
    assert_eq!(
        tight_stored, tight_parsed,
        "not the views the default limits made"
    );
    assert_eq!(repo.packs(), 2, "one pack per view digest");
    let (severity_stored, timings) = repo.review("main", "change", true, Some(&severity));
    let (severity_parsed, _) = repo.review("main", "change", false, Some(&severity));
    assert!(severity_stored == severity_parsed, "the plans differ");
    assert!(severity_stored != first, "the severity shows in the plan");
    assert_eq!(
        timings.blobs_parsed, 0,
        "served from the default policy's pack"
    );
}

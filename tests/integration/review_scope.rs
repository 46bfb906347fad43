//! A review judges only the namespaces a change touched: objects elsewhere read the same
//! inventory on both sides, so the review neither judges nor keeps them. Each case here is
//! checked against a review that judges every object of both sides (no namespaces handed in,
//! each side parsed on its own), plan for plan, byte for byte, with and without
//! the view store; and each case says what the change did, so a review that missed it fails.

use std::collections::{BTreeMap, HashMap};

use kubeward::git::Repository;
use kubeward::manifest::ManifestFile;
use kubeward::owners::{CodeOwners, Flavor};
use kubeward::pipeline::{ReviewOptions, Revisions, Timings, read_policy, review};
use kubeward::review::{ReviewInput, ReviewPlan, plan_review};
use kubeward::views::StoreSettings;

fn options(store: Option<&std::path::Path>) -> ReviewOptions<'static> {
    ReviewOptions {
        forge: Flavor::GitHub,
        config_override: None,
        fail_on: None,
        budgets: Default::default(),
        render: None,
        progress: None,
        views: store.map(|dir| StoreSettings {
            dir: dir.to_path_buf(),
            max_bytes: 64 << 20,
        }),
    }
}

/// The plan of the review as the bot runs it, and its timings.
fn reviewed(repo: &crate::review::Repo, store: Option<&std::path::Path>) -> (String, Timings) {
    let git = Repository::open(repo.path()).expect("open");
    let revisions = Revisions::resolve(&git, "main", "change").expect("revisions");
    let (plan, timings) = review(&git, &revisions, &options(store)).expect("review");
    (json(&plan), timings)
}

/// The plan of a review that judges every object of both sides.
fn judged_whole(repo: &crate::review::Repo) -> String {
    let git = Repository::open(repo.path()).expect("open");
    let revisions = Revisions::resolve(&git, "main", "change").expect("revisions");
    let policy = read_policy(&git, &revisions, &options(None)).expect("policy");
    let changes = git
        .changes(revisions.merge_base, revisions.head, policy.max_file_size)
        .expect("changes");
    let text = |blob| String::from_utf8(git.blob(blob).expect("blob")).expect("UTF-8");
    // Each side parsed apart: no file of one side shares a parse with the other.
    let side = |commit| -> Vec<ManifestFile> {
        git.list_files(commit)
            .expect("files")
            .into_iter()
            .filter(|f| f.path.ends_with(".yaml"))
            .map(|f| ManifestFile::parse("", &text(f.blob), policy.yaml_limits).at_path(f.path))
            .collect()
    };
    let (base_files, head_files) = (side(revisions.merge_base), side(revisions.head));
    let head_texts: HashMap<String, String> = git
        .list_files(revisions.head)
        .expect("files")
        .into_iter()
        .filter(|f| changes.iter().any(|c| c.new_path.as_ref() == Some(&f.path)))
        .map(|f| (f.path.clone(), text(f.blob)))
        .collect();
    let input = ReviewInput {
        base_files: &base_files,
        head_files: &head_files,
        changes: &changes,
        head_texts: &head_texts,
        rendered_head: &[],
        rendered_head_exempted: &[],
        rendered_base: &[],
        render_closures: &BTreeMap::new(),
        render_hints: &Default::default(),
        not_reviewed: &[],
        policy: &policy,
        owners: &CodeOwners::empty(Flavor::GitHub),
        forge: Flavor::GitHub,
        base_sha: revisions.merge_base.to_string(),
        head_sha: revisions.head.to_string(),
        base_tip_sha: revisions.base_tip.to_string(),
        touched: None,
    };
    json(&plan_review(&input))
}

fn json(plan: &ReviewPlan) -> String {
    serde_json::to_string_pretty(plan).expect("a plan serializes")
}

fn app(name: &str, ns: Option<&str>, label: &str) -> String {
    let namespace = ns
        .map(|ns| format!("\n  namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}{namespace}\nspec:\n  \
         replicas: 2\n  selector:\n    matchLabels: {{app: {label}}}\n  template:\n    \
         metadata:\n      labels: {{app: {label}}}\n    spec:\n      containers:\n        \
         - name: {name}\n          image: registry.example.com/{name}:1.0\n"
    )
}

fn service(name: &str, ns: Option<&str>, selects: &str) -> String {
    let namespace = ns
        .map(|ns| format!(", namespace: {ns}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}{namespace}}}\nspec:\n  \
         selector: {{app: {selects}}}\n  ports: [{{port: 80}}]\n"
    )
}

const READER: &str = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\n\
    metadata: {name: reader}\nrules:\n- apiGroups: ['']\n  resources: [configmaps]\n  verbs: [get]\n";

/// Three team namespaces, objects with no namespace, a cluster-wide role bound in one
/// namespace, a custom resource, and a file holding two namespaces' objects.
fn base_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for ns in ["shop", "blog", "mail"] {
        for i in 0..3 {
            let name = format!("{ns}-{i}");
            files.push((format!("{ns}/{name}.yaml"), app(&name, Some(ns), &name)));
            files.push((
                format!("{ns}/{name}-service.yaml"),
                service(&name, Some(ns), &name),
            ));
        }
    }
    files.push(("tools/tools.yaml".into(), app("tools", None, "tools")));
    files.push((
        "tools/tools-service.yaml".into(),
        service("tools", None, "tools"),
    ));
    files.push(("cluster/reader.yaml".into(), READER.into()));
    files.push((
        "blog/reader-binding.yaml".into(),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
         metadata: {name: readers, namespace: blog}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}\n\
         subjects: [{kind: ServiceAccount, name: default, namespace: blog}]\n"
            .into(),
    ));
    files.push((
        "lab/widget.yaml".into(),
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: lab}\nspec: {}\n"
            .into(),
    ));
    // Read from any namespace: a role some binding names, and a CRD whose kind it scopes.
    files.push((
        "cluster/exec.yaml".into(),
        READER
            .replace("name: reader", "name: exec")
            .replace("[configmaps]", "[pods/exec]")
            .replace("[get]", "[get, create]"),
    ));
    // Selects nothing, which is no finding while a custom resource shares its namespace.
    files.push((
        "lab/orphan.yaml".into(),
        service("orphan", Some("lab"), "nobody"),
    ));
    files.push((
        "shared/frontends.yaml".into(),
        format!(
            "{}---\n{}",
            service("front", Some("shop"), "shop-0"),
            service("front", Some("mail"), "mail-0")
        ),
    ));
    files
}

fn with(files: &[(String, String)], changes: &[(&str, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = files
        .iter()
        .filter(|(p, _)| !changes.iter().any(|(q, _)| q == p))
        .cloned()
        .collect();
    out.extend(
        changes
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(p, c)| ((*p).to_owned(), c.clone())),
    );
    out
}

/// Reviews `changes` every way, asserts they agree, and returns the plan and how many files
/// the review left unjudged.
fn agreed(changes: &[(&str, String)]) -> (ReviewPlan, usize) {
    agreed_on(&base_files(), changes)
}

fn agreed_on(files: &[(String, String)], changes: &[(&str, String)]) -> (ReviewPlan, usize) {
    let repo = crate::review::Repo::new();
    let base = commit(&repo, "main", &[], files);
    commit(&repo, "change", &[base], &with(files, changes));
    let whole = judged_whole(&repo);
    let (scoped, timings) = reviewed(&repo, None);
    assert_eq!(scoped, whole, "the review judging touched namespaces only");
    let store = tempfile::tempdir().expect("temp dir");
    let (cold, _) = reviewed(&repo, Some(store.path()));
    let (warm, warm_timings) = reviewed(&repo, Some(store.path()));
    assert_eq!(cold, whole, "the review filling the view store");
    assert_eq!(warm, whole, "the review from the view store");
    assert_eq!(
        warm_timings.blobs_parsed, 0,
        "everything came from the store"
    );
    let plan: ReviewPlan = serde_json::from_str(&scoped).expect("a plan");
    (plan, timings.files_settled)
}

fn commit(
    repo: &crate::review::Repo,
    branch: &str,
    parents: &[git2::Oid],
    files: &[(String, String)],
) -> git2::Oid {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    repo.commit(branch, parents, &files)
}

fn new_on(plan: &ReviewPlan, rule: &str) -> Vec<String> {
    let mut paths: Vec<String> = plan
        .new_findings
        .iter()
        .filter(|f| f.finding.rule.as_str() == rule)
        .map(|f| f.finding.path.to_string())
        .collect();
    paths.sort();
    paths
}

#[test]
fn a_relabelled_workload_breaks_the_untouched_service_of_its_namespace_only() {
    let (plan, settled) = agreed(&[("shop/shop-1.yaml", app("shop-1", Some("shop"), "renamed"))]);
    assert_eq!(
        new_on(&plan, "serviceSelectsNothing"),
        ["shop/shop-1-service.yaml"]
    );
    // blog's, mail's and the no-namespace files are neither judged nor kept.
    assert!(settled >= 13, "{settled} files settled");
}

#[test]
fn a_cluster_role_change_reaches_a_binding_in_another_namespace() {
    let reader = READER
        .replace("[configmaps]", "[pods/exec]")
        .replace("[get]", "[get, create]");
    let (plan, settled) = agreed(&[("cluster/reader.yaml", reader)]);
    assert_eq!(
        new_on(&plan, "rolebindingClusterRolePodExecAttach"),
        ["blog/reader-binding.yaml"]
    );
    assert_eq!(settled, 0, "a ClusterRole may be read from any namespace");
}

#[test]
fn a_change_without_a_namespace_is_judged_with_the_objects_without_one() {
    let (plan, _) = agreed(&[("tools/tools.yaml", app("tools", None, "elsewhere"))]);
    assert_eq!(
        new_on(&plan, "serviceSelectsNothing"),
        ["tools/tools-service.yaml"]
    );
}

#[test]
fn a_crd_that_takes_a_kinds_namespace_away_is_judged_everywhere() {
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
        metadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  \
        names: {kind: Widget, plural: widgets}\n"
        .to_owned();
    let (plan, settled) = agreed(&[("crds/widget.yaml", crd)]);
    // The Widget left `lab` for no namespace at all: lab's Service now selects nothing.
    assert_eq!(new_on(&plan, "serviceSelectsNothing"), ["lab/orphan.yaml"]);
    assert_eq!(settled, 0);
}

#[test]
fn an_object_moved_between_files_and_a_file_of_two_namespaces_match_as_before() {
    // shop-2's Service moves into its Deployment's file; the shared file's mail Service now
    // selects nothing because mail-0 is relabelled.
    let moved = format!(
        "{}---\n{}",
        app("shop-2", Some("shop"), "shop-2"),
        service("shop-2", Some("shop"), "shop-2")
    );
    let (plan, _) = agreed(&[
        ("shop/shop-2.yaml", moved),
        ("shop/shop-2-service.yaml", String::new()),
        (
            "mail/mail-0.yaml",
            app("mail-0", Some("mail"), "relabelled"),
        ),
    ]);
    assert_eq!(
        new_on(&plan, "serviceSelectsNothing"),
        ["mail/mail-0-service.yaml", "shared/frontends.yaml"]
    );
    assert!(
        plan.fixed_findings.is_empty(),
        "the moved Service's findings moved with it: {:#?}",
        plan.fixed_findings
    );
}

#[test]
fn an_untouched_cluster_role_and_crd_are_read_for_the_namespace_a_change_touched() {
    let binding = "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
        metadata: {name: exec, namespace: shop}\n\
        roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: exec}\n\
        subjects: [{kind: ServiceAccount, name: default, namespace: shop}]\n"
        .to_owned();
    // A kind its CRD makes cluster-scoped: the Gadget is in no namespace, not `depot`.
    let mut files = base_files();
    files.push((
        "crds/gadget.yaml".into(),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata: {name: gadgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  \
         names: {kind: Gadget, plural: gadgets}\n"
            .into(),
    ));
    files.push((
        "depot/gadget.yaml".into(),
        "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: depot}\n".into(),
    ));
    let (plan, _) = agreed_on(
        &files,
        &[
            ("shop/exec-binding.yaml", binding),
            // The Gadget is a custom resource of no namespace: this one may select its pods.
            ("tools/orphan.yaml", service("orphan", None, "nobody")),
        ],
    );
    assert_eq!(
        new_on(&plan, "rolebindingClusterRolePodExecAttach"),
        ["shop/exec-binding.yaml"]
    );
    // `depot`, untouched, holds the Gadget's file: kept all the same, as its CRD moves it.
    assert!(new_on(&plan, "serviceSelectsNothing").is_empty());
}

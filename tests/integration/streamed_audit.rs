//! An audit that judges each file as it is parsed and keeps only its inventory view
//! (`Judging`) must give exactly what the whole-tree audit gives: every finding, exemption and
//! statistic, on every fixture we have, under every rule.

use std::path::{Path, PathBuf};

use kubeward::audit::{AuditResult, JudgeAgain, Judging, Registry, audit_without_fixes};
use kubeward::config::{ConfigFile, Policy};
use kubeward::manifest::ManifestFile;
use kubeward::yaml::Limits;
use rayon::prelude::*;

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every fixture of the repository that is a manifest as it stands (not chart templates).
fn fixture_files() -> Vec<ManifestFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in ["tests/rules", "tests/conformance", "deploy/kubernetes"] {
        yaml_files(&root.join(dir), &mut paths);
    }
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("fixture is text");
            let name = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            ManifestFile::parse(name, &text, Limits::default())
        })
        .collect()
}

/// The result as the reports show it, fixes left out (neither audit builds them).
fn shown(result: &AuditResult) -> String {
    let findings = serde_json::to_string_pretty(&result.findings).expect("serializable");
    let exempted = serde_json::to_string_pretty(&result.exempted).expect("serializable");
    let stats = serde_json::to_string_pretty(&result.stats).expect("serializable");
    format!("{findings}\n{exempted}\n{stats}")
}

/// Files judged from several threads at once, as the CLI's parallel load does.
fn streamed(files: &[ManifestFile], policy: &Policy) -> Result<AuditResult, JudgeAgain> {
    let judging = Judging::new(policy);
    let views: Vec<ManifestFile> = files
        .par_iter()
        .map(|f| judging.file(f.at_path(f.path.clone())))
        .collect();
    judging.finish(&views)
}

fn assert_same(files: &[ManifestFile], policy: &Policy, what: &str) {
    let whole = audit_without_fixes(files, policy);
    let judged = streamed(files, policy).expect("no CRD here takes a namespace away");
    assert!(
        shown(&whole) == shown(&judged),
        "{what}: the streamed audit differs from the whole-tree audit\n{}",
        first_difference(&shown(&whole), &shown(&judged))
    );
}

fn first_difference(a: &str, b: &str) -> String {
    let line = a
        .lines()
        .zip(b.lines())
        .position(|(x, y)| x != y)
        .unwrap_or(a.lines().count().min(b.lines().count()));
    let around = |s: &str| {
        s.lines()
            .skip(line.saturating_sub(8))
            .take(16)
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "whole, around line {line}:\n{}\nstreamed:\n{}",
        around(a),
        around(b)
    )
}

#[test]
fn the_streamed_audit_matches_the_whole_tree_audit_on_every_fixture() {
    let registry = Registry::builtin().expect("built-in rules");
    let files = fixture_files();
    assert!(files.len() > 200, "fixtures found: {}", files.len());
    let every_rule: Vec<String> = registry.ids().map(str::to_owned).collect();
    let all_on = Policy::build(&registry, None, Some(&every_rule)).expect("policy");
    let defaults = Policy::defaults(&registry);
    // All at once: cross-object rules see objects of many fixtures together.
    assert_same(&files, &defaults, "all fixtures, default rules");
    assert_same(&files, &all_on, "all fixtures, every rule");
    let whole = audit_without_fixes(&files, &all_on);
    let cross_object = [
        "missingNetworkPolicy",
        "serviceSelectsNothing",
        "hpaTargetMissing",
    ];
    for rule in cross_object {
        assert!(
            whole.findings.iter().any(|f| f.rule == rule),
            "the fixtures exercise {rule}"
        );
    }
    // Folder by folder: what a rule's own fixtures see together.
    let mut by_folder: std::collections::BTreeMap<String, Vec<ManifestFile>> = Default::default();
    for f in &files {
        let folder = f.path.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        by_folder
            .entry(folder)
            .or_default()
            .push(f.at_path(f.path.clone()));
    }
    for (folder, files) in &by_folder {
        assert_same(files, &all_on, folder);
    }
}

#[test]
fn exemptions_and_namespaces_judge_alike_in_both_audits() {
    let registry = Registry::builtin().expect("built-in rules");
    let config = ConfigFile::parse(
        "kubeward.yaml",
        "exemptions:\n  - rules: [missingNetworkPolicy]\n    namespaces: [shop]\n\
         \x20   reason: the mesh isolates shop\n  - rules: [runAsRootAllowed]\n\
         \x20   paths: [\"legacy/**\"]\n    reason: old images\n",
    )
    .expect("config");
    let policy = Policy::build(&registry, Some(&config), None).expect("policy");
    let deployment = |name: &str, ns: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: {ns}, \
             annotations: {{kubeward.io/cpuLimitsMissing-exempt: \"batch\"}}}}\nspec:\n  \
             selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: \
             {{app: {name}}}}}\n    spec:\n      serviceAccountName: {name}\n      \
             containers:\n        - name: {name}\n          image: {name}:1.0\n"
        )
    };
    let files: Vec<ManifestFile> = [
        ("apps/web.yaml", deployment("web", "shop")),
        ("legacy/web.yaml", deployment("web", "shop")),
        ("apps/api.yaml", deployment("api", "prod")),
        (
            "apps/api-sa.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: api, namespace: prod}\n\
             automountServiceAccountToken: false\n"
                .to_owned(),
        ),
        (
            "apps/list.yaml",
            format!(
                "apiVersion: v1\nkind: List\nitems:\n{}",
                deployment("listed", "prod")
                    .lines()
                    .enumerate()
                    .map(|(i, l)| match i {
                        0 => format!("  - {l}\n"),
                        _ => format!("    {l}\n"),
                    })
                    .collect::<String>()
            ),
        ),
    ]
    .iter()
    .map(|(path, text)| ManifestFile::parse(*path, text, Limits::default()))
    .collect();
    let whole = audit_without_fixes(&files, &policy);
    assert!(
        whole
            .exempted
            .iter()
            .any(|f| f.rule == "missingNetworkPolicy"),
        "the namespace exemption applies"
    );
    assert!(
        whole
            .findings
            .iter()
            .any(|f| f.rule == "automountServiceAccountToken" && f.path == "apps/web.yaml"),
        "web's token is mounted"
    );
    assert!(
        !whole
            .findings
            .iter()
            .any(|f| f.rule == "automountServiceAccountToken" && f.path == "apps/api.yaml"),
        "api's ServiceAccount turns the token off"
    );
    assert_same(&files, &policy, "exemptions");
}

#[test]
fn a_crd_that_makes_a_kind_cluster_scoped_has_the_files_judged_again() {
    let registry = Registry::builtin().expect("built-in rules");
    let policy = Policy::defaults(&registry);
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
               metadata: {name: gates.example.com}\nspec:\n  group: example.com\n  \
               scope: Cluster\n  names: {kind: Gate, plural: gates}\n  versions: []\n";
    let gate = "apiVersion: example.com/v1\nkind: Gate\nmetadata: {name: g, namespace: shop}\n";
    let files = [
        ManifestFile::parse("crd.yaml", crd, Limits::default()),
        ManifestFile::parse("gate.yaml", gate, Limits::default()),
    ];
    assert_eq!(streamed(&files, &policy).err(), Some(JudgeAgain));
    // Without the CRD nothing takes the namespace away: judged in one pass.
    assert!(streamed(&files[1..], &policy).is_ok());
    // Files kept whole (stdin's) are judged again on the spot, as the whole-tree audit judges.
    let judging = Judging::keeping_trees(&policy);
    let whole: Vec<ManifestFile> = files
        .iter()
        .map(|f| judging.file(f.at_path(f.path.clone())))
        .collect();
    let again = judging.finish(&whole).expect("judged again");
    assert_eq!(shown(&again), shown(&audit_without_fixes(&files, &policy)));
    assert!(
        again
            .findings
            .iter()
            .filter_map(|f| f.object.as_deref())
            .filter(|o| o.kind == "Gate")
            .all(|o| o.namespace.is_empty()),
        "the CRD's scope applies"
    );
}

#[test]
fn the_inventory_view_keeps_what_cross_object_rules_read_and_drops_the_rest() {
    let registry = Registry::builtin().expect("built-in rules");
    let policy = Policy::defaults(&registry);
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  \
                selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: \
                {app: web}}\n    spec:\n      containers:\n        - name: web\n          \
                image: web:1.0\n          env: [{name: A, value: \"1\"}]\n---\n\
                apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  blob: \
                \"0123456789\"\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
                spec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
    let file = ManifestFile::parse("all.yaml", text, Limits::default());
    let view = Judging::new(&policy).file(file);
    let docs = view.content.as_ref().expect("parsed");
    let json: Vec<serde_json::Value> = docs
        .iter()
        .map(|d| d.root.as_ref().expect("valid").to_json())
        .collect();
    assert_eq!(
        json[0]["spec"]["template"]["spec"]["containers"],
        serde_json::json!([]),
        "containers are per-object business"
    );
    assert_eq!(json[0]["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        json[0]["spec"]["template"]["metadata"]["labels"]["app"],
        "web"
    );
    assert!(
        json[1].get("data").is_none(),
        "a ConfigMap's data is dropped"
    );
    assert_eq!(json[1]["metadata"]["name"], "big");
    assert_eq!(
        json[2]["spec"]["ports"][0]["port"], 80,
        "a Service is kept whole"
    );
}

#[test]
fn a_file_left_out_after_judging_leaves_no_finding() {
    // What a rendered overlay read is judged through the overlay: the raw file is dropped after
    // it was judged, and so are its findings.
    let registry = Registry::builtin().expect("built-in rules");
    let policy = Policy::defaults(&registry);
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  hostNetwork: true\n  \
             containers: [{{name: c, image: i}}]\n"
        )
    };
    let judging = Judging::new(&policy);
    let kept = judging.file(ManifestFile::parse(
        "kept.yaml",
        &pod("a"),
        Limits::default(),
    ));
    let _read_by_overlay = judging.file(ManifestFile::parse(
        "base/pod.yaml",
        &pod("b"),
        Limits::default(),
    ));
    let result = judging.finish(&[kept]).expect("judged");
    assert!(result.findings.iter().any(|f| f.path == "kept.yaml"));
    assert!(
        result.findings.iter().all(|f| f.path == "kept.yaml"),
        "nothing of the file left out"
    );
    assert_eq!(result.stats.files, 1);
}

#[test]
fn malformed_names_and_accounts_read_the_same_through_views() {
    // A map where a scalar belongs: the whole tree reads no name (or the default account),
    // and so must the view.
    let registry = Registry::builtin().expect("built-in rules");
    let policy = Policy::defaults(&registry);
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {odd: true}\n  \
                generateName: web-\n  namespace: shop\nspec:\n  selector: {matchLabels: {app: w}}\n  \
                template:\n    metadata: {labels: {app: w}}\n    spec:\n      \
                serviceAccountName: {odd: true}\n      serviceAccount: locked\n      \
                automountServiceAccountToken: []\n      containers: [{name: c, image: i}]\n---\n\
                apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: locked, namespace: shop}\n\
                automountServiceAccountToken: false\n";
    let files = [ManifestFile::parse("odd.yaml", text, Limits::default())];
    assert_same(&files, &policy, "malformed scalars");
}

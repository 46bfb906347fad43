//! An object keeps its identity when Kubernetes says it is the same object: API group moves,
//! a namespace on a cluster-scoped kind, list items keyed by what they are, renamed broken
//! files. Each case is a real change in a git repository; none may report an old problem as
//! new.

use std::collections::HashSet;

use kubeward::review::{ReviewPlan, strip_list_keys};

use crate::review::Repo;

fn new_of(plan: &ReviewPlan) -> Vec<(String, String)> {
    plan.new_findings
        .iter()
        .map(|f| (f.finding.rule.to_string(), f.finding.path.to_string()))
        .collect()
}

fn fixed_of(plan: &ReviewPlan) -> Vec<String> {
    plan.fixed_findings
        .iter()
        .map(|f| f.finding.rule.to_string())
        .collect()
}

/// What no finding may be in one review: new and fixed at once.
fn assert_never_new_and_fixed(plan: &ReviewPlan, case: &str) {
    let key = |f: &kubeward::review::PlannedFinding| {
        let o = f.finding.object.as_deref();
        (
            f.finding.rule.clone(),
            o.map(|o| o.kind.clone()),
            o.map(|o| o.name.clone()),
            f.finding.container.clone(),
            strip_list_keys(&f.finding.field_path),
        )
    };
    let fixed: HashSet<_> = plan.fixed_findings.iter().map(key).collect();
    for f in &plan.new_findings {
        assert!(
            !fixed.contains(&key(f)),
            "{case}: {} is both new and fixed: {:#?}",
            f.finding.rule,
            (&plan.new_findings, &plan.fixed_findings)
        );
    }
}

const OLD_APIS: &str = r#"apiVersion: extensions/v1beta1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: web:1.0
          securityContext: {privileged: true}
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  backend:
    serviceName: web-missing
    servicePort: 80
---
apiVersion: batch/v1beta1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {name: job, image: "job:1", securityContext: {privileged: true}}
---
apiVersion: rbac.authorization.k8s.io/v1beta1
kind: ClusterRole
metadata: {name: ops}
rules:
  - {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
---
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  maxUnavailable: 0
  selector: {matchLabels: {app: web}}
"#;

/// The same objects after the migration a real repository does when Kubernetes removes the
/// old APIs.
const NEW_APIS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: app
          image: web:1.0
          securityContext: {privileged: true}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  defaultBackend:
    service:
      name: web-missing
      port: {number: 80}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - {name: job, image: "job:1", securityContext: {privileged: true}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ops}
rules:
  - {apiGroups: ["*"], resources: ["*"], verbs: ["*"]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  maxUnavailable: 0
  selector: {matchLabels: {app: web}}
"#;

#[test]
fn api_group_moves_of_one_kind_are_one_object() {
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[("k8s/app.yaml", OLD_APIS)]);
    repo.commit("pr", &[base], &[("k8s/app.yaml", NEW_APIS)]);
    let plan = repo.review("main", "pr");
    assert_eq!(
        new_of(&plan),
        vec![],
        "nothing new: {:#?}",
        plan.new_findings
    );
    // What both sides have stays pre-existing; only the removed APIs are fixed.
    let fixed: HashSet<String> = fixed_of(&plan).into_iter().collect();
    assert_eq!(fixed, HashSet::from(["deprecatedApiVersion".to_owned()]));
    let old: Vec<&str> = plan
        .pre_existing_findings
        .iter()
        .map(|f| f.finding.rule.as_str())
        .collect();
    for rule in [
        "runAsPrivileged",
        "ingressBackendMissing",
        "rbacWildcard",
        "pdbDisruptionsIsZero",
    ] {
        assert!(old.contains(&rule), "{rule} pre-existing: {old:?}");
    }
    assert_never_new_and_fixed(&plan, "migration");
}

/// Custom resources keep their group: two CRDs may share a kind.
#[test]
fn custom_resources_of_one_kind_in_two_groups_are_two_objects() {
    let object = |group: &str| kubeward::audit::ObjectRef {
        api_version: format!("{group}/v1"),
        kind: "Certificate".into(),
        namespace: "shop".into(),
        name: "web".into(),
    };
    let fp = |o: &kubeward::audit::ObjectRef| kubeward::audit::fingerprint("x", Some(o), None, "");
    assert_ne!(
        fp(&object("cert-manager.io")),
        fp(&object("acme.example.com"))
    );
    assert_eq!(
        fp(&kubeward::audit::ObjectRef {
            api_version: "extensions/v1beta1".into(),
            kind: "Deployment".into(),
            ..object("x")
        }),
        fp(&kubeward::audit::ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            ..object("x")
        })
    );
}

#[test]
fn a_namespace_on_a_cluster_scoped_kind_changes_nothing() {
    let role = |namespace: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: ops\n{namespace}rules:\n  - {{apiGroups: [\"*\"], resources: [\"*\"], verbs: [\"*\"]}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n{namespace}"
        )
    };
    for (before, after) in [
        ("", "  namespace: default\n"),
        ("  namespace: kube-system\n", ""),
    ] {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("rbac.yaml", &role(before))]);
        repo.commit("pr", &[base], &[("rbac.yaml", &role(after))]);
        let plan = repo.review("main", "pr");
        assert_eq!(new_of(&plan), vec![], "{before:?} → {after:?}");
        assert_eq!(
            fixed_of(&plan),
            Vec::<String>::new(),
            "{before:?} → {after:?}"
        );
    }
}

const ROLE: &str = r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: app, namespace: shop}
rules:
  - {apiGroups: [""], resources: ["configmaps"], verbs: ["get"]}
  - {apiGroups: [""], resources: ["secrets"], verbs: ["get", "list"]}
  - {apiGroups: ["apps"], resources: ["*"], verbs: ["get"]}
"#;

/// Deleting an unrelated earlier rule moves the later ones up: their findings are the same.
/// A rule that gains a verb changes its key, and is still the same problem.
#[test]
fn rbac_rules_are_keyed_by_what_they_grant() {
    let without_first = ROLE.replace(
        "  - {apiGroups: [\"\"], resources: [\"configmaps\"], verbs: [\"get\"]}\n",
        "",
    );
    let more_verbs = ROLE.replace(
        "verbs: [\"get\", \"list\"]",
        "verbs: [\"list\", \"get\", \"watch\"]",
    );
    for (case, head) in [
        ("earlier rule deleted", without_first),
        ("a verb added", more_verbs),
    ] {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("role.yaml", ROLE)]);
        repo.commit("pr", &[base], &[("role.yaml", &head)]);
        let plan = repo.review("main", "pr");
        assert_eq!(new_of(&plan), vec![], "{case}: {:#?}", plan.new_findings);
        assert_eq!(fixed_of(&plan), Vec::<String>::new(), "{case}");
        assert!(
            plan.pre_existing_findings
                .iter()
                .any(|f| f.finding.rule == "rbacSecretsAccess"),
            "{case}: the secrets rule is an old problem of a changed object"
        );
    }
    // A rule's key says what it grants, sorted.
    let plan = {
        let repo = Repo::new();
        let base = repo.commit("main", &[], &[("README", "x\n")]);
        repo.commit("pr", &[base], &[("role.yaml", ROLE)]);
        repo.review("main", "pr")
    };
    assert!(
        plan.new_findings.iter().any(|f| f.finding.field_path
            == "rules[apiGroups=;resources=secrets;verbs=get,list].resources[=secrets]"
            || f.finding
                .field_path
                .starts_with("rules[apiGroups=;resources=secrets;verbs=get,list]")),
        "{:#?}",
        plan.new_findings
            .iter()
            .map(|f| &f.finding.field_path)
            .collect::<Vec<_>>()
    );
}

const BROKEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n";

/// A broken file the change only renamed, or did not touch, is an old problem.
#[test]
fn a_parse_error_in_a_renamed_or_untouched_file_is_pre_existing() {
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            ("old/broken.yaml", BROKEN),
            (
                "other.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
            ),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            ("new/broken.yaml", BROKEN),
            (
                "other.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
            ),
        ],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(new_of(&plan), vec![], "{:#?}", plan.new_findings);
    assert_eq!(fixed_of(&plan), Vec::<String>::new());
}

/// Every rule's failing fixture, committed and then changed as real repositories change
/// manifests — an unrelated document prepended, every list reversed — never has a finding that
/// is new and fixed at once.
#[test]
fn no_finding_is_both_new_and_fixed_over_every_rule() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rules");
    let mut rules = 0;
    for rule in std::fs::read_dir(&root).expect("tests/rules") {
        let rule = rule.expect("entry").path();
        for fixture in std::fs::read_dir(&rule).expect("rule folder") {
            let fixture = fixture.expect("entry").path();
            let name = fixture.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with("fail") {
                continue;
            }
            let text = std::fs::read_to_string(&fixture).expect("fixture");
            let Some(reversed) = reverse_lists(&text) else {
                continue;
            };
            let head = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: unrelated, namespace: other}}\n---\n{reversed}"
            );
            let repo = Repo::new();
            let base = repo.commit("main", &[], &[("m.yaml", &text)]);
            repo.commit("pr", &[base], &[("m.yaml", &head)]);
            let plan = repo.review("main", "pr");
            assert_never_new_and_fixed(&plan, &fixture.display().to_string());
            rules += 1;
        }
    }
    assert!(rules >= 60, "every rule's fixtures ran: {rules}");
}

/// The YAML with every block sequence's items in reverse order (as JSON-compatible YAML:
/// one document per object), or `None` when it does not parse.
fn reverse_lists(text: &str) -> Option<String> {
    let docs = kubeward::yaml::parse_stream(text, kubeward::yaml::Limits::default());
    let mut out = Vec::new();
    for doc in docs {
        let root = doc.root.ok()?;
        let mut json = root.to_json();
        reverse(&mut json);
        out.push(serde_json::to_string(&json).ok()?);
    }
    Some(out.join("\n---\n"))
}

fn reverse(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => {
            items.reverse();
            items.iter_mut().for_each(reverse);
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(reverse),
        _ => {}
    }
}

fn web(extra: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers:\n        - name: app\n          image: web:1.0\n{extra}"
    )
}

/// The same Deployment in two overlays is two places: a problem the change gives both copies
/// is said once in each file, each comment with its own fingerprint; a copy that keeps an old
/// problem does not hide the other copy's new one.
#[test]
fn an_object_in_two_files_is_judged_in_each_file() {
    let privileged = "          securityContext: {privileged: true}\n";
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            ("overlays/prod/web.yaml", &web(privileged)),
            ("overlays/staging/web.yaml", &web("")),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            ("overlays/prod/web.yaml", &web(privileged)),
            ("overlays/staging/web.yaml", &web(privileged)),
        ],
    );
    let plan = repo.review("main", "pr");
    let new: Vec<(String, String)> = new_of(&plan)
        .into_iter()
        .filter(|(rule, _)| rule == "runAsPrivileged")
        .collect();
    assert_eq!(
        new,
        [(
            "runAsPrivileged".to_owned(),
            "overlays/staging/web.yaml".to_owned()
        )],
        "the staging copy's problem is new although prod has had it"
    );

    // Both copies changed: one comment per file, fingerprints apart.
    let repo = Repo::new();
    let base = repo.commit(
        "main",
        &[],
        &[
            ("overlays/prod/web.yaml", &web("")),
            ("overlays/staging/web.yaml", &web("")),
        ],
    );
    repo.commit(
        "pr",
        &[base],
        &[
            ("overlays/prod/web.yaml", &web(privileged)),
            ("overlays/staging/web.yaml", &web(privileged)),
        ],
    );
    let plan = repo.review("main", "pr");
    let commented: Vec<(&str, &Vec<String>)> = plan
        .inline_comments
        .iter()
        .filter(|c| c.body.contains("runAsPrivileged"))
        .map(|c| (c.path.as_str(), &c.fingerprints))
        .collect();
    assert_eq!(commented.len(), 2, "{commented:#?}");
    assert_ne!(commented[0].0, commented[1].0);
    let all: Vec<&String> = plan
        .inline_comments
        .iter()
        .flat_map(|c| &c.fingerprints)
        .collect();
    let unique: HashSet<&&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        unique.len(),
        "no fingerprint on two comments: {all:?}"
    );
    assert_never_new_and_fixed(&plan, "two overlays");

    // Unique on each side: moving it between files changes nothing.
    let repo = Repo::new();
    let base = repo.commit("main", &[], &[("apps/web.yaml", &web(privileged))]);
    repo.commit(
        "pr",
        &[base],
        &[(
            "k8s/shop/web.yaml",
            &format!("# moved\n{}", web(privileged)),
        )],
    );
    let plan = repo.review("main", "pr");
    assert_eq!(new_of(&plan), vec![], "{:#?}", plan.new_findings);
    assert_eq!(fixed_of(&plan), Vec::<String>::new());
}

//! A history of real-looking changes to one repository — renames, API migrations, namespace
//! clean-ups, RBAC edits, copies into overlays, reformatting, moves — each reviewed as
//! `kubeward review --base C^ --head C` would, against new findings written down by hand
//! before the run. An old problem re-reported as new, or a new one missed, fails it.

use std::collections::BTreeSet;

use crate::review::Repo;

/// The platform team's policy: the checks this history exercises.
const POLICY: &str = "checks:
  runAsPrivileged: danger
  hostNetworkSet: danger
  livenessProbeMissing: warning
  tagNotSpecified: danger
  rbacSecretsAccess: warning
  rbacWildcard: danger
  ingressBackendMissing: danger
  serviceSelectsNothing: danger
";

fn deployment(extra_pod: &str, container_extra: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
{extra_pod}      containers:
        - name: web
          image: {image}
          ports:
            - {{name: http, containerPort: 8080}}
          readinessProbe:
            httpGet: {{path: /ready, port: http}}
{container_extra}"
    )
}

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: shop
spec:
  selector: {app: shop}
  ports:
    - {port: 80, targetPort: http}
";

const ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: shop
  namespace: shop
rules:
  - apiGroups: [\"\"]
    resources: [configmaps]
    verbs: [get]
  - apiGroups: [\"\"]
    resources: [secrets]
    verbs: [get, list]
";

const CLUSTER_ROLE: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: shop-reader
  namespace: default
rules:
  - apiGroups: [\"*\"]
    resources: [\"*\"]
    verbs: [get]
";

fn ingress_v1beta1(service: &str) -> String {
    format!(
        "apiVersion: extensions/v1beta1
kind: Ingress
metadata:
  name: shop
  namespace: shop
spec:
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /
            backend:
              serviceName: {service}
              servicePort: 80
"
    )
}

fn ingress_v1(service: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
  namespace: shop
spec:
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: {service}
                port: {{number: 80}}
"
    )
}

/// One change of the history: the whole tree after it, and the new findings it introduced as
/// (rule, kind/name, path), written by hand.
struct Step {
    what: &'static str,
    files: Vec<(&'static str, String)>,
    expected_new: Vec<(&'static str, &'static str, &'static str)>,
}

#[test]
fn a_history_of_real_changes_reports_exactly_what_each_introduced() {
    let base_deploy = deployment("", "", "shop:1.4.2");
    let tree: Vec<(&'static str, String)> = vec![
        (".kubeward.yaml", POLICY.to_owned()),
        ("apps/shop/deployment.yaml", base_deploy.clone()),
        ("apps/shop/service.yaml", SERVICE.to_owned()),
        ("rbac/role.yaml", ROLE.to_owned()),
        ("cluster/reader.yaml", CLUSTER_ROLE.to_owned()),
        ("legacy/ingress.yaml", ingress_v1beta1("shop")),
        ("overlays/prod/deployment.yaml", base_deploy.clone()),
    ];
    // Old problems the base already has, never to be reported as new by a change that keeps
    // them: both Deployments lack a liveness probe; the Role reads secrets; the ClusterRole
    // uses wildcards.
    let set = |tree: &mut Vec<(&'static str, String)>, path: &'static str, text: String| {
        tree.retain(|(p, _)| *p != path);
        tree.push((path, text));
    };
    let remove = |tree: &mut Vec<(&'static str, String)>, path: &str| {
        tree.retain(|(p, _)| *p != path);
    };
    let mut steps = Vec::new();

    let mut t = tree.clone();
    remove(&mut t, "apps/shop/deployment.yaml");
    set(&mut t, "apps/shop/deploy.yaml", base_deploy.clone());
    steps.push(Step {
        what: "rename a manifest",
        files: t.clone(),
        expected_new: vec![],
    });

    set(&mut t, "legacy/ingress.yaml", ingress_v1("shop"));
    steps.push(Step {
        what: "migrate the Ingress to networking.k8s.io/v1",
        files: t.clone(),
        expected_new: vec![],
    });

    set(
        &mut t,
        "cluster/reader.yaml",
        CLUSTER_ROLE.replace("  namespace: default\n", ""),
    );
    steps.push(Step {
        what: "drop the namespace a ClusterRole never had",
        files: t.clone(),
        expected_new: vec![],
    });

    let role_without_first = ROLE.replace(
        "  - apiGroups: [\"\"]\n    resources: [configmaps]\n    verbs: [get]\n",
        "",
    );
    set(&mut t, "rbac/role.yaml", role_without_first.clone());
    steps.push(Step {
        what: "delete an unrelated earlier RBAC rule",
        files: t.clone(),
        expected_new: vec![],
    });

    let role_more_verbs =
        role_without_first.replace("verbs: [get, list]", "verbs: [get, list, watch]");
    set(&mut t, "rbac/role.yaml", role_more_verbs.clone());
    steps.push(Step {
        what: "a verb more on the secrets rule",
        files: t.clone(),
        expected_new: vec![],
    });

    set(
        &mut t,
        "overlays/staging/deployment.yaml",
        deployment(
            "",
            "          securityContext: {privileged: true}\n",
            "shop:1.4.2",
        ),
    );
    steps.push(Step {
        what: "copy the Deployment into a staging overlay, privileged",
        files: t.clone(),
        expected_new: vec![
            (
                "runAsPrivileged",
                "Deployment/shop",
                "overlays/staging/deployment.yaml",
            ),
            (
                "livenessProbeMissing",
                "Deployment/shop",
                "overlays/staging/deployment.yaml",
            ),
        ],
    });

    set(
        &mut t,
        "overlays/prod/deployment.yaml",
        deployment("      hostNetwork: true\n", "", "shop:1.4.2"),
    );
    steps.push(Step {
        what: "prod's copy gets the host network",
        files: t.clone(),
        expected_new: vec![(
            "hostNetworkSet",
            "Deployment/shop",
            "overlays/prod/deployment.yaml",
        )],
    });

    // The same Deployment, reformatted: keys reordered, block style, a comment.
    let reformatted = "# The shop's web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  namespace: shop
  name: shop
spec:
  template:
    spec:
      containers:
        - image: shop:1.4.2
          name: web
          readinessProbe:
            httpGet:
              port: http
              path: /ready
          ports:
            - containerPort: 8080
              name: http
    metadata:
      labels:
        app: shop
  selector:
    matchLabels:
      app: shop
  replicas: 2
";
    set(&mut t, "apps/shop/deploy.yaml", reformatted.to_owned());
    steps.push(Step {
        what: "reformat a manifest",
        files: t.clone(),
        expected_new: vec![],
    });

    set(&mut t, "legacy/ingress.yaml", ingress_v1("shop-web"));
    steps.push(Step {
        what: "point the Ingress at a Service nobody defines",
        files: t.clone(),
        expected_new: vec![(
            "ingressBackendMissing",
            "Ingress/shop",
            "legacy/ingress.yaml",
        )],
    });

    set(
        &mut t,
        "apps/shop/service.yaml",
        SERVICE.replace("selector: {app: shop}", "selector: {app: shop-v2}"),
    );
    steps.push(Step {
        what: "a Service selector that matches no workload",
        files: t.clone(),
        expected_new: vec![(
            "serviceSelectsNothing",
            "Service/shop",
            "apps/shop/service.yaml",
        )],
    });

    set(
        &mut t,
        "apps/shop/deploy.yaml",
        reformatted.replace("image: shop:1.4.2", "image: shop"),
    );
    steps.push(Step {
        what: "an image without a tag",
        files: t.clone(),
        expected_new: vec![(
            "tagNotSpecified",
            "Deployment/shop",
            "apps/shop/deploy.yaml",
        )],
    });

    remove(&mut t, "rbac/role.yaml");
    set(
        &mut t,
        "rbac/roles/shop.yaml",
        format!(
            "# Moved with the other roles.\n{}  - apiGroups: [apps]\n    resources: [deployments]\n    verbs: [get]\n",
            role_more_verbs
        ),
    );
    steps.push(Step {
        what: "move the Role to another folder and grant one more read",
        files: t.clone(),
        expected_new: vec![],
    });

    // Commit the base, then each step on top of the previous one.
    let repo = Repo::new();
    let as_refs =
        |files: &[(&'static str, String)]| -> Vec<(&'static str, String)> { files.to_vec() };
    let refs = as_refs(&tree);
    let borrowed: Vec<(&str, &str)> = refs.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let mut parent = repo.commit("main", &[], &borrowed);
    let mut expected_total = 0;
    let mut reported_total = 0;
    let mut mismatches = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let branch = format!("step{i}");
        let borrowed: Vec<(&str, &str)> =
            step.files.iter().map(|(p, c)| (*p, c.as_str())).collect();
        let head = repo.commit(&branch, &[parent], &borrowed);
        let previous = if i == 0 {
            "main".to_owned()
        } else {
            format!("step{}", i - 1)
        };
        let plan = repo.review(&previous, &branch);
        let reported: BTreeSet<(String, String, String)> = plan
            .new_findings
            .iter()
            .map(|f| {
                let object = f
                    .finding
                    .object
                    .as_ref()
                    .map(|o| format!("{}/{}", o.kind, o.name))
                    .unwrap_or_default();
                (
                    f.finding.rule.to_string(),
                    object,
                    f.finding.path.to_string(),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String, String)> = step
            .expected_new
            .iter()
            .map(|(r, o, p)| ((*r).to_owned(), (*o).to_owned(), (*p).to_owned()))
            .collect();
        expected_total += expected.len();
        reported_total += reported.len();
        if reported != expected {
            mismatches.push(format!(
                "step {i} ({}): expected {expected:?}, reported {reported:?}",
                step.what
            ));
        }
        assert!(!plan.incomplete, "step {i}: {:?}", plan.not_reviewed);
        parent = head;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(steps.len(), 12);
    assert_eq!(expected_total, 6, "new findings written down by hand");
    assert_eq!(reported_total, expected_total);
}

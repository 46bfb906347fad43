//! Checks written in Rust, named by rule files (`check: {builtin: ...}`), for what a path
//! expression cannot say: cross-object relations, RBAC semantics, label selectors.
//!
//! Each takes its parameters from the rule file, so the rule file still says what is checked.

use std::borrow::Cow;

use serde::Deserialize;

use super::eval::{Scope, Violation};
use super::model::Target;
use crate::manifest::{Container, FieldPath, Inventory, Labels, Object, first_required_label};
use crate::yaml::{Node, Value};

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Builtin {
    /// The pod's service account token is mounted (pod setting, else its ServiceAccount's).
    AutomountServiceAccountToken,
    /// A Role or ClusterRole grants the given access.
    RoleGrants(RoleGrants),
    /// A RoleBinding or ClusterRoleBinding refers to a role that grants the given access.
    BindingGrants(BindingGrants),
    /// HPA `maxReplicas` is not above `minReplicas`.
    HpaReplicaRange,
    /// None of AppArmor, seccomp, SELinux or dropped capabilities restrict the container.
    LinuxHardening,
    /// No NetworkPolicy isolates the pod for both ingress and egress.
    MissingNetworkPolicy,
    /// No PodDisruptionBudget selects the workload's pods.
    MissingPodDisruptionBudget,
    /// The PDB's minAvailable exceeds the HPA's minReplicas for the same Deployment.
    PdbAboveHpaMinReplicas,
    /// A Service selector matches no pod template in its namespace.
    ServiceSelectsNothing,
    /// A workload's selector does not match its own template's labels.
    SelectorMismatch,
    /// A container sets the same environment variable twice.
    DuplicateEnvVar,
    /// A probe targets a port the container does not expose.
    ProbePortNotExposed,
    /// The apiVersion is deprecated or removed for this kind.
    DeprecatedApiVersion(Vec<Deprecation>),
    /// A hostPath volume is mounted writable.
    WritableHostPath,
    /// An HPA scales a workload that is not in the input.
    HpaTargetMissing,
    /// A NetworkPolicy's podSelector matches no pod template in its namespace.
    NetworkPolicySelectsNothing,
    /// An Ingress sends traffic to a Service that is not in the input.
    IngressBackendMissing,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Access {
    /// Matches when the rule's list holds one of these or `*`. Empty: any.
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    /// Alternatively to `verbs`: the rule lists every one of these.
    #[serde(default)]
    pub or_all_verbs: Vec<String>,
    /// A rule limited to named objects (`resourceNames`) does not count.
    #[serde(default)]
    pub unless_resource_names: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleGrants {
    pub grants: Access,
    /// Role names never reported (Kubernetes' own roles).
    #[serde(default)]
    pub exempt_names: Vec<String>,
    #[serde(default)]
    pub exempt_prefixes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum RoleKind {
    Role,
    ClusterRole,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingGrants {
    pub role_kind: RoleKind,
    pub grants: Access,
    /// Bindings never reported.
    #[serde(default)]
    pub exempt_names: Vec<String>,
    #[serde(default)]
    pub exempt_prefixes: Vec<String>,
    /// Referenced role names that are never reported.
    #[serde(default)]
    pub exempt_roles: Vec<String>,
    /// A binding to `cluster-admin` is reported whatever the input says of that role.
    #[serde(default)]
    pub cluster_admin_by_name: bool,
    /// A binding to a role that is not in the input (and not a Kubernetes default role) is
    /// reported: what it grants cannot be checked.
    #[serde(default)]
    pub missing_role_fails: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deprecation {
    pub api_version: String,
    /// Kinds affected; empty means every kind of that apiVersion.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The Kubernetes version that stopped serving it (or will).
    pub removed_in: String,
    pub replacement: String,
}

/// What a builtin sees.
pub struct Context<'s, 'a> {
    pub object: &'s Object<'a>,
    pub container: Option<&'s Container<'a>>,
    pub scope: &'s Scope<'a>,
    pub inventory: &'s Inventory<'a>,
}

impl Builtin {
    /// Rule files must pair a builtin with the target it was written for.
    pub fn validate(&self, target: Target) -> Result<(), String> {
        let wanted: &[Target] = match self {
            Builtin::AutomountServiceAccountToken => &[Target::PodSpec],
            Builtin::RoleGrants(_)
            | Builtin::BindingGrants(_)
            | Builtin::HpaReplicaRange
            | Builtin::ServiceSelectsNothing
            | Builtin::HpaTargetMissing
            | Builtin::NetworkPolicySelectsNothing
            | Builtin::IngressBackendMissing
            | Builtin::DeprecatedApiVersion(_) => &[Target::Object],
            Builtin::LinuxHardening
            | Builtin::DuplicateEnvVar
            | Builtin::ProbePortNotExposed
            | Builtin::WritableHostPath => &[Target::Container],
            Builtin::MissingNetworkPolicy => &[Target::PodTemplate, Target::Controller],
            Builtin::MissingPodDisruptionBudget
            | Builtin::PdbAboveHpaMinReplicas
            | Builtin::SelectorMismatch => &[Target::Controller],
        };
        if wanted.contains(&target) {
            Ok(())
        } else {
            Err(format!(
                "this builtin needs target {:?}, the rule says {target:?}",
                wanted
            ))
        }
    }

    /// Whether the builtin looks at other objects than the one it checks.
    pub fn uses_inventory(&self) -> bool {
        matches!(
            self,
            Builtin::AutomountServiceAccountToken
                | Builtin::BindingGrants(_)
                | Builtin::MissingNetworkPolicy
                | Builtin::MissingPodDisruptionBudget
                | Builtin::PdbAboveHpaMinReplicas
                | Builtin::ServiceSelectsNothing
                | Builtin::HpaTargetMissing
                | Builtin::NetworkPolicySelectsNothing
                | Builtin::IngressBackendMissing
        )
    }

    /// Kinds this builtin reads from any namespace: every other read of a cross-object builtin
    /// stays in its object's namespace (see [`super::reach`]).
    pub fn reads_anywhere(&self) -> &'static [&'static str] {
        match self {
            // A binding finds its ClusterRole by name, wherever the input holds it.
            Builtin::BindingGrants(p) if p.role_kind == RoleKind::ClusterRole => &["ClusterRole"],
            _ => &[],
        }
    }

    pub fn run(&self, cx: &Context<'_, '_>) -> Vec<Violation> {
        match self {
            Builtin::AutomountServiceAccountToken => automount(cx),
            Builtin::RoleGrants(p) => role_grants(cx, p),
            Builtin::BindingGrants(p) => binding_grants(cx, p),
            Builtin::HpaReplicaRange => hpa_replica_range(cx),
            Builtin::LinuxHardening => linux_hardening(cx),
            Builtin::MissingNetworkPolicy => missing_network_policy(cx),
            Builtin::MissingPodDisruptionBudget => missing_pdb(cx),
            Builtin::PdbAboveHpaMinReplicas => pdb_above_hpa_min(cx),
            Builtin::ServiceSelectsNothing => service_selects_nothing(cx),
            Builtin::SelectorMismatch => selector_mismatch(cx),
            Builtin::DuplicateEnvVar => duplicate_env(cx),
            Builtin::ProbePortNotExposed => probe_port_not_exposed(cx),
            Builtin::DeprecatedApiVersion(table) => deprecated_api(cx, table),
            Builtin::WritableHostPath => writable_host_path(cx),
            Builtin::HpaTargetMissing => hpa_target_missing(cx),
            Builtin::NetworkPolicySelectsNothing => network_policy_selects_nothing(cx),
            Builtin::IngressBackendMissing => ingress_backend_missing(cx),
        }
    }
}

/// A violation at `node` (or at the scope's anchor when the node is absent).
fn at(cx: &Context<'_, '_>, keys: &[&str], detail: Option<String>) -> Violation {
    let mut node = cx.scope.node;
    let mut span = cx.scope.anchor;
    for key in keys {
        match node.entry(key) {
            Some(entry) => {
                span = if entry.value.is_null()
                    || matches!(entry.value.value, Value::Map(_) | Value::Seq(_))
                {
                    entry.key_span
                } else {
                    entry.value.span
                };
                node = &entry.value;
            }
            None => break,
        }
    }
    Violation {
        span,
        path: cx.scope.path.keys(keys),
        detail,
    }
}

fn strings(node: Option<&Node>) -> Vec<String> {
    node.and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .filter_map(Node::scalar_text)
        .collect()
}

// ---- service accounts -------------------------------------------------------------------

fn automount(cx: &Context<'_, '_>) -> Vec<Violation> {
    let spec = cx.scope.node;
    match spec
        .get("automountServiceAccountToken")
        .and_then(Node::as_bool)
    {
        Some(false) => return Vec::new(),
        Some(true) => return vec![at(cx, &["automountServiceAccountToken"], None)],
        None => {}
    }
    let account = spec
        .get("serviceAccountName")
        .or_else(|| spec.get("serviceAccount"))
        .and_then(Node::as_str)
        .unwrap_or("default");
    let disabled_by_account = cx.inventory.named("ServiceAccount", account).any(|sa| {
        sa.same_namespace(cx.object)
            && sa
                .node
                .get("automountServiceAccountToken")
                .and_then(Node::as_bool)
                == Some(false)
    });
    if disabled_by_account {
        Vec::new()
    } else {
        vec![at(
            cx,
            &["automountServiceAccountToken"],
            Some(format!(
                "neither the pod nor its ServiceAccount `{account}` sets automountServiceAccountToken: false"
            )),
        )]
    }
}

// ---- RBAC ---------------------------------------------------------------------------------

fn list_matches(list: &[String], wanted: &[String]) -> bool {
    wanted.is_empty() || list.iter().any(|v| v == "*" || wanted.contains(v))
}

impl Access {
    fn granted_by(&self, rule: &Node) -> bool {
        let groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        let verbs = strings(rule.get("verbs"));
        if groups.is_empty() || resources.is_empty() || verbs.is_empty() {
            return false;
        }
        if self.unless_resource_names && !strings(rule.get("resourceNames")).is_empty() {
            return false;
        }
        let listed_verb = !self.verbs.is_empty() && list_matches(&verbs, &self.verbs);
        let every_verb =
            !self.or_all_verbs.is_empty() && self.or_all_verbs.iter().all(|v| verbs.contains(v));
        let verbs_ok =
            listed_verb || every_verb || (self.verbs.is_empty() && self.or_all_verbs.is_empty());
        list_matches(&groups, &self.api_groups)
            && list_matches(&resources, &self.resources)
            && verbs_ok
    }

    /// The index of the first rule of `role` granting this access.
    fn first_granting_rule<'n>(&self, role: &'n Node) -> Option<(usize, &'n Node)> {
        role.get("rules")
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .find(|(_, r)| self.granted_by(r))
    }
}

fn name_exempt(name: &str, names: &[String], prefixes: &[String]) -> bool {
    names.iter().any(|n| n == name) || prefixes.iter().any(|p| name.starts_with(p.as_str()))
}

fn role_grants(cx: &Context<'_, '_>, p: &RoleGrants) -> Vec<Violation> {
    if name_exempt(cx.object.name, &p.exempt_names, &p.exempt_prefixes) {
        return Vec::new();
    }
    match p.grants.first_granting_rule(cx.object.node) {
        Some((i, rule)) => {
            let path = cx.scope.path.key("rules").item(i, rule);
            vec![Violation {
                span: rule.span,
                path,
                detail: None,
            }]
        }
        None => Vec::new(),
    }
}

/// Rules of the default ClusterRoles every cluster has, for bindings whose role is not in the
/// input. Summarised from Kubernetes' bootstrap policy.
fn default_cluster_role(name: &str) -> Option<&'static str> {
    Some(match name {
        "cluster-admin" => "rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]",
        "admin" | "edit" => {
            "rules: [{apiGroups: [''], resources: [pods/attach, pods/exec, pods/portforward, pods/proxy, secrets, services/proxy], verbs: [get, list, watch, create, delete, deletecollection, patch, update]}]"
        }
        "view" => {
            "rules: [{apiGroups: [''], resources: [pods, services, configmaps], verbs: [get, list, watch]}]"
        }
        _ => return None,
    })
}

fn binding_grants(cx: &Context<'_, '_>, p: &BindingGrants) -> Vec<Violation> {
    let binding = cx.object;
    if name_exempt(binding.name, &p.exempt_names, &p.exempt_prefixes) {
        return Vec::new();
    }
    let Some(role_ref) = binding.node.get("roleRef") else {
        return Vec::new();
    };
    let role_kind = role_ref.get("kind").and_then(Node::as_str).unwrap_or("");
    let wanted_kind = match p.role_kind {
        RoleKind::Role => "Role",
        RoleKind::ClusterRole => "ClusterRole",
    };
    if role_kind != wanted_kind {
        return Vec::new();
    }
    let role_name = role_ref.get("name").and_then(Node::as_str).unwrap_or("");
    if p.exempt_roles.iter().any(|r| r == role_name) {
        return Vec::new();
    }
    let name_at = |detail: String| at(cx, &["roleRef", "name"], Some(detail));
    if p.cluster_admin_by_name && role_name == "cluster-admin" {
        return vec![name_at("binds the cluster-admin ClusterRole".into())];
    }
    let role = cx.inventory.named(wanted_kind, role_name).find(|r| {
        r.group() == "rbac.authorization.k8s.io"
            && (p.role_kind == RoleKind::ClusterRole || r.same_namespace(binding))
    });
    let grants = match role {
        Some(role) => p.grants.first_granting_rule(role.node).is_some(),
        None => match (p.role_kind, default_cluster_role(role_name)) {
            (RoleKind::ClusterRole, Some(text)) => {
                let docs = crate::yaml::parse_stream(text, crate::yaml::Limits::default());
                docs.first()
                    .and_then(|d| d.root.as_ref().ok())
                    .is_some_and(|n| p.grants.first_granting_rule(n).is_some())
            }
            _ => {
                return if p.missing_role_fails {
                    vec![name_at(format!(
                        "the {wanted_kind} `{role_name}` is not in the input, so what it grants cannot be checked"
                    ))]
                } else {
                    Vec::new()
                };
            }
        },
    };
    if grants {
        vec![name_at(format!(
            "the {wanted_kind} `{role_name}` grants it"
        ))]
    } else {
        Vec::new()
    }
}

// ---- autoscaling and disruption budgets ----------------------------------------------------

fn hpa_replica_range(cx: &Context<'_, '_>) -> Vec<Violation> {
    let spec = cx.object.node.get("spec");
    let max = spec.and_then(|s| s.get("maxReplicas"));
    let min = spec
        .and_then(|s| s.get("minReplicas"))
        .and_then(Node::as_i64)
        .unwrap_or(1);
    match max.and_then(Node::as_i64) {
        Some(max_value) if max_value > min && max_value >= 1 => Vec::new(),
        _ => vec![at(cx, &["spec", "maxReplicas"], None)],
    }
}

/// A percentage of `total`, rounded up as Kubernetes does for minAvailable.
fn scaled(value: &Node, total: i64) -> Option<i64> {
    match &value.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => {
            let pct: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            Some((pct * total + 99) / 100)
        }
        _ => None,
    }
}

fn hpa_for<'s, 'a>(cx: &Context<'s, 'a>) -> Option<&'s Object<'a>> {
    let namespace = cx.object.namespace_or_default();
    cx.inventory
        .scalers_of(namespace, cx.object.name)
        .find(|hpa| {
            hpa.kind == "HorizontalPodAutoscaler"
                && hpa.same_namespace(cx.object)
                && hpa
                    .node
                    .get_path(&["spec", "scaleTargetRef", "kind"])
                    .and_then(Node::as_str)
                    == Some(cx.object.kind)
                && hpa
                    .node
                    .get_path(&["spec", "scaleTargetRef", "name"])
                    .and_then(Node::as_str)
                    == Some(cx.object.name)
        })
}

fn pdbs_for<'s, 'a>(cx: &'s Context<'s, 'a>) -> impl Iterator<Item = &'s Object<'a>> + 's {
    let labels = cx.object.pod.as_ref().map_or(&[][..], |p| p.labels());
    let candidates = if labels.is_empty() {
        Vec::new()
    } else {
        cx.inventory.selecting(
            "PodDisruptionBudget",
            cx.object.namespace_or_default(),
            labels,
        )
    };
    candidates.into_iter().filter(move |pdb| {
        pdb.same_namespace(cx.object)
            && pdb
                .node
                .get_path(&["spec", "selector"])
                .is_some_and(|s| selector_matches(s, labels))
    })
}

fn missing_pdb(cx: &Context<'_, '_>) -> Vec<Violation> {
    if pdbs_for(cx).next().is_some() {
        return Vec::new();
    }
    let mut keys = cx
        .object
        .pod
        .as_ref()
        .map(|p| p.template_path.clone())
        .unwrap_or_default();
    keys = keys.keys(&["metadata", "labels"]);
    let template = cx.object.pod.as_ref().map(|p| p.template);
    let span = template
        .and_then(|t| t.entry("metadata"))
        .map(|m| {
            m.value
                .entry("labels")
                .map(|l| l.key_span)
                .unwrap_or(m.key_span)
        })
        .unwrap_or(cx.scope.anchor);
    vec![Violation {
        span,
        path: cx.scope.path.join(&keys),
        detail: None,
    }]
}

fn pdb_above_hpa_min(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(pdb) = pdbs_for(cx).next() else {
        return Vec::new();
    };
    let Some(hpa) = hpa_for(cx) else {
        return Vec::new();
    };
    let Some(min_available) = pdb.node.get_path(&["spec", "minAvailable"]) else {
        return Vec::new();
    };
    // minReplicas defaults to 1.
    let hpa_min = hpa
        .node
        .get_path(&["spec", "minReplicas"])
        .and_then(Node::as_i64)
        .unwrap_or(1);
    match scaled(min_available, hpa_min) {
        Some(required) if required > hpa_min => vec![Violation {
            span: cx.scope.anchor,
            path: cx.scope.path.keys(&["spec", "replicas"]),
            detail: Some(format!(
                "PodDisruptionBudget `{}` keeps {required} pods available, but HorizontalPodAutoscaler `{}` may scale down to {hpa_min}",
                pdb.name, hpa.name
            )),
        }],
        _ => Vec::new(),
    }
}

fn hpa_target_missing(cx: &Context<'_, '_>) -> Vec<Violation> {
    let target = cx.object.node.get_path(&["spec", "scaleTargetRef"]);
    let kind = target
        .and_then(|t| t.get("kind"))
        .and_then(Node::as_str)
        .unwrap_or("");
    let name = target
        .and_then(|t| t.get("name"))
        .and_then(Node::as_str)
        .unwrap_or("");
    // Custom resources may be scaled too; we only judge the kinds we know.
    if !crate::manifest::WORKLOAD_KINDS.contains(&kind) || name.is_empty() {
        return Vec::new();
    }
    let found = cx
        .inventory
        .named(kind, name)
        .any(|o| o.same_namespace(cx.object));
    if found {
        Vec::new()
    } else {
        vec![at(
            cx,
            &["spec", "scaleTargetRef", "name"],
            Some(format!("no {kind} named `{name}` in this namespace")),
        )]
    }
}

// ---- label selectors ----------------------------------------------------------------------

/// Kubernetes `LabelSelector` semantics (matchLabels and matchExpressions). An empty selector
/// selects everything.
pub fn selector_matches(selector: &Node, labels: &Labels<'_>) -> bool {
    let get = |key: &str| {
        labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_ref())
    };
    for entry in selector
        .get("matchLabels")
        .and_then(Node::as_map)
        .unwrap_or(&[])
    {
        if get(&entry.key) != entry.value.scalar_str().as_deref() {
            return false;
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
    {
        let key = expr.get("key").and_then(Node::as_str).unwrap_or("");
        let listed = |actual: &str| {
            expr.get("values")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .filter_map(Node::scalar_str)
                .any(|v| v == actual)
        };
        let actual = get(key);
        let ok = match expr.get("operator").and_then(Node::as_str).unwrap_or("") {
            "In" => actual.is_some_and(listed),
            "NotIn" => actual.is_none_or(|a| !listed(a)),
            "Exists" => actual.is_some(),
            "DoesNotExist" => actual.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A plain `key: value` map selector, as Services use.
fn map_selector_matches(selector: &Node, labels: &Labels<'_>) -> bool {
    selector.as_map().unwrap_or(&[]).iter().all(|e| {
        let wanted = e.value.scalar_str();
        labels
            .iter()
            .any(|(k, v)| *k == e.key && Some(v.as_ref()) == wanted.as_deref())
    })
}

/// Whether a pod template in the object's namespace satisfies `matches`. `required` is a label
/// every matching template carries, when the selector names one: only templates carrying it
/// are looked at.
fn any_template_matches(
    cx: &Context<'_, '_>,
    required: Option<(&str, Cow<'_, str>)>,
    matches: impl Fn(&Labels<'_>) -> bool,
) -> bool {
    let required = required.as_ref().map(|(k, v)| (*k, v.as_ref()));
    cx.inventory
        .workloads_in(cx.object.namespace_or_default(), required)
        .any(|w| w.same_namespace(cx.object) && w.pod.as_ref().is_some_and(|p| matches(p.labels())))
}

fn service_selects_nothing(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(selector) = cx.object.node.get_path(&["spec", "selector"]) else {
        return Vec::new();
    };
    // Every pair must match, so the first one narrows the candidates.
    let required = selector
        .as_map()
        .and_then(<[_]>::first)
        .and_then(|e| Some((e.key.as_str(), e.value.scalar_str()?)));
    if selector.as_map().is_none_or(<[_]>::is_empty)
        || cx
            .inventory
            .has_custom_resources_in(cx.object.namespace_or_default())
        || any_template_matches(cx, required, |labels| {
            map_selector_matches(selector, labels)
        })
    {
        return Vec::new();
    }
    vec![at(cx, &["spec", "selector"], None)]
}

fn network_policy_selects_nothing(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(selector) = cx.object.node.get_path(&["spec", "podSelector"]) else {
        return Vec::new();
    };
    let is_empty = selector
        .get("matchLabels")
        .and_then(Node::as_map)
        .is_none_or(<[_]>::is_empty)
        && selector
            .get("matchExpressions")
            .and_then(Node::as_seq)
            .is_none_or(<[_]>::is_empty);
    if is_empty
        || cx
            .inventory
            .has_custom_resources_in(cx.object.namespace_or_default())
        || any_template_matches(cx, first_required_label(selector), |labels| {
            selector_matches(selector, labels)
        })
    {
        return Vec::new();
    }
    vec![at(cx, &["spec", "podSelector"], None)]
}

fn selector_mismatch(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(pod) = &cx.object.pod else {
        return Vec::new();
    };
    let Some(selector) = cx.object.node.get_path(&["spec", "selector"]) else {
        return Vec::new();
    };
    // Jobs generate their own selector unless told otherwise.
    if cx.object.kind == "Job"
        && cx
            .object
            .node
            .get_path(&["spec", "manualSelector"])
            .and_then(Node::as_bool)
            != Some(true)
    {
        return Vec::new();
    }
    let labels = pod.labels();
    let matches = if cx.object.kind == "ReplicationController" {
        map_selector_matches(selector, labels)
    } else {
        selector_matches(selector, labels)
    };
    if matches {
        Vec::new()
    } else {
        vec![at(cx, &["spec", "selector"], None)]
    }
}

fn missing_network_policy(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(pod) = &cx.object.pod else {
        return Vec::new();
    };
    let labels = pod.labels();
    let (mut ingress, mut egress) = (false, false);
    let policies =
        cx.inventory
            .selecting("NetworkPolicy", cx.object.namespace_or_default(), labels);
    for policy in policies {
        if !policy.same_namespace(cx.object) {
            continue;
        }
        let Some(spec) = policy.node.get("spec") else {
            continue;
        };
        let selects = spec
            .get("podSelector")
            .is_some_and(|s| selector_matches(s, labels));
        if !selects {
            continue;
        }
        let types = strings(spec.get("policyTypes"));
        if types.is_empty() {
            // Kubernetes' defaulting: Ingress always, Egress when egress rules exist.
            ingress = true;
            egress |= spec
                .get("egress")
                .and_then(Node::as_seq)
                .is_some_and(|rules| !rules.is_empty());
        } else {
            ingress |= types.iter().any(|t| t.eq_ignore_ascii_case("Ingress"));
            egress |= types.iter().any(|t| t.eq_ignore_ascii_case("Egress"));
        }
    }
    if ingress && egress {
        return Vec::new();
    }
    let missing = match (ingress, egress) {
        (false, false) => "ingress and egress",
        (false, true) => "ingress",
        _ => "egress",
    };
    let span = pod
        .template
        .entry("metadata")
        .map(|m| {
            m.value
                .entry("labels")
                .map(|l| l.key_span)
                .unwrap_or(m.key_span)
        })
        .unwrap_or(cx.scope.anchor);
    vec![Violation {
        span,
        path: cx.scope.path.keys(&["metadata", "labels"]),
        detail: Some(format!(
            "no NetworkPolicy isolates these pods for {missing}"
        )),
    }]
}

fn ingress_backend_missing(cx: &Context<'_, '_>) -> Vec<Violation> {
    if cx
        .inventory
        .has_custom_resources_in(cx.object.namespace_or_default())
    {
        return Vec::new();
    }
    let mut violations = Vec::new();
    let mut check = |backend: &Node, path: FieldPath| {
        let service = backend
            .get_path(&["service", "name"])
            .or_else(|| backend.get("serviceName"));
        let Some(name_node) = service else { return };
        let Some(name) = name_node.as_str() else {
            return;
        };
        let exists = cx
            .inventory
            .named("Service", name)
            .any(|s| s.same_namespace(cx.object));
        if !exists {
            violations.push(Violation {
                span: name_node.span,
                path,
                detail: Some(format!("no Service named `{name}` in this namespace")),
            });
        }
    };
    let spec = cx.object.node.get("spec");
    let spec_path = cx.scope.path.key("spec");
    for key in ["defaultBackend", "backend"] {
        if let Some(b) = spec.and_then(|s| s.get(key)) {
            check(b, spec_path.key(key));
        }
    }
    let rules = spec
        .and_then(|s| s.get("rules"))
        .and_then(Node::as_seq)
        .unwrap_or(&[]);
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = spec_path.key("rules").item(i, rule);
        let paths = rule
            .get_path(&["http", "paths"])
            .and_then(Node::as_seq)
            .unwrap_or(&[]);
        for (j, p) in paths.iter().enumerate() {
            if let Some(b) = p.get("backend") {
                let path = rule_path.keys(&["http", "paths"]).item(j, p).key("backend");
                check(b, path);
            }
        }
    }
    violations
}

// ---- containers ---------------------------------------------------------------------------

fn security_context_field<'a>(node: &'a Node, field: &str) -> Option<&'a Node> {
    node.get_path(&["securityContext", field])
        .filter(|n| !n.is_null())
}

fn linux_hardening(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(container) = cx.container else {
        return Vec::new();
    };
    let pod = cx.object.pod.as_ref();
    let pod_spec = pod.map(|p| p.spec);
    let apparmor_annotation = format!(
        "container.apparmor.security.beta.kubernetes.io/{}",
        container.name
    );
    let has_apparmor = pod
        .and_then(|p| p.annotations())
        .and_then(|a| a.get(&apparmor_annotation))
        .and_then(Node::as_str)
        .is_some_and(|profile| profile != "unconfined")
        || [Some(container.node), pod_spec]
            .into_iter()
            .flatten()
            .filter_map(|n| security_context_field(n, "appArmorProfile"))
            .next()
            .and_then(|p| p.get("type").and_then(Node::as_str))
            .is_some_and(|t| t != "Unconfined");
    let effective = |field: &str| {
        security_context_field(container.node, field)
            .or_else(|| pod_spec.and_then(|s| security_context_field(s, field)))
    };
    let has_seccomp = effective("seccompProfile")
        .and_then(|p| p.get("type"))
        .and_then(Node::as_str)
        .is_some_and(|t| !t.is_empty() && t != "Unconfined");
    let has_selinux = effective("seLinuxOptions")
        .and_then(Node::as_map)
        .is_some_and(|m| !m.is_empty());
    let caps = container
        .node
        .get_path(&["securityContext", "capabilities"]);
    let drops = caps
        .and_then(|c| c.get("drop"))
        .and_then(Node::as_seq)
        .is_some_and(|d| !d.is_empty());
    let adds_all = strings(caps.and_then(|c| c.get("add")))
        .iter()
        .any(|a| a.eq_ignore_ascii_case("ALL"));
    if has_apparmor || has_seccomp || has_selinux || (drops && !adds_all) {
        return Vec::new();
    }
    vec![at(cx, &["securityContext"], None)]
}

fn duplicate_env(cx: &Context<'_, '_>) -> Vec<Violation> {
    let env = cx
        .scope
        .node
        .get("env")
        .and_then(Node::as_seq)
        .unwrap_or(&[]);
    let mut seen: Vec<&str> = Vec::new();
    let mut violations = Vec::new();
    for item in env {
        let Some(name) = item.get("name").and_then(Node::as_str) else {
            continue;
        };
        if seen.contains(&name) {
            violations.push(Violation {
                span: item.span,
                path: cx.scope.path.key("env").key(name),
                detail: Some(format!("`{name}` is set more than once; the last one wins")),
            });
        } else {
            seen.push(name);
        }
    }
    violations
}

fn probe_port_not_exposed(cx: &Context<'_, '_>) -> Vec<Violation> {
    let container = cx.scope.node;
    let ports = container.get("ports").and_then(Node::as_seq).unwrap_or(&[]);
    let names: Vec<String> = ports
        .iter()
        .filter_map(|p| p.get("name").and_then(Node::scalar_text))
        .collect();
    let mut violations = Vec::new();
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        for handler in ["httpGet", "tcpSocket", "grpc"] {
            let Some(port) = container.get_path(&[probe, handler, "port"]) else {
                continue;
            };
            // A numeric port reaches the container whatever `ports` declares (the list is
            // informational); only a name must resolve, among the container's own ports.
            let exposed = match &port.value {
                Value::Str(name) => names.iter().any(|n| n == name),
                _ => true,
            };
            if !exposed {
                violations.push(Violation {
                    span: port.span,
                    path: cx.scope.path.keys(&[probe, handler, "port"]),
                    detail: Some(format!(
                        "{probe} uses port `{}`, which the container does not declare",
                        port.scalar_text().unwrap_or_default()
                    )),
                });
            }
        }
    }
    violations
}

fn writable_host_path(cx: &Context<'_, '_>) -> Vec<Violation> {
    let Some(pod) = &cx.object.pod else {
        return Vec::new();
    };
    let host_volumes: Vec<&str> = pod
        .spec
        .get("volumes")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .filter_map(|v| v.get("name").and_then(Node::as_str))
        .collect();
    let mounts = cx
        .scope
        .node
        .get("volumeMounts")
        .and_then(Node::as_seq)
        .unwrap_or(&[]);
    let mut violations = Vec::new();
    for (i, mount) in mounts.iter().enumerate() {
        let Some(name) = mount.get("name").and_then(Node::as_str) else {
            continue;
        };
        if host_volumes.contains(&name)
            && mount.get("readOnly").and_then(Node::as_bool) != Some(true)
        {
            violations.push(Violation {
                span: mount.span,
                path: cx.scope.path.key("volumeMounts").item(i, mount),
                detail: Some(format!("hostPath volume `{name}` is mounted writable")),
            });
        }
    }
    violations
}

fn deprecated_api(cx: &Context<'_, '_>, table: &[Deprecation]) -> Vec<Violation> {
    let found = table.iter().find(|d| {
        d.api_version == cx.object.api_version
            && (d.kinds.is_empty() || d.kinds.iter().any(|k| k == cx.object.kind))
    });
    match found {
        Some(d) => vec![at(
            cx,
            &["apiVersion"],
            Some(format!(
                "{} {} is not served since Kubernetes {}; use {}",
                d.api_version, cx.object.kind, d.removed_in, d.replacement
            )),
        )],
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestFile;
    use crate::yaml::Limits;

    /// Selectors and labels of every awkward shape: numbers, non-scalar values, empty and
    /// expression-only selectors, objects with no namespace.
    const MANIFESTS: &str = "
apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: ns}
spec: {template: {metadata: {labels: {app: a, tier: web, v: 1}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: b, namespace: ns}
spec: {template: {metadata: {labels: {app: b, odd: [x]}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: c}
spec: {template: {metadata: {labels: {app: a}}, spec: {containers: [{name: c}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: d, namespace: ns}
spec: {template: {spec: {containers: [{name: c}]}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-app, namespace: ns}
spec: {podSelector: {matchLabels: {app: a}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: by-number, namespace: ns}
spec: {podSelector: {matchLabels: {v: '1'}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all, namespace: ns}
spec: {podSelector: {}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: without-odd, namespace: ns}
spec: {podSelector: {matchLabels: {odd: [y]}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: expressions, namespace: ns}
spec: {podSelector: {matchExpressions: [{key: app, operator: In, values: [b]}]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb-a}
spec: {selector: {matchLabels: {app: a}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pdb-tier, namespace: ns}
spec: {selector: {matchLabels: {tier: web, app: a}}}
---
apiVersion: v1
kind: Service
metadata: {name: s1, namespace: ns}
spec: {selector: {v: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: s2, namespace: ns}
spec: {selector: {odd: [x]}}
";

    #[test]
    fn indexed_lookups_miss_no_object_a_full_scan_would_match() {
        let file = ManifestFile::parse("m.yaml", MANIFESTS, Limits::default());
        let inventory = Inventory::new(file.objects());
        let workloads: Vec<_> = inventory.workloads().collect();
        let selectors = inventory
            .objects
            .iter()
            .filter_map(|o| match o.kind {
                "NetworkPolicy" => Some((o, o.node.get_path(&["spec", "podSelector"])?)),
                "PodDisruptionBudget" => Some((o, o.node.get_path(&["spec", "selector"])?)),
                _ => None,
            })
            .collect::<Vec<_>>();
        let mut matched = 0;
        for w in &workloads {
            let labels = w.pod.as_ref().map_or(&[][..], |p| p.labels());
            for (o, selector) in &selectors {
                if o.same_namespace(w) && selector_matches(selector, labels) {
                    matched += 1;
                    let found = inventory.selecting(o.kind, w.namespace_or_default(), labels);
                    assert!(
                        found.iter().any(|c| std::ptr::eq(*c, *o)),
                        "{} selects {}",
                        o.name,
                        w.name
                    );
                }
            }
        }
        for (o, selector) in &selectors {
            for w in &workloads {
                let labels = w.pod.as_ref().map_or(&[][..], |p| p.labels());
                if w.same_namespace(o) && selector_matches(selector, labels) {
                    let required = first_required_label(selector);
                    let required = required.as_ref().map(|(k, v)| (*k, v.as_ref()));
                    assert!(
                        inventory
                            .workloads_in(o.namespace_or_default(), required)
                            .any(|c| std::ptr::eq(c, *w)),
                        "{} selects {}",
                        o.name,
                        w.name
                    );
                }
            }
        }
        for service in inventory.objects.iter().filter(|o| o.kind == "Service") {
            let Some(selector) = service.node.get_path(&["spec", "selector"]) else {
                continue;
            };
            for w in &workloads {
                let labels = w.pod.as_ref().map_or(&[][..], |p| p.labels());
                if w.same_namespace(service) && map_selector_matches(selector, labels) {
                    matched += 1;
                    let first = selector.as_map().and_then(<[_]>::first);
                    let required = first
                        .and_then(|e| Some((e.key.as_str(), e.value.scalar_str()?)))
                        .map(|(k, v)| (k, v.into_owned()));
                    let required = required.as_ref().map(|(k, v)| (*k, v.as_str()));
                    assert!(
                        inventory
                            .workloads_in(service.namespace_or_default(), required)
                            .any(|c| std::ptr::eq(c, *w)),
                        "{} selects {}",
                        service.name,
                        w.name
                    );
                }
            }
        }
        // The fixture is only useful if it exercises matches of each kind.
        assert!(matched >= 8, "{matched} matches");
    }
}

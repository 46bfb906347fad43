//! From YAML documents to Kubernetes objects: identity, pod template, containers.
//!
//! Pure: callers hand in file contents, nothing here touches the disk.

mod inventory;
pub mod path;

use std::borrow::Cow;
use std::sync::Arc;

pub use inventory::{Inventory, first_required_label};
pub use path::{FieldPath, ItemKey, Segment};

use crate::yaml::{
    Limits, Node, ParseError, ParsedDocument, Span, Value, Weight, parse_file, parse_stream,
};

/// Why a file was not audited. Recorded in the run's statistics.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// No document has string `apiVersion` and `kind` (values files, CI workflows...).
    NotKubernetes,
    /// Holds Go template actions (`{{`): a Helm chart template, not a manifest.
    HelmTemplate,
    /// Named as a patch by a `kustomization.yaml`: a fragment, not an object.
    KustomizePatch,
    Binary,
    NotUtf8,
    TooLarge,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::NotKubernetes => "no Kubernetes objects",
            SkipReason::HelmTemplate => "Helm template",
            SkipReason::KustomizePatch => "kustomize patch",
            SkipReason::Binary => "binary file",
            SkipReason::NotUtf8 => "not UTF-8",
            SkipReason::TooLarge => "larger than the size limit",
        }
    }

    /// Skips a user should hear about, as opposed to files that are simply not manifests.
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            SkipReason::Binary | SkipReason::NotUtf8 | SkipReason::TooLarge
        )
    }
}

/// Decides whether raw bytes are text we should parse.
pub fn classify_bytes(bytes: &[u8], max_size: u64) -> Result<&str, SkipReason> {
    if bytes.len() as u64 > max_size {
        return Err(SkipReason::TooLarge);
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Err(SkipReason::Binary);
    }
    std::str::from_utf8(bytes).map_err(|_| SkipReason::NotUtf8)
}

/// A parsed file: its documents, or why it was skipped.
#[derive(Debug)]
pub struct ManifestFile {
    pub path: String,
    /// Shared, so one parse serves every path and revision holding the same blob.
    pub content: Result<Arc<Vec<ParsedDocument>>, SkipReason>,
    /// What parsing built (zero for a file skipped before parsing). A copy made by
    /// [`ManifestFile::at_path`] carries its original's weight, though no more was built.
    pub weight: Weight,
}

impl ManifestFile {
    /// Parses text. Files that are not manifests are marked skipped, never reported.
    pub fn parse(path: impl Into<String>, text: &str, limits: Limits) -> ManifestFile {
        let path = path.into();
        let has_actions = text.contains("{{");
        let parsed = parse_file(text, limits);
        let weight = parsed.weight;
        // Over a budget, the file is reported whatever it looks like: skipping it as a template
        // or as not Kubernetes would let a hostile file hide what it holds.
        if parsed.over_budget().is_some() {
            return ManifestFile {
                path,
                content: Ok(Arc::new(parsed.documents)),
                weight,
            };
        }
        let docs = parsed.documents;
        // Template text is data when the file is valid YAML (a PrometheusRule's
        // `{{ $labels.instance }}`, an install manifest whose ConfigMaps carry `{{ .Values }}`):
        // what parses and names objects is audited. Where the actions break the YAML, it is a
        // template to render first. (A chart's `templates/` folder is skipped by path, see
        // [`is_chart_template`].)
        if has_actions && docs.iter().any(|d| d.root.is_err()) {
            return ManifestFile {
                weight,
                ..ManifestFile::skipped(path, SkipReason::HelmTemplate)
            };
        }
        let has_object = docs.iter().any(|d| match &d.root {
            Ok(root) => object_header(root).is_some(),
            Err(_) => false,
        });
        // A file we cannot read at all counts as a manifest when it at least names a kind:
        // a broken manifest must be reported, a broken values.yaml must not.
        let broken_manifest = !has_object
            && docs.iter().any(|d| d.root.is_err())
            && text.contains("apiVersion")
            && text.contains("kind");
        if !has_object && !broken_manifest {
            return ManifestFile {
                path,
                content: Err(SkipReason::NotKubernetes),
                weight,
            };
        }
        ManifestFile {
            path,
            content: Ok(Arc::new(docs)),
            weight,
        }
    }

    /// Documents parsed elsewhere (a rendered stream, its annotations removed), as a file.
    pub fn from_documents(
        path: impl Into<String>,
        documents: Vec<ParsedDocument>,
        weight: crate::yaml::Weight,
    ) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            content: Ok(Arc::new(documents)),
            weight,
        }
    }

    /// The same parsed content under another path (a blob seen at several paths).
    pub fn at_path(&self, path: impl Into<String>) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            content: self.content.clone(),
            weight: self.weight,
        }
    }

    pub fn skipped(path: impl Into<String>, reason: SkipReason) -> ManifestFile {
        ManifestFile {
            path: path.into(),
            content: Err(reason),
            weight: Weight::default(),
        }
    }

    /// The per-file budget excess that stopped this file's parse, if one did: then its only
    /// document is that error and none of its objects were audited.
    pub fn over_budget(&self) -> Option<&ParseError> {
        match self.content.as_ref().map(|docs| docs.as_slice()) {
            Ok([doc]) => doc.root.as_ref().err().filter(|e| e.budget.is_some()),
            _ => None,
        }
    }

    pub fn parse_errors(&self) -> impl Iterator<Item = (&ParsedDocument, &ParseError)> {
        self.content
            .as_ref()
            .map(|docs| docs.as_slice())
            .unwrap_or(&[])
            .iter()
            .filter_map(|d| d.root.as_ref().err().map(|e| (d, e)))
    }

    /// Every Kubernetes object in the file, `kind: List` items included.
    pub fn objects(&self) -> Vec<Object<'_>> {
        self.objects_by(Object::new)
    }

    /// [`ManifestFile::objects`] without their pod templates (`pod` is `None`): for what needs
    /// only who and where an object is, at a fraction of the cost.
    pub fn object_headers(&self) -> Vec<Object<'_>> {
        self.objects_by(|file, doc_index, node| {
            Object::new_with(file, doc_index, node, |_, _| None)
        })
    }

    fn objects_by<'f>(
        &'f self,
        object: impl Fn(&'f str, usize, &'f Node) -> Option<Object<'f>>,
    ) -> Vec<Object<'f>> {
        let Ok(docs) = &self.content else {
            return Vec::new();
        };
        let mut objects = Vec::new();
        for doc in docs.iter() {
            let Ok(root) = &doc.root else { continue };
            let Some((api_version, kind)) = object_header(root) else {
                continue;
            };
            if kind.ends_with("List") && root.get("items").and_then(Node::as_seq).is_some() {
                let items = root.get("items").and_then(Node::as_seq).unwrap_or(&[]);
                let base = FieldPath::root().key("items");
                for (i, item) in items.iter().enumerate() {
                    if let Some(object) = object(&self.path, doc.index, item) {
                        objects.push(Object {
                            list_path: Some(base.item(i, item)),
                            ..object
                        });
                    }
                }
                continue;
            }
            if is_tooling_config(api_version) {
                continue;
            }
            if let Some(object) = object(&self.path, doc.index, root) {
                objects.push(object);
            }
        }
        objects
    }
}

/// Whether `path` lies in the `templates/` folder of a Helm chart, a folder for which
/// `is_chart` is true (it holds a `Chart.yaml`): a template, meaningless until rendered, however
/// well it happens to parse.
pub fn is_chart_template(path: &str, is_chart: &dyn Fn(&str) -> bool) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .iter()
        .enumerate()
        .take(parts.len().saturating_sub(1))
        .any(|(i, part)| *part == "templates" && is_chart(&parts[..i].join("/")))
}

/// Kustomize and similar tool configs carry apiVersion/kind but are not cluster objects.
fn is_tooling_config(api_version: &str) -> bool {
    api_version.starts_with("kustomize.config.k8s.io/")
        || api_version.starts_with("config.kubernetes.io/")
}

fn object_header(root: &Node) -> Option<(&str, &str)> {
    let api_version = root.get("apiVersion")?.as_str()?;
    let kind = root.get("kind")?.as_str()?;
    (!api_version.is_empty() && !kind.is_empty()).then_some((api_version, kind))
}

/// Paths named as patches by the kustomization at `dir` (relative to that directory).
pub fn kustomize_patch_paths(kustomization: &str) -> Vec<String> {
    let docs = parse_stream(kustomization, Limits::default());
    let mut paths = Vec::new();
    for doc in docs {
        let Ok(root) = doc.root else { continue };
        for key in ["patchesStrategicMerge", "patches", "patchesJson6902"] {
            for item in root.get(key).and_then(Node::as_seq).unwrap_or(&[]) {
                if let Some(p) = item.as_str() {
                    paths.push(p.to_owned());
                } else if let Some(p) = item.get("path").and_then(Node::as_str) {
                    paths.push(p.to_owned());
                }
            }
        }
    }
    paths
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerKind {
    Container,
    InitContainer,
    EphemeralContainer,
}

impl ContainerKind {
    pub fn list_key(self) -> &'static str {
        match self {
            ContainerKind::Container => "containers",
            ContainerKind::InitContainer => "initContainers",
            ContainerKind::EphemeralContainer => "ephemeralContainers",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Container<'a> {
    pub kind: ContainerKind,
    /// Empty when the manifest gives none; identity then falls back to the position.
    pub name: &'a str,
    pub node: &'a Node,
    pub path: FieldPath,
}

#[derive(Debug, Clone)]
pub struct PodTemplate<'a> {
    /// The template (`metadata` + `spec`); for a Pod, the Pod itself.
    pub template: &'a Node,
    pub template_path: FieldPath,
    pub spec: &'a Node,
    pub spec_path: FieldPath,
    /// Where to point when a pod-level field is missing: the `spec:` key.
    pub spec_anchor: Span,
    pub containers: Vec<Container<'a>>,
    /// The template's labels, read once: every cross-object rule matches selectors on them.
    pub labels: Vec<(&'a str, Cow<'a, str>)>,
}

impl<'a> PodTemplate<'a> {
    pub fn labels(&self) -> &Labels<'a> {
        &self.labels
    }

    pub fn annotations(&self) -> Option<&'a Node> {
        self.template.get_path(&["metadata", "annotations"])
    }
}

/// Labels as `(key, value)`, values as text (a non-scalar value reads as empty).
pub type Labels<'a> = [(&'a str, Cow<'a, str>)];

pub fn labels_of(node: Option<&Node>) -> Vec<(&str, Cow<'_, str>)> {
    node.and_then(Node::as_map)
        .unwrap_or(&[])
        .iter()
        .map(|e| (e.key.as_str(), e.value.scalar_str().unwrap_or_default()))
        .collect()
}

/// One Kubernetes object and where it sits.
#[derive(Debug, Clone)]
pub struct Object<'a> {
    pub file: &'a str,
    pub doc_index: usize,
    /// For items of a `kind: List`, the item's path inside the document.
    pub list_path: Option<FieldPath>,
    pub node: &'a Node,
    pub api_version: &'a str,
    pub kind: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub pod: Option<PodTemplate<'a>>,
}

/// What an object is, without its content: enough to decide whether a review may leave it
/// settled (`Touched::settles`), and small enough for the view store to keep per entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Header<'a> {
    pub api_version: &'a str,
    pub kind: &'a str,
    /// As [`Object::namespace`]: none on a cluster-scoped object.
    #[serde(borrow)]
    pub namespace: Option<&'a str>,
}

impl<'a> Header<'a> {
    pub fn group(&self) -> &'a str {
        api_group(self.api_version)
    }

    pub fn is_known_kind(&self) -> bool {
        WORKLOAD_KINDS.contains(&self.kind) || KNOWN_KINDS.contains(&self.kind)
    }

    pub fn namespace_or_default(&self) -> &'a str {
        self.namespace.unwrap_or("")
    }
}

/// Kinds whose pod template Kubernetes itself defines.
pub const WORKLOAD_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
];

impl<'a> Object<'a> {
    pub fn new(file: &'a str, doc_index: usize, node: &'a Node) -> Option<Object<'a>> {
        Object::new_with(file, doc_index, node, pod_template)
    }

    fn new_with(
        file: &'a str,
        doc_index: usize,
        node: &'a Node,
        pod_template: impl Fn(&'a str, &'a Node) -> Option<PodTemplate<'a>>,
    ) -> Option<Object<'a>> {
        let (api_version, kind) = object_header(node)?;
        let metadata = node.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name").or_else(|| m.get("generateName")))
            .and_then(Node::as_str)
            .unwrap_or("");
        // The API server ignores a namespace on a cluster-scoped object, and so do we: adding
        // or removing it changes nothing.
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Node::as_str)
            .filter(|_| !is_cluster_scoped(api_group(api_version), kind));
        let pod = pod_template(kind, node);
        Some(Object {
            file,
            doc_index,
            list_path: None,
            node,
            api_version,
            kind,
            namespace,
            name,
            pod,
        })
    }

    /// The API group: `apps` for `apps/v1`, empty for the core group.
    pub fn group(&self) -> &'a str {
        api_group(self.api_version)
    }

    /// `group/Kind`, or `Kind` for the core group.
    pub fn group_kind(&self) -> String {
        match self.group() {
            "" => self.kind.to_owned(),
            g => format!("{g}/{}", self.kind),
        }
    }

    pub fn is_workload(&self) -> bool {
        self.pod.is_some()
    }

    pub fn is_known_kind(&self) -> bool {
        self.header().is_known_kind()
    }

    /// Who the object is across revisions and API-group migrations: identity group, kind,
    /// namespace, name.
    pub fn identity(&self) -> (&'a str, &'a str, &'a str, &'a str) {
        (
            identity_group(self.group(), self.kind),
            self.kind,
            self.namespace_or_default(),
            self.name,
        )
    }

    pub fn header(&self) -> Header<'a> {
        Header {
            api_version: self.api_version,
            kind: self.kind,
            namespace: self.namespace,
        }
    }

    pub fn labels(&self) -> Vec<(&'a str, Cow<'a, str>)> {
        labels_of(self.node.get_path(&["metadata", "labels"]))
    }

    pub fn annotations(&self) -> Option<&'a Node> {
        self.node.get_path(&["metadata", "annotations"])
    }

    /// The object's own path prefix inside its document (non-empty only for List items).
    pub fn base_path(&self) -> FieldPath {
        self.list_path.clone().unwrap_or_default()
    }

    pub fn namespace_or_default(&self) -> &'a str {
        self.namespace.unwrap_or("")
    }

    /// Whether a namespaced object of `other` lives in the same namespace. A missing namespace
    /// means "whatever the deploy targets", so it matches a missing one only.
    pub fn same_namespace(&self, other: &Object<'_>) -> bool {
        self.namespace_or_default() == other.namespace_or_default()
    }
}

/// Kubernetes' own cluster-scoped kinds, by group. A custom resource of the same kind name in
/// another group is not one of them (two CRDs may share a kind).
const CLUSTER_SCOPED: &[(&str, &[&str])] = &[
    (
        "",
        &["Namespace", "Node", "PersistentVolume", "ComponentStatus"],
    ),
    (
        "rbac.authorization.k8s.io",
        &["ClusterRole", "ClusterRoleBinding"],
    ),
    ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
    (
        "storage.k8s.io",
        &["StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"],
    ),
    ("scheduling.k8s.io", &["PriorityClass"]),
    ("networking.k8s.io", &["IngressClass"]),
    ("node.k8s.io", &["RuntimeClass"]),
    (
        "admissionregistration.k8s.io",
        &[
            "ValidatingWebhookConfiguration",
            "MutatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ],
    ),
    ("apiregistration.k8s.io", &["APIService"]),
    ("certificates.k8s.io", &["CertificateSigningRequest"]),
    ("policy", &["PodSecurityPolicy"]),
    ("extensions", &["PodSecurityPolicy"]),
    (
        "flowcontrol.apiserver.k8s.io",
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
];

/// Whether Kubernetes defines `group`/`kind` as cluster-scoped.
pub fn is_cluster_scoped(group: &str, kind: &str) -> bool {
    CLUSTER_SCOPED
        .iter()
        .any(|(g, kinds)| *g == group && kinds.contains(&kind))
}

/// A custom resource's scope comes from its CustomResourceDefinition when the revision has
/// one: objects of a kind its CRD declares `scope: Cluster` lose their namespace, as the API
/// server ignores it.
pub fn apply_custom_scopes(objects: &mut [Object<'_>]) {
    let cluster: Vec<(String, String)> = objects
        .iter()
        .filter(|o| o.kind == "CustomResourceDefinition" && o.group() == "apiextensions.k8s.io")
        .filter(|o| o.node.get_path(&["spec", "scope"]).and_then(Node::as_str) == Some("Cluster"))
        .filter_map(|o| {
            let group = o.node.get_path(&["spec", "group"])?.as_str()?;
            let kind = o.node.get_path(&["spec", "names", "kind"])?.as_str()?;
            Some((group.to_owned(), kind.to_owned()))
        })
        .collect();
    if cluster.is_empty() {
        return;
    }
    for o in objects.iter_mut() {
        if o.namespace.is_some() && cluster.iter().any(|(g, k)| g == o.group() && k == o.kind) {
            o.namespace = None;
        }
    }
}

/// The group a kind's identity uses: the group it moved to, for Kubernetes' own kinds that
/// moved (`extensions/v1beta1` Deployments are `apps` Deployments). Versions are never part
/// of an identity, so moves within a group (`batch/v1beta1` → `batch/v1`) need nothing here.
pub fn identity_group<'a>(group: &'a str, kind: &str) -> &'a str {
    match (group, kind) {
        ("extensions", "Deployment" | "DaemonSet" | "ReplicaSet") => "apps",
        ("extensions", "Ingress" | "NetworkPolicy" | "IngressClass") => "networking.k8s.io",
        ("extensions", "PodSecurityPolicy") => "policy",
        _ => group,
    }
}

pub fn api_group(api_version: &str) -> &str {
    match api_version.rsplit_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Kinds built into Kubernetes besides the workloads. Anything else is a custom resource,
/// whose behaviour we cannot know, so cross-object rules stay quiet around it.
pub const KNOWN_KINDS: &[&str] = &[
    "Service",
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "Namespace",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "StorageClass",
    "PriorityClass",
    "LimitRange",
    "ResourceQuota",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "Endpoints",
    "EndpointSlice",
    "PodTemplate",
    "RuntimeClass",
    "Lease",
];

fn pod_template<'a>(kind: &str, node: &'a Node) -> Option<PodTemplate<'a>> {
    let root = FieldPath::root();
    let (template, template_path, spec_parent) = match kind {
        "Pod" => (node, root.clone(), node),
        "CronJob" => {
            let template = node.get_path(&["spec", "jobTemplate", "spec", "template"])?;
            (
                template,
                root.keys(&["spec", "jobTemplate", "spec", "template"]),
                template,
            )
        }
        "PodTemplate" => (
            node.get("template")?,
            root.key("template"),
            node.get("template")?,
        ),
        _ => {
            let template = node.get_path(&["spec", "template"])?;
            (template, root.keys(&["spec", "template"]), template)
        }
    };
    let spec_entry = spec_parent.entry("spec")?;
    let spec = &spec_entry.value;
    if !matches!(spec.value, Value::Map(_)) {
        return None;
    }
    // An unknown kind only counts as a workload when its template really holds containers.
    if !WORKLOAD_KINDS.contains(&kind) && kind != "PodTemplate" && spec.get("containers").is_none()
    {
        return None;
    }
    let spec_path = template_path.key("spec");
    let mut containers = Vec::new();
    for container_kind in [
        ContainerKind::InitContainer,
        ContainerKind::Container,
        ContainerKind::EphemeralContainer,
    ] {
        let list_key = container_kind.list_key();
        let Some(items) = spec.get(list_key).and_then(Node::as_seq) else {
            continue;
        };
        let list_path = spec_path.key(list_key);
        for (i, item) in items.iter().enumerate() {
            if !matches!(item.value, Value::Map(_)) {
                continue;
            }
            containers.push(Container {
                kind: container_kind,
                name: item.get("name").and_then(Node::as_str).unwrap_or(""),
                node: item,
                path: list_path.item(i, item),
            });
        }
    }
    Some(PodTemplate {
        template,
        template_path,
        spec,
        spec_path,
        spec_anchor: spec_entry.key_span,
        containers,
        labels: labels_of(template.get_path(&["metadata", "labels"])),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ManifestFile {
        ManifestFile::parse("m.yaml", text, Limits::default())
    }

    #[test]
    fn a_file_over_a_budget_is_reported_whatever_it_looks_like() {
        let limits = Limits {
            max_file_documents: 2,
            ..Limits::default()
        };
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n";
        // Neither a template action that breaks the YAML nor the absence of any `kind` makes
        // it a skipped file: either would let a hostile file hide what came before the excess.
        for text in [
            format!("{pod}---\n{pod}---\n{pod}"),
            format!("{pod}---\nx: {{{{ oops\n---\n{pod}"),
            "a: 1\n---\nb: 2\n---\nc: 3\n".to_owned(),
        ] {
            let f = ManifestFile::parse("m.yaml", &text, limits);
            let error = f.over_budget().unwrap_or_else(|| panic!("{text}: {f:?}"));
            assert_eq!(error.budget, Some(crate::yaml::Budget::Documents));
            assert!(f.objects().is_empty(), "nothing of it is audited");
            assert_eq!(f.parse_errors().count(), 1);
            assert_eq!(f.weight.documents, 2);
        }
        let f = file(&format!("{pod}---\n{pod}"));
        assert!(f.over_budget().is_none());
        assert_eq!(f.weight.documents, 2);
        assert_eq!(f.at_path("n.yaml").weight, f.weight);
        assert_eq!(
            ManifestFile::skipped("s.yaml", SkipReason::Binary).weight,
            Weight::default()
        );
    }

    #[test]
    fn workloads_expose_their_pod_template_and_every_container_kind() {
        let f = file(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c, namespace: ns}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: init}]\n          containers: [{name: main}]\n          ephemeralContainers: [{name: debug}]\n",
        );
        let objects = f.objects();
        assert_eq!(objects.len(), 1);
        let pod = objects[0].pod.as_ref().expect("CronJob has a pod template");
        assert_eq!(
            pod.spec_path.to_string(),
            "spec.jobTemplate.spec.template.spec"
        );
        let names: Vec<_> = pod.containers.iter().map(|c| c.name).collect();
        assert_eq!(names, ["init", "main", "debug"]);
        assert_eq!(objects[0].namespace, Some("ns"));
    }

    #[test]
    fn custom_kinds_with_a_template_are_workloads_and_others_are_not() {
        let f = file(
            "apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata: {name: r}\nspec:\n  template:\n    spec:\n      containers: [{name: app}]\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec:\n  template: {spec: {size: 3}}\n",
        );
        let objects = f.objects();
        assert!(objects[0].is_workload());
        assert!(!objects[1].is_workload());
    }

    #[test]
    fn list_items_are_objects() {
        let f = file(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n",
        );
        let objects = f.objects();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[1].kind, "ConfigMap");
        assert_eq!(
            objects[1].list_path.as_ref().map(ToString::to_string),
            Some("items[1]".into())
        );
    }

    #[test]
    fn a_custom_resource_takes_its_scope_from_its_crd() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {kind: Widget, plural: widgets}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n---\napiVersion: other.io/v1\nkind: Widget\nmetadata: {name: w, namespace: default}\n";
        let parsed = file(text);
        let mut objects = parsed.objects();
        apply_custom_scopes(&mut objects);
        let namespaces: Vec<(&str, Option<&str>)> =
            objects.iter().map(|o| (o.group(), o.namespace)).collect();
        assert_eq!(
            namespaces,
            [
                ("apiextensions.k8s.io", None),
                ("example.com", None),
                ("other.io", Some("default"))
            ],
            "only the CRD's own group and kind lose the namespace"
        );
    }

    #[test]
    fn non_manifests_are_skipped_with_a_reason() {
        assert_eq!(
            file("replicaCount: 1\nimage: {tag: x}\n").content.err(),
            Some(SkipReason::NotKubernetes)
        );
        assert_eq!(
            file("apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n")
                .content
                .err(),
            Some(SkipReason::HelmTemplate)
        );
        // Quoted, so valid YAML naming an object: audited (its path decides whether it is a
        // chart template, see `is_chart_template`).
        assert!(
            file("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: \"{{ .Values.image }}\"\n")
                .content
                .is_ok()
        );
        let charts = ["charts/web".to_owned()];
        let is_chart = |dir: &str| charts.iter().any(|c| c == dir);
        assert!(is_chart_template(
            "charts/web/templates/pod.yaml",
            &is_chart
        ));
        assert!(is_chart_template(
            "charts/web/templates/sub/pod.yaml",
            &is_chart
        ));
        assert!(!is_chart_template("charts/web/values.yaml", &is_chart));
        assert!(!is_chart_template("other/templates/pod.yaml", &is_chart));
        // Control actions that break the YAML.
        assert_eq!(
            file("{{- if .Capabilities }}\napiVersion: v1\nkind: Service\n{{- end }}\n")
                .content
                .err(),
            Some(SkipReason::HelmTemplate)
        );
        assert_eq!(classify_bytes(b"a\0b", 100).err(), Some(SkipReason::Binary));
        assert_eq!(
            classify_bytes(&[0xff, 0xfe], 100).err(),
            Some(SkipReason::NotUtf8)
        );
        assert_eq!(classify_bytes(b"abc", 2).err(), Some(SkipReason::TooLarge));
    }

    #[test]
    fn go_template_text_in_valid_yaml_is_data_not_a_template() {
        let f = file(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n---\napiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: r}\nspec:\n  groups:\n  - name: g\n    rules:\n    - alert: Down\n      annotations:\n        summary: \"Instance {{ $labels.instance }} down\"\n",
        );
        assert_eq!(f.objects().len(), 2, "both documents are audited");
        // The same action where it breaks the YAML: a template after all.
        assert_eq!(
            file("apiVersion: v1\nkind: ConfigMap\ndata:\n  {{ $key }}: x\n")
                .content
                .err(),
            Some(SkipReason::HelmTemplate)
        );
    }

    #[test]
    fn kustomize_patches_are_listed() {
        let paths = kustomize_patch_paths(
            "resources: [base.yaml]\npatchesStrategicMerge: [p1.yaml]\npatches:\n- path: p2.yaml\n  target: {kind: Deployment}\n",
        );
        assert_eq!(paths, ["p1.yaml", "p2.yaml"]);
    }
}

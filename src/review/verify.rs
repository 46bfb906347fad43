//! A one-click fix is offered only when it is verified: applied to its file it parses, the
//! findings it is for are gone on re-audit, no new finding appears, it changes nothing but the
//! fields it was asked to change, and Kubernetes will still start the workload.

use std::collections::HashSet;

use crate::audit::{Finding, audit, fingerprint};
use crate::config::Policy;
use crate::fix::{Edit, FixOp, apply};
use crate::manifest::path::item_key;
use crate::manifest::{FieldPath, ManifestFile, Segment};
use crate::yaml::{Node, Value};

/// Why a fix is not offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    DoesNotParse,
    /// A finding it is for is still there.
    StillReported(String),
    /// It brings a finding the file did not have.
    NewFinding(String),
    /// It changes a field no operation names.
    ChangesMore(String),
    /// Kubernetes would refuse to start a container (e.g. `runAsNonRoot: true` with
    /// `runAsUser: 0`).
    WouldNotStart(String),
}

/// Checks a fix of `findings` (all on one object of the file at `path` with text `text`): the
/// `edits` written for `ops`. Only the object's document is re-audited (its lines
/// `doc_lines`, first and last): checking every object of a large file against the whole file
/// would take time growing with the square of its objects.
pub fn verify(
    path: &str,
    text: &str,
    doc_lines: (u32, u32),
    edits: &[Edit],
    ops: &[FixOp],
    findings: &[&Finding],
    policy: &Policy,
) -> Result<(), Rejected> {
    let (first, last) = doc_lines;
    if edits
        .iter()
        .any(|e| e.start_line < first || e.end_line > last)
    {
        return Err(Rejected::ChangesMore(
            "an edit outside the object's document".into(),
        ));
    }
    let document: String = text
        .lines()
        .skip(first as usize - 1)
        .take((last - first + 1) as usize)
        .map(|l| format!("{l}\n"))
        .collect();
    let edits: Vec<Edit> = edits
        .iter()
        .map(|e| Edit {
            start_line: e.start_line - first + 1,
            end_line: e.end_line - first + 1,
            lines: e.lines.clone(),
        })
        .collect();
    let text = document.as_str();
    let fixed = apply(text, &edits);

    let before = ManifestFile::parse(path, text, policy.yaml_limits);
    let after = ManifestFile::parse(path, &fixed, policy.yaml_limits);
    let (Ok(before_docs), Ok(after_docs)) = (&before.content, &after.content) else {
        return Err(Rejected::DoesNotParse);
    };
    if after_docs.len() != before_docs.len() || after_docs.iter().any(|d| d.root.is_err()) {
        return Err(Rejected::DoesNotParse);
    }
    // Per-object and in-file cross-object rules, as the file alone shows them: what can be
    // reproduced there can be checked there.
    let plain = |f: &Finding| {
        fingerprint(
            &f.rule,
            f.object.as_deref(),
            f.container.as_deref(),
            &f.field_path,
        )
    };
    let was: HashSet<crate::audit::Fingerprint> = audit(std::slice::from_ref(&before), policy)
        .findings
        .iter()
        .map(plain)
        .collect();
    let now: HashSet<crate::audit::Fingerprint> = audit(std::slice::from_ref(&after), policy)
        .findings
        .iter()
        .map(plain)
        .collect();
    for f in findings {
        let fp = plain(f);
        if !was.contains(&fp) || now.contains(&fp) {
            return Err(Rejected::StillReported(f.rule.to_string()));
        }
    }
    if let Some(extra) = now.difference(&was).next() {
        return Err(Rejected::NewFinding(extra.to_string()));
    }
    let Some(location) = findings.first().and_then(|f| f.location.as_ref()) else {
        return Err(Rejected::ChangesMore("no object".into()));
    };
    // The document is the first of the slice (only comments and `---` may follow it).
    for (i, (b, a)) in before_docs.iter().zip(after_docs.iter()).enumerate() {
        let (Ok(b), Ok(a)) = (&b.root, &a.root) else {
            return Err(Rejected::DoesNotParse);
        };
        let mut changed = Vec::new();
        diff(b, a, &FieldPath::root(), &mut changed);
        let base = location.list_path.clone().unwrap_or_default();
        for path in changed {
            let asked = i == 0
                && ops.iter().any(|op| {
                    let target = base.join(op.path());
                    let (p, t) = (path.segments(), target.segments());
                    p.starts_with(t) || t.starts_with(p)
                });
            if !asked {
                return Err(Rejected::ChangesMore(path.to_string()));
            }
        }
        if i == 0 {
            starts(a)?;
        }
    }
    Ok(())
}

/// Absent, `null` and empty collections mean the same to the API server.
fn is_nothing(node: Option<&Node>) -> bool {
    match node.map(|n| &n.value) {
        None | Some(Value::Null) => true,
        Some(Value::Map(entries)) => entries.is_empty(),
        Some(Value::Seq(items)) => items.is_empty(),
        _ => false,
    }
}

/// The paths where `a` and `b` differ as data, list items matched by their keys.
fn diff(a: &Node, b: &Node, at: &FieldPath, out: &mut Vec<FieldPath>) {
    match (&a.value, &b.value) {
        (Value::Map(x), Value::Map(y)) => {
            let keys: Vec<&str> = x
                .iter()
                .map(|e| e.key.as_str())
                .chain(y.iter().map(|e| e.key.as_str()))
                .collect();
            let mut seen = HashSet::new();
            for key in keys {
                if !seen.insert(key) {
                    continue;
                }
                match (a.get(key), b.get(key)) {
                    (Some(p), Some(q)) => diff(p, q, &at.key(key), out),
                    (p, q) if is_nothing(p) && is_nothing(q) => {}
                    _ => out.push(at.key(key)),
                }
            }
        }
        (Value::Seq(x), Value::Seq(y)) => {
            let list = match at.segments().last() {
                Some(Segment::Key(k)) => k.as_str(),
                _ => "",
            };
            let keyed = |items: &[Node]| -> Vec<(crate::manifest::ItemKey, usize)> {
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (item_key(list, i, item), i))
                    .collect()
            };
            let (kx, ky) = (keyed(x), keyed(y));
            for (key, i) in &kx {
                match ky.iter().find(|(k, _)| k == key) {
                    Some((_, j)) => diff(&x[*i], &y[*j], &at.item(*i, &x[*i]), out),
                    None => out.push(at.item(*i, &x[*i])),
                }
            }
            for (key, j) in &ky {
                if !kx.iter().any(|(k, _)| k == key) {
                    out.push(at.item(*j, &y[*j]));
                }
            }
        }
        (p, q) if p == q => {}
        _ if is_nothing(Some(a)) && is_nothing(Some(b)) => {}
        _ => out.push(at.clone()),
    }
}

/// Whether the kubelet starts the object's containers as far as the fields a fix can touch
/// tell: `runAsNonRoot: true` with an explicit `runAsUser: 0` is refused
/// (CreateContainerConfigError).
fn starts(object: &Node) -> Result<(), Rejected> {
    let Some(spec) = pod_spec(object) else {
        return Ok(());
    };
    let pod = spec.get("securityContext");
    fn field<'n>(container: &'n Node, pod: Option<&'n Node>, key: &str) -> Option<&'n Node> {
        container
            .get_path(&["securityContext", key])
            .or_else(|| pod.and_then(|p| p.get(key)))
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec.get(list).and_then(Node::as_seq).unwrap_or(&[]) {
            let non_root =
                field(container, pod, "runAsNonRoot").and_then(Node::as_bool) == Some(true);
            let root_uid = field(container, pod, "runAsUser").and_then(Node::as_i64) == Some(0);
            if non_root && root_uid {
                let name = container
                    .get("name")
                    .and_then(Node::scalar_text)
                    .unwrap_or_default();
                return Err(Rejected::WouldNotStart(format!(
                    "container {name}: runAsNonRoot: true with runAsUser: 0"
                )));
            }
        }
    }
    Ok(())
}

fn pod_spec(object: &Node) -> Option<&Node> {
    let kind = object.get("kind").and_then(Node::as_str)?;
    match kind {
        "Pod" => object.get("spec"),
        "CronJob" => object.get_path(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => object.get_path(&["spec", "template", "spec"]),
    }
}

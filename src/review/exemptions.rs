//! `exemptionAdded`: an exemption annotation that the change adds or widens is reported, so a
//! pull request cannot quietly silence the rules that judge it.

use foldhash::{HashMap, HashMapExt, HashSet};

use crate::audit::{Category, Finding, ObjectLocation, ObjectRef, Severity, fingerprint};
use crate::config::Policy;
use crate::diff::FileChange;
use crate::manifest::{FieldPath, ManifestFile, Object};
use crate::yaml::{Entry, Node};

pub use crate::audit::EXEMPTION_ADDED;

pub fn severity(policy: &Policy) -> Option<Severity> {
    (policy.exemption_added_severity != Severity::Ignore).then_some(policy.exemption_added_severity)
}

pub use crate::audit::is_exemption_key;

/// Exemption annotations of an object and its pod template, with where they sit.
fn annotations<'a>(object: &Object<'a>) -> Vec<(FieldPath, &'a Entry)> {
    let mut out = Vec::new();
    let mut collect = |node: Option<&'a Node>, base: FieldPath| {
        for entry in node.and_then(Node::as_map).unwrap_or(&[]) {
            if is_exemption_key(&entry.key) {
                out.push((base.clone(), entry));
            }
        }
    };
    collect(
        object.annotations(),
        FieldPath::root().keys(&["metadata", "annotations"]),
    );
    if let Some(pod) = &object.pod {
        collect(
            pod.annotations(),
            pod.template_path.keys(&["metadata", "annotations"]),
        );
    }
    out
}

/// `(where, key) -> value` of an object's exemption annotations.
type AnnotationValues = HashMap<(String, String), String>;

pub fn added(
    head_files: &[ManifestFile],
    base_files: &[ManifestFile],
    head_exempted: &[Finding],
    changed: &HashMap<&str, &FileChange>,
    old_to_new: &HashMap<&str, &str>,
    severity: Severity,
) -> Vec<Finding> {
    // The changed files' objects that carry exemption annotations: most changes have none,
    // and then the base is not looked at.
    let annotated: Vec<(&ManifestFile, Object<'_>)> = head_files
        .iter()
        .filter(|f| changed.contains_key(f.path.as_str()))
        .flat_map(|file| {
            file.objects()
                .into_iter()
                .filter(|o| !annotations(o).is_empty())
                .map(move |o| (file, o))
        })
        .collect();
    if annotated.is_empty() {
        return Vec::new();
    }
    let wanted: HashSet<_> = annotated.iter().map(|(_, o)| o.identity()).collect();
    // Base annotations per object identity: (where, key) -> value, and the path it was at.
    let mut base: HashMap<_, Vec<(String, AnnotationValues)>> = HashMap::new();
    for file in base_files {
        for o in file.objects() {
            if !wanted.contains(&o.identity()) {
                continue;
            }
            let values = annotations(&o)
                .into_iter()
                .map(|(at, e)| {
                    (
                        (at.to_string(), e.key.to_string()),
                        e.value.scalar_text().unwrap_or_default(),
                    )
                })
                .collect();
            let path = old_to_new.get(o.file).copied().unwrap_or(o.file).to_owned();
            base.entry(o.identity()).or_default().push((path, values));
        }
    }
    let mut out = Vec::new();
    for (file, o) in annotated {
        let found = annotations(&o);
        let candidates = base.get(&o.identity());
        let before = candidates.and_then(|c| {
            c.iter()
                .find(|(p, _)| p == &file.path)
                .or_else(|| c.first())
                .map(|(_, values)| values)
        });
        let object_ref = ObjectRef {
            api_version: o.api_version.to_owned(),
            kind: o.kind.to_owned(),
            namespace: o.namespace_or_default().to_owned(),
            name: o.name.to_owned(),
        };
        for (at, entry) in found {
            let value = entry.value.scalar_text().unwrap_or_default();
            let unchanged = before
                .and_then(|b| b.get(&(at.to_string(), entry.key.to_string())))
                .is_some_and(|old| *old == value);
            if unchanged {
                continue;
            }
            let silenced: Vec<&str> = head_exempted
                .iter()
                .filter(|f| {
                    f.path == file.path
                        && f.object.as_deref() == Some(&object_ref)
                        && f.exempted_by
                            .as_deref()
                            .is_some_and(|e| e.contains(entry.key.as_str()))
                })
                .map(|f| f.rule.as_str())
                .collect();
            let mut rules: Vec<&str> = silenced.clone();
            rules.sort_unstable();
            rules.dedup();
            let what = if rules.is_empty() {
                "it silences nothing today, but will hide future findings".to_owned()
            } else {
                format!(
                    "it silences {}",
                    rules
                        .iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let field_path = at.key(&entry.key).to_string();
            out.push(Finding {
                rule: EXEMPTION_ADDED.into(),
                severity,
                category: Category::Security,
                path: file.path.as_str().into(),
                line: entry.key_span.start.line,
                column: entry.key_span.start.col,
                end_line: entry.key_span.start.line,
                end_column: entry.key_span.end.col,
                fingerprint: fingerprint(
                    EXEMPTION_ADDED,
                    Some(&object_ref),
                    None,
                    &format!("{field_path}={value}"),
                ),
                object: Some(std::sync::Arc::new(object_ref.clone())),
                container: None,
                message: format!(
                    "This change adds the exemption annotation `{}`: {what}",
                    entry.key
                )
                .into(),
                field_path: field_path.into(),
                exempted_by: None,
                fix: Vec::new(),
                location: Some(Box::new(ObjectLocation {
                    doc_index: o.doc_index,
                    list_path: o.list_path.clone(),
                    start_line: o.node.span.start.line,
                    end_line: o.node.span.last_line(),
                    container_lines: None,
                })),
                targets: Vec::new(),
            });
        }
    }
    out
}

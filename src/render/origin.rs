//! From a finding in rendered output to the place in the repository that holds it: the patch
//! that sets the field, else the field in the object's origin file, else its nearest existing
//! parent there (a missing field is said on the key of its nearest existing parent).

use crate::audit::Finding;
use crate::manifest::path::item_key;
use crate::manifest::{FieldPath, Segment};
use crate::yaml::{Limits, Node, Span, parse_stream};

use super::{RenderedTarget, SourceTree};

/// Where a finding of rendered output is said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePlace {
    pub path: String,
    pub span: Span,
    /// The place sets the field itself (its value), rather than being its nearest parent.
    pub exact: bool,
    /// It is a patch of the target, not the object's own file.
    pub patch: bool,
}

/// The source place of a finding on document `doc` of `rendered`.
pub fn place_of(
    finding: &Finding,
    doc: usize,
    rendered: &RenderedTarget,
    tree: &dyn SourceTree,
) -> Option<SourcePlace> {
    let object = finding.object.as_deref()?;
    let path = FieldPath::parse_display(&finding.field_path)?;
    // Patches of the target's own kustomization first (they apply last), then its bases'.
    let root = rendered.target.root();
    let mut patch_dirs: Vec<&String> = rendered.closure.patches.keys().collect();
    patch_dirs.sort_by_key(|dir| (dir.as_str() != root, dir.len()));
    for dir in patch_dirs {
        for patch in &rendered.closure.patches[dir] {
            let Some(text) = read_text(tree, patch) else {
                continue;
            };
            for doc in parse_stream(&text, Limits::default()) {
                let Ok(node) = doc.root else { continue };
                if !same_object(&node, &object.kind, &object.name) {
                    continue;
                }
                if let (span, true) = resolve(&node, &path) {
                    return Some(SourcePlace {
                        path: patch.clone(),
                        span,
                        exact: true,
                        patch: true,
                    });
                }
            }
        }
    }
    let origin = rendered.origins.get(doc)?.as_ref()?;
    let text = read_text(tree, origin)?;
    let docs = parse_stream(&text, Limits::default());
    let node = docs
        .iter()
        .filter_map(|d| d.root.as_ref().ok())
        .filter(|n| n.get("kind").and_then(Node::as_str) == Some(object.kind.as_str()))
        .max_by_key(|n| name_match(n, &object.name))?;
    let (span, exact) = resolve(node, &path);
    Some(SourcePlace {
        path: origin.clone(),
        span,
        exact,
        patch: false,
    })
}

fn read_text(tree: &dyn SourceTree, path: &str) -> Option<String> {
    tree.read(path).and_then(|b| String::from_utf8(b).ok())
}

fn name_of(node: &Node) -> &str {
    node.get_path(&["metadata", "name"])
        .and_then(Node::as_str)
        .unwrap_or("")
}

/// How well a source document's name explains a rendered name (prefixes, suffixes and hash
/// suffixes are added by kustomize): 2 the same, 1 contained, 0 not at all.
fn name_match(node: &Node, rendered: &str) -> u8 {
    let name = name_of(node);
    if name == rendered {
        2
    } else if !name.is_empty() && rendered.contains(name) {
        1
    } else {
        0
    }
}

fn same_object(node: &Node, kind: &str, rendered_name: &str) -> bool {
    node.get("kind").and_then(Node::as_str) == Some(kind) && name_match(node, rendered_name) > 0
}

/// The span at `path` in `root`, and whether all of it exists; else the span of the key of
/// its nearest existing parent.
fn resolve(root: &Node, path: &FieldPath) -> (Span, bool) {
    let mut node = root;
    let mut span = Span::point(root.span.start);
    let mut list_name = "";
    for segment in path.segments() {
        match segment {
            Segment::Key(key) => match node.entry(key) {
                Some(entry) => {
                    span = entry.key_span;
                    node = &entry.value;
                    list_name = entry.key.as_str();
                }
                None => return (span, false),
            },
            Segment::Item(key) => {
                let found = node.as_seq().and_then(|items| {
                    items
                        .iter()
                        .enumerate()
                        .find(|(i, item)| item_key(list_name, *i, item) == *key)
                });
                match found {
                    Some((_, item)) => {
                        span = item.span;
                        node = item;
                    }
                    None => return (span, false),
                }
            }
        }
    }
    (node.span, true)
}

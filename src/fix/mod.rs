//! Mechanical fixes as text edits that keep the file's indentation and style.
//!
//! A fix is a list of operations on field paths of one object ("set this field", "remove that
//! one"). Operations on the same object are merged before any text is written, so two fixes that
//! both need a missing `securityContext:` create it once. The result is a set of line-range
//! replacements, each of which can become one suggestion; a fix we cannot write safely (flow
//! style, multi-line scalars) is dropped rather than guessed.

use serde::Serialize;
use serde_json::Value as Json;

use crate::manifest::{FieldPath, ItemKey, Segment};
use crate::yaml::{Entry, Node, Value};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "op")]
pub enum FixOp {
    Set { path: FieldPath, value: Json },
    Remove { path: FieldPath },
}

impl FixOp {
    pub fn path(&self) -> &FieldPath {
        match self {
            FixOp::Set { path, .. } | FixOp::Remove { path } => path,
        }
    }
}

impl Serialize for FieldPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Replace lines `start..=end` (1-based, of the file) with `lines`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edit {
    pub start_line: u32,
    pub end_line: u32,
    pub lines: Vec<String>,
}

/// A primitive change on original line numbers, before merging into [`Edit`]s.
#[derive(Debug, Clone)]
enum Primitive {
    /// Replace lines `start..=end`.
    Replace {
        start: u32,
        end: u32,
        lines: Vec<String>,
    },
    /// Insert after `line`.
    Insert { after: u32, lines: Vec<String> },
}

impl Primitive {
    fn first(&self) -> u32 {
        match self {
            Primitive::Replace { start, .. } => *start,
            Primitive::Insert { after, .. } => *after,
        }
    }
    fn last(&self) -> u32 {
        match self {
            Primitive::Replace { end, .. } => *end,
            Primitive::Insert { after, .. } => *after,
        }
    }
}

/// Text of line `n` (1-based).
fn line_text<'t>(lines: &[&'t str], n: u32) -> &'t str {
    lines.get(n as usize - 1).copied().unwrap_or("")
}

/// Byte offset of a 1-based character column within a line.
fn byte_at(line: &str, col: u32) -> usize {
    line.char_indices()
        .nth(col.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i)
}

fn is_flow(lines: &[&str], node: &Node) -> bool {
    let line = line_text(lines, node.span.start.line);
    let at = byte_at(line, node.span.start.col);
    matches!(line[at..].chars().next(), Some('{' | '['))
}

/// The last line holding content of a node (its own span's end can run into trailing blank
/// lines and comments).
fn content_last_line(node: &Node) -> u32 {
    match &node.value {
        Value::Map(entries) => entries.last().map_or(node.span.start.line, |e| {
            content_last_line(&e.value).max(e.key_span.start.line)
        }),
        Value::Seq(items) => items.last().map_or(node.span.start.line, content_last_line),
        _ => node.span.last_line().max(node.span.start.line),
    }
}

/// A scalar as YAML text that reads back as the same value under Kubernetes' rules.
pub fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
                && matches!(crate::yaml::resolve_plain(s), Value::Str(_));
            if plain {
                s.clone()
            } else {
                Json::String(s.clone()).to_string()
            }
        }
        Json::Null => "null".into(),
        other => other.to_string(),
    }
}

/// Block-style YAML for `key: value` at `indent` spaces.
fn render_entry(key: &str, value: &Json, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    match value {
        Json::Object(map) if !map.is_empty() => {
            out.push(format!("{pad}{key}:"));
            for (k, v) in map {
                render_entry(k, v, indent + 2, out);
            }
        }
        Json::Array(items)
            if !items.is_empty() && items.iter().all(|i| !i.is_object() && !i.is_array()) =>
        {
            out.push(format!("{pad}{key}:"));
            for item in items {
                out.push(format!("{pad}  - {}", scalar_text(item)));
            }
        }
        Json::Array(items) if !items.is_empty() => {
            out.push(format!("{pad}{key}: {value}"));
            let _ = items;
        }
        Json::Object(_) => out.push(format!("{pad}{key}: {{}}")),
        Json::Array(_) => out.push(format!("{pad}{key}: []")),
        scalar => out.push(format!("{pad}{key}: {}", scalar_text(scalar))),
    }
}

/// The node a field path names in an object, list items found by their keys.
pub fn node_at<'n>(object: &'n Node, path: &FieldPath) -> Option<&'n Node> {
    path.segments().iter().try_fold(object, |node, segment| {
        child(node, segment).map(|c| c.node())
    })
}

/// Finds the child of `node` that a path segment names.
fn child<'n>(node: &'n Node, segment: &Segment) -> Option<ChildRef<'n>> {
    match segment {
        Segment::Key(k) => node.entry(k).map(ChildRef::Entry),
        Segment::Item(key) => {
            let items = node.as_seq()?;
            let found = items.iter().enumerate().find(|(i, item)| match key {
                ItemKey::Index(n) => i == n,
                ItemKey::Content(c) => {
                    item.as_map().is_some() && crate::manifest::path::content_key(item) == *c
                }
                ItemKey::Value(v) => item.scalar_text().as_deref() == Some(v.as_str()),
                ItemKey::Field(f, v) => {
                    item.get(f).and_then(Node::scalar_text).as_deref() == Some(v.as_str())
                }
            });
            found.map(|(_, item)| ChildRef::Item(item))
        }
    }
}

enum ChildRef<'n> {
    Entry(&'n Entry),
    Item(&'n Node),
}

impl<'n> ChildRef<'n> {
    fn node(&self) -> &'n Node {
        match self {
            ChildRef::Entry(e) => &e.value,
            ChildRef::Item(n) => n,
        }
    }
}

/// Where a `set` lands: the deepest existing node, and what is missing below it.
struct Landing<'n> {
    /// The deepest existing mapping (or null-valued entry) on the path.
    parent: &'n Node,
    /// The entry holding `parent`, when `parent` is a mapping value.
    parent_entry: Option<&'n Entry>,
    missing: Vec<String>,
    /// The existing target, when nothing is missing.
    existing: Option<&'n Entry>,
}

fn land<'n>(root: &'n Node, path: &FieldPath) -> Option<Landing<'n>> {
    let mut node = root;
    let mut holder: Option<&'n Entry> = None;
    let segments = path.segments();
    for (i, segment) in segments.iter().enumerate() {
        match child(node, segment) {
            Some(ChildRef::Entry(e)) if i + 1 == segments.len() => {
                return Some(Landing {
                    parent: node,
                    parent_entry: holder,
                    missing: Vec::new(),
                    existing: Some(e),
                });
            }
            Some(ChildRef::Entry(e)) if e.value.is_null() || is_empty_map(&e.value) => {
                // `securityContext:` with nothing under it: build below this key.
                let rest = keys_only(&segments[i + 1..])?;
                return Some(Landing {
                    parent: &e.value,
                    parent_entry: Some(e),
                    missing: rest,
                    existing: None,
                });
            }
            Some(r) => {
                holder = match r {
                    ChildRef::Entry(e) => Some(e),
                    ChildRef::Item(_) => None,
                };
                node = r.node();
            }
            None => {
                let rest = keys_only(&segments[i..])?;
                return Some(Landing {
                    parent: node,
                    parent_entry: holder,
                    missing: rest,
                    existing: None,
                });
            }
        }
    }
    None
}

fn is_empty_map(node: &Node) -> bool {
    matches!(&node.value, Value::Map(m) if m.is_empty())
}

fn keys_only(segments: &[Segment]) -> Option<Vec<String>> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Key(k) => Some(k.clone()),
            Segment::Item(_) => None,
        })
        .collect()
}

fn nest(keys: &[String], value: Json) -> Json {
    keys.iter().rev().fold(value, |acc, k| {
        Json::Object([(k.clone(), acc)].into_iter().collect())
    })
}

fn merge_json(into: &mut Json, from: Json) {
    match (into, from) {
        (Json::Object(a), Json::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge_json(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Plans the text edits for `ops` on `object` (a node of the file whose text is `text`).
/// Returns `None` when any operation cannot be written safely.
pub fn plan(text: &str, object: &Node, ops: &[FixOp]) -> Option<Vec<Edit>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut primitives: Vec<Primitive> = Vec::new();
    // Insertions grouped by the node they go under, merged as data first.
    let mut inserts: Vec<(*const Node, &Node, Option<&Entry>, Json)> = Vec::new();
    let ops = &group_item_removals(object, ops)?;
    for op in ops {
        if let FixOp::Remove { path } = op
            && let Some(Segment::Item(_)) = path.segments().last()
        {
            // One item of a list that keeps others: only its own lines go.
            let list = land(object, &path.parent())?.existing?;
            let item = child(&list.value, path.segments().last()?)?;
            primitives.push(remove_item(&lines, &list.value, item.node())?);
            continue;
        }
        match op {
            FixOp::Set { path, value } => {
                let landing = land(object, path)?;
                if let Some(entry) = landing.existing {
                    primitives.push(replace_value(&lines, entry, value)?);
                } else {
                    let addition = nest(&landing.missing, value.clone());
                    let key = landing.parent as *const Node;
                    match inserts.iter_mut().find(|(k, ..)| *k == key) {
                        Some((.., json)) => merge_json(json, addition),
                        None => inserts.push((key, landing.parent, landing.parent_entry, addition)),
                    }
                }
            }
            FixOp::Remove { path } => {
                // Removing the last key of a mapping removes the mapping's own key too, so no
                // empty `capabilities:` is left behind.
                let mut path = path.clone();
                let mut landing = land(object, &path)?;
                while landing.parent.as_map().is_some_and(|m| m.len() == 1)
                    && path.segments().len() > 1
                    && matches!(path.segments()[path.segments().len() - 2], Segment::Key(_))
                {
                    let parent_path = path.parent();
                    let Some(up) = land(object, &parent_path) else {
                        break;
                    };
                    if up.existing.is_none() {
                        break;
                    }
                    path = parent_path;
                    landing = up;
                }
                let entry = landing.existing?;
                primitives.push(remove_entry(&lines, landing.parent, entry)?);
            }
        }
    }
    for (_, parent, holder, addition) in inserts {
        // Keys added to a flow mapping (`capabilities: {add: [CHOWN]}`): the mapping is
        // rewritten whole, as block style, with its old keys and the new ones.
        if let Some(holder) = holder
            && std::ptr::eq(&holder.value, parent)
            && matches!(parent.value, Value::Map(_))
            && is_flow(&lines, parent)
            && parent.span.start.line == parent.span.last_line()
        {
            let mut merged = parent.to_json();
            merge_json(&mut merged, addition);
            primitives.push(replace_value(&lines, holder, &merged)?);
            continue;
        }
        primitives.push(insert_under(&lines, parent, holder, &addition)?);
    }
    Some(merge(&lines, primitives))
}

/// Removals of list items, per list: a list that would lose every item is removed as a whole
/// (no `add: []` left behind); the others stay item removals. Other operations pass through.
fn group_item_removals(object: &Node, ops: &[FixOp]) -> Option<Vec<FixOp>> {
    let mut out: Vec<FixOp> = Vec::new();
    let mut by_list: Vec<(FieldPath, Vec<FieldPath>)> = Vec::new();
    for op in ops {
        match op {
            FixOp::Remove { path } if matches!(path.segments().last(), Some(Segment::Item(_))) => {
                let list = path.parent();
                match by_list.iter_mut().find(|(l, _)| *l == list) {
                    Some((_, items)) => {
                        if !items.contains(path) {
                            items.push(path.clone());
                        }
                    }
                    None => by_list.push((list, vec![path.clone()])),
                }
            }
            other => out.push(other.clone()),
        }
    }
    for (list, items) in by_list {
        let length = land(object, &list)?
            .existing?
            .value
            .as_seq()
            .map_or(0, <[Node]>::len);
        if items.len() >= length {
            out.push(FixOp::Remove { path: list });
        } else {
            out.extend(items.into_iter().map(|path| FixOp::Remove { path }));
        }
    }
    Some(out)
}

/// Removes one block-style item (`- VALUE`, on lines of its own) from `list`.
fn remove_item(lines: &[&str], list: &Node, item: &Node) -> Option<Primitive> {
    if is_flow(lines, list) {
        return None;
    }
    let line_no = item.span.start.line;
    let line = line_text(lines, line_no);
    // The item must start its line: `- X`, nothing before the dash but indentation.
    let dash = line.find('-')?;
    if !line[..dash].trim().is_empty() || byte_at(line, item.span.start.col) <= dash {
        return None;
    }
    Some(Primitive::Replace {
        start: line_no,
        end: content_last_line(item).max(line_no),
        lines: Vec::new(),
    })
}

fn replace_value(lines: &[&str], entry: &Entry, value: &Json) -> Option<Primitive> {
    let node = &entry.value;
    let line_no = entry.key_span.start.line;
    let line = line_text(lines, line_no);
    let scalar = !matches!(node.value, Value::Map(_) | Value::Seq(_));
    if scalar && !value.is_object() && !value.is_array() {
        if node.span.start.line != line_no || node.span.end.line != line_no && node.span.end.col > 1
        {
            return None;
        }
        let start = byte_at(line, node.span.start.col);
        let end = if node.span.end.line == line_no {
            byte_at(line, node.span.end.col)
        } else {
            line.len()
        };
        let rewritten = format!("{}{}{}", &line[..start], scalar_text(value), &line[end..]);
        return Some(Primitive::Replace {
            start: line_no,
            end: line_no,
            lines: vec![rewritten],
        });
    }
    // A whole block replaced: keep the key line's prefix (indent, `- `), rewrite what follows.
    if is_flow(lines, node) && node.span.start.line != line_no {
        return None;
    }
    let key_at = byte_at(line, entry.key_span.start.col);
    let prefix = &line[..key_at];
    let indent = line[..key_at].chars().count();
    let mut rendered = Vec::new();
    render_entry(&entry.key, value, indent, &mut rendered);
    if let Some(first) = rendered.first_mut() {
        *first = format!("{prefix}{}", first.trim_start());
    }
    Some(Primitive::Replace {
        start: line_no,
        end: content_last_line(node).max(line_no),
        lines: rendered,
    })
}

fn remove_entry(lines: &[&str], parent: &Node, entry: &Entry) -> Option<Primitive> {
    let line_no = entry.key_span.start.line;
    let line = line_text(lines, line_no);
    let key_at = byte_at(line, entry.key_span.start.col);
    // `- hostPort: 1` as the first key of an item, or `{a: 1}` flow style: not a line edit.
    if !line[..key_at].trim().is_empty() || is_flow(lines, parent) {
        return None;
    }
    Some(Primitive::Replace {
        start: line_no,
        end: content_last_line(&entry.value).max(line_no),
        lines: Vec::new(),
    })
}

fn insert_under(
    lines: &[&str],
    parent: &Node,
    holder: Option<&Entry>,
    addition: &Json,
) -> Option<Primitive> {
    let Json::Object(map) = addition else {
        return None;
    };
    if let Value::Map(entries) = &parent.value
        && let Some(first) = entries.first()
    {
        if is_flow(lines, parent) {
            return None;
        }
        let indent = first.key_span.start.col as usize - 1;
        let mut out = Vec::new();
        for (k, v) in map {
            render_entry(k, v, indent, &mut out);
        }
        return Some(Primitive::Insert {
            after: content_last_line(parent),
            lines: out,
        });
    }
    // An empty or null value under `key:`: rewrite the key line without its value, then nest.
    let holder = holder?;
    let line_no = holder.key_span.start.line;
    let line = line_text(lines, line_no);
    let key_at = byte_at(line, holder.key_span.start.col);
    let key_indent = line[..key_at].chars().count();
    let colon = line[key_at..].find(':')? + key_at;
    let mut out = vec![format!("{}:", &line[..colon])];
    for (k, v) in map {
        render_entry(k, v, key_indent + 2, &mut out);
    }
    Some(Primitive::Replace {
        start: line_no,
        end: line_no,
        lines: out,
    })
}

/// Merges primitives into non-overlapping edits of contiguous line ranges; adjacent ones join
/// too, so fixes to one block become one suggestion.
fn merge(lines: &[&str], mut primitives: Vec<Primitive>) -> Vec<Edit> {
    primitives.sort_by_key(|p| (p.first(), p.last()));
    let mut groups: Vec<Vec<Primitive>> = Vec::new();
    for p in primitives {
        match groups.last_mut() {
            Some(group)
                if group.iter().map(Primitive::last).max().unwrap_or(0) + 1 >= p.first() =>
            {
                group.push(p)
            }
            _ => groups.push(vec![p]),
        }
    }
    groups
        .into_iter()
        .map(|group| {
            let start = group.iter().map(Primitive::first).min().unwrap_or(1);
            let end = group.iter().map(Primitive::last).max().unwrap_or(start);
            let mut out = Vec::new();
            let mut line = start;
            while line <= end {
                let replaced = group.iter().find_map(|p| match p {
                    Primitive::Replace { start, end, lines } if *start == line => {
                        Some((*end, lines.clone()))
                    }
                    _ => None,
                });
                match replaced {
                    Some((last, new_lines)) => {
                        out.extend(new_lines);
                        out.extend(inserts_after(&group, line, last));
                        line = last + 1;
                    }
                    None => {
                        out.push(line_text(lines, line).to_owned());
                        out.extend(inserts_after(&group, line, line));
                        line += 1;
                    }
                }
            }
            Edit {
                start_line: start,
                end_line: end,
                lines: out,
            }
        })
        .collect()
}

/// The lines inserted after lines `from..=to`, innermost first: where several mappings end on
/// the same line (a container's `securityContext`, the container, the pod spec), the deepest
/// one's new keys must come before its parents' or they would land in the wrong mapping.
fn inserts_after(group: &[Primitive], from: u32, to: u32) -> Vec<String> {
    let mut inserted: Vec<&Vec<String>> = group
        .iter()
        .filter_map(|p| match p {
            Primitive::Insert { after, lines } if *after >= from && *after <= to => Some(lines),
            _ => None,
        })
        .collect();
    let indent = |lines: &&Vec<String>| lines.first().map_or(0, |l| l.len() - l.trim_start().len());
    inserted.sort_by_key(|lines| std::cmp::Reverse(indent(lines)));
    inserted.into_iter().flatten().cloned().collect()
}

/// Applies edits (non-overlapping) to a text.
pub fn apply(text: &str, edits: &[Edit]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.start_line);
    let mut out: Vec<String> = Vec::new();
    let mut next = 1u32;
    for edit in sorted {
        while next < edit.start_line {
            out.push(line_text(&lines, next).to_owned());
            next += 1;
        }
        out.extend(edit.lines.iter().cloned());
        next = edit.end_line + 1;
    }
    while (next as usize) <= lines.len() {
        out.push(line_text(&lines, next).to_owned());
        next += 1;
    }
    let mut result = out.join("\n");
    if text.ends_with('\n') {
        result.push('\n');
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    fn root(text: &str) -> Node {
        parse_stream(text, Limits::default())
            .into_iter()
            .next()
            .and_then(|d| d.root.ok())
            .expect("parses")
    }

    fn path(keys: &str) -> FieldPath {
        FieldPath::parse_keys(keys)
    }

    fn container_path(name: &str) -> FieldPath {
        FieldPath::root()
            .keys(&["spec", "containers"])
            .extend(&[Segment::Item(ItemKey::Field("name", name.into()))])
    }

    const POD: &str = "kind: Pod\nspec:\n  containers:\n    - name: web # the app\n      image: nginx:1.27\n      securityContext:\n        privileged: true\n    - name: side\n      image: x:1\n";

    #[test]
    fn fixes_on_one_block_merge_into_one_edit_without_duplicate_keys() {
        let node = root(POD);
        let sc = container_path("web").key("securityContext");
        let ops = vec![
            FixOp::Set {
                path: sc.key("privileged"),
                value: Json::Bool(false),
            },
            FixOp::Set {
                path: sc.key("runAsNonRoot"),
                value: Json::Bool(true),
            },
            FixOp::Set {
                path: sc.key("allowPrivilegeEscalation"),
                value: Json::Bool(false),
            },
        ];
        let edits = plan(POD, &node, &ops).expect("writable");
        assert_eq!(edits.len(), 1);
        assert_eq!((edits[0].start_line, edits[0].end_line), (7, 7));
        assert_eq!(
            edits[0].lines,
            [
                "        privileged: false",
                "        runAsNonRoot: true",
                "        allowPrivilegeEscalation: false"
            ]
        );
        let fixed = apply(POD, &edits);
        assert!(parse_stream(&fixed, Limits::default())[0].root.is_ok());
    }

    #[test]
    fn a_missing_block_is_created_once_at_the_container_indentation() {
        let node = root(POD);
        let sc = container_path("side").key("securityContext");
        let ops = vec![
            FixOp::Set {
                path: sc.key("runAsNonRoot"),
                value: Json::Bool(true),
            },
            FixOp::Set {
                path: sc.key("capabilities").key("drop"),
                value: serde_json::json!(["ALL"]),
            },
        ];
        let edits = plan(POD, &node, &ops).expect("writable");
        assert_eq!(edits.len(), 1);
        assert_eq!(edits[0].start_line, 9);
        assert_eq!(
            edits[0].lines,
            [
                "      image: x:1",
                "      securityContext:",
                "        runAsNonRoot: true",
                "        capabilities:",
                "          drop:",
                "            - ALL"
            ]
        );
    }

    #[test]
    fn removals_and_null_parents() {
        let text = "spec:\n  hostNetwork: true\n  securityContext:\n  containers: []\n";
        let node = root(text);
        let ops = vec![
            FixOp::Remove {
                path: path("spec.hostNetwork"),
            },
            FixOp::Set {
                path: path("spec.securityContext.runAsNonRoot"),
                value: Json::Bool(true),
            },
        ];
        let edits = plan(text, &node, &ops).expect("writable");
        let fixed = apply(text, &edits);
        assert_eq!(
            fixed,
            "spec:\n  securityContext:\n    runAsNonRoot: true\n  containers: []\n"
        );
    }

    #[test]
    fn flow_style_over_several_lines_is_left_alone() {
        let text = "spec: {containers: [{name: a}],\n  volumes: []}\n";
        let node = root(text);
        let ops = vec![FixOp::Set {
            path: path("spec.hostNetwork"),
            value: Json::Bool(false),
        }];
        assert!(plan(text, &node, &ops).is_none());
    }

    #[test]
    fn a_one_line_flow_mapping_that_gains_a_key_is_rewritten_whole() {
        let text = "c:\n  securityContext:\n    capabilities: {add: [CHOWN]}\n";
        let node = root(text);
        let ops = vec![FixOp::Set {
            path: path("c.securityContext.capabilities.drop"),
            value: serde_json::json!(["ALL"]),
        }];
        let edits = plan(text, &node, &ops).expect("writable");
        assert_eq!(
            apply(text, &edits),
            "c:\n  securityContext:\n    capabilities:\n      add:\n        - CHOWN\n      drop:\n        - ALL\n"
        );
    }

    #[test]
    fn only_the_named_list_items_are_removed() {
        let text = "add:\n  - NET_BIND_SERVICE\n  - SYS_ADMIN\n  - NET_RAW\n";
        let node = root(text);
        let list = node.get("add").and_then(Node::as_seq).expect("list");
        let item = |i: usize| FixOp::Remove {
            path: FieldPath::root().key("add").item(i, &list[i]),
        };
        let edits = plan(text, &node, &[item(1)]).expect("writable");
        assert_eq!(
            apply(text, &edits),
            "add:\n  - NET_BIND_SERVICE\n  - NET_RAW\n"
        );
        // Every item named: the list goes, not an empty `add: []`.
        let edits = plan(text, &node, &[item(0), item(1), item(2)]).expect("writable");
        assert_eq!(apply(text, &edits).trim(), "");
    }

    #[test]
    fn scalars_keep_their_meaning() {
        assert_eq!(scalar_text(&Json::String("Always".into())), "Always");
        assert_eq!(scalar_text(&Json::String("yes".into())), "\"yes\"");
        assert_eq!(scalar_text(&Json::String("0644".into())), "\"0644\"");
        assert_eq!(scalar_text(&Json::Bool(true)), "true");
    }
}

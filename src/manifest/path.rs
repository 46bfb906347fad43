//! Field paths that survive edits: list items are named by what they are — their merge key,
//! their value, or their content — never by position, so reordering containers or env vars, or
//! deleting an unrelated earlier RBAC rule, does not change a finding's identity.

use std::fmt;

use crate::yaml::Node;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    Key(String),
    /// A list item identified by `field=value` (its merge key), its own scalar value, or, for
    /// lists without a key, its index.
    Item(ItemKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemKey {
    Field(&'static str, String),
    Value(String),
    /// A mapping with no merge key, by its content (see [`content_key`]).
    Content(String),
    /// Only for items that are themselves lists.
    Index(usize),
}

impl FieldPath {
    pub const fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    pub fn parse_keys(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .filter(|s| !s.is_empty())
                .map(|s| Segment::Key(s.to_owned()))
                .collect(),
        )
    }

    /// A copy with room for `extra` more segments, so extending it does not reallocate.
    pub fn copy_with_room(&self, extra: usize) -> FieldPath {
        let mut segments = Vec::with_capacity(self.0.len() + extra);
        segments.extend_from_slice(&self.0);
        FieldPath(segments)
    }

    pub fn key(&self, key: &str) -> FieldPath {
        let mut next = self.copy_with_room(1);
        next.push_key(key);
        next
    }

    pub fn keys(&self, keys: &[&str]) -> FieldPath {
        let mut next = self.copy_with_room(keys.len());
        next.0
            .extend(keys.iter().map(|k| Segment::Key((*k).to_owned())));
        next
    }

    /// The path of item `index` of the list at this path.
    pub fn item(&self, index: usize, item: &Node) -> FieldPath {
        let mut next = self.copy_with_room(1);
        next.push_item(index, item);
        next
    }

    /// Appends a key, in place.
    pub fn push_key(&mut self, key: &str) {
        self.0.push(Segment::Key(key.to_owned()));
    }

    /// Appends item `index` of the list at this path, in place.
    pub fn push_item(&mut self, index: usize, item: &Node) {
        let list_name = match self.0.last() {
            Some(Segment::Key(k)) => k.as_str(),
            _ => "",
        };
        let key = item_key(list_name, index, item);
        self.0.push(Segment::Item(key));
    }

    pub fn join(&self, other: &FieldPath) -> FieldPath {
        self.extend(&other.0)
    }

    pub fn extend(&self, segments: &[Segment]) -> FieldPath {
        let mut next = self.copy_with_room(segments.len());
        next.0.extend_from_slice(segments);
        next
    }

    /// The path without its last segment.
    pub fn parent(&self) -> FieldPath {
        let mut next = self.clone();
        next.0.pop();
        next
    }

    /// The path as text, as `Display` writes it, in one allocation of about the right size
    /// (`to_string` grows its buffer a few times for a typical path).
    pub fn to_text(&self) -> String {
        let estimate: usize = self
            .0
            .iter()
            .map(|segment| match segment {
                Segment::Key(k) => k.len() + 1,
                Segment::Item(ItemKey::Field(field, value)) => field.len() + value.len() + 3,
                Segment::Item(ItemKey::Value(value)) => value.len() + 3,
                Segment::Item(ItemKey::Content(content)) => content.len() + 2,
                Segment::Item(ItemKey::Index(_)) => 6,
            })
            .sum();
        let mut text = String::with_capacity(estimate);
        // Writing to a `String` cannot fail.
        let _ = fmt::Write::write_fmt(&mut text, format_args!("{self}"));
        text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The merge keys [`item_key`] uses, by name: how a written `[field=value]` reads back.
const ITEM_FIELDS: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "mountPath",
    "devicePath",
    "ip",
];

impl FieldPath {
    /// Reads back a path as [`fmt::Display`] writes it (`spec.containers[name=web].ports[0]`,
    /// `metadata.annotations["a.b/c"]`); `None` for text it never writes.
    pub fn parse_display(text: &str) -> Option<FieldPath> {
        let mut segments = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                if after.starts_with('"') {
                    // A quoted key, written with Rust's string escapes.
                    let end = quoted_end(after)?;
                    let key: String = serde_json::from_str(&after[..end]).ok()?;
                    segments.push(Segment::Key(key));
                    rest = after[end..].strip_prefix(']')?;
                } else {
                    let end = after.find(']')?;
                    let inner = &after[..end];
                    segments.push(Segment::Item(parse_item(inner)?));
                    rest = &after[end + 1..];
                }
            } else {
                let rest_key = rest.strip_prefix('.').unwrap_or(rest);
                let end = rest_key.find(['.', '[']).unwrap_or(rest_key.len());
                if end == 0 {
                    return None;
                }
                segments.push(Segment::Key(rest_key[..end].to_owned()));
                rest = &rest_key[end..];
            }
        }
        Some(FieldPath(segments))
    }
}

/// Where the quoted string at the start of `text` ends (after its closing quote).
fn quoted_end(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in text.char_indices().skip(1) {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some(i + 1),
            _ => escaped = false,
        }
    }
    None
}

fn parse_item(inner: &str) -> Option<ItemKey> {
    if let Some(value) = inner.strip_prefix('=') {
        return Some(ItemKey::Value(value.to_owned()));
    }
    if inner.starts_with('#') || inner.contains(';') || inner.starts_with("apiGroups=") {
        return Some(ItemKey::Content(inner.to_owned()));
    }
    if let Ok(index) = inner.parse() {
        return Some(ItemKey::Index(index));
    }
    let (field, value) = inner.split_once('=')?;
    if field == "verbs" || field == "resources" || field == "nonResourceURLs" {
        return Some(ItemKey::Content(inner.to_owned()));
    }
    let field = ITEM_FIELDS.iter().find(|f| **f == field)?;
    Some(ItemKey::Field(field, value.to_owned()))
}

/// The identity of a list item. Kubernetes' strategic-merge keys where the list has one.
pub fn item_key(list_name: &str, index: usize, item: &Node) -> ItemKey {
    if let Some(text) = item.scalar_text() {
        return ItemKey::Value(text);
    }
    let candidates: &[&'static str] = match list_name {
        "ports" => &["name", "containerPort", "port"],
        "volumeMounts" | "volumeDevices" => &["mountPath", "devicePath", "name"],
        "hostAliases" => &["ip"],
        "imagePullSecrets"
        | "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "sysctls" => &["name"],
        "envFrom" => &[],
        _ => &["name"],
    };
    for field in candidates {
        if let Some(value) = item.get(field).and_then(Node::scalar_text)
            && !value.is_empty()
        {
            return ItemKey::Field(field, value);
        }
    }
    // An object of a `kind: List` is found by position: its identity is its own kind and
    // name, never this path.
    let is_object = item.get("apiVersion").is_some() && item.get("kind").is_some();
    if item.as_map().is_some() && !is_object {
        return ItemKey::Content(content_key(item));
    }
    ItemKey::Index(index)
}

/// The identity of a mapping without a merge key. An RBAC rule is what it grants, written out
/// (`apiGroups=apps;resources=deployments;verbs=get,list`, each list sorted); anything else is
/// a short digest of its content, keys in order, so formatting and key order do not matter.
pub fn content_key(item: &Node) -> String {
    const RBAC: &[&str] = &[
        "apiGroups",
        "resources",
        "resourceNames",
        "nonResourceURLs",
        "verbs",
    ];
    if item.get("verbs").is_some() {
        let mut parts = Vec::new();
        for field in RBAC {
            let Some(values) = item.get(field) else {
                continue;
            };
            let mut values: Vec<String> = match values.as_seq() {
                Some(list) => list.iter().filter_map(Node::scalar_text).collect(),
                None => values.scalar_text().into_iter().collect(),
            };
            values.sort();
            parts.push(format!("{field}={}", values.join(",")));
        }
        return parts.join(";");
    }
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    canonical(item, &mut |bytes| hasher.update(bytes));
    let digest = hasher.finalize();
    let mut out = String::with_capacity(9);
    out.push('#');
    for byte in &digest[..4] {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Feeds a node's content to `sink` with mapping keys sorted: the same content, the same bytes.
fn canonical(node: &Node, sink: &mut dyn FnMut(&[u8])) {
    use crate::yaml::Value;
    match &node.value {
        Value::Map(entries) => {
            let mut sorted: Vec<&crate::yaml::Entry> = entries.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            sink(b"{");
            for entry in sorted {
                sink(entry.key.as_bytes());
                sink(b"\x1f");
                canonical(&entry.value, sink);
                sink(b"\x1e");
            }
            sink(b"}");
        }
        Value::Seq(items) => {
            sink(b"[");
            for item in items {
                canonical(item, sink);
                sink(b"\x1e");
            }
            sink(b"]");
        }
        _ => {
            sink(node.kind_name().as_bytes());
            sink(b":");
            sink(node.scalar_text().unwrap_or_default().as_bytes());
        }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for segment in &self.0 {
            match segment {
                Segment::Key(k) => {
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if plain {
                        if !first {
                            f.write_str(".")?;
                        }
                        f.write_str(k)?;
                    } else {
                        write!(f, "[{k:?}]")?;
                    }
                }
                Segment::Item(ItemKey::Field(field, value)) => write!(f, "[{field}={value}]")?,
                Segment::Item(ItemKey::Value(value)) => write!(f, "[={value}]")?,
                Segment::Item(ItemKey::Content(content)) => write!(f, "[{content}]")?,
                Segment::Item(ItemKey::Index(i)) => write!(f, "[{i}]")?,
            }
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    #[test]
    fn paths_read_back_as_they_are_written() {
        for text in [
            "spec.template.spec.containers[name=web].securityContext.privileged",
            "spec.containers[name=web].ports[containerPort=80]",
            "metadata.annotations[\"a.b/c\"]",
            "spec.containers[name=a].securityContext.capabilities.add[=SYS_ADMIN]",
            "rules[apiGroups=;resources=secrets;verbs=get,list].verbs[=list]",
            "spec.tolerations[#1a2b3c4d].key",
            "items[3].spec",
        ] {
            let path = FieldPath::parse_display(text).expect(text);
            assert_eq!(path.to_string(), text);
        }
        assert_eq!(FieldPath::parse_display("a..b"), None);
    }

    #[test]
    fn items_are_named_by_merge_key_not_position() {
        let docs = parse_stream(
            "containers:\n- name: web\n  ports:\n  - containerPort: 80\n- image: x\n",
            Limits::default(),
        );
        let root = docs[0].root.as_ref().expect("parses");
        let list = root.get("containers").and_then(Node::as_seq).expect("list");
        let base = FieldPath::root().key("containers");
        let web = base.item(0, &list[0]);
        assert_eq!(web.to_string(), "containers[name=web]");
        let port_list = list[0].get("ports").and_then(Node::as_seq).expect("ports");
        let port = web.key("ports").item(0, &port_list[0]);
        assert_eq!(
            port.to_string(),
            "containers[name=web].ports[containerPort=80]"
        );
        // No merge key: keyed by content, never by position.
        let unnamed = base.item(1, &list[1]).to_string();
        assert!(
            unnamed.starts_with("containers[#") && unnamed.len() == "containers[#12345678]".len(),
            "{unnamed}"
        );
        let moved = parse_stream("containers:\n- {name: a}\n- image: x\n", Limits::default());
        let moved = moved[0].root.as_ref().expect("parses");
        let moved = moved
            .get("containers")
            .and_then(Node::as_seq)
            .expect("list");
        assert_eq!(base.item(0, &moved[1]).to_string(), unnamed);
        let annotated = FieldPath::root().keys(&["metadata", "annotations", "a.b/c"]);
        assert_eq!(annotated.to_string(), "metadata.annotations[\"a.b/c\"]");
    }
}

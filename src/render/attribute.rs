//! Which values key of a chart caused a finding in its render. The keys the change altered are
//! set back to their merge-base values (one at a time; in groups, bisected, when there are
//! many) and the head is rendered again: the findings that vanish are that key's. A finding's
//! suggestion edits the values file, and is offered only when a render with the edit applied
//! has the finding gone and nothing new.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use serde_json::Value as Json;

use crate::fix::{Edit, FixOp};
use crate::manifest::FieldPath;
use crate::yaml::{Limits, Node, parse_stream};

use super::SourceTree;
use super::helm::ValueSet;

/// A leaf of a values tree, by its keys (`securityContext.privileged`). Lists are leaves:
/// helm replaces them whole.
pub type Key = Vec<String>;

/// A leaf key whose merged value the change altered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedKey {
    pub key: Key,
    /// Its merged value on the merge-base; `None` when the base does not set it.
    pub base: Option<Json>,
    pub head: Option<Json>,
}

/// Where attribution writes the values that revert keys: an extra values file, applied last.
pub const REVERT_VALUES: &str = ".kubeward-attribution/values.yaml";

/// The values files of a value set, in the order helm applies them: the chart's own, then the
/// configured ones.
pub fn values_files(root: &str, values: &ValueSet) -> Vec<String> {
    let own = if root.is_empty() {
        "values.yaml".to_owned()
    } else {
        format!("{root}/values.yaml")
    };
    std::iter::once(own)
        .chain(values.values_files.iter().cloned())
        .collect()
}

fn parse_values(text: &str) -> Option<Node> {
    parse_stream(text, Limits::default())
        .into_iter()
        .next()
        .and_then(|d| d.root.ok())
}

/// The values `files` give together, merged as helm does: maps key by key, later files winning.
pub fn merged(tree: &dyn SourceTree, files: &[String]) -> Json {
    let mut out = Json::Object(Default::default());
    for file in files {
        if let Some(root) = tree
            .read(file)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| parse_values(&text))
        {
            coalesce(&mut out, root.to_json());
        }
    }
    out
}

fn coalesce(into: &mut Json, from: Json) {
    match (into, from) {
        (Json::Object(into), Json::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => coalesce(existing, value),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

fn leaves(value: &Json, prefix: &mut Key, out: &mut BTreeMap<Key, Json>) {
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                leaves(child, prefix, out);
                prefix.pop();
            }
        }
        leaf => {
            out.insert(prefix.clone(), leaf.clone());
        }
    }
}

/// The leaf keys whose value differs between the two merged trees, in key order.
pub fn changed_keys(base: &Json, head: &Json) -> Vec<ChangedKey> {
    let (mut b, mut h) = (BTreeMap::new(), BTreeMap::new());
    leaves(base, &mut Vec::new(), &mut b);
    leaves(head, &mut Vec::new(), &mut h);
    let mut keys: Vec<&Key> = b.keys().chain(h.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| b.get(*k) != h.get(*k))
        .map(|k| ChangedKey {
            key: k.clone(),
            base: b.get(k).cloned(),
            head: h.get(k).cloned(),
        })
        .collect()
}

/// Values that set `keys` back to the merge-base; a key the base lacked is set to null, which
/// helm reads as "remove".
pub fn reverting<'k>(keys: impl IntoIterator<Item = &'k ChangedKey>) -> Json {
    let mut out = Json::Object(Default::default());
    for changed in keys {
        let value = changed.base.clone().unwrap_or(Json::Null);
        let nested = changed.key.iter().rev().fold(value, |acc, k| {
            Json::Object([(k.clone(), acc)].into_iter().collect())
        });
        coalesce(&mut out, nested);
    }
    out
}

/// Where the head sets `key`: the last of `files` that holds it, and its key's line; else the
/// line of its nearest parent in the last file that holds one.
pub fn key_place(tree: &dyn SourceTree, files: &[String], key: &Key) -> Option<(String, u32)> {
    let mut parent: Option<(usize, String, u32)> = None;
    for file in files.iter().rev() {
        let Some(root) = tree
            .read(file)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| parse_values(&text))
        else {
            continue;
        };
        let mut node = &root;
        for (depth, k) in key.iter().enumerate() {
            let Some(entry) = node.entry(k) else { break };
            if depth + 1 == key.len() {
                return Some((file.clone(), entry.key_span.start.line));
            }
            if parent.as_ref().is_none_or(|(d, _, _)| *d < depth + 1) {
                parent = Some((depth + 1, file.clone(), entry.key_span.start.line));
            }
            node = &entry.value;
        }
    }
    parent.map(|(_, file, line)| (file, line))
}

/// What attribution found.
#[derive(Debug, Default)]
pub struct Attribution {
    /// By finding fingerprint: the changed key that caused it.
    pub causes: HashMap<String, Key>,
    /// Renders spent.
    pub renders: usize,
    /// The budget ran out with findings unexplained.
    pub exhausted: bool,
}

/// Finds which of `changed` caused each of the findings `new` (fingerprints). `render_reverted`
/// renders the head with the given values applied last and gives its findings' fingerprints
/// (`None` when that render fails). Up to `one_by_one` keys are tried one at a time; more are
/// tried in that many groups, and a group that explains findings is halved until one key does.
/// A finding that only a group explains (two keys together) is that group's first key's.
pub fn attribute(
    changed: &[ChangedKey],
    new: &HashSet<String>,
    one_by_one: usize,
    budget: &mut usize,
    render_reverted: &mut dyn FnMut(&Json) -> Option<HashSet<String>>,
) -> Attribution {
    let mut out = Attribution::default();
    if changed.is_empty() || new.is_empty() {
        return out;
    }
    let indices: Vec<usize> = (0..changed.len()).collect();
    let size = changed.len().div_ceil(one_by_one.max(1));
    let mut queue: VecDeque<(Vec<usize>, HashSet<String>)> = indices
        .chunks(size.max(1))
        .map(|group| (group.to_vec(), new.clone()))
        .collect();
    let mut exact: HashSet<String> = HashSet::new();
    while let Some((group, candidates)) = queue.pop_front() {
        if candidates.iter().all(|fp| exact.contains(fp)) {
            continue;
        }
        if *budget == 0 {
            out.exhausted = true;
            break;
        }
        *budget -= 1;
        out.renders += 1;
        let Some(remaining) = render_reverted(&reverting(group.iter().map(|&i| &changed[i])))
        else {
            continue;
        };
        let vanished: HashSet<String> = candidates
            .into_iter()
            .filter(|fp| !remaining.contains(fp))
            .collect();
        if vanished.is_empty() {
            continue;
        }
        let first = changed[group[0]].key.clone();
        if group.len() == 1 {
            for fp in vanished {
                if exact.insert(fp.clone()) {
                    out.causes.insert(fp, first.clone());
                }
            }
        } else {
            for fp in &vanished {
                out.causes
                    .entry(fp.clone())
                    .or_insert_with(|| first.clone());
            }
            let (left, right) = group.split_at(group.len() / 2);
            queue.push_back((left.to_vec(), vanished.clone()));
            queue.push_back((right.to_vec(), vanished));
        }
    }
    out
}

/// The edit of a values file that sets `key` to `value`, written in the file's own style; `None`
/// when it cannot be written safely.
pub fn values_edit(text: &str, key: &Key, value: &Json) -> Option<Vec<Edit>> {
    let root = parse_values(text)?;
    let ops = [FixOp::Set {
        path: FieldPath::parse_keys(&key.join(".")),
        value: value.clone(),
    }];
    // A key with dots in it cannot be named by a dotted path.
    if key.iter().any(|k| k.contains('.')) {
        return None;
    }
    crate::fix::plan(text, &root, &ops)
}

/// A tree with some files replaced or added: how a render sees reverted values or a suggestion.
pub struct OverlayTree<'a> {
    pub inner: &'a dyn SourceTree,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl SourceTree for OverlayTree<'_> {
    fn read(&self, path: &str) -> Option<Vec<u8>> {
        match self.files.get(path) {
            Some(bytes) => Some(bytes.clone()),
            None => self.inner.read(path),
        }
    }

    fn is_dir(&self, path: &str) -> bool {
        self.inner.is_dir(path)
            || self
                .files
                .keys()
                .any(|f| f.starts_with(path) && f[path.len()..].starts_with('/'))
    }

    fn files_under(&self, dir: &str) -> Vec<String> {
        let mut out = self.inner.files_under(dir);
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        out.extend(
            self.files
                .keys()
                .filter(|f| f.starts_with(&prefix))
                .cloned(),
        );
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changed(key: &str, base: Option<Json>, head: Option<Json>) -> ChangedKey {
        ChangedKey {
            key: key.split('.').map(str::to_owned).collect(),
            base,
            head,
        }
    }

    #[test]
    fn changed_leaves_are_found_across_merged_files() {
        let mut base = json!({"image": {"tag": "1.0"}, "privileged": false, "ports": [80]});
        coalesce(&mut base, json!({"image": {"tag": "1.1"}}));
        let head = json!({"image": {"tag": "1.1", "pullPolicy": "Always"}, "privileged": true, "ports": [80, 443]});
        let keys: Vec<String> = changed_keys(&base, &head)
            .into_iter()
            .map(|c| c.key.join("."))
            .collect();
        assert_eq!(keys, ["image.pullPolicy", "ports", "privileged"]);
    }

    #[test]
    fn reverting_sets_base_values_and_removes_what_the_base_lacked() {
        let keys = [
            changed("securityContext.privileged", None, Some(json!(true))),
            changed(
                "securityContext.runAsUser",
                Some(json!(1000)),
                Some(json!(0)),
            ),
        ];
        assert_eq!(
            reverting(&keys),
            json!({"securityContext": {"privileged": null, "runAsUser": 1000}})
        );
    }

    #[test]
    fn bisection_finds_the_one_key_among_many_within_the_budget() {
        let keys: Vec<ChangedKey> = (0..64)
            .map(|i| changed(&format!("k{i:02}"), Some(json!(0)), Some(json!(1))))
            .collect();
        let new: HashSet<String> = ["finding".to_owned()].into();
        // The finding appears only while k37 keeps its head value.
        let mut render = |values: &Json| {
            let reverted = values.get("k37").is_some();
            Some(if reverted {
                HashSet::new()
            } else {
                new.clone()
            })
        };
        let mut budget = 40;
        let found = attribute(&keys, &new, 20, &mut budget, &mut render);
        assert_eq!(found.causes["finding"], ["k37"]);
        assert!(!found.exhausted);
        // 22 groups of 3, then halves: 22 + 2 + 2 renders at most.
        assert!(found.renders <= 26, "{}", found.renders);
        assert_eq!(budget, 40 - found.renders);

        let mut small = 5;
        let partial = attribute(&keys, &new, 20, &mut small, &mut render);
        assert!(partial.exhausted);
        assert_eq!(small, 0);
    }

    #[test]
    fn a_values_key_is_placed_on_its_line_in_the_last_file_that_sets_it() {
        let tree = OverlayTree {
            inner: &super::super::DiskTree {
                root: "/nonexistent".into(),
            },
            files: BTreeMap::from([
                (
                    "c/values.yaml".to_owned(),
                    b"image:\n  tag: \"1.0\"\nsecurityContext:\n  privileged: false\n".to_vec(),
                ),
                (
                    "env/prod.yaml".to_owned(),
                    b"replicas: 3\nsecurityContext:\n  privileged: true\n".to_vec(),
                ),
            ]),
        };
        let files = ["c/values.yaml".to_owned(), "env/prod.yaml".to_owned()];
        let key = |k: &str| k.split('.').map(str::to_owned).collect::<Key>();
        assert_eq!(
            key_place(&tree, &files, &key("securityContext.privileged")),
            Some(("env/prod.yaml".to_owned(), 3))
        );
        assert_eq!(
            key_place(&tree, &files, &key("image.tag")),
            Some(("c/values.yaml".to_owned(), 2))
        );
        assert_eq!(
            key_place(&tree, &files, &key("securityContext.runAsUser")),
            Some(("env/prod.yaml".to_owned(), 2)),
            "a removed key: its parent"
        );
        let edit = values_edit(
            "securityContext:\n  privileged: true # on purpose\n",
            &key("securityContext.privileged"),
            &json!(false),
        )
        .expect("edit");
        assert_eq!(
            crate::fix::apply("securityContext:\n  privileged: true # on purpose\n", &edit),
            "securityContext:\n  privileged: false # on purpose\n"
        );
    }
}

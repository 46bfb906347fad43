//! The audit engine: rules from `rules/`, evaluated over manifest objects, giving findings that
//! each carry a place (file, line, column) and a stable identity (fingerprint).
//!
//! Pure: no I/O. Callers parse files (see [`crate::source`]) and render results
//! (see [`crate::report`]).

pub mod builtins;
mod engine;
pub mod eval;
mod exempt;
pub mod model;
mod reach;
pub mod registry;
pub mod rule;
pub mod schema;
mod view;

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use engine::{
    AuditResult, JudgeAgain, Judging, Stats, audit, audit_focused, audit_without_fixes,
};
pub use exempt::{Exemption, ExemptionSource, is_exemption_key};
pub use model::{Category, Severity, Target};
pub use reach::{Reach, Touched, claims_kubernetes_kind};
pub use registry::Registry;
pub use rule::Rule;
pub use view::{ViewShape, view_suffices};

/// The pseudo-rule for documents that are not valid YAML.
pub const PARSE_ERROR: &str = "parseError";
/// The pseudo-rule for exemption annotations a change adds (reviews only: it needs a base).
pub const EXEMPTION_ADDED: &str = "exemptionAdded";

/// A finding the engine itself reports rather than a rule file: what it means and what to do,
/// for comments, `kubeward rules ID` and the docs.
#[derive(Debug, Clone, Copy)]
pub struct PseudoRule {
    pub id: &'static str,
    pub title: &'static str,
    pub default_severity: Severity,
    pub why: &'static str,
    pub fix: &'static str,
}

pub const PSEUDO_RULES: &[PseudoRule] = &[
    PseudoRule {
        id: PARSE_ERROR,
        title: "Document is not valid YAML",
        default_severity: Severity::Danger,
        why: "A document that does not parse cannot be audited, and `kubectl apply` rejects it: \
              nothing else in it has been checked. A file over a parse budget (nodes, scalar \
              bytes or documents, aliases counted at every use) is given up whole, so that no \
              file can exhaust the reviewer's memory: none of its objects has been checked.",
        fix: "Fix the YAML at the reported line (indentation, an unclosed quote or bracket, a \
              tab). For a file over a parse budget, split it or drop the aliases that multiply \
              it, or raise the `limits` key the message names in the policy if the file is \
              genuine. Severity: `rules: {parseError: ...}` in the policy.",
    },
    PseudoRule {
        id: EXEMPTION_ADDED,
        title: "The change adds or widens an exemption",
        default_severity: Severity::Warning,
        why: "An exemption annotation (`kubeward.io/exempt`, `kubeward.io/<rule>-exempt`, or \
              Polaris's, kube-linter's and kube-score's keys) silences findings. Added in the same \
              change as the code it silences, it would pass review unseen; the comment names \
              what it silences so a reviewer can agree to it.",
        fix: "Remove the annotation and fix the findings it silences, or keep it with a reason \
              the reviewers accept. Exemptions that platform teams own belong in the policy \
              file on the base branch, which a pull request cannot change for its own review.",
    },
];

/// The engine's own finding kinds, by ID.
pub fn pseudo_rule(id: &str) -> Option<&'static PseudoRule> {
    PSEUDO_RULES.iter().find(|p| p.id == id)
}

impl PseudoRule {
    pub fn doc_url(&self) -> String {
        format!("{}/{}.md", crate::RULE_DOCS_BASE, self.id)
    }

    /// The same text as `kubeward rules ID` prints for a rule file.
    pub fn explain(&self) -> String {
        format!(
            "# {}\n\n{}\n\nReported by the engine itself (no rule file). Default severity: {}.\n\n## Why it matters\n\n{}\n\n## How to fix\n\n{}\n",
            self.id,
            self.title,
            self.default_severity.as_str(),
            self.why,
            self.fix
        )
    }
}

/// Text many findings share (a rule id, a path): one allocation, compared and printed as the
/// text it holds.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared(std::sync::Arc<str>);

impl Shared {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Shared {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Shared {
    fn from(text: &str) -> Shared {
        Shared(text.into())
    }
}

impl From<String> for Shared {
    fn from(text: String) -> Shared {
        Shared(text.into())
    }
}

impl From<&String> for Shared {
    fn from(text: &String) -> Shared {
        Shared(text.as_str().into())
    }
}

impl From<Shared> for String {
    fn from(text: Shared) -> String {
        text.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for Shared {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Shared {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for Shared {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Shared> for str {
    fn eq(&self, other: &Shared) -> bool {
        self == &*other.0
    }
}

impl PartialEq<Shared> for &str {
    fn eq(&self, other: &Shared) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<Shared> for String {
    fn eq(&self, other: &Shared) -> bool {
        **self == *other.0
    }
}

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shared, D::Error> {
        String::deserialize(deserializer).map(Shared::from)
    }
}

/// Which object a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// As written; empty when the manifest leaves it to the deploy.
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn group(&self) -> &str {
        crate::manifest::api_group(&self.api_version)
    }

    /// The group of the object's identity (see [`crate::manifest::identity_group`]).
    pub fn identity_group(&self) -> &str {
        crate::manifest::identity_group(self.group(), &self.kind)
    }

    /// `Deployment/web` or `Deployment/prod/web`.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One problem, at one place.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Shared with every finding of the rule.
    pub rule: Shared,
    pub severity: Severity,
    pub category: Category,
    /// Shared with every finding of the file.
    pub path: Shared,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    pub end_line: u32,
    pub end_column: u32,
    /// Absent for findings about the file itself (parse errors). Shared by the object's
    /// findings: a finding refers to its object rather than owning a copy.
    pub object: Option<std::sync::Arc<ObjectRef>>,
    /// Inline when at most 24 bytes, as container names are.
    pub container: Option<compact_str::CompactString>,
    /// The field the finding is about, relative to the object, list items by merge key;
    /// inline when at most 24 bytes (`spec.hostPID`, `metadata.labels`).
    pub field_path: compact_str::CompactString,
    /// The rule's message, shared with the rule when the finding adds no detail.
    pub message: std::sync::Arc<str>,
    pub fingerprint: Fingerprint,
    /// Why the finding does not count (an exemption's description), if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exempted_by: Option<String>,
    /// The mechanical fix, as operations on the object (see [`crate::fix`]); not built by
    /// [`audit_without_fixes`], for outputs that show none.
    #[serde(skip)]
    pub fix: Vec<crate::fix::FixOp>,
    /// Where in its file the object sits: document index and, for List items, the item path
    /// (for fixes and review anchors; not built by [`audit_without_fixes`] either).
    #[serde(skip)]
    pub location: Option<Box<ObjectLocation>>,
    /// The render targets (kustomize overlays) whose rendered objects have it; empty for a
    /// file audited as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// How to find a finding's object again in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectLocation {
    pub doc_index: usize,
    pub list_path: Option<crate::manifest::FieldPath>,
    /// The object's first and last lines.
    pub start_line: u32,
    pub end_line: u32,
    /// The container's first and last lines, for container findings.
    pub container_lines: Option<(u32, u32)>,
}

/// The fingerprint version, part of every fingerprint: bump it when its inputs change.
pub const FINGERPRINT_VERSION: &str = "kw1";

/// Hex digits of the identity's SHA-256 a fingerprint keeps.
const FINGERPRINT_HEX: usize = 24;
const FINGERPRINT_LEN: usize = FINGERPRINT_VERSION.len() + 1 + FINGERPRINT_HEX;

/// A finding's identity across revisions, `kw1-` and 24 hex digits: held inline (a finding
/// owns no allocation for it), compared and printed as that text.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fingerprint([u8; FINGERPRINT_LEN]);

// Hashed as its text, so that maps of fingerprints are looked up by `&str` (`Borrow<str>`).
impl std::hash::Hash for Fingerprint {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl Fingerprint {
    pub fn as_str(&self) -> &str {
        // Built only from ASCII (the version, `-` and hex digits), checked when parsed.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(text: &str) -> Result<Fingerprint, String> {
        let well_formed = text.len() == FINGERPRINT_LEN
            && text
                .strip_prefix(FINGERPRINT_VERSION)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|hex| hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
        if !well_formed {
            return Err(format!(
                "not a {FINGERPRINT_VERSION} fingerprint: {:?}",
                text.chars().take(64).collect::<String>()
            ));
        }
        let mut bytes = [0; FINGERPRINT_LEN];
        bytes.copy_from_slice(text.as_bytes());
        Ok(Fingerprint(bytes))
    }
}

impl std::ops::Deref for Fingerprint {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Fingerprint {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<str> for Fingerprint {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Fingerprint {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Fingerprint, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Identity of a finding: never the line, so moving or reformatting YAML keeps it.
pub fn fingerprint(
    rule: &str,
    object: Option<&ObjectRef>,
    container: Option<&str>,
    field_path: &str,
) -> Fingerprint {
    fingerprint_parts(rule, object, container, field_path, None)
}

/// [`fingerprint`] of a finding on an object that its revision holds in several files: the
/// path is part of the identity.
pub fn fingerprint_at(
    rule: &str,
    object: Option<&ObjectRef>,
    container: Option<&str>,
    field_path: &str,
    path: &str,
) -> Fingerprint {
    fingerprint_parts(rule, object, container, field_path, Some(path))
}

fn fingerprint_parts(
    rule: &str,
    object: Option<&ObjectRef>,
    container: Option<&str>,
    field_path: &str,
    path: Option<&str>,
) -> Fingerprint {
    let mut hasher = Sha256::new();
    // Each part is followed by a unit separator. The hash sees one byte stream, so feeding
    // `group`, `/` and `kind` separately is the same as hashing `group/kind`.
    let mut part = |pieces: &[&str]| {
        for piece in pieces {
            hasher.update(piece.as_bytes());
        }
        hasher.update([0x1f]);
    };
    part(&[FINGERPRINT_VERSION]);
    part(&[rule]);
    match object {
        Some(o) => {
            part(&[o.identity_group(), "/", &o.kind]);
            part(&[&o.namespace]);
            part(&[&o.name]);
        }
        None => {
            part(&[]);
            part(&[]);
            part(&[]);
        }
    }
    part(&[container.unwrap_or("")]);
    part(&[field_path]);
    if let Some(path) = path {
        part(&["path:", path]);
    }
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; FINGERPRINT_LEN];
    let (version, hex) = out.split_at_mut(FINGERPRINT_VERSION.len() + 1);
    version[..FINGERPRINT_VERSION.len()].copy_from_slice(FINGERPRINT_VERSION.as_bytes());
    version[FINGERPRINT_VERSION.len()] = b'-';
    for (pair, byte) in hex.chunks_exact_mut(2).zip(&digest) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    Fingerprint(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_its_text_inline() {
        let object = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "prod".into(),
            name: "web".into(),
        };
        let fp = fingerprint("hostPIDSet", Some(&object), Some("app"), "spec.hostPID");
        assert_eq!(std::mem::size_of::<Fingerprint>(), 28, "no allocation");
        let text = fp.to_string();
        assert!(text.starts_with("kw1-") && text.len() == 28, "{text}");
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        let json = serde_json::to_string(&fp).expect("serialized");
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<Fingerprint>(&json).expect("read"),
            fp
        );
        // Looked up by its text: hashed as the text is.
        let set: std::collections::HashSet<Fingerprint> = [fp].into();
        assert!(set.contains(text.as_str()));
        for bad in [
            "",
            "kw1-",
            "kw2-0123456789abcdef01234567",
            "kw1-0123456789ABCDEF01234567",
            "kw1-0123456789abcdef012345678",
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad:?}");
            assert!(serde_json::from_str::<Fingerprint>(&format!("{bad:?}")).is_err());
        }
    }

    #[test]
    fn fingerprints_ignore_lines_but_not_identity() {
        let object = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: String::new(),
            name: "web".into(),
        };
        let a = fingerprint("x", Some(&object), Some("app"), "spec.replicas");
        assert!(a.starts_with("kw1-"));
        assert_eq!(
            a,
            fingerprint("x", Some(&object), Some("app"), "spec.replicas")
        );
        let moved_to_v1beta = ObjectRef {
            api_version: "apps/v1beta2".into(),
            ..object.clone()
        };
        assert_eq!(
            a,
            fingerprint("x", Some(&moved_to_v1beta), Some("app"), "spec.replicas"),
            "the API version is not identity, the group is"
        );
        let other_ns = ObjectRef {
            namespace: "prod".into(),
            ..object.clone()
        };
        assert_ne!(
            a,
            fingerprint("x", Some(&other_ns), Some("app"), "spec.replicas")
        );
        assert_ne!(
            a,
            fingerprint("x", Some(&object), Some("sidecar"), "spec.replicas")
        );
    }
}

//! The audit's vocabulary: how bad a finding is, what kind of problem, what a rule looks at.
//! A leaf: it imports nothing of the audit, so every other audit module can use it without a
//! cycle (rule files, the rule language and the built-in checks all name [`Target`]).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Not run.
    Ignore,
    Warning,
    Danger,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ignore => "ignore",
            Severity::Warning => "warning",
            Severity::Danger => "danger",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Category {
    Security,
    Efficiency,
    Reliability,
    /// Problems reading the input itself.
    Input,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Security => "Security",
            Category::Efficiency => "Efficiency",
            Category::Reliability => "Reliability",
            Category::Input => "Input",
        }
    }
}

/// What a rule is evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    /// Each container of a pod template (init and ephemeral ones per `containers`).
    Container,
    /// The pod spec of every workload.
    PodSpec,
    /// The pod template: its metadata and spec.
    PodTemplate,
    /// Every workload object as a whole.
    Controller,
    /// Objects of the kinds listed in `kinds`.
    Object,
}

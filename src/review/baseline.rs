//! Baselines: the findings an old repository has today, accepted so that CI reports only new
//! ones. Entries are identified by the review's fingerprint (rule, object identity, field: it
//! survives lines moving), kept sorted so the file diffs well, one entry per line.
//!
//! In reviews the baseline is read at the base commit, like the policy: a pull request cannot
//! accept its own findings, and the entries it adds are reported like an added exemption.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::audit::{Category, EXEMPTION_ADDED, Finding, Severity, fingerprint};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub version: u32,
    pub findings: Vec<Entry>,
}

/// One accepted finding. Only the fingerprint counts; the rest tells a reader what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub rule: String,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
}

/// What applying a baseline did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Findings it accepted (not reported).
    pub accepted: usize,
    /// Entries that matched no finding (fixed since): `--write-baseline` prunes them.
    pub stale: usize,
}

impl Baseline {
    pub fn parse(text: &str) -> Result<Baseline, String> {
        let baseline: Baseline =
            serde_json::from_str(text).map_err(|e| format!("not a kubeward baseline: {e}"))?;
        if baseline.version != VERSION {
            return Err(format!(
                "baseline version {} (this kubeward reads {VERSION})",
                baseline.version
            ));
        }
        Ok(baseline)
    }

    /// Today's findings (those that count: exempted ones are not), sorted, each once.
    pub fn of(findings: &[Finding]) -> Baseline {
        let entries: BTreeSet<Entry> = findings
            .iter()
            .filter(|f| f.exempted_by.is_none())
            .map(|f| Entry {
                path: f.path.to_string(),
                rule: f.rule.to_string(),
                fingerprint: f.fingerprint.to_string(),
                object: f
                    .object
                    .as_ref()
                    .map(|o| format!("{}/{}/{}", o.kind, o.namespace, o.name)),
            })
            .collect();
        Baseline {
            version: VERSION,
            findings: entries.into_iter().collect(),
        }
    }

    pub fn fingerprints(&self) -> HashSet<String> {
        self.findings
            .iter()
            .map(|e| e.fingerprint.clone())
            .collect()
    }

    /// The file's text: one entry per line, sorted, so a change to it reads as what changed.
    pub fn render(&self) -> String {
        let mut out = format!("{{\n  \"version\": {},\n  \"findings\": [\n", self.version);
        let lines: Vec<String> = self
            .findings
            .iter()
            .map(|e| {
                format!(
                    "    {}",
                    serde_json::to_string(e).unwrap_or_else(|_| "{}".into())
                )
            })
            .collect();
        out.push_str(&lines.join(",\n"));
        if !lines.is_empty() {
            out.push('\n');
        }
        out.push_str("  ]\n}\n");
        out
    }

    /// Removes the findings it accepts from `findings`.
    pub fn apply(&self, findings: &mut Vec<Finding>) -> Applied {
        let accepted = self.fingerprints();
        let before = findings.len();
        let mut matched: HashSet<String> = HashSet::new();
        findings.retain(|f| {
            let known = accepted.contains(f.fingerprint.as_str());
            if known {
                matched.insert(f.fingerprint.to_string());
            }
            !known
        });
        Applied {
            accepted: before - findings.len(),
            stale: accepted.len() - matched.len(),
        }
    }
}

/// The finding a change to the baseline file gets when it accepts findings the base did not:
/// reported like an added exemption, on the first added entry's line.
pub fn added_entries(
    path: &str,
    base: &Baseline,
    head: &Baseline,
    head_text: &str,
    severity: Severity,
) -> Option<Finding> {
    let known = base.fingerprints();
    let added: Vec<&Entry> = head
        .findings
        .iter()
        .filter(|e| !known.contains(&e.fingerprint))
        .collect();
    let first = added.first()?;
    let line = head_text
        .lines()
        .position(|l| l.contains(&first.fingerprint))
        .map_or(1, |i| i as u32 + 1);
    let mut names: Vec<String> = added
        .iter()
        .map(|e| format!("`{}` in `{}`", e.rule, e.path))
        .collect();
    names.truncate(5);
    let more = added.len().saturating_sub(names.len());
    let ids: Vec<&str> = added.iter().map(|e| e.fingerprint.as_str()).collect();
    Some(Finding {
        rule: EXEMPTION_ADDED.into(),
        severity,
        category: Category::Security,
        path: path.into(),
        line,
        column: 1,
        end_line: line,
        end_column: 1,
        object: None,
        container: None,
        field_path: Default::default(),
        message: format!(
            "This change adds {} finding(s) to the baseline, so they will not be reported once it is merged: {}{}",
            added.len(),
            names.join(", "),
            match more {
                0 => String::new(),
                n => format!(" and {n} more"),
            }
        )
        .into(),
        fingerprint: fingerprint(
            EXEMPTION_ADDED,
            None,
            None,
            &format!("{path}:{}", ids.join(",")),
        ),
        exempted_by: None,
        fix: Vec::new(),
        location: None,
        targets: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, fp: &str) -> Entry {
        Entry {
            path: path.into(),
            rule: "r".into(),
            fingerprint: fp.into(),
            object: None,
        }
    }

    #[test]
    fn the_file_round_trips_sorted_one_entry_per_line() {
        let baseline = Baseline {
            version: VERSION,
            findings: vec![entry("a.yaml", "1"), entry("b.yaml", "2")],
        };
        let text = baseline.render();
        assert_eq!(
            text.lines().filter(|l| l.contains("fingerprint")).count(),
            2
        );
        assert_eq!(Baseline::parse(&text), Ok(baseline));
        assert!(
            Baseline::parse(&Baseline::default().render()).is_err(),
            "version 0"
        );
        let empty = Baseline {
            version: VERSION,
            findings: Vec::new(),
        };
        assert_eq!(Baseline::parse(&empty.render()), Ok(empty));
    }
}

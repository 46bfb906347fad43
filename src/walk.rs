//! Which paths a walk leaves out before reading them: one filter for the disk walk of
//! `kubeward audit` (`source.rs`) and the git-tree walk of reviews (`pipeline.rs`), so the CLI
//! and the bot judge the same files. Pure: it looks at path text only. `.gitignore` is not
//! here: it applies on disk only, where the `ignore` crate's walk reads it.

use serde::Serialize;

use crate::config::{CONFIG_FILE_NAMES, Policy};

/// Why a manifest candidate was left out of a walk, counted in `stats.filesExcluded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Excluded {
    /// Under a hidden folder (`.github/`, `.hidden/`) or a hidden file itself (`--hidden`
    /// includes them).
    Hidden,
    /// Matched by a `.gitignore` (disk only; `--no-ignore` includes them).
    Gitignored,
    /// Matched by the policy's `ignorePaths`.
    IgnorePaths,
}

impl Excluded {
    pub fn describe(self) -> &'static str {
        match self {
            Excluded::Hidden => "hidden",
            Excluded::Gitignored => "gitignored",
            Excluded::IgnorePaths => "ignorePaths",
        }
    }
}

/// Whether a file name is a manifest candidate: YAML or JSON, and not a policy file.
pub fn is_manifest_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
        && !CONFIG_FILE_NAMES.contains(&name)
}

/// Whether a `/`-separated relative path has a hidden component (`.` and `..` are not).
pub fn is_hidden(relative: &str) -> bool {
    relative
        .split('/')
        .any(|c| c.starts_with('.') && c != "." && c != "..")
}

/// The filter both walks apply to a manifest candidate.
#[derive(Clone, Copy)]
pub struct PathFilter<'p> {
    pub policy: &'p Policy,
    /// `--hidden`: hidden folders and files are walked too.
    pub include_hidden: bool,
}

impl PathFilter<'_> {
    /// Why `path` is left out, if it is. `relative` is the path below the walk's root (a
    /// repository path for a git tree), where hidden components count; `path` is the path as
    /// shown, which `ignorePaths` matches (see [`Policy::ignores`]).
    pub fn excludes(&self, relative: &str, path: &str) -> Option<Excluded> {
        if !self.include_hidden && is_hidden(relative) {
            Some(Excluded::Hidden)
        } else if self.policy.ignores(path) {
            Some(Excluded::IgnorePaths)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Registry;
    use crate::config::ConfigFile;

    fn policy(ignore: &str) -> Policy {
        let registry = Registry::builtin().expect("built-in rules");
        let text = format!("ignorePaths: [{ignore}]\n");
        let file = ConfigFile::parse(".kubeward.yaml", &text).expect("policy");
        Policy::build(&registry, Some(&file), None).expect("policy")
    }

    #[test]
    fn hidden_components_anywhere_below_the_root() {
        assert!(is_hidden(".github/workflows/ci.yaml"));
        assert!(is_hidden("deploy/.hidden/pod.yaml"));
        assert!(is_hidden("deploy/.pod.yaml"));
        assert!(!is_hidden("deploy/pod.yaml"));
        assert!(!is_hidden("../deploy/pod.yaml"));
        assert!(!is_hidden("./deploy/pod.yaml"));
    }

    #[test]
    fn manifest_names_leave_out_policy_files() {
        assert!(is_manifest_name("a/b.yml"));
        assert!(is_manifest_name("b.json"));
        assert!(!is_manifest_name("a/.kubeward.yaml"));
        assert!(!is_manifest_name("a/notes.txt"));
    }

    #[test]
    fn hidden_first_then_ignore_paths() {
        let policy = policy("\"vendor/**\"");
        let filter = PathFilter {
            policy: &policy,
            include_hidden: false,
        };
        assert_eq!(
            filter.excludes(".x/a.yaml", ".x/a.yaml"),
            Some(Excluded::Hidden)
        );
        assert_eq!(
            filter.excludes("vendor/a.yaml", "vendor/a.yaml"),
            Some(Excluded::IgnorePaths)
        );
        assert_eq!(filter.excludes("app/a.yaml", "app/a.yaml"), None);
        let with_hidden = PathFilter {
            include_hidden: true,
            ..filter
        };
        assert_eq!(with_hidden.excludes(".x/a.yaml", ".x/a.yaml"), None);
    }
}

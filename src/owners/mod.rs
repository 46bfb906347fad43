//! CODEOWNERS, with GitHub's and GitLab's semantics (they differ: file locations, sections,
//! exclusions, inline comments). Pure: callers read the file from the base branch.

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    GitHub,
    GitLab,
}

impl Flavor {
    /// Where the forge looks for the file, in its order: the first one found is used.
    pub fn locations(self) -> &'static [&'static str] {
        match self {
            Flavor::GitHub => &[".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"],
            Flavor::GitLab => &["CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"],
        }
    }
}

/// GitHub ignores a CODEOWNERS file of 3 MB or more.
pub const MAX_SIZE: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OwnersError {
    pub line: u32,
    pub message: String,
}

#[derive(Debug, Clone)]
struct Rule {
    line: u32,
    pattern: String,
    matchers: Vec<GlobMatcher>,
    owners: Vec<String>,
    exclusion: bool,
}

impl Rule {
    fn matches(&self, path: &str) -> bool {
        self.matchers.iter().any(|m| m.is_match(path))
    }
}

#[derive(Debug, Clone)]
struct Section {
    /// `None` for entries before any section header (GitHub has only this one).
    name: Option<String>,
    optional: bool,
    approvals: u32,
    default_owners: Vec<String>,
    rules: Vec<Rule>,
}

/// A section's contribution to a file's owners (GitLab; GitHub has one unnamed section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionOwners {
    pub section: Option<String>,
    pub owners: Vec<String>,
    pub optional: bool,
    pub approvals: u32,
    /// The CODEOWNERS line that decided.
    pub line: u32,
}

/// Who owns a path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Ownership {
    /// Every owner, in file order, without duplicates.
    pub owners: Vec<String>,
    pub sections: Vec<SectionOwners>,
}

impl Ownership {
    /// No line matched, or the matching line names nobody ("explicitly unowned").
    pub fn is_unowned(&self) -> bool {
        self.owners.is_empty()
    }

    /// Owners of several paths together (a renamed file: old and new path).
    pub fn merge(mut self, other: Ownership) -> Ownership {
        for o in other.owners {
            if !self.owners.contains(&o) {
                self.owners.push(o);
            }
        }
        for s in other.sections {
            if !self.sections.contains(&s) {
                self.sections.push(s);
            }
        }
        self
    }
}

#[derive(Debug, Clone)]
pub struct CodeOwners {
    pub flavor: Flavor,
    /// Where the file was found.
    pub path: String,
    sections: Vec<Section>,
    /// Lines that were skipped, and why (the forge skips them too).
    pub errors: Vec<OwnersError>,
}

impl CodeOwners {
    pub fn empty(flavor: Flavor) -> CodeOwners {
        CodeOwners {
            flavor,
            path: String::new(),
            sections: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn parse(flavor: Flavor, path: &str, text: &str) -> CodeOwners {
        let mut owners = CodeOwners::empty(flavor);
        owners.path = path.to_owned();
        if text.len() >= MAX_SIZE && flavor == Flavor::GitHub {
            owners.errors.push(OwnersError {
                line: 0,
                message: "the file is 3 MB or larger, so GitHub ignores it".into(),
            });
            return owners;
        }
        owners.sections.push(Section {
            name: None,
            optional: false,
            approvals: 1,
            default_owners: Vec::new(),
            rules: Vec::new(),
        });
        let mut current = 0;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line_no = i as u32 + 1;
            let line = raw.trim_end_matches('\r').trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if flavor == Flavor::GitLab
                && let Some(section) = parse_section_header(line)
            {
                match section {
                    Ok(section) => {
                        let existing = owners.sections.iter().position(|s| {
                            s.name.as_deref().map(str::to_lowercase)
                                == section.name.as_deref().map(str::to_lowercase)
                        });
                        current = match existing {
                            Some(index) => index,
                            None => {
                                owners.sections.push(section);
                                owners.sections.len() - 1
                            }
                        };
                    }
                    Err(message) => owners.errors.push(OwnersError {
                        line: line_no,
                        message,
                    }),
                }
                continue;
            }
            match parse_rule(flavor, line, line_no) {
                Ok(rule) => owners.sections[current].rules.push(rule),
                Err(message) => owners.errors.push(OwnersError {
                    line: line_no,
                    message,
                }),
            }
        }
        owners
    }

    /// The owners of `path` (repository-relative, `/`-separated).
    pub fn owners_of(&self, path: &str) -> Ownership {
        let path = path.trim_start_matches('/');
        let mut result = Ownership::default();
        for section in &self.sections {
            if section.rules.iter().any(|r| r.exclusion && r.matches(path)) {
                continue;
            }
            let Some(rule) = section
                .rules
                .iter()
                .rev()
                .find(|r| !r.exclusion && r.matches(path))
            else {
                continue;
            };
            let owners = if rule.owners.is_empty() && self.flavor == Flavor::GitLab {
                section.default_owners.clone()
            } else {
                rule.owners.clone()
            };
            for o in &owners {
                if !result.owners.contains(o) {
                    result.owners.push(o.clone());
                }
            }
            result.sections.push(SectionOwners {
                section: section.name.clone(),
                owners,
                optional: section.optional,
                approvals: section.approvals,
                line: rule.line,
            });
        }
        result
    }

    /// The pattern text of a line, for explaining a decision.
    pub fn pattern_at(&self, line: u32) -> Option<&str> {
        self.sections
            .iter()
            .flat_map(|s| &s.rules)
            .find(|r| r.line == line)
            .map(|r| r.pattern.as_str())
    }
}

fn parse_section_header(line: &str) -> Option<Result<Section, String>> {
    let (optional, rest) = match line.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let rest = rest.strip_prefix('[')?;
    let Some(end) = rest.find(']') else {
        return Some(Err("section header without `]`".into()));
    };
    let name = rest[..end].trim().to_owned();
    let mut rest = &rest[end + 1..];
    let mut approvals = 1;
    if let Some(after) = rest.strip_prefix('[') {
        let Some(end) = after.find(']') else {
            return Some(Err("approval count without `]`".into()));
        };
        approvals = match after[..end].trim().parse() {
            Ok(n) => n,
            Err(_) => {
                return Some(Err(format!(
                    "approval count `{}` is not a number",
                    &after[..end]
                )));
            }
        };
        rest = &after[end + 1..];
    }
    if name.is_empty() {
        return Some(Err("empty section name".into()));
    }
    let default_owners = match tokens(rest, Flavor::GitLab)
        .into_iter()
        .map(|o| validate_owner(&o, Flavor::GitLab).map(|_| o))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(owners) => owners,
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(Section {
        name: Some(name),
        optional,
        approvals,
        default_owners,
        rules: Vec::new(),
    }))
}

/// Splits on whitespace; GitLab allows `\ ` and `\#` escapes.
fn tokens(line: &str, flavor: Flavor) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if flavor == Flavor::GitLab && matches!(chars.peek(), Some(' ' | '#')) => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn validate_owner(owner: &str, flavor: Flavor) -> Result<(), String> {
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
    };
    let ok = if let Some(role) = owner.strip_prefix("@@") {
        flavor == Flavor::GitLab && valid_name(role)
    } else if let Some(name) = owner.strip_prefix('@') {
        valid_name(name) && (flavor == Flavor::GitLab || name.matches('/').count() <= 1)
    } else {
        owner.contains('@') && !owner.starts_with('@') && !owner.ends_with('@')
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{owner}` is not a user, team or email address"))
    }
}

fn parse_rule(flavor: Flavor, line: &str, line_no: u32) -> Result<Rule, String> {
    let line = match flavor {
        // GitHub allows `pattern @owner # comment`.
        Flavor::GitHub => match line.find(" #").or_else(|| line.find("\t#")) {
            Some(i) => line[..i].trim_end(),
            None => line,
        },
        Flavor::GitLab => line,
    };
    let mut parts = tokens(line, flavor).into_iter();
    let mut pattern = parts.next().ok_or("empty line")?;
    let owners: Vec<String> = parts.collect();
    let mut exclusion = false;
    if let Some(rest) = pattern.strip_prefix('!') {
        if flavor == Flavor::GitHub {
            return Err("GitHub does not support `!` negation".into());
        }
        exclusion = true;
        pattern = rest.to_owned();
    }
    if flavor == Flavor::GitHub && (pattern.contains('[') || pattern.starts_with('\\')) {
        return Err("GitHub does not support `[ ]` ranges or `\\` escapes".into());
    }
    for o in &owners {
        validate_owner(o, flavor)?;
    }
    Ok(Rule {
        line: line_no,
        matchers: matchers(&pattern)?,
        pattern,
        owners,
        exclusion,
    })
}

/// gitignore-like anchoring: a leading or middle `/` anchors to the root, otherwise the
/// pattern matches at any depth; a trailing `/` (or a plain name) also covers everything below.
fn matchers(pattern: &str) -> Result<Vec<GlobMatcher>, String> {
    let dir_only = pattern.ends_with('/');
    let trimmed = pattern.trim_end_matches('/');
    let anchored = trimmed.starts_with('/') || trimmed.contains('/');
    let body = trimmed.trim_start_matches('/');
    if body.is_empty() {
        return Err("empty pattern".into());
    }
    let base = if anchored || body.starts_with("**") {
        body.to_owned()
    } else {
        format!("**/{body}")
    };
    let last_segment = body.rsplit('/').next().unwrap_or(body);
    let mut globs = Vec::new();
    if !dir_only {
        globs.push(base.clone());
    }
    // `docs/*` matches files directly in docs only; a plain name or `dir/` covers its tree.
    if dir_only || !last_segment.contains(['*', '?']) || last_segment == "**" {
        globs.push(format!("{base}/**"));
    }
    globs
        .iter()
        .map(|g| {
            GlobBuilder::new(g)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("invalid pattern `{pattern}`: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(flavor: Flavor, text: &str, path: &str) -> Vec<String> {
        CodeOwners::parse(flavor, "CODEOWNERS", text)
            .owners_of(path)
            .owners
    }

    /// The example file of GitHub's "About code owners" page.
    const GITHUB_EXAMPLE: &str = "\
# This is a comment.
*       @global-owner1 @global-owner2
*.js    @js-owner #This is an inline comment.
*.go docs@example.com
*.txt @octo-org/octocats
/build/logs/ @doctocat
docs/*  docs@example.com
apps/ @octocat
/docs/ @doctocat
/scripts/ @doctocat @octocat
**/logs @octocat
/apps/ @octocat
/apps/github
/apps/ @octocat
/apps/github @doctocat
";

    #[test]
    fn github_documentation_examples() {
        let o = |p| owners(Flavor::GitHub, GITHUB_EXAMPLE, p);
        assert_eq!(o("README.md"), ["@global-owner1", "@global-owner2"]);
        assert_eq!(o("src/app.js"), ["@js-owner"], "inline comment stripped");
        assert_eq!(o("main.go"), ["docs@example.com"]);
        assert_eq!(
            o("build/logs/x.log"),
            ["@octocat"],
            "**/logs is later and wins"
        );
        assert_eq!(o("docs/getting-started.md"), ["@doctocat"]);
        assert_eq!(o("scripts/run.sh"), ["@doctocat", "@octocat"]);
        assert_eq!(o("deeply/nested/logs/a"), ["@octocat"]);
        assert_eq!(o("apps/github/x"), ["@doctocat"]);
        assert_eq!(o("apps/web/x"), ["@octocat"]);
        assert_eq!(o("notes.txt"), ["@octo-org/octocats"]);
    }

    #[test]
    fn github_one_level_star_and_explicitly_unowned() {
        let text = "docs/* @writers\n/apps/ @octocat\n/apps/github\n";
        assert_eq!(owners(Flavor::GitHub, text, "docs/a.md"), ["@writers"]);
        assert!(owners(Flavor::GitHub, text, "docs/build-app/troubleshooting.md").is_empty());
        let parsed = CodeOwners::parse(Flavor::GitHub, "CODEOWNERS", text);
        let unowned = parsed.owners_of("apps/github/x");
        assert!(unowned.is_unowned());
        assert_eq!(unowned.sections.len(), 1, "matched, by an owner-less line");
        assert!(
            parsed.owners_of("other").sections.is_empty(),
            "not matched at all"
        );
    }

    #[test]
    fn github_skips_unsupported_lines_not_the_file() {
        let parsed = CodeOwners::parse(
            Flavor::GitHub,
            "CODEOWNERS",
            "* @a\n!x.md @b\n[ab].md @c\n*.md notanowner\n",
        );
        assert_eq!(
            parsed.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert_eq!(parsed.owners_of("x.md").owners, ["@a"]);
    }

    /// Examples of GitLab's "Code Owners" reference page.
    #[test]
    fn gitlab_sections_defaults_optional_approvals_and_exclusions() {
        let text = "\
* @default-owner
[Documentation][2] @docs-team
docs/
README.md @tech-writer
^[Database] @database-team
model/db/
config/db/database-setup.md @docs-team
[documentation]
*.adoc @asciidoc
[Build]
* @build-team
!pom.xml
";
        let parsed = CodeOwners::parse(Flavor::GitLab, "CODEOWNERS", text);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let docs = parsed.owners_of("docs/index.md");
        assert_eq!(docs.owners, ["@default-owner", "@docs-team", "@build-team"]);
        let doc_section = docs
            .sections
            .iter()
            .find(|s| s.section.as_deref() == Some("Documentation"))
            .expect("Documentation section applies");
        assert_eq!(doc_section.approvals, 2);
        let db = parsed.owners_of("model/db/schema.rb");
        let db_section = db
            .sections
            .iter()
            .find(|s| s.section.as_deref() == Some("Database"))
            .expect("Database section applies");
        assert!(db_section.optional);
        assert_eq!(
            db_section.owners,
            ["@database-team"],
            "default owners of the section"
        );
        let adoc = parsed.owners_of("guide.adoc");
        assert!(
            adoc.owners.contains(&"@asciidoc".to_owned()),
            "same-name sections merge case-insensitively"
        );
        let pom = parsed.owners_of("pom.xml");
        assert_eq!(pom.owners, ["@default-owner"], "excluded from Build only");
    }

    #[test]
    fn gitlab_escapes_roles_and_no_inline_comments() {
        let text = "path\\ with\\ spaces/ @a\n\\#file.rb @b\n*.py @@maintainer\n";
        assert_eq!(owners(Flavor::GitLab, text, "path with spaces/x"), ["@a"]);
        assert_eq!(owners(Flavor::GitLab, text, "#file.rb"), ["@b"]);
        assert_eq!(owners(Flavor::GitLab, text, "lib/x.py"), ["@@maintainer"]);
    }

    #[test]
    fn locations_differ_by_forge() {
        assert_eq!(Flavor::GitHub.locations()[0], ".github/CODEOWNERS");
        assert_eq!(Flavor::GitLab.locations()[0], "CODEOWNERS");
    }

    #[test]
    fn crlf_bom_and_star_matches_dotfiles() {
        let text = "\u{feff}* @all\r\n";
        assert_eq!(owners(Flavor::GitHub, text, ".env"), ["@all"]);
        assert_eq!(owners(Flavor::GitLab, text, "a/.hidden/b"), ["@all"]);
    }
}

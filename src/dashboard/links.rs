//! Links the pages write. Every path segment is percent-encoded (team names hold `@` and `/`,
//! paths may hold `#`, `?` or spaces), and a link to the forge is written only for an
//! `http(s)` repository address, so no stored text becomes a `javascript:` link.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::queue::ownership::OpenFinding;

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One path segment, percent-encoded.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// A repository path, each of its segments percent-encoded, its slashes kept.
pub fn path(text: &str) -> String {
    text.split('/').map(segment).collect::<Vec<_>>().join("/")
}

pub fn team_page(team: &str) -> String {
    format!("/dashboard/teams/{}", segment(team))
}

pub fn rule_page(rule: &str) -> String {
    format!("/dashboard/rules/{}", segment(rule))
}

pub fn repository_page(forge: &str, repo_id: i64) -> String {
    format!("/dashboard/repositories/{}/{repo_id}", segment(forge))
}

/// The repository's web address, if it is one a browser may follow.
fn web_base(web_url: Option<&str>) -> Option<&str> {
    let url = web_url?.trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    // A host, then a path: nothing that would end the URL or the attribute early.
    let clean = !rest.is_empty()
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "\"'<>\\`#?".contains(c));
    clean.then_some(url)
}

/// The forge's page of a file at a commit (GitHub `/blob/`, GitLab `/-/blob/`).
pub fn file_at(
    forge: &str,
    web_url: Option<&str>,
    commit: &str,
    file: &str,
    line: Option<u32>,
) -> Option<String> {
    let base = web_base(web_url)?;
    if commit.is_empty() || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let blob = if forge == "gitlab" { "-/blob" } else { "blob" };
    let anchor = line.map(|l| format!("#L{l}")).unwrap_or_default();
    Some(format!("{base}/{blob}/{commit}/{}{anchor}", path(file)))
}

/// The forge's page of an open finding's line at its snapshot's commit.
pub fn file_link(f: &OpenFinding) -> Option<String> {
    file_at(
        &f.forge,
        f.web_url.as_deref(),
        &f.commit,
        &f.finding.path,
        Some(f.finding.line),
    )
}

/// The forge's page of a repository's tree at a commit.
pub fn tree_at(forge: &str, web_url: Option<&str>, commit: &str) -> Option<String> {
    let base = web_base(web_url)?;
    let tree = if forge == "gitlab" { "-/tree" } else { "tree" };
    commit
        .chars()
        .all(|c| c.is_ascii_hexdigit())
        .then(|| format!("{base}/{tree}/{commit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(team_page("@org/web"), "/dashboard/teams/%40org%2Fweb");
        assert_eq!(
            path("apps/a b/#1?.yaml"),
            "apps/a%20b/%231%3F.yaml",
            "slashes stay, the rest is encoded"
        );
        assert_eq!(
            rule_page("runAsRootAllowed"),
            "/dashboard/rules/runAsRootAllowed"
        );
    }

    #[test]
    fn forge_links_follow_each_forge_and_refuse_odd_addresses() {
        let commit = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            file_at(
                "github",
                Some("https://github.com/org/shop"),
                commit,
                "k8s/web app.yaml",
                Some(7)
            )
            .as_deref(),
            Some(
                "https://github.com/org/shop/blob/0123456789abcdef0123456789abcdef01234567/k8s/web%20app.yaml#L7"
            )
        );
        assert_eq!(
            file_at(
                "gitlab",
                Some("https://gitlab.example/g/p/"),
                commit,
                "a.yaml",
                Some(1)
            )
            .as_deref(),
            Some(
                "https://gitlab.example/g/p/-/blob/0123456789abcdef0123456789abcdef01234567/a.yaml#L1"
            )
        );
        for odd in [
            "javascript:alert(1)",
            "https://x/\"onmouseover=1",
            "data:text/html,x",
            "https://",
        ] {
            assert_eq!(
                file_at("github", Some(odd), commit, "a.yaml", None),
                None,
                "{odd}"
            );
        }
        assert_eq!(
            file_at(
                "github",
                Some("https://github.com/o/r"),
                "HEAD~1",
                "a",
                None
            ),
            None
        );
    }
}

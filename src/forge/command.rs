//! Slash commands (`/kubeward rescan`, `/kubeward help`) and who may give them, the same rules
//! for every forge. The routes use [`parse_command`] and [`never_commands_us`] on the payload to
//! decide whether to queue a command job; the workers re-check the comment through the API and
//! the author's access ([`github_may_command`], [`gitlab_may_command`]) before acting.

use crate::forge::github::reply::CollaboratorPermission;

/// The word every slash command starts with.
pub const COMMAND_WORD: &str = "/kubeward";

/// GitLab's Developer access level: the least that may run commands.
pub const GITLAB_DEVELOPER_ACCESS: u64 = 30;

/// A slash command the bot answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `/kubeward rescan`: scan the pull request's current head again.
    Rescan,
    /// `/kubeward help`: reply with the list of commands.
    Help,
}

/// Reads a slash command from a comment body.
///
/// Only the first line counts, with surrounding whitespace trimmed, and it must be exactly
/// `/kubeward rescan` or `/kubeward help` (case-sensitive, one space). Whatever follows on
/// later lines is ignored. `/kubeward rescan please`, a quoted `> /kubeward rescan`, a
/// command in a code span, fence or indented code block (four or more leading spaces, or a
/// tab) are not commands.
pub fn parse_command(body: &str) -> Option<Command> {
    let first = body.lines().next()?;
    let indent: usize = first
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .map(|c| if c == '\t' { 4 } else { 1 })
        .sum();
    if indent >= 4 {
        return None; // a Markdown indented code block
    }
    match first.trim() {
        "/kubeward rescan" => Some(Command::Rescan),
        "/kubeward help" => Some(Command::Help),
        _ => None,
    }
}

impl Command {
    /// The name a command job stores (`rescan`, `help`).
    pub fn name(self) -> &'static str {
        match self {
            Command::Rescan => "rescan",
            Command::Help => "help",
        }
    }
}

/// Authors we never take commands from: bots and Apps (including this one: that way lie
/// loops) and our own account.
pub fn never_commands_us(author: &str, author_is_bot: bool, our_account: &str) -> bool {
    author_is_bot || author == our_account
}

/// GitHub: whether a `collaborators/{login}/permission` answer allows commands (write,
/// maintain or admin, or a custom role with push).
pub fn github_may_command(permission: &CollaboratorPermission) -> bool {
    let role = permission
        .role_name
        .as_deref()
        .or(permission.permission.as_deref())
        .unwrap_or("");
    let flags = permission.user.as_ref().map(|u| &u.permissions);
    matches!(role, "admin" | "maintain" | "write")
        || ["admin", "maintain", "push"]
            .iter()
            .any(|k| flags.and_then(|f| f.get(*k)) == Some(&true))
}

/// GitLab: whether a project member may run commands (Developer or more, and active).
pub fn gitlab_may_command(access_level: u64, active: bool) -> bool {
    access_level >= GITLAB_DEVELOPER_ACCESS && active
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn commands_are_the_exact_first_line() {
        assert_eq!(parse_command("/kubeward rescan"), Some(Command::Rescan));
        assert_eq!(
            parse_command("  /kubeward help \r\nthanks"),
            Some(Command::Help)
        );
        assert_eq!(parse_command("/kubeward rescan please"), None);
        assert_eq!(parse_command("    /kubeward rescan"), None);
        assert_eq!(parse_command("> /kubeward rescan"), None);
        assert_eq!(parse_command("/Kubeward rescan"), None);
        assert_eq!(parse_command(""), None);
    }

    #[test]
    fn only_write_maintain_and_admin_may_run_commands() {
        let read = |v: Value| -> CollaboratorPermission {
            serde_json::from_value(v).expect("a permission reply")
        };
        let reply = |role: &str, push: bool| {
            read(json!({"permission": "read", "role_name": role,
                "user": {"login": "u", "permissions": {"pull": true, "push": push}}}))
        };
        for role in ["write", "maintain", "admin"] {
            assert!(github_may_command(&reply(role, false)), "{role}");
        }
        for role in ["read", "triage", "none", ""] {
            assert!(!github_may_command(&reply(role, false)), "{role}");
        }
        // A custom role is known by its base permission flags.
        assert!(github_may_command(&reply("deployer", true)));
        assert!(!github_may_command(&reply("auditor", false)));
        // Without role_name (older GHES), `permission` decides.
        assert!(github_may_command(&read(json!({"permission": "write"}))));
        assert!(!github_may_command(&read(json!({"permission": "read"}))));
    }

    #[test]
    fn developers_and_above_may_command_on_gitlab() {
        assert!(gitlab_may_command(30, true));
        assert!(gitlab_may_command(50, true));
        assert!(!gitlab_may_command(20, true));
        assert!(!gitlab_may_command(40, false));
    }

    #[test]
    fn bots_and_our_own_account_never_command_us() {
        assert!(never_commands_us("kubeward[bot]", false, "kubeward[bot]"));
        assert!(never_commands_us("renovate[bot]", true, "kubeward[bot]"));
        assert!(!never_commands_us("alice", false, "kubeward[bot]"));
    }
}

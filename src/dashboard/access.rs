//! Who is asking, and what they may see. The dashboard trusts the user and group headers of an
//! authenticating proxy (oauth2-proxy and the like) only when the TCP peer is one of the
//! configured proxies: never `X-Forwarded-For`, which any client can write. What a user sees
//! comes from grants by user or group, default none: logging in must not show every private
//! repository's security findings to everyone.

use std::net::IpAddr;

use globset::{Glob, GlobMatcher};
use ipnet::IpNet;
use serde::Deserialize;

/// `dashboard:` in the serve settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DashboardSettings {
    /// Its own listener, never the webhook's.
    #[serde(default = "default_listen")]
    pub listen: String,
    pub trusted_headers: TrustedHeaders,
    /// What each user or group may see; nobody sees anything not granted.
    #[serde(default)]
    pub access: Vec<GrantSpec>,
}

fn default_listen() -> String {
    "127.0.0.1:8081".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TrustedHeaders {
    /// The header naming the authenticated user (`X-Forwarded-User`).
    #[serde(default = "default_user_header")]
    pub user: String,
    /// The header listing the user's groups, comma-separated (`X-Forwarded-Groups`).
    #[serde(default = "default_groups_header")]
    pub groups: String,
    /// The proxies' addresses: a request from any other peer is refused.
    pub from_cidrs: Vec<String>,
}

fn default_user_header() -> String {
    "x-forwarded-user".into()
}

fn default_groups_header() -> String {
    "x-forwarded-groups".into()
}

/// One grant: these users or groups see these teams' findings in these repositories.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GrantSpec {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Team names (`@org/web`, `unowned`), or `*` for every team.
    pub teams: Vec<String>,
    /// Repository names as globs (`org/*`); default every repository.
    #[serde(default = "every")]
    pub repositories: Vec<String>,
}

fn every() -> Vec<String> {
    vec!["*".into()]
}

/// The settings, checked and compiled.
#[derive(Debug, Clone)]
pub struct Access {
    pub user_header: String,
    pub groups_header: String,
    proxies: Vec<IpNet>,
    grants: Vec<Grant>,
}

#[derive(Debug, Clone)]
struct Grant {
    users: Vec<String>,
    groups: Vec<String>,
    teams: Vec<String>,
    repositories: Vec<GlobMatcher>,
}

/// What one signed-in user may see.
#[derive(Debug, Clone, Default)]
pub struct Visible {
    pub user: String,
    /// `(team, repository globs)`; a team of `*` is every team.
    scopes: Vec<(String, Vec<GlobMatcher>)>,
}

impl Visible {
    /// Whether `team`'s findings in `repository` may be shown.
    pub fn sees(&self, team: &str, repository: &str) -> bool {
        self.scopes.iter().any(|(t, repos)| {
            (t == "*" || t == team) && repos.iter().any(|r| r.is_match(repository))
        })
    }

    /// Whether any of `team`'s findings may be shown.
    pub fn sees_team(&self, team: &str) -> bool {
        self.scopes.iter().any(|(t, _)| t == "*" || t == team)
    }

    /// Every team in every repository.
    pub fn sees_everything(&self) -> bool {
        self.scopes
            .iter()
            .any(|(t, repos)| t == "*" && repos.iter().any(|r| r.glob().glob() == "*"))
    }
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The peer is not a trusted proxy: its headers mean nothing.
    UntrustedPeer,
    /// No user header from the proxy.
    NotSignedIn,
}

impl Access {
    pub fn new(settings: &DashboardSettings) -> Result<Access, String> {
        let proxies = settings
            .trusted_headers
            .from_cidrs
            .iter()
            .map(|c| {
                c.parse::<IpNet>()
                    .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|e| format!("dashboard.trustedHeaders.fromCidrs: `{c}`: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proxies.is_empty() {
            return Err("dashboard.trustedHeaders.fromCidrs must name the proxy".into());
        }
        let grants = settings
            .access
            .iter()
            .map(|g| {
                Ok(Grant {
                    users: g.users.clone(),
                    groups: g.groups.clone(),
                    teams: g.teams.clone(),
                    repositories: g
                        .repositories
                        .iter()
                        .map(|r| {
                            Glob::new(r)
                                .map(|g| g.compile_matcher())
                                .map_err(|e| format!("dashboard.access: repository `{r}`: {e}"))
                        })
                        .collect::<Result<_, String>>()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Access {
            user_header: settings.trusted_headers.user.to_ascii_lowercase(),
            groups_header: settings.trusted_headers.groups.to_ascii_lowercase(),
            proxies,
            grants,
        })
    }

    /// Who is asking, from the proxy's headers, if `peer` is a proxy; what they may see.
    pub fn visible(
        &self,
        peer: IpAddr,
        user: Option<&str>,
        groups: Option<&str>,
    ) -> Result<Visible, Refused> {
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        if !self.proxies.iter().any(|p| p.contains(&peer)) {
            return Err(Refused::UntrustedPeer);
        }
        let user = user
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .ok_or(Refused::NotSignedIn)?;
        let groups: Vec<&str> = groups
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .collect();
        let mut visible = Visible {
            user: user.to_owned(),
            scopes: Vec::new(),
        };
        for grant in &self.grants {
            let applies = grant.users.iter().any(|u| u == user)
                || grant.groups.iter().any(|g| groups.contains(&g.as_str()));
            if applies {
                for team in &grant.teams {
                    visible
                        .scopes
                        .push((team.clone(), grant.repositories.clone()));
                }
            }
        }
        Ok(visible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        let settings: DashboardSettings = serde_json::from_value(serde_json::json!({
            "trustedHeaders": {"fromCidrs": ["10.0.0.0/8", "127.0.0.1"]},
            "access": [
                {"groups": ["platform"], "teams": ["*"]},
                {"users": ["wes"], "teams": ["@org/web"], "repositories": ["org/shop"]}
            ]
        }))
        .expect("settings");
        Access::new(&settings).expect("valid")
    }

    #[test]
    fn headers_count_only_from_the_proxies() {
        let a = access();
        let outside: IpAddr = "192.168.1.5".parse().expect("ip");
        assert_eq!(
            a.visible(outside, Some("mallory"), Some("platform")).err(),
            Some(Refused::UntrustedPeer)
        );
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(
            a.visible(proxy, None, Some("platform")).err(),
            Some(Refused::NotSignedIn)
        );
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        assert!(a.visible(mapped, Some("pat"), Some("platform")).is_ok());
    }

    #[test]
    fn nothing_is_visible_unless_granted() {
        let a = access();
        let proxy: IpAddr = "127.0.0.1".parse().expect("ip");
        let nobody = a
            .visible(proxy, Some("nina"), Some("sales"))
            .expect("signed in");
        assert!(!nobody.sees_team("@org/web") && !nobody.sees_everything());
        let platform = a
            .visible(proxy, Some("pat"), Some("eng, platform"))
            .expect("in");
        assert!(platform.sees_everything() && platform.sees("@org/api", "org/cart"));
        let wes = a.visible(proxy, Some("wes"), None).expect("in");
        assert!(wes.sees("@org/web", "org/shop"));
        assert!(
            !wes.sees("@org/web", "org/cart"),
            "only the granted repository"
        );
        assert!(!wes.sees("@org/api", "org/shop"), "only the granted team");
        assert!(!wes.sees_everything());
    }
}

//! Who is asking, and what they may see. The dashboard trusts the user and group headers of an
//! authenticating proxy (oauth2-proxy and the like) only when the TCP peer is one of the
//! configured proxies: never `X-Forwarded-For`, which any client can write. Without a proxy,
//! accounts come from a file ([`super::signin`]). What a user sees comes from grants by user or
//! group, default none: logging in must not show every private repository's security findings
//! to everyone.

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
    /// Identity from an authenticating proxy in front.
    #[serde(default)]
    pub trusted_headers: Option<TrustedHeaders>,
    /// Identity from accounts in a file, with a sign-in form.
    #[serde(default)]
    pub credentials: Option<CredentialsSettings>,
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

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CredentialsSettings {
    /// `name:argon2-hash[:groups]` per line.
    pub file: std::path::PathBuf,
    /// How long a sign-in lasts.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
}

fn default_session_hours() -> u32 {
    12
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
pub struct Access {
    proxy: Option<Proxy>,
    pub sign_in: Option<super::signin::SignIn>,
    grants: Vec<Grant>,
}

struct Proxy {
    user_header: String,
    groups_header: String,
    peers: Vec<IpNet>,
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

    /// `team`'s findings in every repository, past and present (its daily totals are summed
    /// over all of them, including ones it has nothing open in now).
    pub fn sees_team_everywhere(&self, team: &str) -> bool {
        self.scopes.iter().any(|(t, repos)| {
            (t == "*" || t == team) && repos.iter().any(|r| r.glob().glob() == "*")
        })
    }

    /// Every team's findings in `repository`, past and present (its snapshots count them all).
    pub fn sees_every_team_in(&self, repository: &str) -> bool {
        self.scopes
            .iter()
            .any(|(t, repos)| t == "*" && repos.iter().any(|r| r.is_match(repository)))
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
    /// The peer is not a trusted proxy (and there is no other way in): its headers mean nothing.
    UntrustedPeer,
    /// No user header from the proxy, and no session.
    NotSignedIn,
}

pub use super::signin::Identity;

impl Access {
    pub fn new(settings: &DashboardSettings) -> Result<Access, String> {
        let proxy = match &settings.trusted_headers {
            None => None,
            Some(headers) => {
                let peers = headers
                    .from_cidrs
                    .iter()
                    .map(|c| {
                        c.parse::<IpNet>()
                            .or_else(|_| c.parse::<IpAddr>().map(IpNet::from))
                            .map_err(|e| format!("dashboard.trustedHeaders.fromCidrs: `{c}`: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if peers.is_empty() {
                    return Err("dashboard.trustedHeaders.fromCidrs must name the proxy".into());
                }
                Some(Proxy {
                    user_header: headers.user.to_ascii_lowercase(),
                    groups_header: headers.groups.to_ascii_lowercase(),
                    peers,
                })
            }
        };
        let sign_in = match &settings.credentials {
            None => None,
            Some(c) => Some(super::signin::SignIn::load(
                &c.file,
                std::time::Duration::from_secs(u64::from(c.session_hours.max(1)) * 3600),
            )?),
        };
        if proxy.is_none() && sign_in.is_none() {
            return Err(
                "dashboard: set trustedHeaders (an authenticating proxy) or credentials (accounts in a file): the dashboard never serves without authentication"
                    .into(),
            );
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
            proxy,
            sign_in,
            grants,
        })
    }

    /// Who the proxy says is asking. `Ok(None)`: not from the proxy (or it named nobody) and
    /// another way in exists, the caller looks for a session.
    pub fn from_proxy(
        &self,
        peer: IpAddr,
        header: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Identity>, Refused> {
        let Some(proxy) = &self.proxy else {
            return Ok(None);
        };
        // An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        let other_way = self.sign_in.is_some();
        if !proxy.peers.iter().any(|p| p.contains(&peer)) {
            return if other_way {
                Ok(None)
            } else {
                Err(Refused::UntrustedPeer)
            };
        }
        let user = header(&proxy.user_header)
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        let Some(user) = user else {
            return if other_way {
                Ok(None)
            } else {
                Err(Refused::NotSignedIn)
            };
        };
        let groups = header(&proxy.groups_header)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(Some(Identity { user, groups }))
    }

    /// What `who` may see: the scopes of every grant naming them or one of their groups.
    pub fn visible(&self, who: Identity) -> Visible {
        let mut visible = Visible {
            user: who.user,
            scopes: Vec::new(),
        };
        for grant in &self.grants {
            let applies = grant.users.contains(&visible.user)
                || grant.groups.iter().any(|g| who.groups.contains(g));
            if applies {
                for team in &grant.teams {
                    visible
                        .scopes
                        .push((team.clone(), grant.repositories.clone()));
                }
            }
        }
        visible
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

    fn headers<'a>(
        user: Option<&'a str>,
        groups: Option<&'a str>,
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| match name {
            "x-forwarded-user" => user.map(str::to_owned),
            "x-forwarded-groups" => groups.map(str::to_owned),
            _ => None,
        }
    }

    fn signed_in(a: &Access, peer: &str, user: &str, groups: Option<&str>) -> Visible {
        let peer: IpAddr = peer.parse().expect("ip");
        let who = a
            .from_proxy(peer, headers(Some(user), groups))
            .expect("from the proxy")
            .expect("named");
        a.visible(who)
    }

    #[test]
    fn headers_count_only_from_the_proxies() {
        let a = access();
        let outside: IpAddr = "192.168.1.5".parse().expect("ip");
        assert_eq!(
            a.from_proxy(outside, headers(Some("mallory"), Some("platform")))
                .err(),
            Some(Refused::UntrustedPeer)
        );
        let proxy: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(
            a.from_proxy(proxy, headers(None, Some("platform"))).err(),
            Some(Refused::NotSignedIn)
        );
        assert!(signed_in(&a, "::ffff:127.0.0.1", "pat", Some("platform")).sees_everything());
    }

    #[test]
    fn nothing_is_visible_unless_granted() {
        let a = access();
        let nobody = signed_in(&a, "127.0.0.1", "nina", Some("sales"));
        assert!(!nobody.sees_team("@org/web") && !nobody.sees_everything());
        let platform = signed_in(&a, "127.0.0.1", "pat", Some("eng, platform"));
        assert!(platform.sees_everything() && platform.sees("@org/api", "org/cart"));
        let wes = signed_in(&a, "127.0.0.1", "wes", None);
        assert!(wes.sees("@org/web", "org/shop"));
        assert!(
            !wes.sees("@org/web", "org/cart"),
            "only the granted repository"
        );
        assert!(!wes.sees("@org/api", "org/shop"), "only the granted team");
        assert!(!wes.sees_everything());
        assert!(
            !wes.sees_every_team_in("org/shop"),
            "one team is not all of them"
        );
        assert!(platform.sees_every_team_in("org/shop"));
    }

    #[test]
    fn some_way_to_sign_in_is_required() {
        let settings: DashboardSettings =
            serde_json::from_value(serde_json::json!({"access": []})).expect("settings");
        assert!(
            Access::new(&settings)
                .err()
                .is_some_and(|e| e.contains("never serves without authentication"))
        );
    }
}

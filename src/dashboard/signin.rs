//! The second way in, for teams without an authenticating proxy: accounts in a file of argon2
//! hashes, a sign-in form, and sessions held in this process's memory.
//!
//! The file has one account per line, `name:$argon2id$...[:group,group]` (`kubeward
//! dashboard-password` writes the hash); `#` starts a comment. Argon2's own verification
//! compares in constant time, an unknown name is verified against a hash of the same cost (so
//! timing does not tell which names exist), and failures are throttled per name and per
//! client address: each attempt is counted as a failure before its hash is computed (and
//! refunded when right), so parallel guesses are throttled like sequential ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use rand::RngCore;

/// Failures allowed before a name or an address waits.
const FREE_FAILURES: u32 = 5;
/// The first wait; each failure after it doubles the wait.
const FIRST_WAIT: Duration = Duration::from_secs(5);
/// The longest wait after repeated failures.
const LONGEST_WAIT: Duration = Duration::from_secs(15 * 60);
/// A name or address with no failure for this long starts again from zero.
const FAILURES_FORGOTTEN: Duration = Duration::from_secs(15 * 60);
/// Sessions and failure records held at most: memory stays bounded under a flood.
const MAX_ENTRIES: usize = 10_000;
/// Verifications at once: each argon2 run takes tens of MiB and a core for tens of ms.
const VERIFYING_AT_ONCE: usize = 2;
/// How long an attempt may wait for its turn to be verified before it is turned away.
const VERIFY_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Who signed in, and the groups their account line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct Account {
    hash: String,
    groups: Vec<String>,
}

#[derive(Debug, Clone)]
struct Session {
    identity: Identity,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

impl Failures {
    /// Until when the next attempt must wait: doubling from [`FIRST_WAIT`] after the free ones.
    fn wait_until(&self) -> Option<Instant> {
        let over = self.count.checked_sub(FREE_FAILURES)?;
        let wait = (FIRST_WAIT * (1u32 << over.min(10))).min(LONGEST_WAIT);
        Some(self.last + wait)
    }
}

/// Why a sign-in did not give a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// Wrong name or password (which one is not said).
    Wrong,
    /// Too many failures for this name or address: try again after this long.
    Throttled(Duration),
}

pub struct SignIn {
    accounts: HashMap<String, Account>,
    /// Verified against when the name is unknown, at the same cost as a real one.
    decoy: String,
    session_ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Failures>>,
    verifying: Arc<tokio::sync::Semaphore>,
}

/// The PHC string of `password` with a fresh salt, argon2id with the crate's defaults.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SignIn {
    /// Reads the accounts file.
    pub fn load(path: &Path, session_ttl: Duration) -> Result<SignIn, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("dashboard.credentials.file {}: {e}", path.display()))?;
        SignIn::parse(&text, &path.display().to_string(), session_ttl)
    }

    pub fn parse(text: &str, origin: &str, session_ttl: Duration) -> Result<SignIn, String> {
        let mut accounts = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{origin}:{}", n + 1);
            let mut parts = line.splitn(3, ':');
            let (Some(name), Some(hash)) = (parts.next(), parts.next()) else {
                return Err(format!("{at}: expected `name:argon2-hash[:groups]`"));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("{at}: the account has no name"));
            }
            let parsed =
                PasswordHash::new(hash).map_err(|e| format!("{at}: not a PHC hash: {e}"))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(format!(
                    "{at}: `{}` is not an argon2 hash",
                    parsed.algorithm.as_str()
                ));
            }
            let groups = parts
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_owned)
                .collect();
            if accounts
                .insert(
                    name.to_owned(),
                    Account {
                        hash: hash.to_owned(),
                        groups,
                    },
                )
                .is_some()
            {
                return Err(format!("{at}: `{name}` is listed twice"));
            }
        }
        Ok(SignIn {
            accounts,
            decoy: hash_password("kubeward decoy password")?,
            session_ttl,
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            verifying: Arc::new(tokio::sync::Semaphore::new(VERIFYING_AT_ONCE)),
        })
    }

    fn throttled(&self, keys: &[String], now: Instant) -> Option<Duration> {
        let failures = lock(&self.failures);
        keys.iter()
            .filter_map(|k| failures.get(k))
            .filter(|f| now.duration_since(f.last) < FAILURES_FORGOTTEN)
            .filter_map(Failures::wait_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Counts an attempt as failed, before its hash is computed: guesses sent in parallel are
    /// throttled like guesses sent one after another. `false` when the table is full of
    /// recent failures of others and this one cannot be counted: the attempt is refused (a
    /// flood of names or addresses must not switch throttling off).
    fn charge(&self, keys: &[String], now: Instant) -> bool {
        let mut failures = lock(&self.failures);
        if failures.len() + keys.len() > MAX_ENTRIES {
            failures.retain(|_, f| now.duration_since(f.last) < FAILURES_FORGOTTEN);
        }
        let missing = keys.iter().filter(|k| !failures.contains_key(*k)).count();
        if failures.len() + missing > MAX_ENTRIES {
            return false;
        }
        for key in keys {
            let entry = failures.entry(key.clone()).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(entry.last) >= FAILURES_FORGOTTEN {
                entry.count = 0;
            }
            entry.count += 1;
            entry.last = now;
        }
        true
    }

    /// Moves the charged failures' time to `now`, when the answer was given.
    fn answered(&self, keys: &[String], now: Instant) {
        let mut failures = lock(&self.failures);
        for key in keys {
            if let Some(f) = failures.get_mut(key) {
                f.last = f.last.max(now);
            }
        }
    }

    /// A right password: the charge was not a failure after all.
    fn refund(&self, keys: &[String]) {
        let mut failures = lock(&self.failures);
        for key in keys {
            if let Some(f) = failures.get_mut(key) {
                f.count = f.count.saturating_sub(1);
            }
        }
    }

    /// Checks `password` for `user` from `peer`; a new session's token when it is right.
    pub async fn attempt(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<String, SignInError> {
        let keys = [format!("name:{user}"), format!("peer:{peer}")];
        if let Some(wait) = self.throttled(&keys, now) {
            return Err(SignInError::Throttled(wait));
        }
        if !self.charge(&keys, now) {
            tracing::warn!("the dashboard's failed sign-in table is full: refusing sign-ins");
            return Err(SignInError::Throttled(FIRST_WAIT));
        }
        let account = self.accounts.get(user);
        let hash = account.map_or(self.decoy.clone(), |a| a.hash.clone());
        let password = password.to_owned();
        // Waiting for a turn is bounded too: a queue of hashes is a queue of held requests.
        let permit =
            match tokio::time::timeout(VERIFY_QUEUE_WAIT, self.verifying.clone().acquire_owned())
                .await
            {
                Ok(Ok(permit)) => permit,
                _ => return Err(SignInError::Throttled(FIRST_WAIT)),
            };
        let started = Instant::now();
        let right = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        // A failure counts from when it was answered, however long the hash took.
        let now = now + started.elapsed();
        let Some(account) = account.filter(|_| right) else {
            self.answered(&keys, now);
            return Err(SignInError::Wrong);
        };
        self.refund(&keys[1..]);
        lock(&self.failures).remove(&keys[0]);
        let mut token = [0u8; 32];
        rand::rng().fill_bytes(&mut token);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token);
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_ENTRIES {
            sessions.retain(|_, s| s.expires > now);
        }
        if sessions.len() >= MAX_ENTRIES {
            // Full of live sessions: the oldest make room.
            let mut by_expiry: Vec<(Instant, String)> = sessions
                .iter()
                .map(|(k, s)| (s.expires, k.clone()))
                .collect();
            by_expiry.sort();
            for (_, k) in by_expiry.into_iter().take(MAX_ENTRIES / 10) {
                sessions.remove(&k);
            }
        }
        sessions.insert(
            token.clone(),
            Session {
                identity: Identity {
                    user: user.to_owned(),
                    groups: account.groups.clone(),
                },
                expires: now + self.session_ttl,
            },
        );
        Ok(token)
    }

    /// Who holds `token`, while the session lasts.
    pub fn session(&self, token: &str, now: Instant) -> Option<Identity> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(token) {
            Some(s) if s.expires > now => Some(s.identity.clone()),
            Some(_) => {
                sessions.remove(token);
                None
            }
            None => None,
        }
    }

    pub fn sign_out(&self, token: &str) {
        lock(&self.sessions).remove(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> SignIn {
        let hash = hash_password("correct horse").expect("hash");
        SignIn::parse(
            &format!("# platform\npat:{hash}:platform, sre\n\nwes:{hash}\n"),
            "users",
            Duration::from_secs(3600),
        )
        .expect("valid")
    }

    #[test]
    fn the_file_is_checked_line_by_line() {
        let err = |text: &str| {
            SignIn::parse(text, "users", Duration::from_secs(1))
                .err()
                .expect("refused")
        };
        assert!(err("pat\n").starts_with("users:1: expected"));
        assert!(err("\npat:plaintext\n").starts_with("users:2: not a PHC hash"));
        let hash = hash_password("x").expect("hash");
        assert!(err(&format!("pat:{hash}\npat:{hash}\n")).contains("listed twice"));
    }

    #[tokio::test]
    async fn the_right_password_opens_a_session_with_the_file_groups() {
        let s = accounts();
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        let now = Instant::now();
        let token = s
            .attempt("pat", "correct horse", peer, now)
            .await
            .expect("signed in");
        let who = s.session(&token, now).expect("session");
        assert_eq!(who.user, "pat");
        assert_eq!(who.groups, ["platform", "sre"]);
        assert!(
            s.session(&token, now + Duration::from_secs(2 * 3600))
                .is_none()
        );
        assert_eq!(
            s.attempt("pat", "wrong", peer, now).await,
            Err(SignInError::Wrong)
        );
        assert_eq!(
            s.attempt("nobody", "correct horse", peer, now).await,
            Err(SignInError::Wrong)
        );
        s.sign_out(&token);
        assert!(s.session(&token, now).is_none());
    }

    #[tokio::test]
    async fn guesses_in_parallel_are_throttled_too() {
        let s = Arc::new(accounts());
        let peer: IpAddr = "10.9.9.9".parse().expect("ip");
        let now = Instant::now();
        let guesses: Vec<_> = (0..20)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(
                    async move { s.attempt("pat", &format!("guess {i}"), peer, now).await },
                )
            })
            .collect();
        let mut verified = 0;
        for g in guesses {
            if g.await.expect("joined") == Err(SignInError::Wrong) {
                verified += 1;
            }
        }
        assert_eq!(
            verified, FREE_FAILURES,
            "only the free failures are ever hashed"
        );
    }

    #[test]
    fn waits_double_up_to_a_bound() {
        let last = Instant::now();
        let wait = |count| {
            Failures { count, last }
                .wait_until()
                .map(|until| until - last)
        };
        assert_eq!(wait(FREE_FAILURES - 1), None);
        assert_eq!(wait(FREE_FAILURES), Some(FIRST_WAIT));
        assert_eq!(wait(FREE_FAILURES + 2), Some(FIRST_WAIT * 4));
        assert_eq!(wait(FREE_FAILURES + 40), Some(LONGEST_WAIT));
    }

    #[tokio::test]
    async fn failures_are_throttled_per_name_and_per_address() {
        let s = accounts();
        let mallory: IpAddr = "10.6.6.6".parse().expect("ip");
        let now = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(
                s.attempt("pat", "guess", mallory, now).await,
                Err(SignInError::Wrong)
            );
        }
        // Even the right password waits now, from that address and for that name.
        assert!(matches!(
            s.attempt("pat", "correct horse", mallory, now).await,
            Err(SignInError::Throttled(_))
        ));
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(matches!(
            s.attempt("pat", "correct horse", other, now).await,
            Err(SignInError::Throttled(_))
        ));
        assert!(matches!(
            s.attempt("wes", "correct horse", mallory, now).await,
            Err(SignInError::Throttled(_))
        ));
        // Another name from another address is not held up.
        assert!(s.attempt("wes", "correct horse", other, now).await.is_ok());
        // The wait ends.
        let later = now + FIRST_WAIT + Duration::from_secs(5);
        assert!(
            s.attempt("pat", "correct horse", other, later)
                .await
                .is_ok()
        );
    }
}

//! Who may do what: HTTP basic authentication as Confluent's clients send it
//! (`basic.auth.user.info` = `user:password`), and per-subject read/write permissions in the
//! manner of Karapace's ACLs.
//!
//! The users file (`REGISTRY_AUTH_FILE`) is JSON:
//!
//! ```json
//! {
//!   "users": [
//!     {"username": "admin", "algorithm": "sha512", "salt": "s4lt", "password": "<base64>"},
//!     {"username": "dev", "algorithm": "plain", "password": "dev-only"}
//!   ],
//!   "permissions": [
//!     {"username": "admin", "operation": "Write", "resource": "Config:"},
//!     {"username": "admin", "operation": "Write", "resource": "Subject:*"},
//!     {"username": "dev", "operation": "Read", "resource": "Subject:anime-*"}
//!   ]
//! }
//! ```
//!
//! Passwords are hashed as Karapace hashes them (PBKDF2-HMAC with `sha256` or `sha512`, 5000
//! rounds, the salt's UTF-8 bytes, base64), so its `karapace_mkpasswd` output can be pasted
//! in; `plain` is for development. Resources are `Config:` (the global `/config` and `/mode`)
//! and `Subject:<glob>`, where `*` matches any run of characters and `?` one. `Write`
//! includes `Read`. Anonymous callers may read when the registry is configured so
//! (`REGISTRY_ANONYMOUS_READ`), and never write.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha512};

use crate::error::Error;

/// PBKDF2 rounds of Karapace's password hashes.
const PBKDF2_ROUNDS: u32 = 5000;

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Operation {
    /// Reading schemas, versions, settings, checking compatibility.
    Read,
    /// Registering, deleting, changing settings (includes `Read`).
    Write,
}

/// What a request touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The global settings (`/config`, `/mode`).
    Config,
    /// One subject (its versions, its own config and mode).
    Subject(String),
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Config => f.write_str("the global config"),
            Resource::Subject(s) => write!(f, "subject '{s}'"),
        }
    }
}

/// The users file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessFile {
    /// The users and their passwords.
    pub users: Vec<UserEntry>,
    /// What each user may do.
    #[serde(default)]
    pub permissions: Vec<PermissionEntry>,
}

/// One user of the users file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The name clients send.
    pub username: String,
    /// `sha256`, `sha512` (PBKDF2, as Karapace) or `plain`.
    pub algorithm: String,
    /// The salt of a hashed password.
    #[serde(default)]
    pub salt: String,
    /// The hash (base64), or the password itself for `plain`.
    pub password: String,
}

/// One permission of the users file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionEntry {
    /// The user it grants to.
    pub username: String,
    /// `Read` or `Write`.
    pub operation: Operation,
    /// `Config:` or `Subject:<glob>`.
    pub resource: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Sha256,
    Sha512,
    Plain,
}

#[derive(Debug)]
struct User {
    algorithm: Algorithm,
    salt: String,
    password: Vec<u8>,
}

#[derive(Debug)]
enum Pattern {
    Config,
    Subjects(String),
}

#[derive(Debug)]
struct Permission {
    username: String,
    operation: Operation,
    pattern: Pattern,
}

/// Who is calling: a user who proved their password, or no one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No credentials were sent.
    Anonymous,
    /// A configured user.
    User(String),
}

/// The users, their permissions and whether anonymous callers may read. The users and
/// permissions can be replaced while the registry runs ([`Access::reload`]): a request sees
/// either the old set or the new one, never a mix.
#[derive(Debug)]
pub struct Access {
    users: RwLock<Arc<Users>>,
    anonymous_read: bool,
}

/// One users file's users and permissions, as validated.
#[derive(Debug)]
struct Users {
    users: HashMap<String, User>,
    permissions: Vec<Permission>,
    /// SHA-256 of the passwords already verified, per user: the PBKDF2 work is done once per
    /// user and password, not on every request. It goes with the users it was verified
    /// against, so a changed password is checked again.
    verified: Mutex<HashMap<String, [u8; 32]>>,
}

impl Access {
    /// Reads and validates the users file at `path`.
    pub fn load(path: &Path, anonymous_read: bool) -> Result<Self, Error> {
        Ok(Self {
            users: RwLock::new(Arc::new(Users::load(path)?)),
            anonymous_read,
        })
    }

    /// Reads the users file at `path` again and, when it is valid, replaces the users and
    /// permissions in one step; the number of users it lists. When it is not, the current
    /// users stay and the error names the file (and, for JSON errors, the line).
    pub fn reload(&self, path: &Path) -> Result<usize, Error> {
        let users = Users::load(path)?;
        let count = users.users.len();
        let mut current = self.users.write().unwrap_or_else(|e| e.into_inner());
        *current = Arc::new(users);
        Ok(count)
    }

    /// How many users are configured.
    pub fn user_count(&self) -> usize {
        self.current().users.len()
    }

    fn current(&self) -> Arc<Users> {
        Arc::clone(&self.users.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Validates a users file; every problem is listed in the error.
    pub fn new(file: AccessFile, anonymous_read: bool) -> Result<Self, Error> {
        Ok(Self {
            users: RwLock::new(Arc::new(Users::new(file)?)),
            anonymous_read,
        })
    }
}

impl Users {
    fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::AccessConfig(format!(
                "cannot read the users file {}: {e}",
                path.display()
            ))
        })?;
        let file: AccessFile = serde_json::from_str(&text).map_err(|e| {
            Error::AccessConfig(format!(
                "the users file {} is not valid: {e}",
                path.display()
            ))
        })?;
        Self::new(file).map_err(|e| match e {
            Error::AccessConfig(problems) => Error::AccessConfig(format!(
                "the users file {} is not valid: {problems}",
                path.display()
            )),
            other => other,
        })
    }

    fn new(file: AccessFile) -> Result<Self, Error> {
        let mut problems = Vec::new();
        let mut users = HashMap::new();
        for entry in file.users {
            let algorithm = match entry.algorithm.to_ascii_lowercase().as_str() {
                "sha256" => Algorithm::Sha256,
                "sha512" => Algorithm::Sha512,
                "plain" => Algorithm::Plain,
                other => {
                    problems.push(format!(
                        "user '{}': algorithm '{other}' is not one of sha256, sha512, plain",
                        entry.username
                    ));
                    continue;
                }
            };
            let password = if algorithm == Algorithm::Plain {
                entry.password.into_bytes()
            } else {
                match base64::engine::general_purpose::STANDARD.decode(entry.password.trim()) {
                    Ok(hash) => hash,
                    Err(e) => {
                        problems.push(format!(
                            "user '{}': the password hash is not base64: {e}",
                            entry.username
                        ));
                        continue;
                    }
                }
            };
            if entry.username.is_empty() || entry.username.contains(':') {
                problems.push(format!(
                    "user '{}': a username is not empty and has no ':'",
                    entry.username
                ));
            }
            let user = User {
                algorithm,
                salt: entry.salt,
                password,
            };
            if users.insert(entry.username.clone(), user).is_some() {
                problems.push(format!("user '{}' is listed twice", entry.username));
            }
        }
        let mut permissions = Vec::new();
        for entry in file.permissions {
            if !users.contains_key(&entry.username) {
                problems.push(format!(
                    "a permission names user '{}', who is not in the users list",
                    entry.username
                ));
            }
            let pattern = if entry.resource == "Config:" {
                Pattern::Config
            } else if let Some(glob) = entry.resource.strip_prefix("Subject:") {
                Pattern::Subjects(glob.to_owned())
            } else {
                problems.push(format!(
                    "user '{}': resource '{}' is neither 'Config:' nor 'Subject:<glob>'",
                    entry.username, entry.resource
                ));
                continue;
            };
            permissions.push(Permission {
                username: entry.username,
                operation: entry.operation,
                pattern,
            });
        }
        if users.is_empty() {
            problems.push("the users file lists no user".to_owned());
        }
        if !problems.is_empty() {
            return Err(Error::AccessConfig(problems.join("; ")));
        }
        Ok(Self {
            users,
            permissions,
            verified: Mutex::new(HashMap::new()),
        })
    }
}

impl Access {
    /// Whether anonymous callers may read.
    pub fn anonymous_read(&self) -> bool {
        self.anonymous_read
    }

    /// The caller an `Authorization` header names: anonymous without one, a user whose
    /// password matches, else 401.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, Error> {
        let Some(header) = header else {
            return Ok(Caller::Anonymous);
        };
        let refused = || Error::Unauthorized("the credentials are not valid".to_owned());
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| {
                Error::Unauthorized("only HTTP basic authentication is supported".to_owned())
            })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(refused)?;
        let (username, password) = decoded.split_once(':').ok_or_else(refused)?;
        let current = self.current();
        let user = current.users.get(username).ok_or_else(refused)?;
        let fingerprint: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        let known = current
            .verified
            .lock()
            .ok()
            .and_then(|v| v.get(username).copied());
        if known.is_some_and(|k| constant_time_eq(&k, &fingerprint)) {
            return Ok(Caller::User(username.to_owned()));
        }
        if !user.matches(password) {
            return Err(refused());
        }
        if let Ok(mut verified) = current.verified.lock() {
            verified.insert(username.to_owned(), fingerprint);
        }
        Ok(Caller::User(username.to_owned()))
    }

    /// Whether `caller` may do `operation` on `resource`.
    pub fn allows(&self, caller: &Caller, operation: Operation, resource: &Resource) -> bool {
        match caller {
            Caller::Anonymous => self.anonymous_read && operation == Operation::Read,
            Caller::User(name) => self.current().permissions.iter().any(|p| {
                &p.username == name
                    && (p.operation == Operation::Write || operation == Operation::Read)
                    && match (&p.pattern, resource) {
                        (Pattern::Config, Resource::Config) => true,
                        (Pattern::Subjects(glob), Resource::Subject(subject)) => {
                            glob_matches(glob, subject)
                        }
                        _ => false,
                    }
            }),
        }
    }

    /// [`Access::allows`], as the error to answer with: 401 for an anonymous caller (send
    /// credentials), 403 for a user without the permission.
    pub fn authorize(
        &self,
        caller: &Caller,
        operation: Operation,
        resource: &Resource,
    ) -> Result<(), Error> {
        if self.allows(caller, operation, resource) {
            return Ok(());
        }
        Err(match caller {
            Caller::Anonymous => Error::Unauthorized(format!(
                "{operation:?} on {resource} needs credentials (HTTP basic authentication)"
            )),
            Caller::User(name) => Error::Forbidden(format!(
                "User '{name}' is denied operation {operation:?} on {resource}"
            )),
        })
    }
}

impl User {
    fn matches(&self, password: &str) -> bool {
        let computed = match self.algorithm {
            Algorithm::Plain => password.as_bytes().to_vec(),
            Algorithm::Sha256 => {
                pbkdf2::<Hmac<Sha256>>(password.as_bytes(), self.salt.as_bytes(), PBKDF2_ROUNDS)
            }
            Algorithm::Sha512 => {
                pbkdf2::<Hmac<Sha512>>(password.as_bytes(), self.salt.as_bytes(), PBKDF2_ROUNDS)
            }
        };
        constant_time_eq(&computed, &self.password)
    }
}

/// PBKDF2 with one block of output (the digest's length, as Python's `pbkdf2_hmac`).
fn pbkdf2<M: Mac + hmac::digest::KeyInit + Clone>(
    password: &[u8],
    salt: &[u8],
    rounds: u32,
) -> Vec<u8> {
    let keyed = <M as hmac::digest::KeyInit>::new_from_slice(password).expect("HMAC takes any key");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = mac.finalize().into_bytes().to_vec();
    let mut out = u.clone();
    for _ in 1..rounds {
        let mut mac = keyed.clone();
        mac.update(&u);
        u = mac.finalize().into_bytes().to_vec();
        for (o, x) in out.iter_mut().zip(&u) {
            *o ^= x;
        }
    }
    out
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters, `?` one character; everything else itself.
fn glob_matches(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    // Iterative matching with backtracking to the last `*`: linear-ish, no recursion.
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ti));
            gi += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// Subjects `caller` may read, out of `subjects`.
pub fn readable(access: &Access, caller: &Caller, subjects: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    subjects
        .into_iter()
        .filter(|s| access.allows(caller, Operation::Read, &Resource::Subject(s.clone())))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_prefixes_and_single_characters() {
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("anime-*", "anime-value"));
        assert!(!glob_matches("anime-*", "user-value"));
        assert!(glob_matches("*-value", "user-value"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("a?c", "abbc"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        assert!(glob_matches("a*b*c", "a-x-b-y-c"));
    }

    #[test]
    fn karapace_hashes_verify() {
        // hashlib.pbkdf2_hmac("sha512", b"secret", b"salt", 5000), base64: the hash
        // karapace_mkpasswd prints for password "secret" and salt "salt".
        let hash = pbkdf2::<Hmac<Sha512>>(b"secret", b"salt", PBKDF2_ROUNDS);
        let user = User {
            algorithm: Algorithm::Sha512,
            salt: "salt".into(),
            password: hash,
        };
        assert!(user.matches("secret"));
        assert!(!user.matches("Secret"));
        // RFC 6070-style check of the PBKDF2 itself (HMAC-SHA256, "password"/"salt", 1 round).
        let one = pbkdf2::<Hmac<Sha256>>(b"password", b"salt", 1);
        assert_eq!(
            one.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
        );
    }

    #[test]
    fn a_bad_users_file_lists_every_problem() {
        let file: AccessFile = serde_json::from_value(serde_json::json!({
            "users": [{"username": "a", "algorithm": "md5", "password": "x"}],
            "permissions": [{"username": "b", "operation": "Write", "resource": "Everything"}]
        }))
        .unwrap();
        let err = Access::new(file, false).unwrap_err().to_string();
        for word in ["md5", "user 'b'", "'Everything'", "lists no user"] {
            assert!(err.contains(word), "{word}: {err}");
        }
    }

    #[test]
    fn a_reload_replaces_the_users_or_keeps_them_and_names_the_file_and_line() {
        let dir = std::env::temp_dir().join(format!("auth-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.json");
        let one = r#"{"users": [{"username": "a", "algorithm": "plain", "password": "pa"}]}"#;
        std::fs::write(&path, one).unwrap();
        let access = Access::load(&path, false).unwrap();
        let basic = |user: &str, password: &str| {
            let pair = format!("{user}:{password}");
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        };
        assert!(access.authenticate(Some(&basic("b", "pb"))).is_err());

        let two = r#"{"users": [
            {"username": "a", "algorithm": "plain", "password": "pa"},
            {"username": "b", "algorithm": "plain", "password": "pb"}
        ]}"#;
        std::fs::write(&path, two).unwrap();
        assert_eq!(access.reload(&path).unwrap(), 2);
        assert_eq!(
            access.authenticate(Some(&basic("b", "pb"))).unwrap(),
            Caller::User("b".to_owned())
        );

        std::fs::write(&path, "{\n  \"users\": [\n    {\"username\": \"a\",,}\n").unwrap();
        let err = access.reload(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert_eq!(access.user_count(), 2);
        assert!(access.authenticate(Some(&basic("b", "pb"))).is_ok());

        // A changed password is checked again, not taken from the verified cache.
        let changed = r#"{"users": [{"username": "b", "algorithm": "plain", "password": "new"}]}"#;
        std::fs::write(&path, changed).unwrap();
        assert_eq!(access.reload(&path).unwrap(), 1);
        assert!(access.authenticate(Some(&basic("b", "pb"))).is_err());
        assert!(access.authenticate(Some(&basic("b", "new"))).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

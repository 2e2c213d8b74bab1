//! The users file (`users.toml`): who may use the controller's web UI and
//! API, and with which role. Written by `wsio user …` / `wsio token …`,
//! read by the running host (`http::access`), which notices every change at
//! once (`UsersWatch`).
//!
//! ```toml
//! [users.alice]
//! role = "admin"
//! password = "$argon2id$v=19$…"      # Argon2id, salted
//! [tokens.ci]
//! role = "operator"
//! sha256 = "9f86d0…"                  # of the token, which is never stored
//! ```
//!
//! The file holds secrets' hashes only, yet it is kept to its owner (mode
//! 0600, checked at every read) and replaced atomically (a temporary file
//! renamed over it), so a reader never sees half a file.

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// What a user or token may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Status, log, `GET /io_modules`, the event stream.
    Viewer,
    /// Viewer, plus actions and network up/down.
    Operator,
    /// Operator, plus the configuration API and page.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == text)
            .ok_or_else(|| format!("no role {text:?}; roles: viewer, operator, admin"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub role: Role,
    /// The Argon2id hash in PHC form (salt and parameters included).
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub role: Role,
    /// SHA-256 of the token, lower-case hex.
    pub sha256: String,
}

/// The file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

impl Users {
    /// Whether anyone is configured (then every request needs credentials).
    pub fn any(&self) -> bool {
        !self.users.is_empty() || !self.tokens.is_empty()
    }

    /// Reads `path`; a missing file is no users. Refuses a file that group
    /// or others may read or write.
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(e) => {
                return Err(format!(
                    "cannot read the users file {}: {e}",
                    path.display()
                ));
            }
        };
        check_private(path)?;
        let users: Users = toml::from_str(&text).map_err(|e| {
            format!(
                "the users file {} is not valid: {}; change it with wsio user / wsio token",
                path.display(),
                e.message()
            )
        })?;
        for name in users.users.keys().chain(users.tokens.keys()) {
            check_name(name).map_err(|e| format!("the users file {}: {e}", path.display()))?;
        }
        Ok(users)
    }

    /// Writes the file atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = toml::to_string(self).map_err(|e| format!("cannot encode the users: {e}"))?;
        let text = format!(
            "# wsio users and API tokens: change with `wsio user` and `wsio token`.\n\
             # Only hashes are stored; keep this file private (mode 0600).\n{text}"
        );
        write_private(path, text.as_bytes())
    }

    /// The user whose name and password these are. An unknown name costs
    /// the same Argon2 work as a known one, so the time an answer takes
    /// does not tell which names exist.
    pub fn check_password(&self, name: &str, password: &str) -> Option<&User> {
        static UNKNOWN_USER: OnceLock<Option<String>> = OnceLock::new();
        let user = self.users.get(name);
        let stored = match user {
            Some(user) => Some(user.password.as_str()),
            None => UNKNOWN_USER
                .get_or_init(|| hash_password("no such user").ok())
                .as_deref(),
        }?;
        let hash = PasswordHash::new(stored).ok()?;
        let verified = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        user.filter(|_| verified)
    }

    /// The name and entry of the token presented. Comparing hashes, not
    /// tokens: how long a comparison takes tells nothing about a token.
    pub fn check_token(&self, token: &str) -> Option<(&str, &Token)> {
        let hash = token_hash(token);
        self.tokens
            .iter()
            .find(|(_, t)| t.sha256 == hash)
            .map(|(name, token)| (name.as_str(), token))
    }
}

/// Names are shown in logs and the page: short, printable, no spaces.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the name {name:?} is not accepted: use 1 to 64 letters, digits, '-', '_', '.' or '@'"
        ))
    }
}

/// An Argon2id hash (the crate's defaults: 19 MiB, 2 passes) with a
/// random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| "the system's random number generator failed".to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// `bytes` random bytes from the system, lower-case hex.
pub fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| "the system's random number generator failed".to_string())?;
    Ok(hex(&buf))
}

/// A new API token: 256 random bits.
pub fn new_token() -> Result<String, String> {
    random_hex(32).map(|h| format!("wsio_{h}"))
}

/// A token is stored as its SHA-256, not Argon2: it is 256 random bits, so
/// no guessing or dictionary can find it from its hash, and a fast hash lets
/// the host check a token on every request without slowing down.
pub fn token_hash(token: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a file that group or others may read or write.
pub fn check_private(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} may be read or changed by other users (mode {mode:o}); make it private: chmod 600 {}",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Writes `content` over `path` atomically with mode 0600
/// ([`crate::private_file`]).
pub fn write_private(path: &Path, content: &[u8]) -> Result<(), String> {
    crate::private_file::replace(path, content)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The users file as the running host sees it: re-read whenever its size,
/// modification time or inode changes (checked on each request; a `stat`
/// is cheap), so `wsio user remove` takes effect at once.
pub struct UsersWatch {
    path: PathBuf,
    current: Mutex<(Option<Stamp>, Loaded)>,
}

/// The file as last read, or why it could not be used.
pub type Loaded = Arc<Result<Users, String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    inode: u64,
    mode: u32,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
        inode: m.ino(),
        mode: m.mode(),
    })
}

impl UsersWatch {
    /// Reads the file once; an error here stops the host from starting.
    pub fn open(path: &Path) -> Result<UsersWatch, String> {
        let stamp = stamp(path);
        let users = Users::load(path)?;
        Ok(UsersWatch {
            path: path.to_path_buf(),
            current: Mutex::new((stamp, Arc::new(Ok(users)))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The users now. An error (the file became unreadable, invalid or
    /// public) lets no one in until it is fixed.
    pub fn current(&self) -> Loaded {
        let now = stamp(&self.path);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.0 != now {
            let users = Users::load(&self.path);
            match &users {
                Ok(u) => log::info!(
                    "users file {} changed: {} user(s), {} token(s)",
                    self.path.display(),
                    u.users.len(),
                    u.tokens.len()
                ),
                Err(e) => log::error!("{e}; no one may sign in until it is fixed"),
            }
            *current = (now, Arc::new(users));
        }
        current.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wsio-users-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn passwords_and_tokens_check_and_only_hashes_are_stored() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("users.toml");
        let mut users = Users::default();
        users.users.insert(
            "alice".into(),
            User {
                role: Role::Admin,
                password: hash_password("correct horse").unwrap(),
            },
        );
        let token = new_token().unwrap();
        assert!(token.len() >= 64, "256 bits as hex");
        users.tokens.insert(
            "ci".into(),
            Token {
                role: Role::Viewer,
                sha256: token_hash(&token),
            },
        );
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("correct horse") && !text.contains(&token));
        assert!(text.contains("$argon2id$"), "{text}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = Users::load(&path).unwrap();
        assert_eq!(loaded, users);
        assert!(loaded.check_password("alice", "correct horse").is_some());
        assert!(loaded.check_password("alice", "wrong").is_none());
        assert!(loaded.check_password("bob", "correct horse").is_none());
        assert_eq!(loaded.check_token(&token).unwrap().0, "ci");
        assert!(loaded.check_token("wsio_0000").is_none());
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_chmod_to_run() {
        let dir = temp_dir("public");
        let path = dir.join("users.toml");
        Users::default().save(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = Users::load(&path).unwrap_err();
        assert!(
            error.contains(&format!("chmod 600 {}", path.display())),
            "{error}"
        );
    }

    #[test]
    fn a_missing_file_is_no_users_and_the_watch_sees_changes() {
        let dir = temp_dir("watch");
        let path = dir.join("users.toml");
        let watch = UsersWatch::open(&path).unwrap();
        assert!(!watch.current().as_ref().as_ref().unwrap().any());
        let mut users = Users::default();
        users.tokens.insert(
            "t".into(),
            Token {
                role: Role::Operator,
                sha256: token_hash("x"),
            },
        );
        users.save(&path).unwrap();
        assert!(watch.current().as_ref().as_ref().unwrap().any());
    }

    #[test]
    fn roles_and_names_parse_with_clear_errors() {
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        let e = "root".parse::<Role>().unwrap_err();
        assert!(e.contains("viewer, operator, admin"), "{e}");
        assert!(check_name("alice").is_ok());
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
    }
}

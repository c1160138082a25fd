//! Keys: bearer tokens, one `name:scope,…=token` per line (`#` comments). A key's scopes say
//! what it may do: `ingest` (send telemetry), `admin` (change a moderator's members), `query`
//! (read the store through the query API) and `live` (watch a `ws` live view). Only
//! `--auth-token-file` takes a bare `name=token` line (an ingest key, as it always has): any
//! other key file must name the scope, so one file's plain line never means another thing
//! in another file. Each key has a name so logs can say which key did what; tokens never
//! leave this module (no `Debug`, no `Display`) and are compared in constant time.

use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// Shortest token accepted: anything shorter can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token file that cannot be used. Never quotes a token.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The file cannot be read.
    #[error("cannot read the token file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A line is not `name=token` with a usable name and token.
    #[error("token file {path}, line {line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the token itself).
        reason: String,
    },
    /// The file holds no key.
    #[error("token file {path} holds no `name=token` line")]
    Empty {
        /// The file.
        path: String,
    },
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Send telemetry to the receivers.
    Ingest,
    /// Change a moderator's members (`/admin`).
    Admin,
    /// Read the store through the query API.
    Query,
    /// Watch a `ws` live view.
    Live,
}

impl Scope {
    /// Its name in key files.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Admin => "admin",
            Scope::Query => "query",
            Scope::Live => "live",
        }
    }

    fn parse(text: &str) -> Option<Scope> {
        match text {
            "ingest" => Some(Scope::Ingest),
            "admin" => Some(Scope::Admin),
            "query" => Some(Scope::Query),
            "live" => Some(Scope::Live),
            _ => None,
        }
    }
}

/// The name of the key a request was admitted with (`anonymous` without a token file), as
/// the guard puts it into the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyName(pub String);

/// A known key: its name and scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Its name, for logs.
    pub name: String,
    scopes: Vec<Scope>,
}

impl KeyInfo {
    /// The caller of a listener with no token file: it may ingest and, where the listener
    /// allows it (loopback only), administer.
    pub fn anonymous(name: &str, admin: bool) -> KeyInfo {
        let mut scopes = vec![Scope::Ingest];
        if admin {
            scopes.push(Scope::Admin);
        }
        KeyInfo {
            name: name.to_string(),
            scopes,
        }
    }

    /// Whether it may do any of `scopes`.
    pub fn may_any(&self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|s| self.may(*s))
    }

    /// Whether it may do what `scope` covers.
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// One named key; only the token's SHA-256 is kept, so comparisons take the same time
/// whatever the lengths.
struct Key {
    info: KeyInfo,
    digest: [u8; 32],
}

/// The keys allowed to send.
pub struct Keys {
    keys: Vec<Key>,
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A known key.
    Known(KeyInfo),
    /// No bearer token was presented.
    Missing,
    /// A token was presented and matches no key.
    Wrong,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl Keys {
    /// Reads `--auth-token-file`: a bare `name=token` line is an ingest key.
    pub fn load(path: &Path) -> Result<Keys, AuthError> {
        Keys::load_for(path, Some(Scope::Ingest))
    }

    /// Reads a key file whose bare lines have scope `default`; with `None`, every line must
    /// name its scopes (`name:scope,…=token`).
    pub fn load_for(path: &Path, default: Option<Scope>) -> Result<Keys, AuthError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| AuthError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Keys::parse_for(&text, &shown, default)
    }

    #[cfg(test)]
    fn parse(text: &str, path: &str) -> Result<Keys, AuthError> {
        Keys::parse_for(text, path, Some(Scope::Ingest))
    }

    fn parse_for(text: &str, path: &str, default: Option<Scope>) -> Result<Keys, AuthError> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| AuthError::Line {
                path: path.to_string(),
                line: i + 1,
                reason,
            };
            let (name, token) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `name=token` or `name:scope,…=token`".into()))?;
            let (name, token) = (name.trim(), token.trim());
            let (name, scopes) = match name.split_once(':') {
                None => match default {
                    Some(scope) => (name, vec![scope]),
                    None => {
                        return Err(bad(format!(
                            "key {name:?} names no scope: write it as `{name}:SCOPE=TOKEN` (SCOPE: query, live, ingest or admin); only --auth-token-file reads a bare line, as an ingest key"
                        )))
                    }
                },
                Some((name, list)) => {
                    let scopes = list
                        .split(',')
                        .map(|s| {
                            Scope::parse(s.trim()).ok_or_else(|| {
                                bad(format!(
                                    "unknown scope {:?}: expected ingest, admin, query or live",
                                    s.trim()
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    (name.trim(), scopes)
                }
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            {
                return Err(bad(
                    "a key name is letters, digits and `-_.@`, not empty".into()
                ));
            }
            if token.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "the token of key {name:?} is shorter than {MIN_TOKEN_LEN} characters"
                )));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(format!(
                    "the token of key {name:?} has characters an HTTP header cannot carry"
                )));
            }
            if keys.iter().any(|k| k.info.name == name) {
                return Err(bad(format!("key name {name:?} appears twice")));
            }
            let digest = digest(token.as_bytes());
            if keys.iter().any(|k| bool::from(k.digest.ct_eq(&digest))) {
                return Err(bad(format!(
                    "key {name:?} has the same token as another key"
                )));
            }
            keys.push(Key {
                info: KeyInfo {
                    name: name.to_string(),
                    scopes,
                },
                digest,
            });
        }
        if keys.is_empty() {
            return Err(AuthError::Empty {
                path: path.to_string(),
            });
        }
        Ok(Keys { keys })
    }

    /// Judges an `Authorization` header value (`Bearer TOKEN`, scheme case-insensitive).
    /// Every key is compared, so the time taken does not tell which one matched.
    pub fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        let Some(token) = authorization.and_then(bearer_token) else {
            return Verdict::Missing;
        };
        let presented = digest(token);
        let mut found = None;
        for key in &self.keys {
            if bool::from(key.digest.ct_eq(&presented)) {
                found = Some(key.info.clone());
            }
        }
        found.map_or(Verdict::Wrong, Verdict::Known)
    }

    /// The key names with their scopes, for the start-up log.
    pub fn names(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| format!("{}:{:?}", k.info.name, k.info.scopes))
            .collect()
    }
}

fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let value = value.trim_ascii();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# ingest keys\nteam-a = aaaaaaaaaaaaaaaaaaaa\n\nteam-b=bbbbbbbbbbbbbbbbbbbb\nops:admin,ingest=cccccccccccccccccccc\n";

    fn known(name: &str, scopes: &[Scope]) -> Verdict {
        Verdict::Known(KeyInfo {
            name: name.into(),
            scopes: scopes.to_vec(),
        })
    }

    fn keys() -> Keys {
        Keys::parse(FILE, "tokens").unwrap()
    }

    #[test]
    fn a_known_token_names_its_key() {
        assert_eq!(
            keys().check(Some(b"Bearer bbbbbbbbbbbbbbbbbbbb")),
            known("team-b", &[Scope::Ingest])
        );
        assert_eq!(
            keys().check(Some(b"bearer   aaaaaaaaaaaaaaaaaaaa ")),
            known("team-a", &[Scope::Ingest])
        );
    }

    #[test]
    fn a_key_may_ingest_unless_its_scopes_say_otherwise() {
        let Verdict::Known(plain) = keys().check(Some(b"Bearer aaaaaaaaaaaaaaaaaaaa")) else {
            panic!()
        };
        assert!(plain.may(Scope::Ingest) && !plain.may(Scope::Admin));
        let Verdict::Known(ops) = keys().check(Some(b"Bearer cccccccccccccccccccc")) else {
            panic!()
        };
        assert!(ops.may(Scope::Admin) && ops.may(Scope::Ingest));
        let err = Keys::parse("x:root=0123456789abcdef0\n", "f")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown scope \"root\""), "{err}");
    }

    #[test]
    fn no_bearer_token_is_missing_and_an_unknown_one_is_wrong() {
        assert_eq!(keys().check(None), Verdict::Missing);
        assert_eq!(keys().check(Some(b"Basic dXNlcjpwYXNz")), Verdict::Missing);
        assert_eq!(keys().check(Some(b"Bearer ")), Verdict::Missing);
        assert_eq!(
            keys().check(Some(b"Bearer aaaaaaaaaaaaaaaaaaab")),
            Verdict::Wrong
        );
    }

    #[test]
    fn a_bare_line_is_refused_where_no_scope_is_implied() {
        let err = Keys::parse_for("reader=0123456789abcdef0\n", "f", None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("reader:SCOPE=TOKEN"), "{err}");
        assert!(!err.contains("0123456789abcdef0"), "{err}");
        let keys = Keys::parse_for("viewer:live=0123456789abcdef0\n", "f", None).unwrap();
        let Verdict::Known(viewer) = keys.check(Some(b"Bearer 0123456789abcdef0")) else {
            panic!()
        };
        assert!(viewer.may(Scope::Live) && !viewer.may(Scope::Ingest));
    }

    #[test]
    fn bad_lines_are_reported_by_number_without_the_token() {
        let err = Keys::parse("ok=0123456789abcdef0\nshort=tiny-secret\n", "f")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("line 2") && err.contains("short"), "{err}");
        assert!(!err.contains("tiny-secret"), "{err}");
        let dup = Keys::parse("a=0123456789abcdef0\na=0123456789abcdef1\n", "f")
            .err()
            .unwrap()
            .to_string();
        assert!(dup.contains("twice"), "{dup}");
        assert!(Keys::parse("# nothing\n", "f").is_err());
        assert!(Keys::parse("no-equals-sign\n", "f").is_err());
    }
}

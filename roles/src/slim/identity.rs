//! How a member proves who it is to the others, and checks them: SLIM's identity provider and
//! verifier for the node's app.
//!
//! With a shared secret every holder can take any name, so a member can act for another (it
//! can answer another member's invitation). With keys, each member signs its identity tokens
//! with its own Ed25519 key and its identity is its SLIM name; the others accept only tokens
//! signed by the key the trust list holds under that name. SLIM then derives each member's name
//! id from that identity and refuses a message whose name id does not match, slim-node refuses
//! one whose name is not its identity ([`crate::delivery::trust`]), and a moderator admits into
//! its group only the invitee whose identity is the invited name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use slim_bindings::{
    ClientJwtAuth, IdentityProviderConfig, IdentityVerifierConfig, JwtAlgorithm, JwtAuth,
    JwtKeyConfig, JwtKeyData, JwtKeyFormat, JwtKeyType,
};

use crate::error::ConfigError;
use crate::name::{Secret, SlimName};

/// How long an identity token is valid (SLIM renews it).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How a member proves who it is, and checks the others.
#[derive(Debug, Clone)]
pub enum Identity {
    /// One secret for the whole group: whoever holds it can join under any name.
    SharedSecret(Secret),
    /// A key of the member's own, and the public keys of the members it accepts.
    Keys(MemberKeys),
}

/// A member's own key and its trust list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberKeys {
    /// The member's Ed25519 private key (PKCS#8 PEM, e.g. `openssl genpkey -algorithm ed25519`).
    pub key: PathBuf,
    /// The members' public keys: a JWKS whose every key has `kid` = that member's SLIM name.
    pub trust: PathBuf,
}

impl MemberKeys {
    /// Checks the files before anything connects: a key SLIM can sign with, and a trust list
    /// whose every key names its member (SLIM finds the key that must have signed a member's
    /// token by that name; a key without one would accept a token claiming any name).
    pub fn validate(&self, own: &SlimName) -> Result<(), ConfigError> {
        let err = |path: &Path, why: String| ConfigError::Identity {
            path: path.display().to_string(),
            why,
        };
        let key = std::fs::read_to_string(&self.key).map_err(|e| err(&self.key, e.to_string()))?;
        if !key.contains("-----BEGIN PRIVATE KEY-----") {
            return Err(err(
                &self.key,
                "not a PKCS#8 PEM private key (make one with `openssl genpkey -algorithm ed25519`)"
                    .into(),
            ));
        }
        let text =
            std::fs::read_to_string(&self.trust).map_err(|e| err(&self.trust, e.to_string()))?;
        let jwks: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| err(&self.trust, format!("not JSON: {e}")))?;
        let keys = jwks["keys"]
            .as_array()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                err(
                    &self.trust,
                    "no \"keys\": a JWKS lists the members' keys".into(),
                )
            })?;
        for k in keys {
            match k["kid"].as_str() {
                Some(kid) => {
                    kid.parse::<SlimName>().map_err(|e| {
                        err(
                            &self.trust,
                            format!("kid {kid:?} is not a member's name: {e}"),
                        )
                    })?;
                }
                None => {
                    return Err(err(
                        &self.trust,
                        "a key without \"kid\": each key must name its member (kid = ORG/NS/APP)"
                            .into(),
                    ))
                }
            }
        }
        let own = own.to_string();
        if !keys.iter().any(|k| k["kid"].as_str() == Some(own.as_str())) {
            tracing::warn!(trust = %self.trust.display(), name = %own, "the trust list has no key for this node: the others will not accept it unless theirs do");
        }
        Ok(())
    }

    /// SLIM's provider (tokens signed with the member's key, identity = its name) and verifier
    /// (tokens signed by the trust list's key of the member they name).
    pub(crate) fn configs(
        &self,
        own: &SlimName,
    ) -> (IdentityProviderConfig, IdentityVerifierConfig) {
        let file = |p: &Path| JwtKeyData::File {
            path: p.display().to_string(),
        };
        let provider = IdentityProviderConfig::Jwt {
            config: ClientJwtAuth {
                key: JwtKeyType::Encoding {
                    key: JwtKeyConfig {
                        algorithm: JwtAlgorithm::EdDSA,
                        format: JwtKeyFormat::Pem,
                        key: file(&self.key),
                    },
                },
                audience: None,
                issuer: Some(own.to_string()),
                subject: Some(own.to_string()),
                duration: TOKEN_LIFETIME,
            },
        };
        let verifier = IdentityVerifierConfig::Jwt {
            config: JwtAuth {
                key: JwtKeyType::Decoding {
                    key: JwtKeyConfig {
                        algorithm: JwtAlgorithm::EdDSA,
                        format: JwtKeyFormat::Jwks,
                        key: file(&self.trust),
                    },
                },
                audience: None,
                issuer: None,
                subject: None,
                duration: TOKEN_LIFETIME,
            },
        };
        (provider, verifier)
    }
}

impl Identity {
    /// The identity a member named `name` proves with this: its name itself with keys; with
    /// a shared secret none can be told in advance (SLIM appends a random suffix).
    pub(crate) fn expected_subject(&self, name: &SlimName) -> Option<String> {
        match self {
            Identity::SharedSecret(_) => None,
            Identity::Keys(_) => Some(name.to_string()),
        }
    }
}

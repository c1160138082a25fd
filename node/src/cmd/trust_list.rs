//! `slim-node trust-list NAME=PEM…`: prints the JWKS a node's `--trust` reads, one Ed25519
//! key per member with `kid` = its SLIM name (SLIM finds the key that must have signed a
//! member's identity token by that name).

use anyhow::{bail, Context};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use slim_roles::SlimName;

use crate::cli::TrustListArgs;

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// Prints the trust list of `args.members`.
pub fn run(args: TrustListArgs) -> anyhow::Result<()> {
    println!("{}", trust_list(&args.members)?);
    Ok(())
}

/// The JWKS of `members` (`NAME=PEM` each).
fn trust_list(members: &[String]) -> anyhow::Result<String> {
    let mut keys = Vec::new();
    for member in members {
        let (name, path) = member
            .split_once('=')
            .with_context(|| format!("expected NAME=PEM, got {member:?}"))?;
        let name: SlimName = name.parse()?;
        let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        let public = public_key(&pem).with_context(|| path.to_string())?;
        keys.push(serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": name.to_string(),
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public),
        }));
    }
    Ok(serde_json::to_string_pretty(
        &serde_json::json!({ "keys": keys }),
    )?)
}

/// The Ed25519 public key in a PEM private (PKCS#8) or public (SPKI) key.
fn public_key(pem: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(der) = pem_block(pem, "PRIVATE KEY")? {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| anyhow::anyhow!("not an Ed25519 private key: {e}"))?;
        return Ok(pair.public_key().as_ref().to_vec());
    }
    if let Some(der) = pem_block(pem, "PUBLIC KEY")? {
        return match der.strip_prefix(&SPKI_PREFIX[..]) {
            Some(key) if key.len() == 32 => Ok(key.to_vec()),
            _ => bail!("not an Ed25519 public key"),
        };
    }
    bail!("no PEM private or public key (make one with `openssl genpkey -algorithm ed25519`)")
}

/// The DER bytes of the `label` block of `pem`, if it has one.
fn pem_block(pem: &str, label: &str) -> anyhow::Result<Option<Vec<u8>>> {
    let begin = format!("-----BEGIN {label}-----");
    let Some(start) = pem.find(&begin).map(|i| i + begin.len()) else {
        return Ok(None);
    };
    let end = pem[start..]
        .find(&format!("-----END {label}-----"))
        .context("the PEM block does not end")?;
    let text: String = pem[start..start + end].split_whitespace().collect();
    Ok(Some(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .context("the PEM block is not base64")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032, 7.1, test 1: the private key as `openssl genpkey` writes it, and its public key.
    const PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
    const PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n";
    const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn a_private_or_a_public_pem_gives_the_members_public_key_under_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("a.pem"), dir.path().join("b.pub.pem"));
        std::fs::write(&private, PRIVATE).unwrap();
        std::fs::write(&public, PUBLIC).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(
            &trust_list(&[
                format!("acme/otel/a={}", private.display()),
                format!("acme/otel/b={}", public.display()),
            ])
            .unwrap(),
        )
        .unwrap();
        assert_eq!(jwks["keys"][0]["kid"], "acme/otel/a");
        assert_eq!(jwks["keys"][0]["x"], X);
        assert_eq!(jwks["keys"][1]["kid"], "acme/otel/b");
        assert_eq!(jwks["keys"][1]["x"], X);
        assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    }

    #[test]
    fn a_member_without_a_name_or_a_key_is_an_error() {
        assert!(trust_list(&["acme/otel/a".into()]).is_err());
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let err = trust_list(&[format!("acme/otel/a={}", junk.display())]).unwrap_err();
        assert!(format!("{err:#}").contains("openssl genpkey"), "{err:#}");
    }
}

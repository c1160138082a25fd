//! `slim-node trust-list`: the members' public keys as the JWKS `--trust` reads.

use clap::Args;

/// `slim-node trust-list`.
#[derive(Debug, Args)]
pub struct TrustListArgs {
    /// A member and its Ed25519 key (PKCS#8 private or SPKI public PEM; only the public part
    /// is written): `acme/otel/edge=edge.pem`. Repeat for every member.
    #[arg(value_name = "NAME=PEM", required = true)]
    pub members: Vec<String>,
}

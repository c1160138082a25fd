//! Certificates made at test time: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM files of one test PKI.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certs {
    /// The flags of a receiver serving OTLP over TLS and requiring client certificates.
    pub fn receiver_mtls_args(&self) -> Vec<String> {
        let path = |p: &PathBuf| p.display().to_string();
        vec![
            "--otlp-tls-cert".into(),
            path(&self.server_cert),
            "--otlp-tls-key".into(),
            path(&self.server_key),
            "--otlp-client-ca".into(),
            path(&self.ca),
        ]
    }

    /// Makes a CA and two certificates it signed, in `dir`.
    pub fn generate(dir: &Path) -> Certs {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "slim-node test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, label: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, label);
            let cert = params.signed_by(&key, &issuer).expect("certificate");
            let cert_path = dir.join(format!("{label}.pem"));
            let key_path = dir.join(format!("{label}-key.pem"));
            std::fs::write(&cert_path, cert.pem()).expect("write certificate");
            std::fs::write(&key_path, key.serialize_pem()).expect("write key");
            (cert_path, key_path)
        };
        let (server_cert, server_key) =
            leaf(vec!["127.0.0.1".into(), "localhost".into()], "server");
        let (client_cert, client_key) = leaf(vec!["client.test".into()], "client");
        let ca_path = dir.join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).expect("write CA");
        Certs {
            ca: ca_path,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

//! TLS for the OTLP receivers (rustls): TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN,
//! optional client certificates, and a certificate that is reloaded when its files change
//! (checked at most once a second, on the next handshake; a broken new pair keeps the old
//! one in use and is logged).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// Why TLS could not be set up.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match its certificate).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The crypto provider every TLS configuration of the node uses.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Loads a certificate chain and its key, checking that they belong together.
fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no PEM certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let certified = CertifiedKey::from_der(chain, key_der, &provider())?;
    Ok(Arc::new(certified))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serves the certificate in `cert`/`key`, reloading it when either file changes.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

/// How often the files are looked at.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

impl ReloadingCert {
    fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let loaded = Loaded {
            key: load_certified_key(cert, key)?,
            stamps: (modified(cert), modified(key)),
            checked: Instant::now(),
        };
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            state: Mutex::new(loaded),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = crate::lock(&self.state);
        if state.checked.elapsed() >= RELOAD_CHECK {
            state.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != state.stamps {
                state.stamps = stamps;
                match load_certified_key(&self.cert, &self.key) {
                    Ok(key) => {
                        info!(cert = %self.cert.display(), "reloaded the receivers' TLS certificate");
                        state.key = key;
                    }
                    Err(err) => {
                        warn!(%err, "the receivers' TLS certificate changed but cannot be loaded; keeping the previous one");
                    }
                }
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A TLS acceptor for the receivers: the same certificate files as a SLIM server's.
pub fn acceptor(files: &slim_roles::ServerTls) -> Result<TlsAcceptor, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| file_error(ca, e))? {
                let cert = cert.map_err(|e| file_error(ca, e))?;
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            if roots.is_empty() {
                return Err(file_error(ca, "no PEM certificate in it"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(ReloadingCert::new(
        &files.identity.cert,
        &files.identity.key,
    )?));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What a client trusts and presents, read once from PEM files: the CA bundle (instead of
/// Mozilla's roots) and the client certificate and key (mTLS). The OTLP exporter (HTTP and
/// gRPC) and the query API's client both build their TLS from it. `Debug` says what is set,
/// never the key.
#[derive(Clone, Default)]
pub struct ClientCerts {
    /// PEM CA bundle to trust; `None`: Mozilla's roots.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate chain and key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCerts")
            .field(
                "ca",
                &self
                    .ca
                    .as_ref()
                    .map(|pem| format!("<{} bytes of PEM>", pem.len())),
            )
            .field(
                "identity",
                &self
                    .identity
                    .as_ref()
                    .map(|_| "<certificate and key: redacted>"),
            )
            .finish()
    }
}

impl ClientCerts {
    /// Reads the files.
    pub fn read(
        ca: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> anyhow::Result<ClientCerts> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
        };
        Ok(ClientCerts {
            ca: ca.map(|path| read(path, "CA file")).transpose()?,
            identity: match identity {
                Some((cert, key)) => {
                    Some((read(cert, "client certificate")?, read(key, "client key")?))
                }
                None => None,
            },
        })
    }

    /// Whether anything was given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }

    /// The rustls client configuration, offering `alpn` (e.g. `h2`, `http/1.1`).
    pub fn rustls(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    roots
                        .add(cert.context("the CA file is not PEM certificates")?)
                        .context("a certificate of the CA file cannot be used")?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .context("the client certificate is not PEM")?;
                let key =
                    PrivateKeyDer::from_pem_slice(key).context("the client key is not PEM")?;
                builder
                    .with_client_auth_cert(chain, key)
                    .context("the client certificate and key do not go together")?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// An HTTP client builder that uses these certificates (HTTP/2 or HTTP/1.1 by ALPN).
    pub fn http_client(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        let tls = self.rustls(&[b"h2", b"http/1.1"])?;
        Ok(crate::net::client::builder().use_preconfigured_tls((*tls).clone()))
    }
}

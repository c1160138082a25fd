//! TLS on the hop to the SLIM server, in both directions: what a node trusts and presents,
//! and what an embedded server serves. SLIM's transport uses TLS 1.3 and reloads certificate
//! files when they change.

use std::path::{Path, PathBuf};

use slim_bindings::{CaSource, TlsClientConfig, TlsServerConfig, TlsSource};

use crate::error::ConfigError;

/// The TLS version on SLIM hops: both ends are SLIM, so the newest one.
const TLS_VERSION: &str = "tls1.3";

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// How a node connects to an `https://` SLIM server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA bundle that signed the server's certificate; the system roots when `None`.
    pub ca: Option<PathBuf>,
    /// Client certificate for servers that require one (mTLS).
    pub identity: Option<CertKey>,
}

/// TLS of an embedded SLIM server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The server's certificate and key.
    pub identity: CertKey,
    /// When set, clients must present a certificate signed by this CA (mTLS).
    pub client_ca: Option<PathBuf>,
}

fn path_text(path: &Path) -> Result<String, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::TlsFile {
            path: path.display().to_string(),
        });
    }
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| ConfigError::TlsFile {
            path: path.display().to_string(),
        })
}

fn source(identity: &CertKey) -> Result<TlsSource, ConfigError> {
    Ok(TlsSource::File {
        cert: path_text(&identity.cert)?,
        key: path_text(&identity.key)?,
    })
}

impl ClientTls {
    /// SLIM's client TLS settings for a URL: plain text for `http://`, verified TLS for
    /// `https://`. Certificate files are checked to exist.
    pub(crate) fn for_url(&self, url: &str) -> Result<TlsClientConfig, ConfigError> {
        if !url.starts_with("https://") {
            return Ok(TlsClientConfig {
                insecure: true,
                ..TlsClientConfig::default()
            });
        }
        Ok(TlsClientConfig {
            insecure: false,
            insecure_skip_verify: false,
            source: match &self.identity {
                Some(identity) => source(identity)?,
                None => TlsSource::None,
            },
            ca_source: match &self.ca {
                Some(ca) => CaSource::File {
                    path: path_text(ca)?,
                },
                None => CaSource::None,
            },
            include_system_ca_certs_pool: self.ca.is_none(),
            tls_version: TLS_VERSION.to_string(),
        })
    }

    /// Whether any TLS setting was given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.identity.is_some()
    }
}

impl ServerTls {
    /// SLIM's server TLS settings.
    pub(crate) fn to_slim(&self) -> Result<TlsServerConfig, ConfigError> {
        let client_ca = match &self.client_ca {
            Some(ca) => CaSource::File {
                path: path_text(ca)?,
            },
            None => CaSource::None,
        };
        Ok(TlsServerConfig {
            insecure: false,
            source: source(&self.identity)?,
            client_ca,
            include_system_ca_certs_pool: Some(false),
            tls_version: Some(TLS_VERSION.to_string()),
            reload_client_ca_file: Some(true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_stay_plain_text() {
        let tls = ClientTls::default().for_url("http://127.0.0.1:1").unwrap();
        assert!(tls.insecure);
    }

    #[test]
    fn https_urls_verify_the_server() {
        let tls = ClientTls::default()
            .for_url("https://slim.example.org:443")
            .unwrap();
        assert!(!tls.insecure && !tls.insecure_skip_verify);
        assert!(tls.include_system_ca_certs_pool);
    }

    #[test]
    fn a_missing_certificate_file_is_a_config_error() {
        let tls = ClientTls {
            ca: Some("/nonexistent/ca.pem".into()),
            identity: None,
        };
        let err = tls.for_url("https://h:1").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}

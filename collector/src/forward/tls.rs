//! The connector of an upstream: TCP, plus TLS (rustls with the ring provider) for
//! `https://` endpoints, trusting the system's roots and an optional extra CA file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::config::UpstreamProtocol;
use super::exporter::Connector;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot load CA certificates from {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "skipping a system CA certificate");
    }
    let (_added, _ignored) = store.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let bad = |reason: String| TlsError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in the file".to_owned()));
        }
        for cert in certs {
            store.add(cert)?;
        }
    }
    Ok(store)
}

/// Builds the connector for one upstream. TLS settings are only used for `https://` URLs.
pub fn connector(
    protocol: UpstreamProtocol,
    ca_file: Option<&Path>,
) -> Result<Connector, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_file)?)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    Ok(match protocol {
        UpstreamProtocol::Grpc => builder.enable_http2().wrap_connector(http),
        UpstreamProtocol::Http => builder.enable_http1().wrap_connector(http),
    })
}

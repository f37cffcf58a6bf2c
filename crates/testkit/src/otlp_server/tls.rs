//! TLS for [`OtlpReceiver::start_tls`](super::OtlpReceiver::start_tls): a self-signed
//! certificate for `127.0.0.1` made at start (rcgen), and an accept loop serving an axum router
//! over rustls with HTTP/1.1 and HTTP/2 (ALPN), so OTLP/HTTP and OTLP/gRPC clients can test
//! `https://` endpoints on loopback.

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

/// A server certificate and the acceptor built from it.
#[derive(Clone)]
pub(super) struct TlsIdentity {
    /// The certificate in PEM: a client trusts the receiver by adding it as a root.
    pub(super) cert_pem: String,
    pub(super) acceptor: TlsAcceptor,
}

impl TlsIdentity {
    /// A fresh self-signed certificate for `127.0.0.1` and `localhost`.
    ///
    /// # Panics
    ///
    /// Panics if rcgen or rustls refuse the generated certificate (a bug, not an input).
    pub(super) fn generate() -> Self {
        let certified = rcgen::generate_simple_self_signed(vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
        ])
        .expect("generate a self-signed certificate");
        let cert_pem = certified.cert.pem();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("rustls protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("rustls accepts the generated certificate");
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self {
            cert_pem,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// Serves `router` over TLS on `listener` until `stop` fires (or its sender is dropped).
/// Failed handshakes (an untrusting client) end that connection only.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    acceptor: TlsAcceptor,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((tcp, _peer)) = accepted else {
            continue;
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router))
                .await;
        });
    }
}

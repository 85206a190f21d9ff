//! Mutual TLS for the transport: every connection, in both directions, presents a
//! certificate signed by the cluster's CA and checks the peer's.
//!
//! Certificates are read from PEM files ([`TlsFiles`]); [`Tls::reload`] reads them again, so
//! rotated certificates take effect for new connections without a restart.

use std::io;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{ring, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::TlsFiles;
use crate::error::{Error, Result};

/// Stream is a connection, plain or TLS.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Conn is a connection of either kind.
pub(crate) type Conn = Box<dyn Stream>;

/// Tls holds the current server and client configurations.
pub(crate) struct Tls {
    files: TlsFiles,
    configs: RwLock<(Arc<ServerConfig>, Arc<ClientConfig>)>,
}

impl Tls {
    /// load reads the files and builds both configurations.
    pub(crate) fn load(files: TlsFiles) -> Result<Tls> {
        let configs = build(&files)?;
        Ok(Tls {
            files,
            configs: RwLock::new(configs),
        })
    }

    /// reload reads the files again; on an error the configurations in use stay.
    pub(crate) fn reload(&self) -> Result<()> {
        let configs = build(&self.files)?;
        *self.configs.write() = configs;
        Ok(())
    }

    /// accept runs the server side of the handshake on an accepted connection.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<Conn> {
        let acceptor = TlsAcceptor::from(self.configs.read().0.clone());
        Ok(Box::new(acceptor.accept(tcp).await?))
    }

    /// connect runs the client side of the handshake with the host at `addr`, whose
    /// certificate must name the host part of the address (an IP or a DNS name).
    pub(crate) async fn connect(&self, tcp: TcpStream, addr: &str) -> io::Result<Conn> {
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad server name"))?;
        let connector = TlsConnector::from(self.configs.read().1.clone());
        Ok(Box::new(connector.connect(name, tcp).await?))
    }
}

fn bad(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("tls: {what}: {e}"))
}

fn build(f: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>)> {
    let provider = Arc::new(ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&f.ca).map_err(|e| bad("CA file", e))? {
        roots
            .add(c.map_err(|e| bad("CA file", e))?)
            .map_err(|e| bad("CA certificate", e))?;
    }
    if roots.is_empty() {
        return Err(bad("CA file", "no certificate in it"));
    }
    let roots = Arc::new(roots);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&f.cert)
        .map_err(|e| bad("certificate file", e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad("certificate file", e))?;
    let key = PrivateKeyDer::from_pem_file(&f.key).map_err(|e| bad("key file", e))?;
    let clients = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| bad("client verifier", e))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", e))?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(|e| bad("certificate and key", e))?;
    let servers = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| bad("server verifier", e))?;
    let client = ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", e))?
        .with_webpki_verifier(servers)
        .with_client_auth_cert(certs, key)
        .map_err(|e| bad("certificate and key", e))?;
    Ok((Arc::new(server), Arc::new(client)))
}

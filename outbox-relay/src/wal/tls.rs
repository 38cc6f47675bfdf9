//! TLS for the replication connection, as libpq reads `sslmode`, `sslrootcert`, `sslcert`
//! and `sslkey`.
//!
//! `pgwire-replication`'s own TLS (`tls-rustls`) turns on tokio-rustls's default features and
//! so builds aws-lc-sys, a long C build the workspace otherwise avoids (everything else uses
//! rustls with ring). So the relay opens the TLS connection itself (rustls + ring, as the
//! sqlx pool does) and hands it to the client through a Unix socket in a fresh directory only
//! this user can enter; the socket takes one connection and is removed at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outbox_core::{Error, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring::default_provider};
use tokio_rustls::rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// The hint every TLS failure carries, as the sqlx pool's errors do.
const HINT: &str = "(TLS: check sslmode, sslrootcert, sslcert and sslkey in database_url)";

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, else plaintext (libpq's default).
    Prefer,
    /// TLS; the certificate is checked only when `sslrootcert` is given.
    Require,
    /// TLS with a certificate chained to a trusted root.
    VerifyCa,
    /// `VerifyCa` and the certificate names the host.
    VerifyFull,
}

/// The TLS settings of a `database_url`.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    /// The mode.
    pub(crate) mode: SslMode,
    /// `sslrootcert`: a PEM file or inline PEM.
    pub(crate) root_cert: Option<String>,
    /// `sslcert`: the client certificate.
    pub(crate) cert: Option<String>,
    /// `sslkey`: the client key.
    pub(crate) key: Option<String>,
}

impl TlsSettings {
    /// Reads the URL's TLS parameters (and their sqlx spellings); libpq's default is `prefer`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for an unknown `sslmode` or half a client pair.
    pub(crate) fn from_url(url: &url::Url) -> Result<Self> {
        let mut settings = Self {
            mode: SslMode::Prefer,
            root_cert: None,
            cert: None,
            key: None,
        };
        for (key, value) in url.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "sslmode" | "ssl-mode" => {
                    settings.mode = match value.to_ascii_lowercase().as_str() {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        _ => {
                            return Err(invalid(&format!(
                                "sslmode={value:?} is not one of disable, prefer, require, verify-ca, verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" | "ssl-root-cert" | "ssl-ca" => settings.root_cert = Some(value),
                "sslcert" | "ssl-cert" => settings.cert = Some(value),
                "sslkey" | "ssl-key" => settings.key = Some(value),
                _ => {}
            }
        }
        if settings.cert.is_some() != settings.key.is_some() {
            return Err(invalid(
                "sslcert and sslkey go together: give both or neither",
            ));
        }
        Ok(settings)
    }
}

/// A tunnel's end for the replication client, and the task that pipes it.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// The directory the client connects in (its host), removed once it connected.
    pub(crate) dir: PathBuf,
    /// The port the socket's name carries (`.s.PGSQL.<port>`).
    pub(crate) port: u16,
    /// Pipes the bytes; aborted when the stream is dropped.
    pub(crate) task: tokio::task::AbortHandle,
}

/// Connects to `host:port` with `settings` (libpq's SSLRequest, then the handshake) and
/// serves that connection on a private Unix socket for the replication client. `None` for
/// `sslmode=disable`: the client connects directly.
///
/// # Errors
///
/// [`Error::InvalidConfig`] for certificate or key files it cannot use; [`Error::Store`]
/// (permanent) when the server refuses TLS or the handshake fails, naming the URL's TLS
/// parameters; [`Error::Store`] (retryable) when the server cannot be reached.
pub(crate) async fn tunnel(
    host: &str,
    port: u16,
    settings: &TlsSettings,
) -> Result<Option<Tunnel>> {
    if settings.mode == SslMode::Disable {
        return Ok(None);
    }
    let config = Arc::new(client_config(settings)?);
    let mut tcp = connect(host, port).await?;
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .map_err(unreachable)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(unreachable)?;
    let stream: Box<dyn Pipe> = match (answer[0], settings.mode) {
        (b'S', _) => {
            let name = ServerName::try_from(host.to_owned()).map_err(|_| {
                invalid(&format!("the host {host:?} is not a valid TLS server name"))
            })?;
            match TlsConnector::from(config).connect(name, tcp).await {
                Ok(tls) => Box::new(tls),
                // libpq's `prefer` tries again without TLS when the handshake fails.
                Err(_) if settings.mode == SslMode::Prefer => Box::new(connect(host, port).await?),
                Err(e) => return Err(refused(&format!("the TLS handshake failed: {e}"))),
            }
        }
        (_, SslMode::Prefer) => Box::new(tcp),
        _ => return Err(refused("the server does not offer TLS")),
    };
    serve(stream).await.map(Some)
}

/// Both directions of a connection.
trait Pipe: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Pipe for T {}

async fn serve(mut upstream: Box<dyn Pipe>) -> Result<Tunnel> {
    let dir = private_dir()?;
    let port = 5432;
    let path = dir.join(format!(".s.PGSQL.{port}"));
    let listener = UnixListener::bind(&path).map_err(|e| local(&dir, &e))?;
    let socket_dir = RemoveOnDrop(dir.clone());
    let task = tokio::spawn(async move {
        let accepted = listener.accept().await;
        // One connection only: nobody else gets to use this server session.
        drop(listener);
        drop(socket_dir);
        if let Ok((mut client, _)) = accepted {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Ok(Tunnel {
        dir,
        port,
        task: task.abort_handle(),
    })
}

/// Removes the socket's directory once the client connected, or when the tunnel is aborted
/// before (the replication client failed first).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new directory only this user can enter, for the socket.
fn private_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("outbox-wal-{}", uuid::Uuid::now_v7().simple()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| local(&dir, &e))?;
    Ok(dir)
}

fn local(dir: &Path, e: &std::io::Error) -> Error {
    Error::Store {
        operation: "wal stream: set up the TLS tunnel's socket",
        retryable: false,
        source: format!("{}: {e}", dir.display()).into(),
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(unreachable)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

fn unreachable(e: std::io::Error) -> Error {
    Error::Store {
        operation: "wal stream: connect to the database named by database_url",
        retryable: true,
        source: Box::new(e),
    }
}

fn refused(reason: &str) -> Error {
    Error::Store {
        operation: "wal stream: connect to the database named by database_url",
        retryable: false,
        source: format!("{reason} {HINT}").into(),
    }
}

fn invalid(reason: &str) -> Error {
    Error::InvalidConfig {
        key: "database_url".to_owned(),
        reason: format!("wal mode: {reason}"),
    }
}

/// A PEM parameter's content: inline PEM as sqlx accepts it, else the file it names.
fn pem(key: &str, value: &str) -> Result<Vec<u8>> {
    let trimmed = value.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    std::fs::read(value).map_err(|e| invalid(&format!("{key}={value:?}: {e}")))
}

fn certificates(key: &str, value: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(&pem(key, value)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(&format!("{key}={value:?}: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(&format!(
            "{key}={value:?}: no PEM certificate in it"
        )));
    }
    Ok(certs)
}

/// The rustls configuration of `settings`, with libpq's checks: `require` and `prefer` check
/// the chain only when `sslrootcert` is given, `verify-ca` always, `verify-full` also the name.
fn client_config(settings: &TlsSettings) -> Result<ClientConfig> {
    let provider = Arc::new(default_provider());
    let mut roots = RootCertStore::empty();
    match &settings.root_cert {
        Some(file) => {
            let (added, _) = roots.add_parsable_certificates(certificates("sslrootcert", file)?);
            if added == 0 {
                return Err(invalid(&format!(
                    "sslrootcert={file:?}: no usable CA certificate"
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let roots = Arc::new(roots);
    let chain =
        WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
            .build()
            .map_err(|e| invalid(&format!("sslrootcert: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.mode {
        SslMode::VerifyFull => chain,
        mode => Arc::new(Lenient {
            chain,
            check_chain: mode == SslMode::VerifyCa || settings.root_cert.is_some(),
            provider: Arc::clone(&provider),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(&format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match (&settings.cert, &settings.key) {
        (Some(cert), Some(key)) => {
            let chain = certificates("sslcert", cert)?;
            let key = PrivateKeyDer::from_pem_slice(&pem("sslkey", key)?)
                .map_err(|e| invalid(&format!("sslkey: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| invalid(&format!("sslcert and sslkey: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `verify-ca` (`check_chain`: the chain is checked, the host name is not) or no certificate
/// check at all (`require`/`prefer` without `sslrootcert`, as libpq). Handshake signatures
/// are always checked.
#[derive(Debug)]
struct Lenient {
    chain: Arc<WebPkiServerVerifier>,
    check_chain: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(tokio_rustls::rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        tokio_rustls::rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

//! The relay's HTTP servers (the registry API and `/metrics`), made safe to expose: optional
//! HTTPS (rustls, certificate and key from PEM files), header, body and whole-request
//! timeouts, a request-body limit, a cap on requests in progress and on open connections, and
//! a bounded wait for requests in progress at shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use outbox_core::{Error, Result};
use serde::{Deserialize, Deserializer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

/// TLS and limits of one served port (`[registry.server]`, `[http.server]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// PEM certificate chain; with `tls_key`, the port speaks HTTPS only.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// the end of the previous response: also how long a kept-alive connection may sit idle.
    #[serde(default = "default_header_timeout", deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// Longest gap between two pieces of a request body.
    #[serde(default = "default_body_timeout", deserialize_with = "duration")]
    pub body_timeout: Duration,
    /// Longest time for a whole request, body and answer included (then 408).
    #[serde(default = "default_request_timeout", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Largest request body, in bytes (then 413).
    #[serde(default = "default_body_limit")]
    pub body_limit: usize,
    /// Requests served at once; more wait (within `request_timeout`).
    #[serde(default = "default_max_requests")]
    pub max_concurrent_requests: usize,
    /// Connections open at once; more are closed on accept.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long shutdown waits for requests in progress.
    #[serde(default = "default_shutdown_grace", deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// The longest a connection may stay open, whatever it does: a client that never reads
    /// its answer (which no request timeout covers) is cut off then.
    #[serde(default = "default_max_connection_age", deserialize_with = "duration")]
    pub max_connection_age: Duration,
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_body_limit() -> usize {
    // A schema may be 4 MiB; inside a JSON string its quotes are escaped.
    10 * 1024 * 1024
}
fn default_max_requests() -> usize {
    64
}
fn default_max_connections() -> usize {
    256
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(5)
}
fn default_max_connection_age() -> Duration {
    Duration::from_secs(300)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration like \"250ms\" or \"10s\": {e}"
        ))
    })
}

impl Default for ServerConfig {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

impl ServerConfig {
    /// Checks the values; `section` names the table in errors (`registry.server`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the key.
    pub fn validate(&self, section: &str) -> Result<()> {
        let invalid = |key: &str, reason: &str| Error::InvalidConfig {
            key: format!("{section}.{key}"),
            reason: reason.to_owned(),
        };
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_key", "tls_cert and tls_key go together"));
        }
        for (key, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("request_timeout", self.request_timeout),
            ("max_connection_age", self.max_connection_age),
        ] {
            if value.is_zero() || value > Duration::from_secs(86_400) {
                return Err(invalid(key, "must be between 1ms and 24h"));
            }
        }
        if self.body_limit == 0 || self.body_limit > 1 << 30 {
            return Err(invalid(
                "body_limit",
                "must be between 1 and 1073741824 bytes",
            ));
        }
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 100_000 {
            return Err(invalid(
                "max_concurrent_requests",
                "must be between 1 and 100000",
            ));
        }
        if self.max_connections == 0 || self.max_connections > 100_000 {
            return Err(invalid("max_connections", "must be between 1 and 100000"));
        }
        Ok(())
    }
}

/// A port ready to serve: its settings and, for HTTPS, the loaded certificate.
#[derive(Clone)]
pub struct Server {
    config: ServerConfig,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Server {
    /// Validates `config` and loads its certificate and key, so a bad file fails start-up.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming `<section>.<key>`.
    pub fn new(config: &ServerConfig, section: &str) -> Result<Self> {
        config.validate(section)?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key, section)?),
            _ => None,
        };
        Ok(Self {
            config: config.clone(),
            tls,
        })
    }

    /// Whether the port speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves `app` on `listener` with the limits until `shutdown` completes, then waits up to
    /// `shutdown_grace` for requests in progress.
    ///
    /// # Errors
    ///
    /// When accepting connections fails for good.
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        self.serve_shaped(listener, app, |app| app, shutdown).await
    }

    /// [`serve`](Self::serve), with `shape` wrapped around everything, the limits' own
    /// answers (408, 413) included: how the registry gives them Confluent's JSON shape.
    ///
    /// # Errors
    ///
    /// When accepting connections fails for good.
    pub async fn serve_shaped(
        &self,
        listener: TcpListener,
        app: Router,
        shape: impl FnOnce(Router) -> Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let c = &self.config;
        let app = app
            .layer(tower::limit::ConcurrencyLimitLayer::new(
                c.max_concurrent_requests,
            ))
            .layer(RequestBodyTimeoutLayer::new(c.body_timeout))
            .layer(RequestBodyLimitLayer::new(c.body_limit))
            // axum's own 2 MB default would answer before the configured limit.
            .layer(DefaultBodyLimit::disable())
            .layer(TimeoutLayer::with_status_code(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                c.request_timeout,
            ));
        let app = shape(app);
        let connections = Arc::new(Semaphore::new(c.max_connections));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    // Out of file descriptors and the like: pause rather than spin.
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                tracing::warn!(%peer, "too many connections; closing a new one");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone());
            let mut http = hyper::server::conn::http1::Builder::new();
            // A client that shuts its side after the request (`nc -N`, HTTP/1.0 tools) still
            // gets its answer: without half-close support hyper drops the connection when it
            // reads the end of the stream while the answer is being prepared.
            http.timer(TokioTimer::new())
                .half_close(true)
                .header_read_timeout(c.header_timeout)
                .max_headers(100);
            let tls = self.tls.clone();
            let handshake_timeout = c.header_timeout;
            let max_age = c.max_connection_age;
            let watcher = graceful.watcher();
            let connection = async move {
                match tls {
                    Some(acceptor) => {
                        let tls = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                        match tls.await {
                            Ok(Ok(tls)) => {
                                let conn = http.serve_connection(TokioIo::new(tls), service);
                                if let Err(e) = watcher.watch(conn).await {
                                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                                }
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                            }
                        }
                    }
                    None => {
                        let conn = http.serve_connection(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                    }
                }
            };
            tokio::spawn(async move {
                let _permit = permit;
                if tokio::time::timeout(max_age, connection).await.is_err() {
                    tracing::debug!(%peer, "connection closed at its maximum age");
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(c.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still in progress after the shutdown grace period");
        }
        Ok(())
    }
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf, section: &str) -> Result<TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |key: &str, reason: String| Error::InvalidConfig {
        key: format!("{section}.{key}"),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<std::result::Result<Vec<_>, _>>)
        .map_err(|e| invalid("tls_cert", format!("cannot read {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(invalid(
            "tls_cert",
            format!("no certificate in {}", cert.display()),
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid("tls_key", format!("cannot read {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|e| {
            invalid(
                "tls_key",
                format!("the certificate and key do not fit: {e}"),
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

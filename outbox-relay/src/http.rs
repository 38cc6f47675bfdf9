//! `/metrics`, `/healthz`, `/readyz`, behind the limits of [`Server`] (and, optionally, a
//! credential for `/metrics`; health stays open for probes).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::auth::AuthConfig;
use crate::metrics::Metrics;
use crate::server::Server;

/// Serves the endpoints on `listener` (bound beforehand, so a bad address fails start-up)
/// until `shutdown` completes.
///
/// `/healthz` is 200 unless the relay needs a restart (503 when the drain loop has been stuck,
/// or has made no progress while rows wait and the database and broker answer, for longer
/// than `stuck_after`); `/readyz` is 200 while the database and Kafka answer (503 during an
/// outage, which a restart cannot fix).
/// With `metrics_auth`, `/metrics` answers 401 to a request without one of its credentials.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stuck_after: Duration,
    server: &Server,
    metrics_auth: Option<AuthConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(
                move |State(m): State<Arc<Metrics>>, headers: HeaderMap| async move {
                    match &metrics_auth {
                        Some(auth) if !auth.allows(&headers) => unauthorized(),
                        _ => m.render().into_response(),
                    }
                },
            ),
        )
        .route(
            "/healthz",
            get(move |State(m): State<Arc<Metrics>>| async move {
                match m.unhealthy(stuck_after) {
                    Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    None => (StatusCode::OK, "ok\n".to_owned()),
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                match m.unready() {
                    Some(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    ),
                    None => (StatusCode::OK, "ready\n".to_owned()),
                }
            }),
        )
        .with_state(metrics);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    server.serve(listener, app, shutdown).await
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"outbox-metrics\""),
        )],
        "unauthorized\n",
    )
        .into_response()
}

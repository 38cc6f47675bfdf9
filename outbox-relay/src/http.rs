//! `/metrics`, `/healthz`, `/readyz`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use crate::metrics::Metrics;

/// Serves the endpoints on `listener` (bound beforehand, so a bad address fails start-up)
/// until `shutdown` completes.
///
/// `/healthz` is 200 while the drain loop goes round (503 when it has been stuck longer than
/// `stuck_after`); `/readyz` is 200 once the database and Kafka answer.
///
/// # Errors
///
/// When accepting connections fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stuck_after: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.render() }),
        )
        .route(
            "/healthz",
            get(move |State(m): State<Arc<Metrics>>| async move {
                let stuck = Duration::from_millis(m.since_heartbeat_ms()) > stuck_after;
                if stuck {
                    (StatusCode::SERVICE_UNAVAILABLE, "drain loop stuck\n")
                } else {
                    (StatusCode::OK, "ok\n")
                }
            }),
        )
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_ready() {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }),
        )
        .with_state(metrics);
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics, /healthz, /readyz");
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

//! The smallest useful tracelight service.
//!
//! Run with: `cargo run -p quickstart`, then `curl -i 127.0.0.1:3000/orders/42` and
//! `curl 127.0.0.1:3000/metrics`. Spans go to `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4318`, where `cargo run --release -p tracelight-collector` listens).
//! `QUICKSTART_ADDR` changes the listen address.

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use tracelight::Telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = tracelight::builder("quickstart")
        .service_version(env!("CARGO_PKG_VERSION"))
        .init()?;

    let addr = std::env::var("QUICKSTART_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app(&telemetry))
        .with_graceful_shutdown(tracelight::shutdown_signal())
        .await?;
    telemetry.shutdown().await;
    Ok(())
}

/// The service's routes, with tracelight's `/metrics` and `/health` and its layer.
fn app(telemetry: &Telemetry) -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .merge(telemetry.routes())
        .layer(telemetry.layer())
}

async fn get_order(Path(id): Path<u64>) -> Result<String, StatusCode> {
    let order = load_order(id).await.ok_or(StatusCode::NOT_FOUND)?;
    Ok(order)
}

/// A child span of the request span; its log line carries both ids.
#[tracing::instrument]
async fn load_order(id: u64) -> Option<String> {
    tracing::info!("loading order");
    (id != 0).then(|| format!("order {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn telemetry() -> Telemetry {
        tracelight::builder("quickstart")
            .traces_exporter(tracelight::TracesExporter::None)
            .log_writer(std::io::sink)
            .env(std::collections::HashMap::<String, String>::new())
            .build()
            .unwrap()
    }

    async fn get(app: &Router, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn serves_orders_metrics_and_health() {
        let telemetry = telemetry();
        let _default = tracing::dispatcher::set_default(telemetry.dispatch());
        let app = app(&telemetry);

        let (status, headers, body) = get(&app, "/orders/42").await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "order 42"));
        assert!(headers.contains_key("traceparent"));
        assert_eq!(get(&app, "/orders/0").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&app, "/health").await.0, StatusCode::OK);

        let (_, _, metrics) = get(&app, "/metrics").await;
        assert!(
            metrics.contains(r#"http_route="/orders/{id}",http_response_status_code="404""#),
            "{metrics}"
        );
    }
}

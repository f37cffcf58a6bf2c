//! Calls from one service to another: JSON over HTTP through tracelight's client middleware
//! (a client span per call, `traceparent` injected, `http_client_request_duration_seconds`),
//! each with a timeout, failures sorted into a few kinds.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::Method;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer within the timeout.
    #[error("{service}: timed out")]
    Timeout {
        /// The service called.
        service: &'static str,
    },
    /// Connection refused or broken.
    #[error("{service}: unavailable: {message}")]
    Unavailable {
        /// The service called.
        service: &'static str,
        /// The transport error.
        message: String,
    },
    /// An answer with an error status.
    #[error("{service}: answered {status}")]
    Status {
        /// The service called.
        service: &'static str,
        /// The status code.
        status: u16,
    },
    /// An answer whose body is not the expected JSON.
    #[error("{service}: invalid answer: {message}")]
    Invalid {
        /// The service called.
        service: &'static str,
        /// The decoding error.
        message: String,
    },
}

impl UpstreamError {
    /// A short reason, usable as a label value: `timeout`, `unavailable`, `status`, `invalid`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout { .. } => "timeout",
            Self::Unavailable { .. } => "unavailable",
            Self::Status { .. } => "status",
            Self::Invalid { .. } => "invalid",
        }
    }

    /// Whether the same call may succeed later: timeouts, connection errors, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Unavailable { .. } => true,
            Self::Status { status, .. } => *status == 429 || (*status >= 500 && *status != 501),
            Self::Invalid { .. } => false,
        }
    }

    /// The status code, for an answer with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Another service, as seen by its callers.
#[derive(Debug, Clone)]
pub struct Upstream {
    service: &'static str,
    base_url: String,
    client: ClientWithMiddleware,
    timeout: Duration,
}

/// A raw answer: status, content type and body.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Upstream {
    /// `service` at `base_url`, called through `client` with `timeout` per call.
    pub fn new(
        service: &'static str,
        base_url: impl Into<String>,
        client: ClientWithMiddleware,
        timeout: Duration,
    ) -> Self {
        Self {
            service,
            base_url: base_url.into(),
            client,
            timeout,
        }
    }

    /// The service's name.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The same service with another timeout.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// `GET path`, expecting 2xx and JSON.
    pub async fn get(&self, path: &str) -> Result<Value, UpstreamError> {
        self.call(Method::GET, path, None, &[]).await
    }

    /// A JSON call, expecting 2xx and (unless 204) JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Value, UpstreamError> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let raw = self.send(method, path, body, headers).await?;
        if !(200..300).contains(&raw.status) {
            return Err(UpstreamError::Status {
                service: self.service,
                status: raw.status,
            });
        }
        if raw.status == 204 || raw.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&raw.body).map_err(|e| UpstreamError::Invalid {
            service: self.service,
            message: e.to_string(),
        })
    }

    /// Any call; a non-2xx status is not an error here.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, UpstreamError> {
        let url = format!("{}{path_and_query}", self.base_url);
        let mut request = self.client.request(method, url).timeout(self.timeout);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| {
            if e.is_timeout() {
                UpstreamError::Timeout {
                    service: self.service,
                }
            } else {
                UpstreamError::Unavailable {
                    service: self.service,
                    message: e.to_string(),
                }
            }
        })?;
        Ok(RawResponse {
            status,
            content_type,
            body,
        })
    }

    fn transport(&self, error: &reqwest_middleware::Error) -> UpstreamError {
        let timed_out = matches!(error, reqwest_middleware::Error::Reqwest(e) if e.is_timeout());
        if timed_out {
            UpstreamError::Timeout {
                service: self.service,
            }
        } else {
            UpstreamError::Unavailable {
                service: self.service,
                message: error_chain(error),
            }
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_retryable_ones() {
        let s = "x";
        assert!(UpstreamError::Timeout { service: s }.is_transient());
        assert!(
            UpstreamError::Status {
                service: s,
                status: 503
            }
            .is_transient()
        );
        assert!(
            UpstreamError::Status {
                service: s,
                status: 429
            }
            .is_transient()
        );
        assert!(
            !UpstreamError::Status {
                service: s,
                status: 501
            }
            .is_transient()
        );
        assert!(
            !UpstreamError::Status {
                service: s,
                status: 404
            }
            .is_transient()
        );
    }
}

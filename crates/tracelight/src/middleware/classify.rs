//! Which responses count as errors: the "E" in RED, decided in one place.
//!
//! A server counts only **5xx** as errors (4xx are the client's fault); a client counts **4xx and
//! 5xx**, following the OpenTelemetry HTTP semantic conventions. A request that produced no
//! response at all is always an error.

use http::StatusCode;

/// Whether a server response with `status` is a failure.
pub fn server_error(status: StatusCode) -> bool {
    status.is_server_error()
}

/// Whether a response received by a client with `status` is a failure.
pub fn client_error(status: StatusCode) -> bool {
    status.is_client_error() || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_client_disagree_on_4xx() {
        for (code, server, client) in [
            (200, false, false),
            (302, false, false),
            (404, false, true),
            (429, false, true),
            (500, true, true),
            (503, true, true),
        ] {
            let s = StatusCode::from_u16(code).unwrap();
            assert_eq!(server_error(s), server, "{code}");
            assert_eq!(client_error(s), client, "{code}");
        }
    }
}

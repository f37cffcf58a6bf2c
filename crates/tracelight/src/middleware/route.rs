//! The route template of a request: axum's `MatchedPath`, never the raw path.

use http::Request;

/// The matched route template of a request, cheap to clone.
#[cfg(feature = "axum")]
pub(crate) type Route = axum::extract::MatchedPath;

/// Without axum there is no route template; every request is [`UNMATCHED_ROUTE`](crate::metrics::names::UNMATCHED_ROUTE).
#[cfg(not(feature = "axum"))]
#[derive(Debug, Clone)]
pub(crate) enum Route {}

/// The route the router matched, if any. Requests that reach a fallback have none.
pub(crate) fn route_of<B>(req: &Request<B>) -> Option<Route> {
    #[cfg(feature = "axum")]
    {
        req.extensions().get::<Route>().cloned()
    }
    #[cfg(not(feature = "axum"))]
    {
        let _ = req;
        None
    }
}

/// The template text of a route.
pub(crate) fn route_str(route: &Route) -> &str {
    #[cfg(feature = "axum")]
    {
        route.as_str()
    }
    #[cfg(not(feature = "axum"))]
    {
        match *route {}
    }
}

//! The route template of a request: axum's `MatchedPath`, never the raw path; and the span names
//! built from it, interned so that a request allocates no name.

use std::cell::Cell;
use std::sync::{LazyLock, OnceLock};

use hashbrown::HashMap;
use http::Request;
use parking_lot::RwLock;

use crate::metrics::http::METHODS;
use crate::metrics::names::OTHER_METHOD;

/// The matched route template of a request, cheap to clone.
#[cfg(feature = "axum")]
pub(crate) type Route = axum::extract::MatchedPath;

/// Without axum there is no route template; every request is [`UNMATCHED_ROUTE`](crate::metrics::names::UNMATCHED_ROUTE).
#[cfg(not(feature = "axum"))]
#[derive(Debug, Clone)]
pub(crate) enum Route {}

/// The route the router matched, if any. Requests that reach a fallback have none.
pub(crate) fn route_of_ref<B>(req: &Request<B>) -> Option<&Route> {
    #[cfg(feature = "axum")]
    {
        req.extensions().get::<Route>()
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

/// The method word of a span name: the method, or `HTTP` for a non-standard one (semconv).
pub(crate) fn name_method(method: u8) -> &'static str {
    match METHODS.get(usize::from(method)) {
        Some(&m) if m != OTHER_METHOD => m,
        _ => "HTTP",
    }
}

/// Most distinct route templates interned. Route templates come from the router's own table, so
/// a real service has tens; the cap only guards against a router built from unbounded input.
/// Past it, names are allocated per request instead.
pub(crate) const MAX_INTERNED_ROUTES: usize = 1024;

/// A route template and the span names `{method} {route}` for it, leaked once per template.
#[derive(Debug)]
pub(crate) struct InternedRoute {
    /// The template, for `http.route`.
    pub(crate) route: &'static str,
    /// Dense index of this template, below [`MAX_INTERNED_ROUTES`]: per-layer tables (metric
    /// series) are indexed by it instead of hashing the template.
    pub(crate) id: usize,
    names: [OnceLock<&'static str>; METHODS.len()],
}

impl InternedRoute {
    /// `{method} {route}` for a method index.
    pub(crate) fn name(&self, method: u8) -> &'static str {
        let i = usize::from(method).min(METHODS.len() - 1);
        self.names[i].get_or_init(|| {
            let name = format!("{} {}", name_method(method), self.route);
            Box::leak(name.into_boxed_str())
        })
    }
}

/// Process-wide, so that every layer (and every test building one) shares one copy per template.
static INTERNED: LazyLock<RwLock<HashMap<Box<str>, &'static InternedRoute>>> =
    LazyLock::new(Default::default);

/// Slots of the per-thread cache in front of [`INTERNED`].
const RECENT_SLOTS: usize = 32;

thread_local! {
    /// Direct-mapped per-thread cache of recently seen templates, indexed by the address of the
    /// template text (axum's `MatchedPath` shares one `Arc<str>` per route, so the address is
    /// stable) and checked by comparing the text, so a stale or colliding slot is only a miss.
    /// Saves the shared lock and the hash of the template on every request.
    static RECENT: [Cell<Option<&'static InternedRoute>>; RECENT_SLOTS] =
        const { [const { Cell::new(None) }; RECENT_SLOTS] };
}

/// The interned form of `route`, or `None` once [`MAX_INTERNED_ROUTES`] templates are interned.
pub(crate) fn interned(route: &str) -> Option<&'static InternedRoute> {
    let slot = (route.as_ptr() as usize >> 3) % RECENT_SLOTS;
    let cached = RECENT.with(|r| r[slot].get());
    if let Some(r) = cached
        && r.route == route
    {
        return Some(r);
    }
    let found = interned_shared(route);
    if found.is_some() {
        RECENT.with(|r| r[slot].set(found));
    }
    found
}

fn interned_shared(route: &str) -> Option<&'static InternedRoute> {
    if let Some(&r) = INTERNED.read().get(route) {
        return Some(r);
    }
    let mut map = INTERNED.write();
    if let Some(&r) = map.get(route) {
        return Some(r);
    }
    if map.len() >= MAX_INTERNED_ROUTES {
        return None;
    }
    let leaked: &'static str = Box::leak(route.into());
    let entry: &'static InternedRoute = Box::leak(Box::new(InternedRoute {
        route: leaked,
        id: map.len(),
        names: std::array::from_fn(|_| OnceLock::new()),
    }));
    map.insert(route.into(), entry);
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_interned_once() {
        let a = interned("/route-test/{id}").unwrap();
        let b = interned("/route-test/{id}").unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(a.route, "/route-test/{id}");
        assert_eq!(a.name(2), "GET /route-test/{id}");
        assert!(std::ptr::eq(a.name(2), b.name(2)));
        assert_eq!(a.name(9), "HTTP /route-test/{id}");
    }
}

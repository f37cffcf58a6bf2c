//! Jaeger v1 handlers: every body is the `{data, total, limit, offset, errors}` envelope.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use super::jaeger::{self, Envelope, StructuredError};
use super::params::{self, ParamError, Params};
use super::{OperationJson, QueryError, QueryState, json_response, now_ns};
use crate::model::TraceId;

/// Renders an error in the v1 envelope.
pub(super) fn error(e: &QueryError, pretty: bool) -> Response {
    let status = e.status();
    let body: Envelope<()> = Envelope {
        data: None,
        total: 0,
        limit: 0,
        offset: 0,
        errors: Some(vec![StructuredError {
            code: status.as_u16(),
            msg: e.to_string(),
            trace_id: None,
        }]),
    };
    json_response(status, &body, pretty)
}

fn respond<T: Serialize>(result: Result<Envelope<T>, QueryError>, pretty: bool) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body, pretty),
        Err(e) => error(&e, pretty),
    }
}

/// `GET /api/services`.
pub(super) async fn services(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let pretty = Params::parse(q.as_deref()).flag("prettyPrint");
    let result = state.with_store(|s| s.services()).await;
    respond(
        result.map(|list| {
            let total = list.len();
            Envelope::ok(list, total)
        }),
        pretty,
    )
}

/// `GET /api/services/{service}/operations`: unique names across span kinds.
pub(super) async fn service_operations(
    State(state): State<QueryState>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let pretty = Params::parse(q.as_deref()).flag("prettyPrint");
    let result = state
        .with_store(move |s| s.operations(&service, None))
        .await;
    respond(
        result.map(|ops| {
            let mut names: Vec<String> = ops.into_iter().map(|o| o.name).collect();
            names.dedup();
            let total = names.len();
            Envelope::ok(names, total)
        }),
        pretty,
    )
}

/// `GET /api/operations?service=&spanKind=`.
pub(super) async fn operations(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        let service = params
            .get(&["service"])
            .ok_or(ParamError::Required("service"))?
            .to_owned();
        let kind = params::parse_span_kind("spanKind", params.get(&["spanKind"]))?;
        let ops = state
            .with_store(move |s| s.operations(&service, kind))
            .await?;
        let list: Vec<OperationJson> = ops.into_iter().map(|o| OperationJson::new(o, "")).collect();
        let total = list.len();
        Ok(Envelope::ok(list, total))
    }
    .await;
    respond(result, pretty)
}

/// `GET /api/traces`: search, or fetch by repeated `traceID`.
pub(super) async fn search(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    if params.all("traceID").next().is_some() {
        let result = match params::v1_trace_ids(&params) {
            Ok(ids) => by_ids(&state, ids).await,
            Err(e) => Err(e.into()),
        };
        return respond(result, pretty);
    }
    let result = async {
        let query = params::v1_search(&params, now_ns())?;
        let traces = state.with_store(move |s| s.find_traces(&query)).await?;
        Ok(Envelope::ok(
            traces.iter().map(jaeger::trace).collect::<Vec<_>>(),
            0,
        ))
    }
    .await;
    respond(result, pretty)
}

async fn by_ids(
    state: &QueryState,
    ids: Vec<TraceId>,
) -> Result<Envelope<Vec<jaeger::JaegerTrace>>, QueryError> {
    let found = state
        .with_store(move |s| {
            ids.into_iter()
                .map(|id| s.get_trace(id).map(|t| (id, t)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut data = Vec::new();
    let mut errors = Vec::new();
    for (id, trace) in found {
        match trace {
            Some(t) => data.push(jaeger::trace(&t)),
            None => errors.push(StructuredError {
                code: 0,
                msg: QueryError::TraceNotFound.to_string(),
                trace_id: Some(id.to_jaeger_hex()),
            }),
        }
    }
    let mut envelope = Envelope::ok(data, 0);
    if !errors.is_empty() {
        envelope.errors = Some(errors);
    }
    Ok(envelope)
}

/// `GET /api/traces/{trace_id}`: a one-element array, or 404.
pub(super) async fn trace(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        // `start`/`end` narrow the lookup upstream; validate them, the store needs no hint.
        for name in ["start", "end"] {
            if let Some(t) = params.get(&[name]) {
                t.parse::<u64>().map_err(|e| ParamError::Invalid {
                    name: if name == "start" { "start" } else { "end" },
                    reason: format!("{t:?}: {e}"),
                })?;
            }
        }
        let id = params::parse_v1_trace_id(&id)?;
        let trace = state
            .with_store(move |s| s.get_trace(id))
            .await?
            .ok_or(QueryError::TraceNotFound)?;
        Ok(Envelope::ok(vec![jaeger::trace(&trace)], 0))
    }
    .await;
    respond(result, pretty)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct DependencyJson {
    parent: String,
    child: String,
    call_count: u64,
}

/// `GET /api/dependencies?endTs=&lookback=&service=` (milliseconds).
pub(super) async fn dependencies(
    State(state): State<QueryState>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        let (start, end, service) = params::dependencies(&params, now_ns())?;
        let links = state
            .with_store(move |s| s.dependencies(start, end))
            .await?;
        let data: Vec<DependencyJson> = links
            .into_iter()
            .filter(|l| {
                service
                    .as_deref()
                    .is_none_or(|s| l.parent == s || l.child == s)
            })
            .map(|l| DependencyJson {
                parent: l.parent,
                child: l.child,
                call_count: l.call_count,
            })
            .collect();
        Ok(Envelope::ok(data, 0))
    }
    .await;
    respond(result, pretty)
}

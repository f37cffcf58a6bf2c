//! api_v3 HTTP gateway handlers; errors are `{"error":{"httpCode":…,"message":…}}`.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;
use serde_json::json;

use super::otlp_json::{self, TraceSummary};
use super::params::{self, ParamError, Params};
use super::{OperationJson, QueryError, QueryState, json_response};

fn respond<T: Serialize>(result: Result<T, QueryError>, pretty: bool) -> Response {
    match result {
        Ok(body) => json_response(StatusCode::OK, &body, pretty),
        Err(e) => {
            let status = e.status();
            let body =
                json!({ "error": { "httpCode": status.as_u16(), "message": e.to_string() } });
            json_response(status, &body, pretty)
        }
    }
}

/// `GET /api/v3/services`.
pub(super) async fn services(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let pretty = Params::parse(q.as_deref()).flag("prettyPrint");
    let result = state.with_store(|s| s.services()).await;
    respond(
        result.map(|services| json!({ "services": services })),
        pretty,
    )
}

/// `GET /api/v3/operations?service=&spanKind=`; a missing service lists nothing.
pub(super) async fn operations(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        let kind_text = params.get(&["spanKind", "span_kind"]);
        let kind = params::parse_span_kind("spanKind", kind_text).map_err(|e| match e {
            ParamError::Invalid { reason, .. } => ParamError::Malformed {
                name: "span_kind",
                reason,
            },
            other => other,
        })?;
        let Some(service) = params.get(&["service"]).map(str::to_owned) else {
            return Ok(json!({ "operations": [] }));
        };
        let ops = state
            .with_store(move |s| s.operations(&service, kind))
            .await?;
        let list: Vec<OperationJson> = ops
            .into_iter()
            .map(|o| OperationJson::new(o, "internal"))
            .collect();
        Ok(json!({ "operations": list }))
    }
    .await;
    respond(result, pretty)
}

/// `GET /api/v3/traces/{trace_id}` (hex or base64 id).
pub(super) async fn trace(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        for (camel, name) in [("startTime", "start_time"), ("endTime", "end_time")] {
            if let Some(t) = params.get(&[camel, name]) {
                params::parse_rfc3339(t)
                    .map_err(|reason| ParamError::Malformed { name, reason })?;
            }
        }
        let id = params::parse_v3_trace_id(&id).map_err(|reason| ParamError::Malformed {
            name: "trace_id",
            reason,
        })?;
        let trace = state
            .with_store(move |s| s.get_trace(id))
            .await?
            .ok_or(QueryError::TraceNotFound)?;
        Ok(json!({ "result": otlp_json::traces_data([&trace]) }))
    }
    .await;
    respond(result, pretty)
}

/// `GET /api/v3/traces?query.*`: 404 when nothing matches.
pub(super) async fn search(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        let query = params::v3_search(&params)?;
        let traces = state.with_store(move |s| s.find_traces(&query)).await?;
        if traces.is_empty() {
            return Err(QueryError::NoTracesFound);
        }
        Ok(json!({ "result": otlp_json::traces_data(&traces) }))
    }
    .await;
    respond(result, pretty)
}

/// `GET /api/v3/trace-summaries?query.*`: `{"summaries": []}` when nothing matches.
pub(super) async fn summaries(State(state): State<QueryState>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    let pretty = params.flag("prettyPrint");
    let result = async {
        let query = params::v3_search(&params)?;
        let traces = state.with_store(move |s| s.find_traces(&query)).await?;
        let summaries: Vec<TraceSummary> = traces.iter().map(otlp_json::summary).collect();
        Ok(json!({ "summaries": summaries }))
    }
    .await;
    respond(result, pretty)
}

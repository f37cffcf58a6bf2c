#!/usr/bin/env python3
"""Send a known set of spans to a Tracelight collector with the OpenTelemetry Python SDK.

An outside client for the collector's OTLP receivers: for each endpoint given, it sends the
same two traces, one service per protocol:

    checkout (server)              attributes of every type
    ├── load-cart (internal)       event "cache miss" with attributes
    │   └── query-db (client)      status ERROR "db unavailable"
    └── render (internal)
    nightly-report (internal)      a second trace, linked to the checkout span

and prints, one JSON line per trace, what the collector must return: trace id, service, spans
with their ids, parents, events, links and status. `check_traces.py` reads these lines.

Usage:
    send_spans.py [--grpc-endpoint http://127.0.0.1:4317] [--http-endpoint http://127.0.0.1:4318/v1/traces]

The endpoints default to $TRACELIGHT_E2E_GRPC_ENDPOINT / $TRACELIGHT_E2E_HTTP_ENDPOINT. Exits
non-zero when an export fails or does not finish.
"""

import argparse
import json
import os
import sys
import threading

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

FLUSH_TIMEOUT_MILLIS = 15_000


class CheckingExporter(SpanExporter):
    """Delegates to the OTLP exporter and remembers failed exports (the SDK only logs them)."""

    def __init__(self, inner):
        self.inner = inner
        self.exported = 0
        self.failures = 0
        self.lock = threading.Lock()

    def export(self, spans):
        result = self.inner.export(spans)
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failures += 1
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=FLUSH_TIMEOUT_MILLIS):
        return self.inner.force_flush(timeout_millis)


def hex_trace(span):
    return format(span.get_span_context().trace_id, "032x")


def hex_span(span):
    return format(span.get_span_context().span_id, "016x")


def expected(span, parent, events=(), links=(), error=None, tags=()):
    """What the collector must return for `span` (see check_traces.py)."""
    return {
        "name": span.name,
        "tags": list(tags),
        "span_id": hex_span(span),
        "parent_span_id": hex_span(parent) if parent is not None else None,
        "kind": span.kind.name.lower(),
        "events": list(events),
        "links": list(links),
        "error": error,
    }


def send(protocol, exporter):
    service = f"python-e2e-{protocol}"
    checking = CheckingExporter(exporter)
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service, "deployment.environment": "e2e"}
        )
    )
    provider.add_span_processor(BatchSpanProcessor(checking))
    tracer = provider.get_tracer("tracelight-e2e", "1.0.0")

    cart_event = {"cache.key": "cart:42", "cache.hit": False}
    with tracer.start_as_current_span(
        "checkout",
        kind=SpanKind.SERVER,
        attributes={
            "http.request.method": "GET",
            "http.route": "/checkout/{id}",
            "app.items": 3,
            "app.ratio": 0.5,
            "app.express": True,
            "app.tags": ["a", "b"],
        },
    ) as checkout:
        with tracer.start_as_current_span("load-cart") as load_cart:
            load_cart.add_event("cache miss", attributes=cart_event)
            with tracer.start_as_current_span(
                "query-db", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql"}
            ) as query_db:
                query_db.set_status(Status(StatusCode.ERROR, "db unavailable"))
        with tracer.start_as_current_span("render") as render:
            pass
    # A second trace (new root) linked to the checkout span.
    with tracer.start_as_current_span(
        "nightly-report",
        links=[Link(checkout.get_span_context(), {"link.reason": "follow-up"})],
    ) as report:
        pass
    if report.get_span_context().trace_id == checkout.get_span_context().trace_id:
        sys.exit("nightly-report should start a new trace")

    flushed = provider.force_flush(FLUSH_TIMEOUT_MILLIS)
    provider.shutdown()
    if not flushed:
        sys.exit(f"{protocol}: spans were not flushed within {FLUSH_TIMEOUT_MILLIS} ms")
    if checking.failures or checking.exported != 5:
        sys.exit(
            f"{protocol}: {checking.failures} failed exports, {checking.exported}/5 spans exported"
        )

    traces = [
        {
            "protocol": protocol,
            "service": service,
            "trace_id": hex_trace(checkout),
            "spans": [
                expected(
                    checkout,
                    None,
                    tags=[
                        {"key": "http.request.method", "type": "string", "value": "GET"},
                        {"key": "app.items", "type": "int64", "value": 3},
                        {"key": "app.ratio", "type": "float64", "value": 0.5},
                        {"key": "app.express", "type": "bool", "value": True},
                        {"key": "app.tags", "type": "string", "value": '["a","b"]'},
                    ],
                ),
                expected(
                    load_cart,
                    checkout,
                    events=[{"name": "cache miss", "attributes": cart_event}],
                ),
                expected(query_db, load_cart, error="db unavailable"),
                expected(render, checkout),
            ],
        },
        {
            "protocol": protocol,
            "service": service,
            "trace_id": hex_trace(report),
            "spans": [
                expected(
                    report,
                    None,
                    links=[{"trace_id": hex_trace(checkout), "span_id": hex_span(checkout)}],
                )
            ],
        },
    ]
    for trace in traces:
        print(json.dumps(trace), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--grpc-endpoint",
        default=os.environ.get("TRACELIGHT_E2E_GRPC_ENDPOINT"),
        help="OTLP/gRPC endpoint, e.g. http://127.0.0.1:4317",
    )
    parser.add_argument(
        "--http-endpoint",
        default=os.environ.get("TRACELIGHT_E2E_HTTP_ENDPOINT"),
        help="OTLP/HTTP traces URL, e.g. http://127.0.0.1:4318/v1/traces",
    )
    args = parser.parse_args()
    if not args.grpc_endpoint and not args.http_endpoint:
        parser.error("give --grpc-endpoint and/or --http-endpoint")
    if args.grpc_endpoint:
        send("grpc", GrpcSpanExporter(endpoint=args.grpc_endpoint, insecure=True, timeout=10))
    if args.http_endpoint:
        send("http-protobuf", HttpSpanExporter(endpoint=args.http_endpoint, timeout=10))


if __name__ == "__main__":
    main()

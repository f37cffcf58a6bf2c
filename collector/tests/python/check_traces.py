#!/usr/bin/env python3
"""Check that the traces sent by send_spans.py read back from the collector's query API.

Reads the JSON lines printed by send_spans.py (a file argument, or stdin) and, for each trace,
polls `GET /api/traces/{id}` (Jaeger v1) until all its spans are there (bounded wait), then
checks every span: service (process), name, span.kind, CHILD_OF parent reference (first),
FOLLOWS_FROM links, attribute tags with their Jaeger types, events as logs, ERROR status as
`error=true` with `otel.status_code` / `otel.status_description`. Also checks the api_v3 form
(`/api/v3/traces/{id}`: same span ids and parentSpanId links) and that `/api/services` lists
every service. Standard library only. Exits non-zero with a description of the first mismatch.

Usage: check_traces.py --query-url http://127.0.0.1:16686 [traces.jsonl]
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

DEADLINE_SECONDS = 10.0


class Mismatch(Exception):
    pass


def get(url):
    """(status, parsed JSON body)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body.decode("utf-8", "replace")


def expect(condition, message, context):
    if not condition:
        raise Mismatch(f"{message}\n  in: {json.dumps(context)[:2000]}")


def wait_for_trace(query_url, trace_id, span_count):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        status, body = get(f"{query_url}/api/traces/{trace_id}")
        if status == 200 and len(body["data"][0]["spans"]) >= span_count:
            return body
        if time.monotonic() > deadline:
            raise Mismatch(
                f"trace {trace_id}: {span_count} spans not queryable within "
                f"{DEADLINE_SECONDS} s; last answer {status}: {json.dumps(body)[:2000]}"
            )
        time.sleep(0.05)


def tags_of(obj):
    return {t["key"]: t for t in obj["tags"]}


def check_v1_span(span, want, trace_id, service, processes):
    where = f"span {want['name']} ({want['span_id']})"
    expect(span["traceID"] == trace_id, f"{where}: traceID", span)
    expect(span["operationName"] == want["name"], f"{where}: operationName", span)
    process = processes.get(span["processID"])
    expect(
        process is not None and process["serviceName"] == service,
        f"{where}: process serviceName != {service}",
        {"span": span, "processes": processes},
    )
    tags = tags_of(span)
    kind = tags.get("span.kind", {}).get("value")
    expect(kind == want["kind"], f"{where}: span.kind {kind!r} != {want['kind']!r}", span)

    refs = span["references"]
    child_of = [r for r in refs if r["refType"] == "CHILD_OF"]
    if want["parent_span_id"] is None:
        expect(not child_of, f"{where}: a root has no CHILD_OF reference", span)
    else:
        expect(
            refs and refs[0] == {
                "refType": "CHILD_OF",
                "traceID": trace_id,
                "spanID": want["parent_span_id"],
            },
            f"{where}: first reference must be CHILD_OF {want['parent_span_id']}",
            span,
        )
    follows = [
        {"trace_id": r["traceID"], "span_id": r["spanID"]}
        for r in refs
        if r["refType"] == "FOLLOWS_FROM"
    ]
    expect(follows == want["links"], f"{where}: FOLLOWS_FROM {want['links']}", span)

    for tag in want["tags"]:
        expect(tags.get(tag["key"]) == tag, f"{where}: tag {tag}", span)

    if want["error"] is None:
        expect("error" not in tags, f"{where}: unexpected error tag", span)
        expect("otel.status_code" not in tags, f"{where}: unexpected status", span)
    else:
        expect(
            tags.get("error") == {"key": "error", "type": "bool", "value": True},
            f"{where}: error=true tag",
            span,
        )
        expect(
            tags.get("otel.status_code", {}).get("value") == "ERROR",
            f"{where}: otel.status_code=ERROR",
            span,
        )
        expect(
            tags.get("otel.status_description", {}).get("value") == want["error"],
            f"{where}: otel.status_description={want['error']!r}",
            span,
        )

    expect(
        len(span["logs"]) == len(want["events"]),
        f"{where}: {len(want['events'])} logs",
        span,
    )
    for log, event in zip(span["logs"], want["events"]):
        fields = {f["key"]: f for f in log["fields"]}
        expect(
            log["fields"][0] == {"key": "event", "type": "string", "value": event["name"]},
            f"{where}: first log field is event={event['name']!r}",
            log,
        )
        expect(log["timestamp"] > 0, f"{where}: log timestamp (µs)", log)
        for key, value in event["attributes"].items():
            expect(
                key in fields and fields[key]["value"] == value,
                f"{where}: log field {key}={value!r}",
                log,
            )


def check_v1(query_url, trace):
    trace_id = trace["trace_id"]
    body = wait_for_trace(query_url, trace_id, len(trace["spans"]))
    expect(body["errors"] is None and len(body["data"]) == 1, "one trace, no errors", body)
    jtrace = body["data"][0]
    expect(jtrace["traceID"] == trace_id, "traceID", jtrace)
    by_id = {s["spanID"]: s for s in jtrace["spans"]}
    expect(
        sorted(by_id) == sorted(s["span_id"] for s in trace["spans"]),
        f"trace {trace_id}: span ids",
        jtrace,
    )
    for want in trace["spans"]:
        check_v1_span(
            by_id[want["span_id"]], want, trace_id, trace["service"], jtrace["processes"]
        )


def check_v3(query_url, trace):
    trace_id = trace["trace_id"]
    status, body = get(f"{query_url}/api/v3/traces/{trace_id}")
    expect(status == 200, f"v3 trace {trace_id}: status {status}", body)
    parents = {}
    for rs in body["result"]["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                expect(span["traceId"] == trace_id, "v3 traceId", span)
                parents[span["spanId"]] = span.get("parentSpanId")
    want = {s["span_id"]: s["parent_span_id"] for s in trace["spans"]}
    expect(parents == want, f"v3 trace {trace_id}: parentSpanId links {want}", body)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--query-url", required=True, help="e.g. http://127.0.0.1:16686")
    parser.add_argument("traces", nargs="?", type=argparse.FileType("r"), default=sys.stdin)
    args = parser.parse_args()
    query_url = args.query_url.rstrip("/")
    traces = [json.loads(line) for line in args.traces if line.strip()]
    if not traces:
        sys.exit("no traces to check")
    try:
        for trace in traces:
            check_v1(query_url, trace)
            check_v3(query_url, trace)
            print(
                f"ok {trace['protocol']}: trace {trace['trace_id']} "
                f"({len(trace['spans'])} spans) reads back through /api/traces and /api/v3/traces"
            )
        status, body = get(f"{query_url}/api/services")
        services = sorted({t["service"] for t in traces})
        expect(
            status == 200 and set(services) <= set(body["data"]),
            f"/api/services lists {services}",
            body,
        )
    except Mismatch as e:
        sys.exit(f"FAIL: {e}")
    print(f"ok: {len(traces)} traces, services {', '.join(services)}")


if __name__ == "__main__":
    main()

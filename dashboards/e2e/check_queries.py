#!/usr/bin/env python3
"""Evaluates every query of every dashboard against a live Prometheus and Jaeger query API.

Used by `.ci/e2e/dashboards.sh` (dashboards.md R20.3). For each dashboard:

1. resolves the template variables in order, as Grafana does on load: `label_values(...)` via
   Prometheus's label API (a query variable that finds no value is a failure), custom variables
   from their `current` value, data source variables to the data source under test; a
   multi-value variable with "All" becomes its `allValue`;
2. substitutes `$__rate_interval`, `$__range`, `$__interval` and friends;
3. runs every Prometheus target as an instant query (`/api/v1/query`) and every Jaeger target
   against the Jaeger API (`search` → `/api/traces`, `dependencyGraph` → `/api/dependencies`),
   once per value of the panel's `repeat` variable;
4. fails, listing each query, when one errors, returns nothing, or returns only NaN.

Standard library only. Exit code 0 when every query returned data, 1 otherwise.
"""

import argparse
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

VAR_RE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")


def http_json(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


class Checker:
    def __init__(self, args):
        self.prom = args.prometheus.rstrip("/")
        self.jaeger = args.jaeger.rstrip("/")
        self.range_s = args.range_seconds
        self.builtins = {
            "__rate_interval": args.rate_interval,
            "__interval": args.interval,
            "__range": f"{self.range_s}s",
            "__range_s": str(self.range_s),
            "__range_ms": str(self.range_s * 1000),
        }
        self.ok = []
        self.failures = []

    # ---- variables -----------------------------------------------------------------------
    def substitute(self, text, values):
        def repl(m):
            name = m.group(1) or m.group(3) or m.group(4)
            fmt = m.group(2)
            if name.startswith("__") and name in self.builtins:
                return self.builtins[name]
            if name not in values:
                return m.group(0)
            value = values[name]
            if fmt == "percentencode":
                return urllib.parse.quote(value, safe="")
            return value

        return VAR_RE.sub(repl, text)

    def label_values(self, query):
        m = re.fullmatch(r"\s*label_values\(\s*(?:(.*)\s*,\s*)?(\w+)\s*\)\s*", query, re.S)
        if not m:
            raise ValueError(f"unsupported variable query {query!r}")
        selector, label = m.group(1), m.group(2)
        now = time.time()
        params = {"start": f"{now - self.range_s:.3f}", "end": f"{now:.3f}"}
        if selector:
            params["match[]"] = selector.strip()
        url = f"{self.prom}/api/v1/label/{label}/values?{urllib.parse.urlencode(params)}"
        body = http_json(url)
        return sorted(v for v in body.get("data", []) if v != "")

    def resolve_variables(self, dashboard, name):
        """Returns (values for substitution, all values per variable, problems)."""
        values, options, problems = {}, {}, []
        for var in dashboard.get("templating", {}).get("list", []):
            vname, kind = var["name"], var["type"]
            if kind == "datasource":
                values[vname] = var.get("query", "")
                continue
            if kind == "custom":
                current = var.get("current", {}).get("value")
                opts = [o["value"] for o in var.get("options", [])] or [
                    v.strip() for v in var["query"].split(",")
                ]
                chosen = current if isinstance(current, list) else [current] if current else opts[:1]
                options[vname] = chosen
                values[vname] = chosen[0] if len(chosen) == 1 else "(" + "|".join(chosen) + ")"
                continue
            if kind == "query":
                query = self.substitute(var.get("definition") or var["query"], values)
                try:
                    found = self.label_values(query)
                except (OSError, ValueError) as e:
                    problems.append(f"{name}: variable ${vname}: {query}: {e}")
                    found = []
                if not found:
                    problems.append(f"{name}: variable ${vname} has no values: {query}")
                options[vname] = found
                values[vname] = var["allValue"] if var.get("includeAll") else (found[0] if found else "")
                continue
            problems.append(f"{name}: variable ${vname} of unsupported type {kind}")
        return values, options, problems

    # ---- queries -------------------------------------------------------------------------
    def prom_query(self, expr):
        url = f"{self.prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            body = http_json(url)
        except urllib.error.HTTPError as e:
            return f"HTTP {e.code}: {e.read().decode(errors='replace')[:300]}"
        except OSError as e:
            return f"request failed: {e}"
        if body.get("status") != "success":
            return f"error: {body.get('error')}"
        result = body["data"]["result"]
        if not result:
            return "no data"
        samples = [r["value"][1] for r in result] if body["data"]["resultType"] == "vector" else []
        if samples and all(math.isnan(float(s)) for s in samples):
            return "only NaN"
        return None

    def jaeger_query(self, target, values):
        kind = target.get("queryType")
        now_us = int(time.time() * 1e6)
        if kind == "search":
            service = self.substitute(target.get("service", ""), values)
            params = {"service": service, "limit": target.get("limit", 20),
                      "start": now_us - self.range_s * 1_000_000, "end": now_us}
            if target.get("operation"):
                params["operation"] = self.substitute(target["operation"], values)
            url = f"{self.jaeger}/api/traces?{urllib.parse.urlencode(params)}"
            what = f"traces of {service}"
        elif kind == "dependencyGraph":
            params = {"endTs": now_us // 1000, "lookback": self.range_s * 1000}
            url = f"{self.jaeger}/api/dependencies?{urllib.parse.urlencode(params)}"
            what = "dependencies"
        else:
            return f"jaeger queryType {kind!r}", f"unsupported queryType {kind!r}"
        try:
            body = http_json(url)
        except OSError as e:
            return what, f"request failed: {e}"
        if not body.get("data"):
            return what, "no data"
        return what, None

    def panels(self, items):
        for panel in items:
            yield panel
            yield from self.panels(panel.get("panels", []))

    def check(self, path):
        dashboard = json.loads(path.read_text())
        name = path.name
        values, options, problems = self.resolve_variables(dashboard, name)
        self.failures.extend(problems)
        for panel in self.panels(dashboard.get("panels", [])):
            repeat = panel.get("repeat")
            runs = [{}]
            if repeat:
                runs = [{repeat: v} for v in options.get(repeat, [])] or [{}]
            for target in panel.get("targets", []):
                ds_type = (target.get("datasource") or panel.get("datasource") or {}).get("type")
                for extra in runs:
                    vals = {**values, **extra}
                    label = f"{name} / {panel.get('title')} / {target.get('refId')}"
                    if ds_type == "prometheus":
                        expr = self.substitute(target["expr"], vals)
                        if "$" in expr:
                            self.failures.append(f"{label}: unresolved variable in {expr}")
                            continue
                        problem = self.prom_query(expr)
                        shown = expr
                    elif ds_type == "jaeger":
                        shown, problem = self.jaeger_query(target, vals)
                    else:
                        self.failures.append(f"{label}: unknown data source type {ds_type!r}")
                        continue
                    if problem:
                        self.failures.append(f"{label}: {problem}: {shown}")
                    else:
                        self.ok.append(f"{label}: {shown}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--jaeger", required=True, help="Jaeger query API base URL (the collector)")
    parser.add_argument("--rate-interval", default="30s", help="value of $__rate_interval")
    parser.add_argument("--interval", default="15s", help="value of $__interval")
    parser.add_argument("--range-seconds", type=int, default=120, help="$__range, seconds")
    parser.add_argument("--verbose", action="store_true", help="also list the queries that passed")
    parser.add_argument("dashboards", nargs="+", type=Path)
    args = parser.parse_args()
    checker = Checker(args)
    for path in args.dashboards:
        checker.check(path)
    if args.verbose:
        for line in checker.ok:
            print(f"ok    {line}")
    for line in checker.failures:
        print(f"FAIL  {line}")
    print(f"dashboard queries: {len(checker.ok)} returned data, {len(checker.failures)} failed")
    return 1 if checker.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Checks that every `clusters[].name` of each Tollgate filter in an Envoy configuration is a
cluster of that configuration (`static_resources.clusters`). The filter cannot see Envoy's
clusters, and Envoy answers a request routed to a missing cluster with a bodyless 503 (which
the filter turns into a 502 it can give no message), so this is checked before Envoy starts:
by `make validate` on envoy/*.yaml and by `make run CONFIG=...`.

Usage: check_clusters.py FILE...   (exit 1 and one line per missing cluster)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def tollgate_configs(doc: dict):
    """(listener name, filter JSON) of every wasm filter whose configuration is Tollgate's."""
    for listener in (doc.get("static_resources") or {}).get("listeners") or []:
        for chain in listener.get("filter_chains") or []:
            for f in chain.get("filters") or []:
                for hf in (f.get("typed_config") or {}).get("http_filters") or []:
                    cfg = ((hf.get("typed_config") or {}).get("config") or {})
                    value = (cfg.get("configuration") or {}).get("value")
                    if hf.get("name") == "envoy.filters.http.wasm" and isinstance(value, str):
                        try:
                            yield listener.get("name", "?"), json.loads(value)
                        except ValueError:
                            continue  # the filter itself reports invalid JSON


def missing_clusters(doc: dict) -> list[str]:
    if doc.get("dynamic_resources"):
        return []  # clusters may come from CDS: nothing to check here
    have = {c.get("name") for c in (doc.get("static_resources") or {}).get("clusters") or []}
    out = []
    for listener, cfg in tollgate_configs(doc):
        for i, c in enumerate(cfg.get("clusters") or []):
            name = c.get("name") if isinstance(c, dict) else None
            if name not in have:
                out.append(f"listener {listener}: clusters[{i}].name {name!r} is not a cluster of this Envoy "
                           f"configuration (static_resources.clusters: {', '.join(sorted(map(str, have)))})")
    return out


def main(paths: list[str]) -> int:
    bad = 0
    for p in paths:
        for line in missing_clusters(yaml.safe_load(Path(p).read_text()) or {}):
            print(f"{p}: {line}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

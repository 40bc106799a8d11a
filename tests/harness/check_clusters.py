"""Checks that every `clusters[].name` (and `limits.cluster`) of each Tollgate filter in an Envoy configuration is a
cluster of that configuration (`static_resources.clusters`), also when the filter's configuration
comes through ECDS from a file (`config_discovery` with a `path_config_source`). The filter cannot
see Envoy's clusters, and Envoy answers a request routed to a missing cluster with a bodyless 503 (which
the filter turns into a 502 it can give no message), so this is checked before Envoy starts:
by `make validate` on envoy/*.yaml and by `make run CONFIG=...`.

Usage: check_clusters.py FILE...   (exit 1 and one line per missing cluster)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def ecds_typed_config(hf: dict) -> dict | None:
    """The wasm filter config an HTTP filter gets through ECDS from a file (`path_config_source`):
    the resource named like the filter in that JSON file, if it can be read."""
    path = ((((hf.get("config_discovery") or {}).get("config_source") or {}).get("path_config_source") or {})
            .get("path"))
    if not path:
        return None
    try:
        resources = json.loads(Path(path).read_text()).get("resources") or []
    except (OSError, ValueError, AttributeError):
        return None  # Envoy itself reports a file it cannot read
    for r in resources:
        if isinstance(r, dict) and r.get("name") == hf.get("name"):
            return r.get("typed_config")
    return None


def tollgate_configs(doc: dict):
    """(listener name, filter JSON) of every wasm filter whose configuration is Tollgate's."""
    for listener in (doc.get("static_resources") or {}).get("listeners") or []:
        for chain in listener.get("filter_chains") or []:
            for f in chain.get("filters") or []:
                for hf in (f.get("typed_config") or {}).get("http_filters") or []:
                    typed = hf.get("typed_config") or ecds_typed_config(hf) or {}
                    cfg = typed.get("config") or {}
                    value = (cfg.get("configuration") or {}).get("value")
                    if (hf.get("name") == "envoy.filters.http.wasm" or typed.get("@type", "").endswith(".wasm.v3.Wasm")) \
                            and isinstance(value, str):
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
        # The limits service's cluster (`limits.store: "remote"`): without it every call fails.
        limits = cfg.get("limits") if isinstance(cfg.get("limits"), dict) else {}
        if limits.get("store") == "remote" and limits.get("cluster") not in have:
            out.append(f"listener {listener}: limits.cluster {limits.get('cluster')!r} is not a cluster of this Envoy "
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

"""What an operator sees when the filter's configuration is wrong, in real Envoy: the filter
refuses it, Envoy does not start, and the log names the field by its path (not a line and
column of the embedded JSON)."""
import pytest

from tollgate_harness import Stack


def start_with(patch):
    s = Stack(concurrency=1, start_backend=False, backend_port=1, patch_filter=patch)
    try:
        s.start()
    except RuntimeError as e:
        return str(e)
    s.stop()
    pytest.fail("Envoy started with an invalid filter configuration")


def misspell_price(cfg):
    m = next(m for m in cfg["models"] if m["id"] == "qai-flash")
    m["prise"] = m.pop("price")
    return cfg


def misspell_price_field(cfg):
    m = next(m for m in cfg["models"] if m["id"] == "qai-pro")
    m["price"]["prompt_per_1kk"] = m["price"].pop("prompt_per_1k")
    return cfg


@pytest.mark.parametrize("patch,path", [
    (misspell_price, "models[1]: unknown field `prise`"),
    (misspell_price_field, "models[2].price: unknown field `prompt_per_1kk`"),
])
def test_unknown_config_field_is_named_by_its_path(patch, path):
    log = start_with(patch)
    assert f"configuration: {path}" in log, log[-2000:]

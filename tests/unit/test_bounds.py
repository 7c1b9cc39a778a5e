"""Bodies of a size and depth fit to walk: alias bombs, deep nesting and self-copying patches end in a 4xx."""
import pytest
import yaml

from api import bounds, patch
from api.errors import ApiError

BOMB = """
a: &a "lol"
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_a_yaml_alias_bomb_is_a_413_after_a_bounded_walk():
    doc = yaml.safe_load(BOMB)  # shared references: cheap to load, 9**8 values once expanded
    with pytest.raises(ApiError) as err:
        bounds.size(doc)
    assert err.value.code == 413


def test_nesting_deeper_than_the_limit_is_a_400():
    deep: dict = {}
    for _ in range(bounds.MAX_DEPTH + 1):
        deep = {"a": deep}
    with pytest.raises(ApiError) as err:
        bounds.size(deep)
    assert err.value.code == 400


def test_a_json_patch_that_copies_an_object_onto_itself_stops_at_the_limit():
    obj = {"metadata": {"name": "x", "annotations": {"a": "x" * 1000}}}
    ops = [{"op": "copy", "from": "/metadata", "path": f"/metadata/m{i}"} for i in range(20)]
    with pytest.raises(ApiError) as err:
        patch.json_patch(obj, ops)
    assert err.value.code == 413


@pytest.mark.parametrize("op", [{"op": "move", "path": "/a"}, {"op": "add", "path": 5, "value": 1},
                                {"op": "copy", "path": "/a", "from": 3}, {"op": "replace", "path": "/a"},
                                {"op": "frobnicate", "path": "/a"}, "add"])
def test_a_malformed_json_patch_operation_is_a_400(op):
    with pytest.raises(ApiError) as err:
        patch.json_patch({"a": 1}, [op])
    assert err.value.code == 400


def test_deep_yaml_is_a_400_read_by_libyaml_and_times_stay_strings():
    """PyYAML's pure-Python scanner is quadratic in nesting (2,000 brackets held the event loop a second):
    bodies are read with libyaml's loader wherever PyYAML has it."""
    from api.server import ApiServer, YamlLoader

    assert issubclass(YamlLoader, yaml.CSafeLoader)
    with pytest.raises(ApiError) as err:
        ApiServer.decode_body("application/apply-patch+yaml", b"a: " + b"[" * 2000 + b"]" * 2000)
    assert err.value.code == 400
    assert ApiServer.decode_body("application/yaml", b"t: 2024-01-01T00:00:00Z") == {"t": "2024-01-01T00:00:00Z"}

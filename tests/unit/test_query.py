"""Boolean query parameters as Go's strconv.ParseBool reads them, which is what kube-apiserver accepts."""
import pytest

from api.errors import ApiError
from api.query import flag


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_what_go_reads_as_true(text):
    assert flag({"watch": text}, "watch") is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_what_go_reads_as_false(text):
    assert flag({"watch": text}, "watch", default=True) is False


@pytest.mark.parametrize("text", ["", "yes", "on", "tRUE", " true", "2", "true1"])
def test_anything_else_is_a_bad_request(text):
    with pytest.raises(ApiError) as err:
        flag({"watch": text}, "watch")
    assert err.value.code == 400 and "watch" in err.value.message


def test_an_absent_parameter_is_the_default():
    assert flag({}, "watch") is False and flag({}, "watch", default=True) is True

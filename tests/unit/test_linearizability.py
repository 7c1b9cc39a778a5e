"""The linearizability checker on small histories known to be linearizable, and known not to be."""
import random

from raftkube.linearizability import FAILED, UNKNOWN, Op, check


def w(v, call, ret, key="k", **kw):
    return Op(key, "write", call, ret, value=v, **kw)


def r(v, call, ret, key="k", **kw):
    return Op(key, "read", call, ret, value=v, **kw)


def cas(old, new, ok, call, ret, key="k", **kw):
    return Op(key, "cas", call, ret, value=new, expected=old, succeeded=ok, **kw)


def test_sequential_and_concurrent_histories_that_are_fine():
    assert check([w(1, 0, 1), r(1, 2, 3)])["ok"]
    assert check([w(1, 0, 10), r(None, 1, 2), r(1, 3, 4)])["ok"]  # reads overlapping the write may see either
    assert check([w(1, 0, 1), cas(1, 2, True, 2, 3), cas(1, 3, False, 4, 5), r(2, 6, 7)])["ok"]


def test_a_stale_read_after_a_completed_write_is_caught():
    assert not check([w(1, 0, 1), r(None, 2, 3)])["ok"]


def test_a_new_then_old_read_inversion_is_caught():
    """Both reads overlap the write, but once a read has returned the new value no later read may see the old."""
    assert not check([w(1, 0, 10), r(1, 1, 2), r(None, 3, 4)])["ok"]


def test_two_cas_from_the_same_value_cannot_both_win():
    assert not check([w(0, 0, 1), cas(0, 1, True, 2, 5), cas(0, 2, True, 3, 6)])["ok"]
    assert check([w(0, 0, 1), cas(0, 1, True, 2, 5), cas(0, 2, False, 3, 6)])["ok"]


def test_unknown_writes_may_or_may_not_have_happened_failed_ones_did_not():
    assert check([w(1, 0, 1), w(2, 2, 3, outcome=UNKNOWN), r(1, 4, 5)])["ok"]
    assert check([w(1, 0, 1), w(2, 2, 3, outcome=UNKNOWN), r(2, 4, 5)])["ok"]
    assert not check([w(1, 0, 1), w(2, 2, 3, outcome=UNKNOWN), r(2, 4, 5), r(1, 6, 7)])["ok"]
    assert not check([w(1, 0, 1), w(2, 2, 3, outcome=FAILED), r(2, 4, 5)])["ok"]


def test_keys_are_checked_apart_and_named_when_bad():
    result = check([w(1, 0, 1, key="a"), r(1, 2, 3, key="a"), w(1, 0, 1, key="b"), r(None, 2, 3, key="b")])
    assert result["bad_keys"] == ["b"]


def _random_linearizable_history(n, keys, clients, seed):
    """Operations applied to real registers at a random instant inside their [call, return]."""
    rng = random.Random(seed)
    state = {k: None for k in keys}
    free_at = [0.0] * clients
    ops = []
    for i in range(n):
        c = i % clients
        call = free_at[c] + rng.random()
        point = call + rng.random()
        ret = point + rng.random()
        free_at[c] = ret
        ops.append((point, c, call, ret, rng.choice(keys), rng.random(), i))
    history = []
    for point, c, call, ret, key, dice, i in sorted(ops):
        if dice < 0.4:
            history.append(r(state[key], call, ret, key=key, client=c))
        elif dice < 0.8:
            state[key] = i
            history.append(w(i, call, ret, key=key, client=c))
        else:
            ok = state[key] is not None and dice < 0.9
            expected = state[key] if ok else -1
            if ok:
                state[key] = i
            history.append(cas(expected, i, ok, call, ret, key=key, client=c))
    return history


def test_thousands_of_operations_are_checked_quickly():
    history = _random_linearizable_history(3000, ["a", "b", "c", "d"], 8, seed=3)
    result = check(history)
    assert result["ok"] and result["checked"] == 3000
    broken = history + [r(-42, 1e9, 1e9 + 1, key="a")]  # a value nobody wrote
    assert check(broken)["bad_keys"] == ["a"]

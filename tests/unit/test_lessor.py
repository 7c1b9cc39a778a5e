"""Lease deadlines on one master's monotonic clock (etcd's lessor): refreshed on apply, renewed on promotion."""
from kvstore.lessor import Lessor


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_lease_expires_ttl_seconds_after_its_last_refresh_here():
    clock = Clock()
    lessor = Lessor(clock)
    lessor.refreshed(1, 10)
    lessor.refreshed(2, 10)
    clock.now += 6
    lessor.refreshed(2, 10)
    assert lessor.remaining(2, 10) == 10 and lessor.remaining(1, 10) == 4
    clock.now += 5
    assert lessor.expired({1: 10, 2: 10}) == [1]


def test_a_new_leader_gives_every_lease_a_full_ttl():
    """Keepalives sent to the old leader may never have reached this one: a failover expires nothing."""
    clock = Clock()
    lessor = Lessor(clock)
    lessor.refreshed(1, 10)
    clock.now += 9.5
    lessor.promote({1: 10, 2: 30})
    clock.now += 9
    assert lessor.expired({1: 10, 2: 30}) == []
    clock.now += 2
    assert lessor.expired({1: 10, 2: 30}) == [1]


def test_leases_gone_from_the_store_are_forgotten_and_unknown_ones_get_a_full_ttl():
    clock = Clock()
    lessor = Lessor(clock)
    lessor.refreshed(1, 5)
    assert lessor.expired({7: 5}) == []  # 1 was revoked; 7 came with a snapshot
    assert set(lessor.deadlines) == {7}
    clock.now += 5
    assert lessor.expired({7: 5}) == [7]

"""Who a data directory is: a member id made when the directory was first used, and the ids of its peers.

Raft's safety rests on every vote and every acknowledgement coming from a replica that still holds what it
acknowledged before. A master whose data directory was wiped and that starts again under its old name and
address breaks that: it votes with an empty log. Say m1 was down while m2 and m3 acknowledged a write W;
then m3 is down, m2 is wiped and restarted, and m1 comes back: m1 and the empty m2 make a majority and
elect a leader without W, and W is gone for good when m3 returns.

So each data directory gets an id of its own (as etcd's member id, but new with every empty directory), every
Raft message carries it, and each replica remembers the id it first met at each peer address (`identity.json`).
A message from a known address with another id is refused, and its sender is told why: the only way back for
a master whose data was lost is out of the cluster and in again (`member remove`, then `member add`), which
makes every replica forget the old id, so the new one is learnt at first contact. The leader's append_entries
carry the ids it knows, and followers adopt them (`adopt`): a follower that has not appended the change yet, or
that read a last message of the old member after it, is corrected within a heartbeat. Until then it refuses the
newcomer, so a refused master stops only if no leader takes it within a grace period (`Replica._check_refused`):
the leader has the change, and sends nothing to a master it refuses.
"""
from __future__ import annotations

import json
import logging
import os
import secrets

from kvstore.journal import write_atomically

log = logging.getLogger("raftkube.member_identity")

IDENTITY_FILE = "identity.json"


class MemberIdentity:
    def __init__(self, data_dir: str, *, enforced: bool = True) -> None:
        self.path = os.path.join(data_dir, IDENTITY_FILE)
        self.enforced = enforced  # off only in the wiped-member lab: anyone at a member's address is that member
        try:
            with open(self.path) as f:
                saved = json.load(f)
            self.created = False
        except FileNotFoundError:
            saved = {"id": secrets.token_hex(8), "peers": {}}
            self.created = True
        self.id: str = saved["id"]
        self.peers: dict[str, str] = dict(saved["peers"])  # raft address -> the id first met there
        if self.created:
            self._save()

    def check(self, address: str, presented: str | None) -> str | None:
        """None when `presented` may speak for `address` (learnt now if we knew no one there); otherwise why not."""
        known = self.peers.get(address)
        if known is None and presented:
            log.info("member %s speaks for %s from now on", presented, address)
            self.peers[address] = presented
            self._save()
            return None
        if presented == known or not self.enforced:
            return None
        return (f"it knows that address as member {known}, and this one is {presented}, made from an empty data "
                f"dir. A master whose data was lost must not count as the member it was (it would vote with an empty "
                f"log). Remove it from the cluster and add it back (etcd's member remove, then member add; "
                f"`raftkube member` does both), then start it again")

    def adopt(self, leaders_view: dict[str, str], self_address: str) -> None:
        """Take the current leader's view of who speaks for each address (its append_entries carry it). A member
        that missed a change, or met the old member's last message after it, is corrected within a heartbeat; the
        leader has every committed change, and a wiped master it refuses keeps its old id in the view."""
        changed = False
        for address, member_id in leaders_view.items():
            if address != self_address and self.peers.get(address) != member_id:
                log.info("member %s speaks for %s from now on (the leader's view)", member_id, address)
                self.peers[address] = member_id
                changed = True
        if changed:
            self._save()

    def forget(self, address: str) -> None:
        """`address` left the cluster or joined it anew: whoever comes next under it is learnt afresh."""
        forgotten = self.peers.pop(address, None)
        if forgotten is not None:
            log.info("member %s no longer speaks for %s (a membership change)", forgotten, address)
            self._save()

    def _save(self) -> None:
        write_atomically(self.path, json.dumps({"id": self.id, "peers": self.peers}).encode())

"""Member identities (kvstore/member_identity.py): learnt at first contact, refused when another comes."""
from kvstore.member_identity import MemberIdentity


def test_the_first_id_met_at_an_address_is_learnt_and_another_refused(tmp_path):
    ids = MemberIdentity(str(tmp_path))
    assert ids.check("m2", "aaaa") is None
    assert ids.check("m2", "aaaa") is None
    assert "member remove" in ids.check("m2", "bbbb")  # a wiped m2: it is told the way back


def test_a_member_added_again_is_learnt_afresh(tmp_path):
    ids = MemberIdentity(str(tmp_path))
    ids.check("m2", "old")
    ids.forget("m2")  # member remove, then member add: a newcomer replaying the log forgets it again, harmlessly
    assert ids.check("m2", "new") is None
    ids.forget("m2")
    assert ids.check("m2", "new") is None and ids.check("m2", "old") is not None


def test_what_it_knows_survives_a_restart(tmp_path):
    ids = MemberIdentity(str(tmp_path))
    ids.check("m2", "aaaa")
    again = MemberIdentity(str(tmp_path))
    assert again.id == ids.id and not again.created
    assert again.check("m2", "aaaa") is None and again.check("m2", "bbbb") is not None


def test_a_follower_takes_the_leaders_view_but_never_a_view_of_itself(tmp_path):
    """A follower that met the old member's last message after the member add (or missed the add) learnt the old
    id; the leader's append_entries carry the new one."""
    ids = MemberIdentity(str(tmp_path))
    ids.check("m2", "old")
    ids.adopt({"m2": "new", "m1": "someone-else"}, self_address="m1")
    assert ids.check("m2", "new") is None and ids.check("m2", "old") is not None
    assert "m1" not in ids.peers
    assert MemberIdentity(str(tmp_path)).peers == {"m2": "new"}  # kept on disk

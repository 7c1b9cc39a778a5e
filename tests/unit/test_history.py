"""ControllerRevision helpers (Kubernetes' controller history): the revision of a template, its hash and name,
renumbering on a rollback, and which old revisions a history limit lets go."""
from controllers.history import (HASH_LABEL, history_to_delete, new_revision, next_revision_number,
                                 plan_update_revision, revision_data, revision_hash, template_of)


def owner(image: str = "nginx:1", name: str = "web") -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": name, "namespace": "ns", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_revision_holds_the_template_as_a_replace_patch():
    data = revision_data(owner())
    assert data["spec"]["template"]["$patch"] == "replace"
    rev = new_revision(owner(), 1)
    assert template_of(rev) == owner()["spec"]["template"]
    assert rev["apiVersion"] == "apps/v1" and rev["kind"] == "ControllerRevision" and rev["revision"] == 1
    assert rev["metadata"]["ownerReferences"][0]["controller"] is True


def test_name_is_owner_dash_hash_and_the_hash_labels_it():
    rev = new_revision(owner(), 1)
    h = rev["metadata"]["labels"][HASH_LABEL]
    assert rev["metadata"]["name"] == f"web-{h}" and revision_hash(rev) == h
    assert rev["metadata"]["labels"]["app"] == "web"


def test_hash_is_stable_and_follows_the_template_and_collisions():
    assert revision_hash(new_revision(owner(), 1)) == revision_hash(new_revision(owner(), 7))
    assert revision_hash(new_revision(owner(), 1)) != revision_hash(new_revision(owner("nginx:2"), 1))
    assert revision_hash(new_revision(owner(), 1, 0)) != revision_hash(new_revision(owner(), 1, 1))


def test_update_revision_kept_created_or_renumbered():
    r1 = new_revision(owner("a"), 1)
    r2 = new_revision(owner("b"), 2)
    assert plan_update_revision([r1, r2], new_revision(owner("b"), 3)) == ("keep", r2)
    assert plan_update_revision([r1, r2], new_revision(owner("c"), 3)) == ("create", None)
    assert plan_update_revision([r1, r2], new_revision(owner("a"), 3)) == ("renumber", r1)  # a rollback
    assert plan_update_revision([], new_revision(owner("a"), 1)) == ("create", None)
    assert next_revision_number([r1, r2]) == 3 and next_revision_number([]) == 1


def test_history_limit_deletes_the_oldest_unused():
    revs = [new_revision(owner(str(i)), i) for i in range(1, 6)]
    names = [r["metadata"]["name"] for r in revs]
    live = {names[0], names[4]}  # an old pod still uses revision 1; 5 is current
    assert [r["metadata"]["name"] for r in history_to_delete(revs, live, 2)] == [names[1]]
    assert history_to_delete(revs, live, 10) == []
    assert [r["metadata"]["name"] for r in history_to_delete(revs, live, 0)] == names[1:4]

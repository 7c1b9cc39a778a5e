"""Faults on a schedule, against a cluster `raftkube up` (or a test) started: the Jepsen nemesis.

Each round waits a healthy while, then applies one fault for a while and undoes it:
  kill-leader      SIGKILL the leader, restart it with its recorded command line
  kill-random      the same for any master
  kill-all         SIGKILL every master at once (writes in flight), restart them all: the durability test
  pause-leader     SIGSTOP the leader (a frozen VM), SIGCONT
  partition-leader cut the leader's Raft links with every other master (failpoints), heal
  partition-half   split the masters into a minority and a majority at random, heal
  bridge           (5+ masters) two halves that only one master connects, heal
  member-cycle     remove a follower from the cluster, wipe its data, add it back and start it: it rejoins empty
                   and catches up (membership changes, one at a time)
  clock-step       step the leader's wall clock an hour forward or back (`date -s`, a failpoint), step it back:
                   leases and elections must not notice
and, when the masters run in network namespaces (raftkube/netns.py, root only), the same cuts made in the network
rather than in the masters' transports:
  net-partition-leader, net-partition-half   blackhole routes between the groups
  net-isolate-leader                         the leader's link down: cut from masters and clients alike
Faults aimed at one mechanism each, which the labs use (raftkube/labs.py), not in the default mix:
  partition-follower   cut one follower's Raft links (its clients still reach it), heal
  clock-step-failover  step every follower's wall clock an hour forward and kill the leader, so a follower whose
                       clock jumped takes over; restart the old leader, step the clocks back
  wipe-rejoin          issue 16's sequence: kill a minority A; the others acknowledge writes; kill all of them but
                       B, then B too, wipe B's data dir and start it again under its name; restart A (A and the empty
                       B are a majority); undone by restarting the rest, and, if the cluster refused the wiped B,
                       by removing it and adding it back (`raftkube member`)
A fault can also be held (`hold`): applied once, before the clients start, and undone at the end.
Everything it does goes into `timeline` as (seconds since start, text).
"""
from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import time
from typing import Any

from raftkube import chaos, failpoints, kv_access, member, status, up
from raftkube.netns import Network

FAULTS = ["kill-leader", "kill-random", "kill-all", "pause-leader", "partition-leader", "partition-half", "bridge",
          "member-cycle", "clock-step"]
CLOCK_STEP = 3600.0
NET_FAULTS = ["net-partition-leader", "net-partition-half", "net-isolate-leader"]
TARGETED_FAULTS = ["partition-follower", "clock-step-failover", "wipe-rejoin"]
WIPE_PHASE = 3.0  # seconds each side of wipe-rejoin gets to acknowledge writes


class Nemesis:
    def __init__(self, info: dict[str, Any], faults: list[str], *, seed: int = 0, healthy: float = 2.0,
                 faulty: float = 2.5, rounds: int | None = None) -> None:
        """Round after round (at most `rounds`), about `healthy` seconds healthy, then a fault from `faults` for
        about `faulty` seconds (each drawn between half and one and a half times that)."""
        known = FAULTS + NET_FAULTS + TARGETED_FAULTS
        unknown = set(faults) - set(known)
        if unknown:
            raise ValueError(f"unknown fault(s) {sorted(unknown)}; choose from {', '.join(known)}")
        self.net = Network.of(info) if "netns" in info else None
        if self.net is None and set(faults) & set(NET_FAULTS):
            raise ValueError("net-* faults need the masters in network namespaces (raftkube campaign --netns)")
        if "bridge" in faults and len(info["masters"]) < 5:
            faults = [f for f in faults if f != "bridge"]
        self.info = info
        self.tls = kv_access.context(info.get("kv_tls"))  # the failpoints are on the masters' KV ports
        self.faults = faults
        self.rng = random.Random(seed)
        self.healthy = healthy
        self.faulty = faulty
        self.rounds = rounds
        self.timeline: list[tuple[float, str]] = []
        self.exited: list[str] = []  # masters found gone that no fault had stopped
        self.started = time.monotonic()
        self._undo: list[tuple[str, Any]] = []

    def note(self, text: str) -> None:
        self.timeline.append((round(time.monotonic() - self.started, 2), text))

    async def run(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        done = 0
        try:
            while self.faults and time.monotonic() + self.healthy + self.faulty < until and done != self.rounds:
                done += 1
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.healthy)
                fault = self.rng.choice(self.faults)
                try:
                    await asyncio.to_thread(self._apply, fault)
                except (failpoints.FailpointError, member.MemberError) as exc:
                    self.note(f"{fault}: skipped ({exc})")
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.faulty)
                await asyncio.to_thread(self.heal)
            await asyncio.sleep(max(0.0, until - time.monotonic()))  # faults set up before run() last until the end
        finally:
            await asyncio.to_thread(self.heal)

    def masters(self) -> list[dict[str, Any]]:
        return self.info["masters"]

    def _leader(self) -> dict[str, Any]:
        name = chaos.leader(self.info)
        return next((m for m in self.masters() if m["name"] == name), None) or self.rng.choice(self.masters())

    def hold(self, fault: str) -> None:
        """Apply `fault` now and keep it until heal()."""
        self._apply(fault)

    def _kill(self, victims: list[dict[str, Any]]) -> None:
        """SIGKILL, and a restart when healed."""
        for m in victims:
            try:
                os.kill(m["pid"], signal.SIGKILL)
            except ProcessLookupError:  # a master must never stop by itself: the campaign reports it
                self.exited.append(m["name"])
                self.note(f"{m['name']} had already exited by itself (see its log)")
            up.wait_gone(m["pid"])
            self._undo.append(("restart", m))

    def _apply(self, fault: str) -> None:
        if fault in ("kill-leader", "kill-random", "kill-all"):
            victims = {"kill-leader": lambda: [self._leader()], "kill-random": lambda: [self.rng.choice(self.masters())],
                       "kill-all": self.masters}[fault]()
            self._kill(victims)
            self.note(f"{fault}: killed {', '.join(m['name'] for m in victims)}")
        elif fault == "clock-step-failover":
            leader = self._leader()
            followers = []
            for m in self.masters():
                try:  # a follower still starting up is left alone: its clock is right, its deadlines new
                    if m is not leader:
                        failpoints.failpoint(m, {"clock_step": CLOCK_STEP}, self.tls)
                        followers.append(m)
                        self._undo.append(("clock_step", (m, -CLOCK_STEP)))
                except failpoints.FailpointError:
                    continue
            if not followers:
                raise failpoints.FailpointError("no follower took the clock step")
            self._kill([leader])
            self.note(f"clock-step-failover: the wall clock of {', '.join(m['name'] for m in followers)} "
                      f"{CLOCK_STEP:+.0f}s, killed leader {leader['name']}")
        elif fault == "wipe-rejoin":
            self._wipe_rejoin()
        elif fault == "member-cycle":
            leader = chaos.leader(self.info)
            m = self.rng.choice([m for m in self.masters() if m["name"] != leader])
            member.cycle(self.info, m["name"])
            self.note(f"member-cycle: removed {m['name']}, wiped it, added it back")
        elif fault == "clock-step":
            m = self._leader()
            step = self.rng.choice([CLOCK_STEP, -CLOCK_STEP])
            failpoints.failpoint(m, {"clock_step": step}, self.tls)
            self._undo.append(("clock_step", (m, -step)))
            self.note(f"clock-step: {m['name']}'s wall clock {step:+.0f}s")
        elif fault == "pause-leader":
            m = self._leader()
            os.kill(m["pid"], signal.SIGSTOP)
            self._undo.append(("resume", m))
            self.note(f"pause-leader: paused {m['name']}")
        elif fault == "net-isolate-leader":
            m = self._leader()
            self.net.isolate(m["name"])
            self._undo.append(("net_heal", None))
            self.note(f"net-isolate-leader: {m['name']}'s link down")
        else:
            groups = self._groups(fault.removeprefix("net-"))
            if fault.startswith("net-"):
                for a in groups[0]:
                    for b in groups[1]:
                        self.net.cut(a["name"], b["name"])
                self._undo.append(("net_heal", None))
            else:
                self._undo.append(("heal", groups))
                failpoints.split(groups, "cut", self.tls)
            self.note(f"{fault}: " + " | ".join(",".join(m["name"] for m in g) for g in groups))

    def _groups(self, fault: str) -> list[list[dict[str, Any]]]:
        masters = list(self.masters())
        if fault == "partition-leader":
            leader = self._leader()
            return [[leader], [m for m in masters if m is not leader]]
        if fault == "partition-follower":
            leader = self._leader()
            follower = self.rng.choice([m for m in masters if m is not leader])
            return [[follower], [m for m in masters if m is not follower]]
        self.rng.shuffle(masters)
        if fault == "partition-half":
            cut = len(masters) // 2
            return [masters[:cut], masters[cut:]]
        # bridge: A | B with one master in both: cut A from B except through the bridge master
        half = len(masters) // 2
        return [masters[:half], masters[half + 1:]]  # the bridge (masters[half]) keeps both sides

    def _wipe_rejoin(self) -> None:
        """Kill a minority A; let the rest acknowledge writes; kill them all, wipe one of them (B) and start it
        again; restart A: A and the empty B are a majority that never saw those writes (issue 16)."""
        masters = list(self.masters())
        self.rng.shuffle(masters)
        minority = (len(masters) - 1) // 2
        first, wiped, rest = masters[:minority], masters[minority], masters[minority + 1:]
        self._kill(first)
        self.note(f"wipe-rejoin: killed {', '.join(m['name'] for m in first)}; the others take writes")
        time.sleep(WIPE_PHASE)
        self._kill(rest)
        os.kill(wiped["pid"], signal.SIGKILL)
        up.wait_gone(wiped["pid"])
        shutil.rmtree(wiped["data_dir"])
        up.restart_master(self.info, wiped["name"])
        self._undo.append(("rejoin", wiped))
        for m in first:
            up.restart_master(self.info, m["name"])
            self._undo.remove(("restart", m))
        self.note(f"wipe-rejoin: killed {', '.join(m['name'] for m in [*rest, wiped])}; wiped {wiped['name']}'s data "
                  f"dir and started it again; restarted {', '.join(m['name'] for m in first)}")
        if not self._refused(wiped):  # taken for the member it was: the new majority takes writes
            time.sleep(WIPE_PHASE)

    def _refused(self, m: dict[str, Any]) -> bool:
        """Wait until a wiped master has either exited (the cluster refused it as a stranger) or serves (it was
        taken for the member it had been)."""
        deadline = time.monotonic() + up.READY_TIMEOUT
        while time.monotonic() < deadline:
            if not up.is_running(m["pid"]):
                return True
            if up.is_ready(m["api"], self.info.get("ca")):
                return False
            time.sleep(0.2)
        return False

    def _heal_links(self, groups: list[list[dict[str, Any]]]) -> None:
        """Heal a partition on every master that answers; one that stopped by itself is reported and restarted
        (a new process holds no partition)."""
        def exited(m: dict[str, Any]) -> bool:
            if up.is_running(m["pid"]):
                return False
            self.exited.append(m["name"])
            self.note(f"{m['name']} had exited by itself (see its log); restarting it")
            up.restart_master(self.info, m["name"])
            return True

        failpoints.split(groups, "heal", self.tls, passed_over=exited)
        self.note("healed the partition")

    def heal(self) -> None:
        """Undo every fault still in force: resume, heal links, restart the dead (in that order)."""
        while self._undo:
            action, what = self._undo.pop(0)
            if action == "resume":
                os.kill(what["pid"], signal.SIGCONT)
                self.note(f"resumed {what['name']}")
            elif action == "net_heal":
                self.net.heal()
                self.note("healed the network")
            elif action == "rejoin":
                if self._refused(what):  # a stranger: out of the cluster and in again
                    member.cycle(self.info, what["name"])
                    self.note(f"{what['name']} was refused as a stranger; removed it and added it back")
            elif action == "clock_step":
                m, step = what
                try:
                    failpoints.failpoint(m, {"clock_step": step}, self.tls)
                except failpoints.FailpointError:
                    pass  # killed or restarted meanwhile: its clock is right again
                self.note(f"{m['name']}'s wall clock stepped back")
            elif action == "heal":
                self._heal_links(what)
            else:
                up.restart_master(self.info, what["name"])
                self.note(f"restarted {what['name']}")


def leader_monitor_row(info: dict[str, Any]) -> tuple[str | None, int]:
    """(leader name, its term) as the reachable masters see it now."""
    rows = status.collect(info)
    leaders = [(r["name"], r["term"]) for r in rows if r.get("role") == "leader"]
    best = max(leaders, key=lambda x: x[1], default=(None, 0))
    return best

"""`raftkube lab list` and `raftkube lab run NAME`: break one of the store's safety mechanisms on purpose and watch
the checkers catch it (docs/labs.md has an exercise for each lab).

`lab run NAME` starts a fresh cluster whose masters run with `--lab NAME` (that one mechanism off,
kvstore/mechanisms.py), runs the campaign raftkube/labs.py names for it (raftkube/campaign.py: clients and the
faults that expose it), and prints what the checkers found: each anomaly with the smallest history that shows it,
the guarantee it broke, and the file and function whose mechanism was off. `--control` runs the same with every
mechanism on: nothing should be found. The exit status is the campaign's: 1 when an anomaly was found, else 0.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace

from raftkube import campaign, up
from raftkube.findings import GUARANTEES
from raftkube.labs import LABS, Lab, find


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "run"])
    p.add_argument("name", nargs="?", help="run: the lab (`raftkube lab list` names them)")
    p.add_argument("--seconds", type=float, help="how long the clients and faults run (default: the lab's own)")
    p.add_argument("--masters", type=int, default=3, choices=(3, 5, 7))
    p.add_argument("--control", action="store_true",
                   help="the same run with every mechanism on: the checkers should find nothing")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--state-dir", help="where the cluster lives (default: a fresh temporary directory)")
    campaign.add_output_arguments(p)


def plan(lab: Lab, *, seconds: float | None = None, masters: int = 3, control: bool = False,
         seed: int = 1) -> campaign.Plan:
    """The lab's campaign: its masters with `--lab NAME`, or, for the control run, without."""
    return replace(lab.plan, seconds=seconds or lab.plan.seconds, masters=masters, seed=seed,
                   master_flags=() if control else ("--lab", lab.name))


def caught(lab: Lab, run: campaign.Run) -> bool:
    """Did the checkers find the kind of anomaly this lab is about?"""
    return any(f.kind in lab.expect for f in run.found)


def describe(lab: Lab, control: bool) -> list[str]:
    lines = [f"lab {lab.name}: {lab.title}" + (" -- CONTROL RUN, every mechanism on" if control else ""),
             f"  the mechanism{'' if control else ' switched off'}: {lab.off}",
             f"  where: {lab.where}",
             f"  how this run exposes it: {lab.run}"]
    lines += [f"  the guarantee at stake: {GUARANTEES[kind]}" for kind in lab.expect]
    return lines


def verdict(lab: Lab, run: campaign.Run, control: bool) -> str:
    count = run.report["anomalies"]
    if control:
        return ("verdict: PASSED: with the mechanism on, the checkers found nothing" if not count else
                f"verdict: the control run found {count} anomalies: the mechanism did not hold (a bug: report it)")
    if caught(lab, run):
        return (f"verdict: CAUGHT: with {lab.where.split(':')[0]}'s mechanism off, the checkers found {count} "
                f"anomalies ({', '.join(sorted({f.kind for f in run.found}))}); run it again with --control")
    return (f"verdict: NOT CAUGHT this time ({count} anomalies of other kinds): the faults did not line up; run it "
            "again, or longer (--seconds)")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        for lab in LABS:
            print(f"{lab.name:18} {lab.title}  ({lab.where.split(':')[0]})")
        return 0
    if not args.name:
        raise SystemExit("raftkube lab run: which lab? (`raftkube lab list` names them)")
    try:
        lab = find(args.name)
    except KeyError as exc:
        raise SystemExit(f"raftkube lab: {exc.args[0]}") from None
    state_dir = os.path.abspath(args.state_dir) if args.state_dir else tempfile.mkdtemp(prefix="raftkube-lab-")
    header = [*describe(lab, args.control),
              f"  the cluster: {state_dir} (`raftkube status --state-dir {state_dir}` while it runs; its logs stay "
              f"in {state_dir}/logs)"]
    print("\n".join(header), file=sys.stderr if args.json else sys.stdout, flush=True)
    try:  # a lab cut short (Ctrl-C, SIGTERM) still stops its masters
        result = up.run_until_signal(campaign.campaign(state_dir, plan(lab, seconds=args.seconds, masters=args.masters,
                                                               control=args.control, seed=args.seed)))
    except KeyboardInterrupt:
        print("raftkube lab: interrupted; its masters are stopped, nothing was checked", file=sys.stderr)
        return 130
    title = f"raftkube lab {lab.name}" + (" (control)" if args.control else "")
    campaign.print_outputs(result, args, title, (*header, verdict(lab, result, args.control)))
    print(verdict(lab, result, args.control), file=sys.stderr if args.json else sys.stdout)
    return 1 if result.report["anomalies"] else 0

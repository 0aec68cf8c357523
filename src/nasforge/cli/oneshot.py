"""``nasforge oneshot``: train a weight-sharing supernet with DARTS, GDAS, SPOS, ENAS or once-for-all
on real data and print the chosen architecture (with its NAS-Bench-201 result for that space).

The defaults finish in a few minutes on two CPU cores: Fashion-MNIST (28x28x1), a 2,000-image
subset split half for the weights and half for the architecture, 3 epochs, and small supernets
(NAS-Bench-201: C=8, one cell per stage; DARTS: C=8, 5 cells; elastic: width 0.25). The papers'
settings are reachable with the flags (``--epochs 50 --subset 50000 --C 16 --cells 5``).

``--space-option K=V`` sets the space's options (parsed like ``nasforge search``'s); they are
stored in the checkpoint. ``--rank N`` then scores N architectures with the trained supernet's
weights and lists the best ``--top-k`` (``--rank-out FILE``: as JSON); ``--few-shot EPOCHS`` scores
them with few-shot sub-supernets instead, ``--rank-proxy NAME`` orders them by a vote of inherited
accuracy and zero-cost proxies.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from nasforge.cli.common import console, fmt_metric, write_json
from nasforge.config import parse_options
from nasforge.errors import ConfigError
from nasforge.registry import SPACES
from nasforge.utils.device import resolve_device

DEFAULT_BUILD: dict[str, dict[str, Any]] = {
    "nb201": {"C": 8, "N": 1},
    "darts": {"C": 8, "layers": 5},
    "elastic": {"width_mult": 0.25, "stem_stride": 1},
}
# The flag that sets a space's number of cells, and which build option it maps to.
_CELLS_OPTION = {"nb201": "N", "darts": "layers"}


def register(sub: Any) -> None:
    """Add the ``oneshot`` subcommand."""
    from nasforge.oneshot.methods import METHODS

    p: argparse.ArgumentParser = sub.add_parser(
        "oneshot",
        help="one-shot search: train a weight-sharing supernet (DARTS, GDAS, SPOS, ENAS, OFA)",
        description="Train a weight-sharing supernet of a search space on real data with a one-shot "
        "method and print the architecture it chooses. For the nb201 space the chosen cell is looked "
        "up in the NAS-Bench-201 table (--nb201 PATH, $NASFORGE_NB201, or ../shared/benchmarks/nb201 "
        "beside the project) and its published CIFAR-10 test accuracy is printed.",
    )
    p.add_argument("--method", required=True, choices=sorted(METHODS),
                   help="darts (1st order), darts2 (2nd order), gdas, spos, enas, ofa (elastic space)")
    p.add_argument("--space", default="nb201", help="search space with a supernet: nb201 (default), darts, elastic")
    p.add_argument("--space-option", action="append", metavar="K=V",
                   help="space option, repeatable (as for `nasforge search`, e.g. "
                   "ops=[sep_conv_3x3,skip_connect]); stored in the checkpoint")
    p.add_argument("--dataset", default="fashion_mnist", help="dataset name (default fashion_mnist)")
    p.add_argument("--data", metavar="DIR", help="directory holding the dataset files")
    p.add_argument("--epochs", type=int, default=3, help="search epochs (default 3; papers: 50)")
    p.add_argument("--subset", type=int, default=2000, metavar="N",
                   help="training images used, split half for weights, half for the architecture (default 2000)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="batch size (default 64)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same run on CPU)")
    p.add_argument("--C", type=int, metavar="C", help="initial channels of the supernet (default 8)")
    p.add_argument("--cells", type=int, metavar="N",
                   help="cells per stage (nb201, default 1) or cells in total (darts, default 5)")
    p.add_argument("--search-trials", type=int, metavar="N",
                   help="architectures the spos/ofa search evaluates with inherited weights (default 100 / 20)")
    p.add_argument("--option", action="append", metavar="K=V",
                   help="method setting, repeatable (e.g. w_lr=0.05, tau_max=10, controller_steps=20)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--checkpoint", metavar="PATH", help="save the search state here after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint if it exists")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even if --checkpoint exists, replacing it (without this or "
                   "--resume an existing checkpoint is refused)")
    p.add_argument("--nb201", metavar="PATH", help="NAS-Bench-201 table (directory or CSV) for the lookup")
    p.add_argument("--rank", type=int, metavar="N",
                   help="after training, score N architectures with the supernet's weights (BatchNorm "
                   "recalibrated per architecture): the chosen one and N-1 random ones, or the whole "
                   "space when it holds at most N")
    p.add_argument("--top-k", type=int, metavar="K", help="architectures listed in the ranking (default 10)")
    p.add_argument("--rank-proxy", action="append", metavar="NAME",
                   help="zero-cost-assisted ranking, repeatable: order the --rank architectures by a vote "
                   "of inherited accuracy and this proxy of the untrained network (e.g. naswot)")
    p.add_argument("--rank-vote", choices=["sum", "majority"],
                   help="how --rank-proxy votes: sum of ranks (default) or majority of pairwise preferences")
    p.add_argument("--few-shot", type=int, metavar="EPOCHS",
                   help="few-shot ranking: split the trained supernet on one decision into sub-supernets "
                   "(one per option, each inheriting its weights), train each EPOCHS more epochs with "
                   "SPOS on its own architectures, and score every --rank architecture with its own")
    p.add_argument("--few-shot-decision", metavar="NAME",
                   help="the decision --few-shot splits on (default: the space's first)")
    p.add_argument("--rank-out", metavar="FILE",
                   help="write the ranking as JSON (rank, architecture, inherited accuracy and, for "
                   "nb201 with the table, the NAS-Bench-201 CIFAR-10 accuracy)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the result as JSON (stdout if no FILE)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value}")


def build_options(args: argparse.Namespace, in_channels: int, num_classes: int) -> dict[str, Any]:
    """Supernet build options for the chosen space from the flags and the dataset."""
    if args.space not in DEFAULT_BUILD:
        from nasforge.supernet.base import supernet_spaces

        raise ConfigError(f"space {args.space!r} has no supernet; allowed: {', '.join(supernet_spaces())}")
    options = dict(DEFAULT_BUILD[args.space])
    options.update(in_channels=in_channels, num_classes=num_classes)
    if args.C is not None:
        if args.space == "elastic":
            raise ConfigError("--C does not apply to the elastic space (it has fixed MobileNetV3 widths)")
        options["C"] = args.C
    if args.cells is not None:
        if args.space not in _CELLS_OPTION:
            raise ConfigError(f"--cells does not apply to the {args.space} space")
        options[_CELLS_OPTION[args.space]] = args.cells
    return options


def nb201_table_path(explicit: str | None) -> Path | None:
    """--nb201, else $NASFORGE_NB201, else ``../shared/benchmarks/nb201`` beside the project."""
    if explicit:
        return Path(explicit)
    if os.environ.get("NASFORGE_NB201"):
        return Path(os.environ["NASFORGE_NB201"])
    root = Path(__file__).resolve().parents[3]
    candidate = root.parent / "shared" / "benchmarks" / "nb201"
    return candidate if (candidate / "nb201.csv").is_file() else None


def load_nb201(explicit: str | None) -> tuple[Path, Any] | None:
    """(path, table) of the NAS-Bench-201 table, None when there is none to find.

    Loaded before the search, so a wrong ``--nb201`` fails at once instead of after training.
    """
    from nasforge.benchmarks import NB201Table

    path = nb201_table_path(explicit)
    if path is None:
        return None
    return path, NB201Table.load(path)


def lookup_nb201(arch_string: str, table: tuple[Path, Any] | None) -> dict[str, Any] | None:
    """The NAS-Bench-201 record of the chosen cell (CIFAR-10, 200 epochs), None without a table."""
    if table is None:
        return None
    path, data = table
    record = data.query(arch_string, "cifar10", 200)
    return {
        "table": str(path),
        "index": record.index,
        "cifar10_test_acc_200": record.test_acc,
        "cifar10_valid_val_acc_200": record.val_acc,
        "params_m": record.params_m,
    }


def rank_after_search(
    search: Any, chosen: Any, count: int, top_k: int, table: tuple[Path, Any] | None,
    args: argparse.Namespace | None = None,
) -> dict[str, Any]:
    """Score ``count`` architectures (``chosen`` first) on the trained supernet; the top ``top_k``.

    BatchNorm recalibration and evaluation follow the method's sub-network search settings where
    it has them (SPOS, OFA), else the weight_sharing evaluator's defaults (4 batches, all images).
    ``args`` may ask for a few-shot split (``--few-shot``) and zero-cost proxies (``--rank-proxy``).
    """
    from nasforge.oneshot.fewshot import split_supernet
    from nasforge.oneshot.ranking import candidate_architectures, rank_architectures
    from nasforge.utils.rng import derive_seed

    cfg = search.config
    archs = candidate_architectures(search.space, count, derive_seed(cfg.seed, "rank"), [chosen])
    bn_batches = int(getattr(cfg, "bn_batches", 4))
    proxies = list(getattr(args, "rank_proxy", None) or [])
    vote = getattr(args, "rank_vote", None) or "sum"
    few_shot = getattr(args, "few_shot", None)
    scored_on: Any = search.supernet
    extra: dict[str, Any] = {}
    if few_shot is not None:
        scored_on = split_supernet(
            search.supernet, search.splits, decision=getattr(args, "few_shot_decision", None), epochs=few_shot,
            seed=cfg.seed, device=str(search.device), batch_size=cfg.batch_size,
        )
        extra["few_shot"] = {"decision": scored_on.decision, "epochs": few_shot,
                             "sub_supernets": [str(v) for v in scored_on.supernets]}
    if proxies:
        extra.update(proxies=proxies, vote=vote)
    records = rank_architectures(
        scored_on, search.splits, archs, bn_batches=bn_batches,
        eval_samples=getattr(cfg, "eval_samples", None),
        batch_size=int(getattr(cfg, "eval_batch_size", 256)), device=str(search.device),
        proxies=proxies, vote=vote, proxy_seed=cfg.seed,
    )
    chosen_string = search.space.to_string(chosen)
    chosen_rank = next((r["rank"] for r in records if r["arch_string"] == chosen_string), None)
    top = records[:top_k]
    if table is not None:
        for r in top:
            rec = lookup_nb201(r["arch_string"], table)
            assert rec is not None
            r["nb201_cifar10_test_acc_200"] = rec["cifar10_test_acc_200"]
    return {"scored": len(records), "top_k": len(top), "bn_batches": bn_batches,
            "chosen_rank": chosen_rank, "nb201_table": None if table is None else str(table[0]),
            **extra, "ranking": top}


def run(args: argparse.Namespace) -> int:
    """Run the oneshot command."""
    import torch

    from nasforge.data import dataset_info, make_splits
    from nasforge.oneshot.methods import create_search
    from nasforge.supernet.base import seeded_supernet

    for name in ("epochs", "subset", "batch_size", "cells", "C", "search_trials", "rank", "top_k", "few_shot"):
        _positive(f"--{name.replace('_', '-')}", getattr(args, name))
    if args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}")
    if args.resume and not args.checkpoint:
        raise ConfigError("--resume needs --checkpoint PATH")
    if args.resume and args.overwrite:
        raise ConfigError("--resume continues the checkpoint and --overwrite replaces it; give one")
    if args.overwrite and not args.checkpoint:
        raise ConfigError("--overwrite needs --checkpoint PATH")
    if args.checkpoint and Path(args.checkpoint).exists() and not (args.resume or args.overwrite):
        # It may hold hours of supernet training: never replace it by accident.
        raise ConfigError(
            f"checkpoint {args.checkpoint!r} already exists; add --resume to continue it or "
            "--overwrite to start afresh and replace it"
        )
    if args.rank is None and (args.top_k is not None or args.rank_out is not None):
        raise ConfigError("--top-k and --rank-out need --rank N (how many architectures to score)")
    ranking_flags = {"--rank-proxy": args.rank_proxy, "--rank-vote": args.rank_vote, "--few-shot": args.few_shot,
                     "--few-shot-decision": args.few_shot_decision}
    given = [flag for flag, value in ranking_flags.items() if value is not None]
    if args.rank is None and given:
        raise ConfigError(f"{', '.join(given)}: only with --rank N (how many architectures to score)")
    if args.rank_vote is not None and not args.rank_proxy:
        raise ConfigError("--rank-vote needs --rank-proxy NAME (the proxies that vote with the supernet)")
    if args.few_shot_decision is not None and args.few_shot is None:
        raise ConfigError("--few-shot-decision needs --few-shot EPOCHS")
    if args.rank_proxy:
        from nasforge.oneshot.assisted import check_assist_options

        check_assist_options(args.rank_proxy, args.rank_vote or "sum", 1.0)  # before any training
    if args.method == "ofa" and args.space != "elastic":
        raise ConfigError(f"--method ofa trains the elastic space; got --space {args.space!r}")
    if args.space == "elastic" and args.method != "ofa":
        raise ConfigError(f"the elastic space is trained with --method ofa, not {args.method!r}")
    if args.method == "pcdarts" and args.space != "darts":
        raise ConfigError(f"--method pcdarts searches the darts space; got --space {args.space!r}")
    if args.subset < 2 * args.batch_size:
        raise ConfigError(
            f"--subset {args.subset} is too small for two splits of at least one batch of {args.batch_size}"
        )
    options = parse_options(args.option)
    flagged = sorted(set(options) & {"epochs", "batch_size", "seed"})
    if flagged:
        raise ConfigError(f"set {', '.join(flagged)} with the --epochs/--batch-size/--seed flags, not --option")
    if args.search_trials is not None:
        if args.method not in ("spos", "ofa"):
            raise ConfigError("--search-trials applies to --method spos and ofa only")
        options["search_trials"] = args.search_trials
    options.update(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)

    table = load_nb201(args.nb201) if args.space == "nb201" else None
    info = dataset_info(args.dataset)
    half = args.subset // 2
    data_spec = {"dataset": args.dataset, "data_dir": args.data, "val_size": 0.5,
                 "train_subset": half, "val_subset": half, "seed": args.seed}
    splits = make_splits(args.dataset, data_dir=args.data, val_size=0.5, train_subset=half,
                         val_subset=half, seed=args.seed)
    space_options = parse_options(args.space_option)
    space = SPACES.create(args.space, **space_options)
    build = build_options(args, info.in_channels, info.num_classes)
    if args.method == "pcdarts":  # the paper's supernet: 1/4 of the channels, edge normalization
        build.update(partial_channels=4, edge_normalization=True)
    supernet = seeded_supernet(space, args.seed, **build)
    device = resolve_device(args.device)
    search = create_search(args.method, supernet, splits, device=device, checkpoint=args.checkpoint,
                           data_spec=data_spec, **options)
    quiet = args.quiet or args.json == "-"
    if args.checkpoint and args.resume and not Path(args.checkpoint).is_file() and not quiet:
        console.print(f"no checkpoint at {args.checkpoint} yet: starting from the beginning")

    def on_epoch(s: Any, entry: dict[str, float]) -> None:
        if not quiet:
            numbers = ", ".join(f"{k}={fmt_metric(v)}" for k, v in entry.items() if k != "epoch")
            console.print(f"epoch {int(entry['epoch']) + 1}/{args.epochs}: {numbers}")

    if not quiet:
        console.print(f"{args.method} on {args.space} ({args.dataset}, {2 * half} images, device "
                      f"{device}, {torch.get_num_threads()} threads)")
    result = search.run(resume=args.resume, on_epoch=on_epoch)
    out = result.to_dict()
    out.update(space=args.space, space_options=space_options, dataset=args.dataset, build=build,
               device=device, checkpoint=args.checkpoint)
    if args.space == "nb201":
        out["nb201"] = lookup_nb201(result.arch_string, table)
    if args.rank is not None:
        if not quiet:
            console.print(f"ranking {args.rank} architectures with the supernet's weights")
        out["ranking"] = rank_after_search(search, result.arch, args.rank, args.top_k or 10, table, args)
        if args.rank_out:
            write_json({"method": args.method, "space": args.space, "space_options": space_options,
                        "build": build, "dataset": args.dataset, "checkpoint": args.checkpoint,
                        **out["ranking"]}, args.rank_out)
    if not quiet:
        _print_result(out)
    if args.json:
        write_json(out, args.json)
    return 0


def _print_result(out: dict[str, Any]) -> None:
    console.print(f"finished {out['steps']} steps in {out['seconds']:.1f} s")
    console.print(f"[bold]chosen architecture[/bold]: {out['arch_string']}", soft_wrap=True)
    for key in ("supernet_accuracy", "largest_accuracy", "smallest_accuracy", "reward"):
        if key in out["info"]:
            console.print(f"  {key.replace('_', ' ')} (inherited weights): {out['info'][key]:.2f} %")
    if out.get("space") == "nb201":
        rec = out.get("nb201")
        if rec is None:
            console.print("  NAS-Bench-201 table not found (pass --nb201 PATH or set $NASFORGE_NB201)")
        else:
            console.print(f"  NAS-Bench-201 #{rec['index']}: published CIFAR-10 test accuracy "
                          f"(200 epochs) {rec['cifar10_test_acc_200']:.2f} %, "
                          f"{rec['params_m']:.3f} M params", soft_wrap=True)
    if "ranking" in out:
        _print_ranking(out["ranking"])


def _print_ranking(ranking: dict[str, Any]) -> None:
    from rich.table import Table

    nb201 = ranking["nb201_table"] is not None
    by = "inherited accuracy"
    if "few_shot" in ranking:
        split = ranking["few_shot"]
        by += f" (few-shot: {len(split['sub_supernets'])} sub-supernets on {split['decision']})"
    if "proxies" in ranking:
        by = f"{ranking['vote']} vote of {by} and {', '.join(ranking['proxies'])}"
    table = Table(title=f"top {ranking['top_k']} of {ranking['scored']} architectures by {by} "
                  f"(the chosen one ranks {ranking['chosen_rank']})")
    table.add_column("rank", justify="right")
    table.add_column("inherited acc %", justify="right")
    for name in ranking.get("proxies", []):
        table.add_column(name, justify="right")
    if nb201:
        table.add_column("NB201 CIFAR-10 %", justify="right")
    table.add_column("architecture", overflow="fold", min_width=24)
    for r in ranking["ranking"]:
        cells = [str(r["rank"]), f"{r['inherited_accuracy']:.2f}"]
        cells += [f"{r['proxies'][name]:.4g}" for name in ranking.get("proxies", [])]
        if nb201:
            cells.append(f"{r['nb201_cifar10_test_acc_200']:.2f}")
        table.add_row(*cells, r["arch_string"])
    console.print(table)

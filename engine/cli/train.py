"""`hfd train RECIPE`: train a model as its recipe says (assets/recipes/*.toml).

Every phase runs in OUT/<recipe>/<phase>/, resumes there after an interruption, exports bf16
safetensors weights at each checkpoint and logs to train.log; finished phases are skipped.
Copy the last phase's export to assets/weights/ to ship it. Multi-GPU: torchrun --nproc-per-node N
-m engine.cli train RECIPE."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a model from its recipe (assets/recipes/*.toml)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", type=Path, help="a recipe file, e.g. assets/recipes/flow.toml")
    p.add_argument("--phase", default=None, help="run only this phase (from the export of the phase before it; "
                                                 "a finished phase has nothing left: delete its folder to redo it)")
    p.add_argument("--from", dest="start", type=Path, default=None, metavar="WEIGHTS",
                   help="start the first phase that runs from these weights instead")
    p.add_argument("--data", type=Path, default=None,
                   help="photo folder (train/ and val/ subfolders); default the recipe's, data/pack")
    p.add_argument("--out", type=Path, default=Path("runs"), help="where the phase folders go (default runs/)")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop each phase after this long (the learning rate anneals over it)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when torch sees it")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from engine.training.recipes import Recipe, run_recipe

    recipe = Recipe.load(args.recipe)
    if args.phase is not None:
        recipe.phase(args.phase)  # an unknown phase fails before any photo is loaded
    path = run_recipe(recipe, args.out, photos=args.data, only=args.phase, start=args.start,
                      device=args.device, threads=args.threads, time_limit=args.time_limit)
    print(f"weights: {path}")
    return 0

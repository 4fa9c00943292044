"""Training recipes: one TOML file per shipped model, the whole lineage of its weights as data.

    hfd train assets/recipes/flow.toml                    # every phase, in order, resumable
    hfd train assets/recipes/flow.toml --phase realism    # one phase, from the one before it

A recipe names the stage it trains, the architecture, where it starts (from scratch, a weights
file, or a phase of another recipe), the frozen models a later stage needs, and a list of
phases. Each phase is one run of the shared training loop with its own steps (or time budget),
learning rate, batch and crop, plus the stage's own switches (a wider λ range, extra gain
levels, synthesis only, a context model; rate conditioning, the flow's start noise, refining
the post-filtered decode, the realism objective). A phase starts from the export of the phase
before it and runs in OUT/<recipe>/<phase>/, where it resumes after an interruption; a phase
that finished leaves ``phase_done.json`` and is skipped on the next run.

Paths in a recipe are relative to the project root (the folder holding ``assets/``)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from engine.codec.autoencoder import AutoencoderConfig
from engine.decoders.diffusion import DEFAULT_RESIDUAL_SIGMA
from engine.decoders.flow import StartNoise
from engine.decoders.score_decoder import TrainedFacts
from engine.decoders.unet import UNetConfig
from engine.errors import SettingsError, WeightsError
from engine.training.realism_objective import RealismConfig

STAGES = ("autoencoder", "postfilter", "diffusion", "flow")
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DONE_FILE = "phase_done.json"


@dataclass(frozen=True)
class Phase:
    """One run of the training loop; the stage's switches default to "off"."""

    name: str
    steps: int
    lr: float
    batch: int = 8
    crop: int = 256
    warmup: int = 500
    time_limit: float | None = None  # seconds; the learning rate anneals over it
    bf16: bool = True
    seed: int = 0
    hardware: str = ""  # what it ran on for the shipped weights (a record, not a requirement)
    # autoencoder
    lambda_range: tuple[float, float] | None = None
    extend: tuple[int, int] = (0, 0)
    synthesis_only: bool = False
    add_context: bool = False
    # decoders
    condition_on_rate: bool = False
    flow_sigma: StartNoise | None = None
    post_filtered: bool = False
    realism: RealismConfig | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], stage: str) -> "Phase":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"phase {data.get('name', '?')!r}: unknown keys {unknown}")
        values = dict(data)
        for key in ("lambda_range", "extend"):
            if key in values:
                values[key] = tuple(values[key])
        if "flow_sigma" in values:
            values["flow_sigma"] = StartNoise.from_json(values["flow_sigma"])
        if "realism" in values:
            values["realism"] = RealismConfig.from_dict(values["realism"])
        try:
            phase = cls(**values)
        except TypeError as exc:
            raise SettingsError(f"phase {data.get('name', '?')!r}: {exc}") from exc
        phase.check(stage)
        return phase

    def check(self, stage: str) -> None:
        autoencoder_only = ("lambda_range", "synthesis_only", "add_context")
        decoder_only = ("condition_on_rate", "post_filtered", "realism")
        used = {f.name for f in fields(self) if getattr(self, f.name) not in (None, False, (0, 0))}
        wrong = (used & set(decoder_only + ("flow_sigma",)) if stage == "autoencoder"
                 else used & set(autoencoder_only + ("extend",)))
        if stage == "diffusion":
            wrong |= used & {"flow_sigma"}
        if stage == "postfilter":
            wrong |= used & set(decoder_only + ("flow_sigma",))
        if wrong:
            raise SettingsError(f"phase {self.name!r}: {sorted(wrong)} cannot apply to the {stage} stage")
        if self.steps < 1 or self.lr <= 0 or self.batch < 1 or self.crop < 16:
            raise SettingsError(f"phase {self.name!r}: steps, lr, batch and crop must be positive (crop ≥ 16)")


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file; see the module docstring."""

    name: str
    stage: str
    description: str
    ships_as: str  # file name under assets/weights/
    architecture: dict[str, Any]
    start: str  # "scratch", "weights:PATH" or "recipe:NAME/PHASE"
    phases: tuple[Phase, ...]
    photos: str = "data/pack"
    autoencoder: str = "assets/weights/autoencoder.safetensors"  # frozen, for the stages after it
    post_filter: str = "assets/weights/postfilter.safetensors"  # for phases that refine its decode
    source: Path | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise SettingsError(f"cannot read the recipe {path}: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path} is not valid TOML: {exc}") from exc
        try:
            stage = data["stage"]
            if stage not in STAGES:
                raise SettingsError(f"{path}: stage must be one of {STAGES}, got {stage!r}")
            phases = tuple(Phase.from_dict(p, stage) for p in data["phase"])
            start = data.get("start", {})
            recipe = cls(name=path.stem, stage=stage, description=data.get("description", ""),
                         ships_as=data["ships_as"], architecture=dict(data.get("architecture", {})),
                         start=start.get("from", "scratch"), phases=phases,
                         photos=data.get("data", {}).get("photos", "data/pack"),
                         autoencoder=start.get("autoencoder", cls.autoencoder),
                         post_filter=start.get("post_filter", cls.post_filter), source=path)
        except KeyError as exc:
            raise SettingsError(f"{path}: missing {exc.args[0]!r}") from exc
        recipe.check()
        return recipe

    def check(self) -> None:
        names = [p.name for p in self.phases]
        if not names or len(set(names)) != len(names):
            raise SettingsError(f"recipe {self.name}: phases need distinct names, got {names}")
        if not (self.start == "scratch" or self.start.startswith(("weights:", "recipe:"))):
            raise SettingsError(f"recipe {self.name}: start.from must be 'scratch', 'weights:PATH' or "
                                f"'recipe:NAME/PHASE', got {self.start!r}")
        self.model_config()  # the architecture's keys must be the model's
        first = self.phases[0]
        if self.start == "scratch" and (any(first.extend) or first.synthesis_only or first.add_context):
            raise SettingsError(f"recipe {self.name}: phase {first.name!r} changes a trained autoencoder "
                                "(extend, synthesis_only, add_context); it cannot be the first phase from scratch")

    def model_config(self) -> AutoencoderConfig | UNetConfig:
        """The architecture a phase from scratch builds (later phases inherit their start's)."""
        values = {k: v for k, v in self.architecture.items() if k != "residual_sigma"}
        try:
            if self.stage == "autoencoder":
                return AutoencoderConfig(**values)
            return UNetConfig.from_dict(values)
        except (TypeError, WeightsError) as exc:
            raise SettingsError(f"recipe {self.name}: bad architecture {self.architecture}: {exc}") from exc

    def facts(self) -> TrainedFacts:
        """A score-based decoder's trained facts from scratch: the std of its Gaussian prior
        (``residual_sigma`` under [architecture]; 0 = the network predicts everything)."""
        return TrainedFacts(residual_sigma=float(self.architecture.get("residual_sigma", DEFAULT_RESIDUAL_SIGMA)))

    def phase(self, name: str) -> Phase:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise SettingsError(f"recipe {self.name} has no phase {name!r}; its phases: "
                            f"{', '.join(p.name for p in self.phases)}")


def project_path(text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else PROJECT_ROOT / path


def phase_dir(out_root: Path, recipe: Recipe, phase: Phase) -> Path:
    return Path(out_root) / recipe.name / phase.name


def export_of(out_root: Path, recipe: Recipe, phase: Phase) -> Path:
    """The weights file a phase exports (and the next phase starts from)."""
    return phase_dir(out_root, recipe, phase) / f"{recipe.stage}.safetensors"


def start_of(recipe: Recipe, index: int, out_root: Path) -> Path | None:
    """What phase ``index`` starts from: the export of the phase before it, or the recipe's start."""
    if index > 0:
        return export_of(out_root, recipe, recipe.phases[index - 1])
    if recipe.start == "scratch":
        return None
    kind, _, where = recipe.start.partition(":")
    if kind == "weights":
        return project_path(where)
    other_name, _, phase_name = where.partition("/")
    recipes_dir = recipe.source.parent if recipe.source is not None else PROJECT_ROOT / "assets" / "recipes"
    other = Recipe.load(recipes_dir / f"{other_name}.toml")
    return export_of(out_root, other, other.phase(phase_name) if phase_name else other.phases[-1])


def is_done(out_root: Path, recipe: Recipe, phase: Phase) -> bool:
    return (phase_dir(out_root, recipe, phase) / DONE_FILE).exists()


def _load_photos(folder: Path, crop: int, log) -> tuple[Any, Any]:
    """(training, validation) photos of ``folder``; a pack from `hfd data pack` is used at its size,
    any other folder of (lossy) photos downscaled 2× first (engine.data.pack.training_downscale)."""
    from engine.data.pack import is_pack, training_downscale
    from engine.data.photos import PhotoSet, split_photos

    downscale = training_downscale(folder)
    train_paths, val_paths = split_photos(folder)
    if not train_paths:
        raise SettingsError(f"no training images found in {folder} (fetch some with `hfd data fetch DIR`, "
                            "then pack them with `hfd data pack`)")
    kind = "a pack from `hfd data pack`" if is_pack(folder) else "photos"
    log(f"{len(train_paths)} training photos, {len(val_paths)} validation photos in {folder} ({kind}, "
        f"downscaled {downscale:g}× for training)")
    return PhotoSet.load(train_paths, downscale, crop), PhotoSet.load(val_paths, downscale, crop)


def run_phase(recipe: Recipe, phase: Phase, start: Path | None, out_root: Path, photos: Path,
              device: str = "auto", threads: int = 0, time_limit: float | None = None, log=print) -> Path:
    """Train one phase (resuming its folder) and mark it done; returns its export."""
    from engine.training.loop import TrainConfig

    out = phase_dir(out_root, recipe, phase)
    if start is not None and not start.exists():
        raise SettingsError(f"phase {phase.name!r} of {recipe.name} starts from {start}, which does not exist "
                            "(run the phase before it first)")
    train, val = _load_photos(photos, phase.crop, log)
    config = TrainConfig(out_dir=out, steps=phase.steps, lr=phase.lr, warmup=phase.warmup, batch=phase.batch,
                         crop=phase.crop, seed=phase.seed, device=device, bf16=phase.bf16, threads=threads,
                         time_limit=time_limit if time_limit is not None else phase.time_limit)
    log(f"{recipe.name} / {phase.name}: {phase.steps} steps × {phase.batch} × {phase.crop}², lr {phase.lr:g}, "
        f"from {start or 'scratch'} → {out}")
    if recipe.stage == "autoencoder":
        from engine.training.autoencoder import train_autoencoder

        path = train_autoencoder(train, val, config, recipe.model_config(), init=start,
                                 lambda_range=phase.lambda_range, extend=phase.extend,
                                 synthesis_only=phase.synthesis_only, add_context=phase.add_context)
    elif recipe.stage == "postfilter":
        from engine.training.decoders import train_post_filter

        path = train_post_filter(project_path(recipe.autoencoder), train, val, config, init=start)
    else:
        from engine.training.decoders import train_decoder

        path = train_decoder(recipe.stage, project_path(recipe.autoencoder), train, val, config,
                             recipe.model_config(), recipe.facts(), init=start,
                             condition_on_rate=phase.condition_on_rate,
                             flow_sigma=phase.flow_sigma,
                             post_filter_path=project_path(recipe.post_filter) if phase.post_filtered else None,
                             realism=phase.realism)
    (out / DONE_FILE).write_text(json.dumps({"phase": phase.name, "export": path.name}) + "\n")
    return path


def run_recipe(recipe: Recipe, out_root: Path, photos: Path | None = None, only: str | None = None,
               start: Path | None = None, device: str = "auto", threads: int = 0,
               time_limit: float | None = None, log=print) -> Path:
    """Run the recipe's phases in order, skipping finished ones; or ``only`` that phase (resuming its
    folder: a finished phase has nothing left to train, delete its folder to train it anew). The
    first phase that runs starts from ``start`` when given, else from the phase before it (or the
    recipe's start). Returns the last export."""
    photos = photos or project_path(recipe.photos)
    indices = [recipe.phases.index(recipe.phase(only))] if only else range(len(recipe.phases))
    path = None
    for index in indices:
        phase = recipe.phases[index]
        if only is None and is_done(out_root, recipe, phase):
            log(f"{recipe.name} / {phase.name}: done earlier, skipped")
            path = export_of(out_root, recipe, phase)
            continue
        first, start = (start, None) if start is not None else (start_of(recipe, index, out_root), None)
        path = run_phase(recipe, phase, first, out_root, photos, device, threads, time_limit, log)
    assert path is not None
    return path

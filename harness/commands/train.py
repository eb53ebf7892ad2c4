"""``harness train``: train a trainable generator adapter (CycleGAN, CUT, FastCUT, SD-LoRA, plug-ins)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def train(
    generator: str = typer.Option(..., "--generator", "-g", help="A trainable generator (cyclegan, cut, fastcut, sd-lora, ...)."),
    out_dir: Path = typer.Option(..., "--out", help="Checkpoint folder (safetensors + config.json)."),
    preset: str = typer.Option("tiny", "--preset", help="Named config: tiny (minutes on a CPU) or paper (the seed paper's settings)."),
    data: str = typer.Option("phantom:train", "--data", help="Training images (the target domain): phantom:train, folder:DIR, echonet:DIR, camus:DIR (its train split unless DIR@split names one). CycleGAN/CUT translate label maps into these images; the checkpoint records this spec and harness run uses it as the default training set."),
    source: Optional[str] = typer.Option(None, "--source", help="CycleGAN/CUT: labelled data whose label maps are the source domain (default: the phantom's label maps), e.g. camus:DIR for CAMUS ground truth."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model (sd-lora): a diffusers folder, a .safetensors file, a hub id in the local cache, or 'tiny'."),
    option: Optional[list[str]] = typer.Option(None, "--option", "-o", help="Override a config field KEY=VALUE, e.g. -o n_epochs=2 (see harness describe generator NAME)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --out."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing checkpoint / resume with a different config."),
    device: str = typer.Option("auto", "--device", help="auto (GPU if available), cpu, cuda, ..."),
) -> None:
    """Train a generator and write its checkpoint (then score it with harness run --checkpoint DIR).

    CycleGAN/CUT learn label map -> echo image: the label maps are the phantom's (or --source's), the images --data's
    training split (e.g. --data echonet:DIR trains on EchoNet-Dynamic frames from the phantom's label maps).

    Example: harness train --generator cyclegan --preset tiny --data phantom:train --out ck/cyclegan
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from generators.base import replace_config
    from harness import registry
    from harness.cli import _parse_kv, err
    from harness.data.base import DataSpec
    from harness.errors import UsageError

    cls = registry.generators.get(generator)
    if not getattr(cls, "trainable", False):
        trainable = [e.name for e in registry.generators.entries(load=True) if e.obj is not None and getattr(e.obj, "trainable", False)]
        raise UsageError(f"generator {generator!r} is not trainable; trainable: {', '.join(trainable) or 'none'}")
    config = cls.preset(preset)
    overrides = _parse_kv(option, "--option", decode=False)
    if overrides:
        config = replace_config(config, overrides, generator)
    spec = DataSpec.parse(data)
    split = spec.split or spec.source.train_split
    spec.source.check_split(split)
    gen = cls(data=spec.source)
    extra = {}
    if source is not None:
        import inspect

        if "label_source" not in inspect.signature(gen.fit).parameters:
            raise UsageError(f"generator {generator!r} takes no --source (only label-map translation models do)")
        from generators.translation import load_source_label_maps

        load_source_label_maps(2, 8, 0, source)  # a bad spec or an unlabelled source fails now, not after loading data
        extra["label_source"] = source
    if base is not None:
        import inspect

        if "base" not in inspect.signature(gen.fit).parameters:
            raise UsageError(f"generator {generator!r} takes no --base")
        extra["base"] = base
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[metrics]}")]
    with Progress(*columns, console=err) as bar:
        tid = bar.add_task(f"training {generator} ({preset})", total=None, metrics="")

        def progress(step: int, total: int, metrics: dict[str, float]) -> None:
            shown = "  ".join(f"{k} {v:.3g}" for k, v in metrics.items() if isinstance(v, (int, float)))
            bar.update(tid, completed=step, total=total, metrics=shown)

        path = gen.fit(spec.source, out_dir, config, resume=resume, force=force, progress=progress, split=split, device=device, **extra)
    err.print(f"checkpoint written to {path}\nscore it: harness run --generator {generator} --checkpoint {path} --task fid --features radiomics")


def register(app: typer.Typer) -> None:
    app.command("train")(train)

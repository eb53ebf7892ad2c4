"""``harness new generator NAME``: write a ready-to-install plug-in package for a new generator adapter.

The package (``DIR/echobench-NAME/``) has a ``pyproject.toml`` declaring the entry point
``echobench.generators: NAME``, the adapter module (the text of ``generators/template/adapter.py`` with the
class and names substituted, so the scaffold never drifts from the template), a test that runs the contract
checker (:mod:`harness.contract`) and a README. Out of the box the adapter samples phantom images as a
clearly marked placeholder, so ``harness validate generator NAME`` passes before any model exists.

The package file templates are kept in this module (not as data files) so they ship with any install.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from harness.errors import UsageError

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{1,39}$")

PYPROJECT = Template('''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "EchoBench generator adapter '$name'"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["echobench"]

# This line makes `harness list generators` and `harness run --generator $name` find the adapter.
[project.entry-points."echobench.generators"]
$name = "$module.adapter:$cls"

[project.optional-dependencies]
test = ["pytest>=8"]

[tool.setuptools.packages.find]
where = ["src"]
''')

INIT = Template('''\
"""EchoBench generator adapter ``$name`` (entry point ``echobench.generators: $name``)."""
''')

TEST = Template('''\
"""The EchoBench adapter contract, run on this adapter (the same checks as `harness validate generator $name`)."""

from harness.contract import assert_generator_contract

from $module.adapter import $cls


def test_adapter_meets_the_echobench_contract():
    # Give checkpoint="path/to/weights.safetensors" once load() reads real weights.
    assert_generator_contract($cls, name="$name")
''')

README = Template('''\
# $dist: EchoBench generator adapter `$name`

Scaffolded by `harness new generator $name`. **PLACEHOLDER:** until you replace `sample()` in
`src/$module/adapter.py`, this adapter returns phantom images with a small tint. Its scores mean nothing.

```console
pip install -e .                                   # registers the entry point echobench.generators: $name
harness list generators                            # shows $name (origin: package $dist)
harness validate generator $name                   # the protocol checks; exit 0 when all required pass
harness run --generator $name --task fid --features radiomics --n 200
harness submit --run RUN_ID --out $name.zip        # a verifiable bundle of that run
pytest tests                                       # the same contract checks, from your own test suite
```

Edit `src/$module/adapter.py`:

1. `load(checkpoint, device)`: build the network, read the checkpoint with `safetensors.torch.load_file`.
2. `sample(n, *, seed, batch_size, conditions, start)`: yield uint8 arrays (B, H, W, 3) for images
   `start .. n-1`; image `i` must depend only on `(seed, i)`: seed one `torch.Generator` per image with
   `image_seed(seed, i)`.
3. `conditions`: the condition names the model accepts (empty for an unconditional model).
4. Set `batch_size_invariant = False` if batched inference cannot give identical images.

See EchoBench's `docs/adding-a-generator.md` for the whole path to the leaderboard.
''')


@dataclass(frozen=True)
class Scaffold:
    """What :func:`new_generator` wrote."""

    root: Path
    name: str
    distribution: str
    module: str
    class_name: str
    files: tuple[Path, ...]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", name) if part)


def adapter_source(name: str, class_name: str) -> str:
    """The text of ``generators/template/adapter.py`` with the class and names substituted."""
    text = (importlib.resources.files("generators.template") / "adapter.py").read_text(encoding="utf-8")
    camel = class_name.removesuffix("Generator")
    required = {"class TemplateGenerator(Generator):": f'class {class_name}(Generator):\n    name = "{name}"'}
    for old, new in required.items():
        if old not in text:  # the template changed shape: a bug to fix here, not a user error
            raise RuntimeError(f"generators/template/adapter.py no longer contains {old!r}; update harness/scaffold.py")
        text = text.replace(old, new)
    text = text.replace("TemplateGenerator", class_name).replace("TemplateConfig", f"{camel}Config")
    text = text.replace(
        "TEMPLATE generator adapter: copy this file, rename the class and the registered name, fill in the TODOs.",
        f"Generator adapter ``{name}`` (scaffolded by ``harness new generator``): fill in the TODOs.",
    )
    text = re.sub(r'description = "TEMPLATE adapter[^"\n]*"',
                  f'description = "{name}: PLACEHOLDER (phantom images) - replace sample() with your model"', text)
    return text


def new_generator(name: str, parent: Path | str = ".") -> Scaffold:
    """Write the package ``parent/echobench-NAME`` for a new generator adapter called ``name``.

    Raises UsageError for an invalid or taken name, or a target folder that exists and is not empty.
    """
    if not NAME_RE.match(name):
        raise UsageError(
            f"generator name {name!r}: use 2-40 characters, lowercase letters, digits, '-' or '_', starting with a letter"
        )
    from harness.registry import generators

    if name in generators:
        raise UsageError(f"generator {name!r} already exists (harness list generators); choose another name")
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise UsageError(f"--dir {parent} is a file, not a folder")
    dist = f"echobench-{name}"
    module = "echobench_" + name.replace("-", "_")
    class_name = f"{_camel(name)}Generator"
    root = parent / dist
    if root.exists() and any(root.iterdir()):
        raise UsageError(f"{root} already exists and is not empty; remove it or choose another --dir")
    subs = {"name": name, "dist": dist, "module": module, "cls": class_name}
    contents = {
        root / "pyproject.toml": PYPROJECT.substitute(subs),
        root / "README.md": README.substitute(subs),
        root / "src" / module / "__init__.py": INIT.substitute(subs),
        root / "src" / module / "adapter.py": adapter_source(name, class_name),
        root / "tests" / "test_contract.py": TEST.substitute(subs),
    }
    try:
        for path, text in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the package under {root}: {exc.strerror or exc}") from exc
    log.info("wrote %s", root)
    return Scaffold(root, name, dist, module, class_name, tuple(contents))

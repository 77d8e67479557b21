"""Every model file takes its shared pieces from ``plugattn.backbones.layers`` only.

A model file may import another model file only where it is a configuration of that sibling's network
class (it builds or subclasses the class and the names that class is configured with); :data:`ALLOWED`
lists each such import. Any other import of a model module -- relative, absolute, or of a name not listed
-- fails, so a piece two models share has to move into ``layers/``.
"""
import ast
import pathlib

import pytest

import plugattn.backbones
from plugattn.backbones import FAMILIES

BACKBONES_DIR = pathlib.Path(plugattn.backbones.__file__).parent
MODEL_FILES = sorted(path for family in FAMILIES for path in (BACKBONES_DIR / family).glob("*.py")
                     if path.name != "__init__.py")
MODEL_MODULES = {f"plugattn.backbones.{path.parent.name}.{path.stem}" for path in MODEL_FILES}

# importer -> {imported model module: the names it may take}
ALLOWED = {
    "plugattn.backbones.cnn.res2net": {"plugattn.backbones.cnn.resnet": {"ResNet"}},
    "plugattn.backbones.cnn.mnasnet": {"plugattn.backbones.cnn.efficientnet": {"EfficientNet", "StageConfig"}},
    "plugattn.backbones.cnn.efficientnetv2": {
        "plugattn.backbones.cnn.efficientnet": {"EfficientNet", "StageConfig", "efficientnet_mbconv"},
    },
    "plugattn.backbones.vit.kvt": {"plugattn.backbones.vit.vit": {"VisionTransformer"}},
    "plugattn.backbones.vit.bvit": {"plugattn.backbones.vit.vit": {"VisionTransformer"}},
    "plugattn.backbones.mlp.cyclemlp": {"plugattn.backbones.mlp.vip": {"VisionPermutator"}},
    "plugattn.backbones.mlp.dynamixer": {"plugattn.backbones.mlp.vip": {"VisionPermutator"}},
}


def module_name(path: pathlib.Path) -> str:
    return f"plugattn.backbones.{path.parent.name}.{path.stem}"


def resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` reads: ``from ..vit.vit import X`` in ``mlp.gfnet`` reads
    ``plugattn.backbones.vit.vit``."""
    if node.level == 0:
        return node.module or ""
    package = importer.split(".")[:-node.level]
    return ".".join(package + ([node.module] if node.module else []))


def model_imports(path: pathlib.Path):
    """(imported model module, names, line) for every import of a model module in ``path``."""
    importer = module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = resolve(importer, node)
            names = {alias.name for alias in node.names}
            if target in MODEL_MODULES:
                yield target, names, node.lineno
            else:  # "from ..vit import vit" names a model module as an attribute of its family package
                for name in names:
                    if f"{target}.{name}" in MODEL_MODULES:
                        yield f"{target}.{name}", {"*"}, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODEL_MODULES:
                    yield alias.name, {"*"}, node.lineno


def test_model_files_found():
    assert len(MODEL_FILES) >= 40 and set(ALLOWED) <= MODEL_MODULES
    for allowed in ALLOWED.values():
        assert set(allowed) <= MODEL_MODULES


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_model_imports_only_layers_or_an_allowed_sibling(path):
    importer = module_name(path)
    allowed = ALLOWED.get(importer, {})
    for target, names, line in model_imports(path):
        extra = names - allowed.get(target, set())
        assert not extra, (
            f"{path.name}:{line} imports {sorted(extra)} from the model module {target}; shared pieces belong "
            f"in plugattn/backbones/layers/ (or, for a configuration of a sibling's network class, in ALLOWED)"
        )


def test_allowed_imports_are_used():
    """Each ALLOWED entry is still needed (a stale one would hide a new import of the same names)."""
    for importer, targets in ALLOWED.items():
        path = BACKBONES_DIR / importer.split(".")[2] / f"{importer.split('.')[3]}.py"
        found = {}
        for target, names, _ in model_imports(path):
            found.setdefault(target, set()).update(names)
        assert found == targets, importer


def test_resolve_reads_relative_imports():
    node = ast.parse("from ..vit.vit import Mlp").body[0]
    assert resolve("plugattn.backbones.mlp.gfnet", node) == "plugattn.backbones.vit.vit"
    node = ast.parse("from .vip import VisionPermutator").body[0]
    assert resolve("plugattn.backbones.mlp.cyclemlp", node) == "plugattn.backbones.mlp.vip"


def test_a_shared_piece_taken_from_a_model_is_caught(tmp_path):
    fake = tmp_path / "mlp" / "fake.py"
    fake.parent.mkdir()
    fake.write_text("from ..vit.vit import VisionTransformer\nfrom ..vit import swin\nfrom ..layers import Mlp\n")
    assert list(model_imports(fake)) == [
        ("plugattn.backbones.vit.vit", {"VisionTransformer"}, 1), ("plugattn.backbones.vit.swin", {"*"}, 2),
    ]

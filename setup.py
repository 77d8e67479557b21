from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="plugattn",
    version="0.1.0",
    description="Plug attention modules into any vision backbone, with fused Triton kernels.",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["plugattn", "plugattn.*"]),
    python_requires=">=3.9",
    # what `pip install -e .` needs for the quick start and the README's first example; numpy because torch
    # warns without it on every command and Triton's interpreter cannot import without it
    install_requires=["torch>=2.4", "einops", "numpy"],
    extras_require={
        "triton": ['triton>=3.0; platform_system=="Linux"'],
        # everything the test suite imports or runs (tests/test_setup.py checks the imports against this)
        "test": [
            "pytest",
            "pytest-xdist",
            "pytest-benchmark",
            "hypothesis",
            "torchvision",
            "timm",
            "matplotlib",
            "onnx",
            "onnxruntime",
            "onnxscript",
        ],
        "bench": ["pytest-benchmark", "matplotlib", "tqdm"],
    },
    entry_points={"console_scripts": ["plugattn=plugattn.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

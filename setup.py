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
    install_requires=["torch>=2.4", "einops"],
    extras_require={
        "triton": ['triton>=3.0; platform_system=="Linux"'],
        "test": ["pytest", "pytest-benchmark", "hypothesis", "pytest-xdist"],
        "bench": ["pytest-benchmark", "matplotlib", "tqdm"],
    },
    entry_points={"console_scripts": ["plugattn=plugattn.cli:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)

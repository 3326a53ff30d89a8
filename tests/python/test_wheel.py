"""`pip wheel .` gives a package that stands alone: every libmnq_*.so inside it ($ORIGIN RUNPATH), installed into a
fresh virtual environment and run from outside the repository without loading anything from the build folder."""
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run in the venv, from a folder outside the repository: a C++ model (models, ops), the analyzer's and trainer's
# bindings imported, and the libraries the process mapped.
SCRIPT = r"""
import sys, torch, mnq
here = sys.argv[1]
assert mnq.__file__.startswith(here), mnq.__file__
m = mnq.models.create("vit_mnist_tiny", bits=8, plan="ivit")
x = torch.randn(4, 1, 28, 28)
with torch.no_grad():
    m.train()(x)  # one batch sets the activation ranges
    y = m.eval()(x)
assert y.shape == (4, 10) and torch.isfinite(y).all()
assert callable(mnq.analyze) and callable(mnq.train)
maps = open("/proc/self/maps").read()
print("\n".join(sorted({l.split()[-1] for l in maps.splitlines() if "libmnq_" in l or "/_mnq." in l})))
"""


def test_wheel_installs_into_a_fresh_venv_and_runs_without_the_build_folder(tmp_path):
    build = Path(os.environ.get("MNQ_BUILD_DIR", ROOT / "build" / "cmake")).resolve()
    env = dict(os.environ, MNQ_BUILD_DIR=str(build))
    env.pop("PYTHONPATH", None)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(dist),
                    str(ROOT)], check=True, env=env, cwd=tmp_path)
    wheel = next(dist.glob("mnq-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    libs = sorted(p.name for p in build.glob("libmnq_*.so"))
    assert "libmnq_ops.so" in libs and "libmnq_models.so" in libs
    for lib in libs:
        assert f"mnq/{lib}" in names, f"{lib} is not in the wheel"
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)  # torch from the system, mnq from the wheel
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)],
                   check=True, env=env, cwd=tmp_path)
    out = subprocess.run([str(py), "-c", SCRIPT, str(env_dir)], check=True, env=env, cwd=tmp_path,
                         capture_output=True, text=True).stdout.split()
    assert out and all(path.startswith(str(env_dir)) for path in out), out  # nothing from the build folder
    assert any(path.endswith("/mnq/libmnq_models.so") for path in out)

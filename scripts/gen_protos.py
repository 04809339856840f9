"""Generate Python code from protos/ into gen/, or check that gen/ is current.

python scripts/gen_protos.py          # regenerate gen/
python scripts/gen_protos.py --check  # exit 1 if gen/ differs from what protos/ produce
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "gen"


def generate(out: Path) -> None:
    """Run protoc (from grpcio-tools, pinned) with the grpc and mypy plugins into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    well_known = str(resources.files("grpc_tools") / "_proto")
    # google/rpc/*.proto ship with googleapis-common-protos, beside its generated modules.
    googleapis = str(Path(status_pb2.__file__).resolve().parents[2])
    # The mypy plugins are console scripts of mypy-protobuf, installed beside this interpreter.
    plugins = Path(sys.executable).parent
    args = [
        "protoc",
        f"--plugin=protoc-gen-mypy={plugins / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={plugins / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTOS}",
        f"-I{well_known}",
        f"-I{googleapis}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Regular packages (not namespace packages) so that mypy and setuptools see them plainly.
    for folder in [out / "support", *(p for p in (out / "support").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
        (folder / "py.typed").touch()


def differences(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ, are missing, or are extra between two trees."""
    found: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        found.extend(f"{prefix}{name} (missing)" for name in cmp.left_only)
        found.extend(f"{prefix}{name} (stale, not produced by protos/)" for name in cmp.right_only)
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        found.extend(f"{prefix}{name} (differs)" for name in [*mismatch, *errors])
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(filecmp.dircmp(expected, actual, ignore=["__pycache__"]), "")
    return sorted(found)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if gen/ is not what protos/ produce")
    check = parser.parse_args().check
    if not check:
        shutil.rmtree(GEN / "support", ignore_errors=True)
        generate(GEN)
        print(f"generated {GEN.relative_to(ROOT)}/")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        diff = differences(Path(tmp) / "support", GEN / "support")
    if diff:
        print("gen/ is stale; run `python scripts/gen_protos.py`:", *diff, sep="\n  ", file=sys.stderr)
        return 1
    print("gen/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The protobuf contract follows Buf's STANDARD lint rules, and the generated code is current."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import FileDescriptor

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def contract_files() -> list[FileDescriptor]:
    """Every protobuf file under protos/, through its generated module."""
    protos = ROOT / "protos"
    names = sorted(
        str(p.relative_to(protos).with_suffix("")).replace("/", ".") + "_pb2" for p in protos.rglob("*.proto")
    )
    return [importlib.import_module(name).DESCRIPTOR for name in names]


FILES = contract_files()


def upper_snake(name: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def test_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_package_matches_directory_with_the_version_last(file: FileDescriptor) -> None:
    directory = str(Path(file.name).parent)
    assert file.package == directory.replace("/", ".")
    assert file.package.split(".")[-1] == "v1"


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_enums_have_prefixed_values_and_an_unspecified_zero(file: FileDescriptor) -> None:
    enums = list(file.enum_types_by_name.values())
    for message in file.message_types_by_name.values():
        enums.extend(message.enum_types)
    for enum in enums:
        prefix = upper_snake(enum.name) + "_"
        assert enum.values[0].number == 0
        assert enum.values[0].name == prefix + "UNSPECIFIED"
        assert all(v.name.startswith(prefix) for v in enum.values)


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_rpcs_have_their_own_request_and_response(file: FileDescriptor) -> None:
    for service in file.services_by_name.values():
        assert service.name.endswith("Service")
        for method in service.methods:
            assert method.input_type.name == f"{method.name}Request"
            assert method.output_type.name == f"{method.name}Response"


def test_lists_paginate_and_creates_are_idempotent() -> None:
    for file in FILES:
        for service in file.services_by_name.values():
            for method in service.methods:
                fields = method.input_type.fields_by_name
                if method.name.startswith("List"):
                    assert {"page_size", "page_token"} <= set(fields.keys())
                    assert "next_page_token" in method.output_type.fields_by_name
                if method.name.startswith("Create"):
                    assert "request_id" in fields

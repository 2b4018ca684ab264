"""The rotation function's archive: reproducible, the handler and its platform's wheels, no secrets."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from bootstrap.rotation import package as rp
from tests.pgserver import _write_tls_files


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEM CA bundle like the RDS one (the real one is downloaded by the user); no server needed,
    so these tests are not `postgres` tests run again on every major."""
    directory = tmp_path_factory.mktemp("ca")
    _write_tls_files(directory)
    return directory / "ca.crt"


def test_built_twice_gives_the_same_bytes_and_hash(tmp_path: Path, ca: Path) -> None:
    lines: list[str] = []
    a = rp.build(output=tmp_path / "a.zip", ca_bundle=ca, out=lines.append)
    b = rp.build(output=tmp_path / "b.zip", ca_bundle=ca, out=lambda s: None)
    assert a.sha256_hex == b.sha256_hex and a.path.read_bytes() == b.path.read_bytes()
    digest = hashlib.sha256(a.path.read_bytes()).digest()
    assert a.source_code_hash == base64.b64encode(digest).decode() and a.sha256_hex == digest.hex()
    assert any(a.sha256_hex in line for line in lines)
    # a change of content changes the hash
    other = tmp_path / "other.pem"
    other.write_bytes(ca.read_bytes() + b"\n")
    assert rp.build(output=tmp_path / "c.zip", ca_bundle=other, out=lambda s: None).sha256_hex != a.sha256_hex


def test_archive_holds_the_handler_and_arm64_py312_wheels_only(tmp_path: Path, ca: Path) -> None:
    archive = rp.build(output=tmp_path / "f.zip", ca_bundle=ca, out=lambda s: None)
    with zipfile.ZipFile(archive.path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names) and len(names) == len(set(names))
        assert all(i.date_time == rp.FIXED_DATE and (i.external_attr >> 16) == 0o100644 for i in infos)
        for module in rp.PROJECT_MODULES:
            assert zf.read(module) == (rp.ROOT / module).read_bytes()
        assert "def lambda_handler" in zf.read("rotation_function/handler.py").decode()
        assert zf.read(rp.CA_BUNDLE_NAME) == ca.read_bytes()
        # the dependencies, by their wheel metadata: for the function's runtime and architecture
        wheel_files = [n for n in names if n.endswith(".dist-info/WHEEL")]
        tags = {n.split("-")[0]: [ln.split(": ", 1)[1] for ln in zf.read(n).decode().splitlines() if ln.startswith("Tag: ")] for n in wheel_files}
        assert set(tags) == {"psycopg", "psycopg_binary", "typing_extensions"}
        assert all(t.startswith("cp312-cp312-manylinux") and t.endswith("_aarch64") for t in tags["psycopg_binary"])
        assert tags["psycopg"] == ["py3-none-any"]
        assert any(n.startswith("psycopg_binary/") and ".cpython-312-aarch64-linux-gnu.so" in n for n in names)
        assert "psycopg/__init__.py" in names
        # nothing else of the project: no stack files, config, state, tests, and nothing of the CLI
        project_files = {n for n in names if n.split("/")[0] in {"bootstrap", "components", "config", "dbcore", "rotation_function", "tests", "policy"}
                         or (n.endswith((".yaml", ".json")) and ".dist-info/" not in n)}
        assert project_files == set(rp.PROJECT_MODULES)
        assert not [n for n in names if n.startswith(("bootstrap/", "config/", "controls/"))], "the function ships nothing of the CLI or its config"
        blob = b"".join(zf.read(n) for n in names if not n.endswith(".so"))
    assert b"Pulumi.dev.yaml" not in blob and b"PGPASSWORD=" not in blob
    assert not any(n.startswith(("psycopg_binary.libs/", "psycopg_binary/")) and "x86_64" in n for n in names)


def test_the_archive_imports_the_handler_without_pulumi_or_config(tmp_path: Path, ca: Path) -> None:
    """The handler's project imports resolve from the archive alone (the .so is for arm64, so the
    driver itself is checked by tags above, not imported here)."""
    import subprocess
    import sys

    archive = rp.build(output=tmp_path / "f.zip", ca_bundle=ca, out=lambda s: None)
    code = (
        "import sys; sys.modules['yaml'] = None; sys.modules['pulumi'] = None; sys.modules['bootstrap'] = None; sys.modules['config'] = None\n"
        "import rotation_function.handler as h; print(h.lambda_handler.__name__)"
    )
    # the archive first on the path, host psycopg behind it (as the arm64 .so cannot load here)
    env = {"PYTHONPATH": str(archive.path), "PATH": "/usr/bin:/bin"}
    site = [p for p in sys.path if p.endswith("site-packages")]
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = {[str(archive.path)]!r}; sys.path += {site!r}\n" + code],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "lambda_handler"


def test_wheel_tag_helpers() -> None:
    name = "psycopg_binary-3.3.9-cp312-cp312-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl"
    assert ("cp312", "cp312", "manylinux_2_28_aarch64") in rp.wheel_tags(name)
    assert rp._fits(name, "arm64") and not rp._fits(name, "x86_64")
    assert not rp._fits("psycopg_binary-3.3.9-cp311-cp311-manylinux_2_28_aarch64.whl", "arm64")


def test_cli_build_rotation_missing_ca_bundle_is_one_sentence(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from bootstrap.cli.main import main

    rc = main(["build-rotation", "--ca-bundle", str(tmp_path / "none.pem"), "--output", str(tmp_path / "x.zip")])
    err = capsys.readouterr().err
    assert rc == 1 and "RDS CA bundle" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.zip").exists()


def test_the_program_references_the_archive_by_path_and_hash(tmp_path: Path, ca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bootstrap.plan.mockgraph import run_stack

    archive = rp.build(output=tmp_path / "f.zip", ca_bundle=ca, out=lambda s: None)
    monkeypatch.setenv("PGHOME_ROTATION_ARCHIVE", str(archive.path))
    (fn,) = run_stack("dev").of_type("aws:lambda/function:Function")
    assert fn.inputs["sourceCodeHash"] == archive.source_code_hash
    code = fn.inputs["code"]
    assert getattr(code, "path", code) == str(archive.path)
    assert fn.inputs["handler"] == rp.HANDLER and fn.inputs["runtime"] == rp.RUNTIME and fn.inputs["architectures"] == [rp.DEFAULT_ARCHITECTURE]

"""Every Python package folder under the mapped roots is listed in pyproject.toml."""
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    found = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((pkg,) + rel))
    assert found == listed, f"missing in pyproject: {found - listed}; stale: {listed - found}"


def test_subpackages_import_as_vmlang():
    import vmlang.backends
    import vmlang.ir
    import vmlang.passes
    import vmlang.stdlib  # noqa: F401
    assert vmlang.ir.dtypes.int3.nbits == 3

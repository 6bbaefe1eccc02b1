import subprocess
import sys

import vmlang as vm
from vmlang.cli import main


def test_version_and_help(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert vm.__version__ in capsys.readouterr().out
    assert main([]) == 0
    assert "types" in capsys.readouterr().out


def test_types_table_lists_every_dtype(capsys):
    assert main(["types"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    for t in vm.all_dtypes():
        assert t.name in rows
    assert rows["float4_e2m1"][-2:] == ["0.5", "0.5"] and rows["float4_e2m1"][-3] == "6"
    assert rows["float8_e4m3"][-3] == "448"


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "vmlang", "types"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "float6_e3m2" in r.stdout

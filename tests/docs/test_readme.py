"""The README's Python example runs as written (from a file, as @vm.jit needs)."""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(tmp_path):
    code = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)[0]
    script = tmp_path / "readme_example.py"
    script.write_text(code)
    env = {**__import__("os").environ, "VMLANG_CACHE_DIR": str(tmp_path / "cache"), "VMLANG_BACKEND": "numpy"}
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "kernel scale: 1 compilation(s)" in r.stdout and "because first call" in r.stdout

"""ansible-lint (profile production, from .ansible-lint) passes on the whole repository."""
import subprocess

from stackenv import BIN, REPO


def test_ansible_lint_production_profile():
    result = subprocess.run([str(BIN / "ansible-lint"), "--nocolor"], cwd=REPO, capture_output=True, text=True,
                            timeout=900, env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(REPO / ".venv")})
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]

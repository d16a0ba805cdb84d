"""No test output or log of the run shows a credential the tests sent.

scripts/test.sh exports MLFLOWREG_TEST_RUN_LOG (everything the steps before
pytest printed) and MLFLOWREG_TEST_LOG_DIR (fixture and nginx logs), and
searches the complete output again after pytest, pytest's own included.
"""

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CHECK = REPO_ROOT / "scripts" / "check-secrets.sh"


def secrets():
    values = {}
    for line in (REPO_ROOT / "tests" / "fixtures" / "test-secrets.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value
    return values


def run_check(*paths):
    return subprocess.run(["bash", str(CHECK), *map(str, paths)], capture_output=True, text=True, timeout=120)


def required_env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run the tests with scripts/test.sh")
    return Path(value)


def test_check_finds_each_planted_secret(tmp_path):
    for name, value in secrets().items():
        log = tmp_path / f"{name}.log"
        log.write_text(f"line one\nAuthorization: Bearer {value}\n")
        result = run_check(tmp_path)
        assert result.returncode == 1, result.stdout
        assert f"{log} contains {name} (1 lines)" in result.stdout
        assert value not in result.stdout + result.stderr
        log.unlink()
    assert run_check(tmp_path).returncode == 0


def test_run_output_and_logs_hold_no_secret():
    run_log = required_env("MLFLOWREG_TEST_RUN_LOG")
    log_dir = required_env("MLFLOWREG_TEST_LOG_DIR")
    state_dir = required_env("MLFLOWREG_SERVER_STATE_DIR")
    # The search can only fail if there is something to search: the earlier
    # steps printed, and the HTTPS tests logged requests with the password.
    assert run_log.stat().st_size > 10_000
    nginx_logs = list(log_dir.glob("nginx-*-access.log"))
    assert nginx_logs, f"no nginx access log in {log_dir}"
    assert any(" mlflowreg [" in path.read_text() for path in nginx_logs), "no request used basic auth"
    assert list(log_dir.glob("fault-proxy-*.log")) or list(log_dir.glob("fault_proxy.py-*.log"))

    result = run_check(run_log, log_dir, state_dir)
    assert result.returncode == 0, result.stdout

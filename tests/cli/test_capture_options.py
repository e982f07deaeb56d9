"""``capture``'s option values are checked before the cluster is touched: a bad one is a usage error (exit 2)."""

from __future__ import annotations

import pytest

from tests.conftest import run


@pytest.mark.parametrize(("args", "message"), [
    (("--duration", "25h"), "Invalid value for --duration: '25h' is longer than 24h"),
    (("--duration", "24h1s"), "is longer than 24h"),
    (("--duration", "0"), "the duration must be positive"),
    (("--duration", "soon"), "'soon' is not a duration"),
    (("--start-timeout", "2h"), "Invalid value for --start-timeout: '2h' is longer than 1h"),
])
def test_bad_durations_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run("capture", "deploy/web", "-n", "shop", "--kubeconfig", "/nonexistent/kubeconfig", *args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert message in result.stderr


def test_the_longest_duration_is_accepted() -> None:
    result = run("capture", "deploy/web", "-n", "shop", "--kubeconfig", "/nonexistent/kubeconfig", "--duration", "24h")
    assert result.exit_code == 3 and "no such kubeconfig file" in result.stderr  # past the option checks


@pytest.mark.parametrize(("args", "message"), [
    (("--parallel", "0"), "Invalid value for --parallel: 0 is below 1"),
    (("--max-pods", "0"), "Invalid value for --max-pods: 0 is below 1"),
])
def test_counts_below_one_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    result = run("capture", "deploy/web", "-n", "shop", "--kubeconfig", "/nonexistent/kubeconfig", *args)
    assert result.exit_code == 2 and message in result.stderr

"""Bad input on the command line: empty strings, other scripts' digits, huge values echoed back."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tui.service import Service
from tests.foundation.test_cli import assert_one_line_error, run
from tests.foundation.test_cli_output import jobs


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--time", "", "--", "true"],
        ["submit", "--project", "", "--", "true"],
        ["submit", "--name", "", "--", "true"],
        ["submit", "--gpu-mem", "", "--", "true"],
        ["submit", "--workdir", " ", "--", "true"],
        ["submit", "--env", "", "--", "true"],
        ["submit", "--after", "", "--", "true"],
        ["cost", "--since", ""],
        ["cost", "--until", ""],
        ["replay", "--since", ""],
        ["queue", "--user", ""],
        ["--home", "", "queue"],
        ["settings", "set", "lab_name", ""],
    ],
)  # fmt: skip
def test_empty_values_are_refused_not_taken_as_not_given(home: Path, args: list[str]) -> None:
    res = run(home, *args)
    assert_one_line_error(res, 2)
    assert "is empty" in res.stderr
    assert jobs(home) == []


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--cpus", "١٢", "--", "true"],  # Arabic-Indic 12
        ["submit", "--gpus", "१", "--", "true"],  # Devanagari 1
        ["submit", "--mem", "٨G", "--", "true"],
        ["submit", "--time", "٢h", "--", "true"],
        ["submit", "--priority", "٥", "--", "true"],
        ["submit", "--retries", "٣", "--", "true"],
        ["queue", "--limit", "١٢"],
        ["cost", "--since", "٧d"],
        ["bench", "--jobs", "١٠"],
        ["bench", "--seeds", "١"],
        ["bench", "--load", "٠.٩"],
        ["bench", "--nodes", "١"],
        ["plan", "--example", "--time-limit", "١"],
        ["train", "--seed", "١"],
        ["train", "--threads", "١"],
    ],
)  # fmt: skip
def test_only_ascii_digits_are_numbers(home: Path, args: list[str]) -> None:
    res = run(home, *args)
    assert_one_line_error(res, 2)
    assert jobs(home) == []


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--cpus", "9" * 100_000, "--", "true"],
        ["submit", "--mem", "x" * 100_000, "--", "true"],
        ["submit", "--project", "p" * 100_000, "--", "true"],
        ["show", "1" * 100_000],
        ["queue", "--state", "s" * 100_000],
        ["queue", "--limit", "z" * 100_000],
        ["submit", "--time", "1h " * 30_000, "--", "true"],
    ],
    ids=["cpus", "mem", "project", "show", "state", "limit", "spaced"],
)
def test_errors_never_echo_a_huge_argument(svc: Service, home: Path, args: list[str]) -> None:
    res = run(home, *args)  # on a ledger (svc made it): the error is about the argument
    assert_one_line_error(res, 2)
    assert len(res.stderr) < 500, res.stderr[:600]
    assert "characters)" in res.stderr or " ... " in res.stderr


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["show", "-1"], "-1"),
        (["cancel", "-5"], "-5"),
        (["logs", "-2.5"], "-2.5"),
        (["settings", "set", "tick_s", "-1"], "-1"),
    ],
)  # fmt: skip
def test_a_negative_value_is_not_called_a_missing_option(
    home: Path, args: list[str], word: str
) -> None:
    """click read `show -1` as the option `-1` and said `No such option '-1'`: the user typed a
    value, and was sent looking for an option."""
    Service.open(home).close()
    res = run(home, *args)
    assert_one_line_error(res, 2)
    assert f"error: {word} is not a valid value here (negative numbers are not)" in res.stderr
    assert "No such option" not in res.stderr


def test_an_element_of_what_is_no_array_says_what_it_is(home: Path) -> None:
    """`show 1.0` on a plain job said `array 1 has no element 0`, and `cancel 99.1` on no job
    at all the same: neither is an array."""
    svc = Service.open(home)
    try:
        plain = svc.submit(command="true")
    finally:
        svc.close()
    array = int(run(home, "submit", "--array", "0-1", "--", "true").stdout.split()[0])
    res = run(home, "show", f"{plain}.0")
    assert_one_line_error(res, 1)
    assert f"job {plain} is not an array, so it has no element 0" in res.stderr
    res = run(home, "cancel", "99.1")
    assert_one_line_error(res, 1)
    assert "job 99 does not exist" in res.stderr
    res = run(home, "show", f"{array}.7")
    assert_one_line_error(res, 1)
    assert f"array {array} has no element 7" in res.stderr
    assert [j["state"] for j in jobs(home)] == ["queued"] * 3  # nothing cancelled


def test_cancel_acts_on_each_job_it_can_and_names_each_it_cannot(home: Path) -> None:
    """`cancel 1 9.3` cancelled nothing when element 9.3 did not exist (while `cancel 1 9`
    cancelled 1): now each id gets its own answer, as `scancel` gives them, and exit 1."""
    svc = Service.open(home)
    try:
        first = svc.submit(command="true")
        second = svc.submit(command="true")
    finally:
        svc.close()
    res = run(home, "cancel", str(first), "99.3", str(second))
    assert res.returncode == 1
    assert "job 99 does not exist" in res.stderr and "Traceback" not in res.stderr
    assert [j["state"] for j in jobs(home)] == ["cancelled", "cancelled"]


def test_submit_after_a_job_that_already_failed_says_it_will_never_run(home: Path) -> None:
    """`--after` a cancelled job was taken in silence and the job cancelled on the next tick:
    now submit says so at once (the job is queued all the same, as sbatch takes it)."""
    svc = Service.open(home)
    try:
        first = svc.submit(command="true")
        svc.cancel([first])
    finally:
        svc.close()
    res = run(home, "submit", "--after", str(first), "--", "true")
    assert res.returncode == 0, res.stderr
    second = int(res.stdout.split()[0])
    assert f"job {first} (to run after) already ended cancelled" in res.stderr
    assert f"job {second} will be cancelled without running" in res.stderr
    assert {j["id"]: j["state"] for j in jobs(home)} == {first: "cancelled", second: "queued"}
    ok = run(home, "submit", "--after", str(second), "--", "true")
    assert ok.returncode == 0 and "already ended" not in ok.stderr

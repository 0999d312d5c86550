"""Parsing and validation of user input: sizes, durations, names, job specs."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lepton_tui.errors import ValidationError
from lepton_tui.validate import (
    check_name,
    format_duration,
    parse_duration_s,
    parse_env,
    parse_size_mb,
    validate_job,
)


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("8G", 8192),
        ("512M", 512),
        ("1.5T", 1572864),
        ("2048", 2048),
        ("1g", 1024),
        ("4GiB", 4096),
        ("1K", 1),
    ],
)
def test_sizes(text: str, mb: int) -> None:
    assert parse_size_mb(text) == mb


@pytest.mark.parametrize(
    "text", ["", "8X", "-1G", "0", "0G", "nan", "inf", "1e9G", "G", "1.2.3G", "8 G B", "100T"]
)
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_size_mb(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("2h", 7200),
        ("1d12h", 129600),
        ("1h30m", 5400),
        ("45m", 2700),
        ("600", 600),
        ("1w", 604800),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "2x", "h", "-5m", "0s", "1h 2q", "nan", "2h3", "400d", "1.2.3h"]
)
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_duration_s(text)


@given(st.integers(min_value=1, max_value=65536), st.sampled_from(["M", "G"]))
def test_size_roundtrip(n: int, unit: str) -> None:
    assert parse_size_mb(f"{n}{unit}") == n * (1024 if unit == "G" else 1)


@given(st.integers(0, 300), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_duration_parts_sum(d: int, h: int, m: int, s: int) -> None:
    total = d * 86400 + h * 3600 + m * 60 + s
    text = f"{d}d{h}h{m}m{s}s"
    if total == 0:
        with pytest.raises(ValidationError):
            parse_duration_s(text)
    else:
        assert parse_duration_s(text) == total


@given(st.text(max_size=20))
def test_parsers_never_crash(text: str) -> None:
    """Any text either parses to a positive finite value or raises ValidationError."""
    for parse in (parse_size_mb, parse_duration_s):
        try:
            value = parse(text)
        except ValidationError:
            continue
        assert value > 0 and math.isfinite(value)


@pytest.mark.parametrize("name", ["gpu 1", "a'b", "a;b", "$(id)", "-x", "", "a" * 64, "é"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValidationError):
        check_name(name)


def test_good_names() -> None:
    assert check_name("gpu-01.lab_a") == "gpu-01.lab_a"


def test_job_spec_defaults_and_fields() -> None:
    spec = validate_job(
        command=["python", "train.py", "--lr", "0.1"], gpus="2", mem="16G", time="2h",
        after=["3,4", "4"], env=["A=1"], project="vision",
    )  # fmt: skip
    assert spec.command == "python train.py --lr 0.1"
    assert (spec.gpus, spec.mem_mb, spec.time_limit_s, spec.after) == (2, 16384, 7200, [3, 4])
    assert spec.env == {"A": "1"} and spec.project == "vision"
    assert validate_job(command="x", gpu_mem="10G").gpu_mem_mb == 10240


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"command": ""}, "command"),
        ({"command": "   "}, "command"),
        ({"command": "x", "cpus": "-1"}, "cpus"),
        ({"command": "x", "cpus": "nan"}, "cpus"),
        ({"command": "x", "gpus": "1e9"}, "gpus"),
        ({"command": "x", "gpus": "1.5"}, "gpus"),
        ({"command": "x", "gpu_mem": "0"}, "gpu-mem"),
        ({"command": "x", "gpus": "2", "gpu_mem": "10G"}, "gpu-mem"),
        ({"command": "x", "priority": "5000"}, "priority"),
        ({"command": "x", "workdir": "relative/dir"}, "workdir"),
        ({"command": "x", "project": "my project"}, "project"),
        ({"command": "x", "after": ["abc"]}, "after"),
        ({"command": "a\x00b"}, "command"),
    ],
)
def test_bad_job_fields(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_job(**kwargs)
    assert info.value.field == field


def test_env_rules() -> None:
    assert parse_env(["X=a=b"]) == {"X": "a=b"}
    for bad in (["X"], ["1X=2"], ["CUDA_VISIBLE_DEVICES=0"], ["LEPTON_JOB_ID=3"]):
        with pytest.raises(ValidationError):
            parse_env(bad)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (5, 120, 3700, 90000)] == ["5s", "2m", "1h01m", "1d1h"]

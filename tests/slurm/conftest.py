"""The real Slurm cluster for these tests: one session-scoped bed (tests/slurmbed.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurmbed import SlurmBed, find_slurm

ACCOUNTING_MIN_JOB_AGE_S = 10  # the accounting bed forgets ended jobs fast: sacct must not


@pytest.fixture(scope="session")
def slurmbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmBed]:
    """munged, slurmctld and slurmd on localhost, node idle; stopped after the session."""
    missing = find_slurm()
    if missing:
        message = f"Slurm is missing: {missing}; scripts/test installs them"
        if os.environ.get("LEPTON_ALLOW_NO_SLURM") == "1":
            pytest.skip(message)
        pytest.fail(message + ", or set LEPTON_ALLOW_NO_SLURM=1 to skip the Slurm tests")
    bed = SlurmBed(tmp_path_factory.mktemp("slurmbed"))
    try:
        bed.start()
        yield bed
    finally:
        bed.close()


@pytest.fixture
def slurm(slurmbed: SlurmBed) -> Iterator[SlurmBed]:
    """The bed with every daemon running and no job of an earlier test left in it."""
    slurmbed.start()  # a test may have stopped slurmctld
    yield slurmbed
    slurmbed.cancel_all(wait_s=15)  # the next test starts on an empty cluster


@pytest.fixture(scope="session")
def slurmbed_accounting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmBed]:
    """A second cluster with accounting: slurmdbd on a private MariaDB, account `lab`, and
    MinJobAge 10 s (slurmctld forgets ended jobs quickly; sacct remembers)."""
    missing = find_slurm(accounting=True)
    if missing:
        message = f"Slurm accounting is missing: {missing}; scripts/test installs them"
        if os.environ.get("LEPTON_ALLOW_NO_SLURM") == "1":
            pytest.skip(message)
        pytest.fail(message + ", or set LEPTON_ALLOW_NO_SLURM=1 to skip the Slurm tests")
    bed = SlurmBed(
        tmp_path_factory.mktemp("slurmbed-acct"),
        accounting=True,
        min_job_age_s=ACCOUNTING_MIN_JOB_AGE_S,
    )
    try:
        bed.start()
        yield bed
    finally:
        bed.close()


@pytest.fixture
def slurm_accounting(slurmbed_accounting: SlurmBed) -> Iterator[SlurmBed]:
    """The accounting bed, every daemon running, no job of an earlier test left in it."""
    slurmbed_accounting.start()
    yield slurmbed_accounting
    slurmbed_accounting.cancel_all(wait_s=15)


# the lab's real users and their loopback sshd, for Slurm hosts in lab mode (test_lab.py)
from tests.lab.conftest import lab, lab_users  # noqa: E402,F401 - fixtures
from tests.lab.userbed import lab_bed, lab_homes, user_keys  # noqa: E402,F401 - fixtures

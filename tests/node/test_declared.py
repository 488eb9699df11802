"""What the TOML file declares is applied at start: partitions (with their policies) first."""

from __future__ import annotations

from pathlib import Path

from hounsfield.node.bootstrap import apply_declared
from hounsfield.settings import PartitionConfig
from tests.conftest import make_archive, make_settings


def test_declared_partitions_are_created_then_updated(tmp_path: Path, database_url: str) -> None:
    clinic = PartitionConfig(
        ae_title="CLINIC_A",
        port=11199,
        description="North",
        duplicate_policy="reject",
        accept_from=["CT_A", "MR_A@10.0.0.7"],
    )
    settings = make_settings(tmp_path, database_url, partitions=[clinic])
    archive = make_archive(settings)
    try:
        apply_declared(archive)
        made = archive.partition("CLINIC_A")
        assert (made.port, made.description, made.duplicate_policy) == (11199, "North", "reject")
        assert made.caller_policy == "any"  # not declared: the node's setting
        assert made.accepts("MR_A", "10.0.0.7") and not made.accepts("MR_A", "10.0.0.8")
        # A changed declaration updates the same partition at the next start.
        settings.partitions[0] = clinic.model_copy(update={"port": None, "caller_policy": "known"})
        apply_declared(archive)
        changed = archive.partition("CLINIC_A")
        assert changed.pk == made.pk
        assert (changed.port, changed.caller_policy) == (None, "known")
    finally:
        archive.close()

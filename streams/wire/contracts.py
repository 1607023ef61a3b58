"""The contract check: do our `.avsc` files still fit what the registry holds?

Each event kind's contract is `schemas/avro/<kind>.avsc`, registered under its
policy's subject (`hotel.<kind>-value`). The registry decides compatibility with the
subject's level (else the global one), so the answer matches what registration will
do, against our embedded registry and an external one alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import avro.errors
import avro.schema

from schemas import AVRO_DIR
from streams.core.exceptions import HubError, RegistryError
from streams.core.kinds import CONTRACT_TOPICS, subject_of
from streams.wire.registry_client import CompatibilityResult, SchemaRegistryClient


class InvalidContract(HubError):
    """A contract file is missing or not valid Avro; the message names the file."""


@dataclass(frozen=True)
class Contract:
    kind: str
    subject: str
    path: Path
    schema_text: str


@dataclass(frozen=True)
class ContractCheck:
    kind: str
    subject: str
    path: Path
    is_new: bool
    """The subject has no live version yet, so any valid schema passes."""
    is_compatible: bool
    level: str
    messages: list[str] = field(default_factory=list)


def load_contract(kind: str, *, schema_dir: Path = AVRO_DIR) -> Contract:
    """Read and validate one contract locally, before the registry sees it."""
    path = schema_dir / f"{kind}.avsc"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidContract(f"cannot read contract {path}: {exc.strerror or exc}") from exc
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidContract(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
        ) from exc
    try:
        avro.schema.parse(text)
    except (avro.errors.AvroException, TypeError, ValueError) as exc:
        raise InvalidContract(f"{path}: not a valid Avro schema: {exc}") from exc
    return Contract(kind, subject_of(kind), path, text)


def load_contracts(
    *, schema_dir: Path = AVRO_DIR, kinds: Iterable[str] | None = None
) -> list[Contract]:
    return [load_contract(kind, schema_dir=schema_dir) for kind in (kinds or CONTRACT_TOPICS)]


async def check_contracts(
    client: SchemaRegistryClient,
    *,
    schema_dir: Path = AVRO_DIR,
    kinds: Iterable[str] | None = None,
) -> list[ContractCheck]:
    """Ask the registry whether each contract could be registered now.

    Args:
        client: any Confluent-compatible registry.
        schema_dir: where `<kind>.avsc` files are (default: the packaged contracts).
        kinds: the contracts to check (default: all of `streams.core.kinds.CONTRACT_TOPICS`).

    Every file is validated before the first request, so a broken file fails fast
    with `InvalidContract` naming it.
    """
    checks: list[ContractCheck] = []
    for contract in load_contracts(schema_dir=schema_dir, kinds=kinds):
        level = await client.get_compatibility(contract.subject)
        if not await client.versions(contract.subject):
            checks.append(
                ContractCheck(contract.kind, contract.subject, contract.path, True, True, level)
            )
            continue
        result = await _compatibility(client, contract)
        checks.append(
            ContractCheck(
                contract.kind,
                contract.subject,
                contract.path,
                False,
                result.is_compatible,
                level,
                result.messages,
            )
        )
    return checks


async def _compatibility(
    client: SchemaRegistryClient, contract: Contract
) -> CompatibilityResult:
    """Against every version the level names; registries without that endpoint get `latest`."""
    try:
        return await client.check_compatibility(contract.subject, contract.schema_text, None)
    except RegistryError as exc:
        if exc.status in (404, 405) and exc.error_code in (None, 404, 405):
            return await client.check_compatibility(contract.subject, contract.schema_text)
        raise


async def register_contracts(
    client: SchemaRegistryClient,
    *,
    schema_dir: Path = AVRO_DIR,
    kinds: Iterable[str] | None = None,
) -> dict[str, int]:
    """Register every contract under its subject; returns subject -> schema id.

    Raises `SchemaIncompatible` at the first contract the registry refuses; the ones
    before it stay registered (registration is idempotent, so rerun after fixing).
    """
    return {
        contract.subject: await client.register(contract.subject, contract.schema_text)
        for contract in load_contracts(schema_dir=schema_dir, kinds=kinds)
    }


__all__ = [
    "Contract",
    "ContractCheck",
    "InvalidContract",
    "check_contracts",
    "load_contracts",
    "register_contracts",
]

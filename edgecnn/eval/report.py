"""What an evaluator's report is to the CLI (:class:`EvalReport`) and the part every report shares.

Each task's report is a frozen dataclass of its own figures (its fields are its ``--json``, in order); the
CLI only reads the headline for ``--fail-under``, the agreement for ``--min-agreement``, the dict and the
terminal tables. :class:`ReportMixin` holds the two of those that do not depend on the task, so a new
evaluator writes only its ``headline`` and ``tables``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class EvalReport(Protocol):
    """What every task's report offers the CLI, which never looks further."""

    @property
    def task(self) -> str: ...

    @property
    def headline(self) -> tuple[str, float]: ...

    @property
    def agreement_pct(self) -> float | None: ...

    def to_dict(self) -> dict[str, Any]: ...

    def tables(self) -> list[Any]: ...


class _Comparison(Protocol):
    @property
    def agreement_pct(self) -> float | None: ...


class _Compared(Protocol):
    @property
    def comparison(self) -> _Comparison | None: ...


class ReportMixin:
    """``agreement_pct`` and ``to_dict`` for a report dataclass with a ``comparison`` field."""

    @property
    def agreement_pct(self: _Compared) -> float | None:
        """The ``--against`` comparison's agreement, or ``None`` when there was no ``--against`` model."""
        return self.comparison.agreement_pct if self.comparison else None

    def to_dict(self: DataclassInstance) -> dict[str, Any]:
        """The report's fields, nested dataclasses included, in declaration order (the ``--json`` shape)."""
        return asdict(self)

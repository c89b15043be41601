"""The executor's registry, definitions and log levels, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from zapjobs_sse.executor import JobContext, JobDefinition, JobRegistry, LogLevel, load_registry


def test_decorator_registers_the_job_with_its_definition() -> None:
    registry = JobRegistry()

    @registry.job("resize", queue="media", max_retries=5, timeout_seconds=30, max_concurrency=2)
    async def resize(ctx: JobContext, data: Any) -> Any:
        """Resizes images."""
        return None

    job = registry.get("resize")
    assert job is not None and job.function is resize
    assert job.definition == JobDefinition(
        "resize", "resize", "media", 5, 30, 2, description="Resizes images."
    )
    assert "resize" in registry and registry.job_types == ["resize"]
    assert registry.queues == ["media"]


def test_a_job_type_cannot_be_registered_twice() -> None:
    registry = JobRegistry()

    async def job(ctx: JobContext, data: Any) -> Any:
        return None

    registry.add(JobDefinition("a", "A"), job)
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(JobDefinition("a", "A again"), job)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_retries", -1), ("timeout_seconds", 0), ("max_concurrency", 0), ("queue", "")],
)
def test_definitions_reject_values_zapjobs_cannot_use(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        JobDefinition("a", "A", **{field: value})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("info", LogLevel.INFO),
        ("WARN", LogLevel.WARNING),
        ("Critical", LogLevel.CRITICAL),
        (0, LogLevel.TRACE),
        (LogLevel.ERROR, LogLevel.ERROR),
    ],
)
def test_log_levels_by_name_number_or_enum(given: Any, expected: LogLevel) -> None:
    assert LogLevel.parse(given) is expected


def test_unknown_log_level_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        LogLevel.parse("loud")


def test_load_registry_names_what_is_wrong() -> None:
    assert isinstance(load_registry("zapjobs_sse.demo:demo_jobs"), JobRegistry)
    with pytest.raises(ValueError, match="module:registry"):
        load_registry("zapjobs_sse.demo")
    with pytest.raises(ValueError, match="cannot import"):
        load_registry("no_such_module_here:registry")
    with pytest.raises(ValueError, match="not a JobRegistry"):
        load_registry("zapjobs_sse.demo:run_demo")

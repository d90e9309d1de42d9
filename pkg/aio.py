"""asyncio helpers for long-running ("eternal") tasks.

`guarded_task` starts a task whose failure is logged at once (not when it is garbage collected)
and whose unexpected return is reported; cancellation is expected and quiet. Every background
loop in istiod goes through it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

_TASKS: set[asyncio.Task[Any]] = set()


def _report(task: asyncio.Task[Any]) -> None:
    _TASKS.discard(task)
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task %s failed", task.get_name(), exc_info=error)
    else:
        log.debug("background task %s finished", task.get_name())


def guarded_task(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _TASKS.add(task)  # keep a strong reference until done
    task.add_done_callback(_report)
    return task


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel tasks and wait for them, without swallowing our own cancellation."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
        except Exception:
            log.exception("task %s failed while stopping", task.get_name())

"""Giving a task's message back to the broker when its result cannot be stored.

Under late acks the worker acks a task's message only after the task has returned, and
celery_sa's backend has stored its result. When the database stays down past the retry
budget, acking would lose the result; the message goes back to the broker instead, and the
task runs again once a worker takes it.

How depends on where the task runs. In a prefork pool child, a
:class:`~celery.exceptions.Reject` raised from the store reaches the worker's main process,
which rejects the message with requeue (Celery 5.5 to 5.7). Where the task runs in the
worker's own process (the solo and threads pools, eventlet, gevent), Celery 5.7 would let
that ``Reject`` escape its pool (the solo pool stops the worker), so the message is
rejected directly, and the store fails as usual.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init
from celery.worker import state

_in_pool_child = False


def _note_pool_child(**kwargs: Any) -> None:
    global _in_pool_child
    _in_pool_child = True


worker_process_init.connect(_note_pool_child, weak=False)


def requeueable(app: Any, request: Any) -> bool:
    """Whether ``request`` is a worker's run of a task it acks late: a message that, not
    acked yet, can go back to the broker."""
    if request is None or getattr(request, "is_eager", False):
        return False
    if getattr(request, "called_directly", True) or not getattr(request, "delivery_info", None):
        return False
    task = app.tasks.get(getattr(request, "task", None) or "")
    return bool(task.acks_late if task is not None else app.conf.task_acks_late)


def in_pool_child() -> bool:
    """Whether this process is a prefork pool's child."""
    return _in_pool_child


def give_back(request: Any) -> bool:
    """Requeue the message of ``request``'s task, if it runs in this process: True if it
    did; False in a pool child, where the worker requeues it on a ``Reject``."""
    if _in_pool_child:
        return False
    for worker_request in list(state.active_requests):
        if worker_request.id == request.id:
            worker_request.reject(requeue=True)
            return True
    return False

"""A backlog is taken in larger batches (issue 15: the drain)."""

from agent.app.daemon import BACKLOG_BATCHES, batch_limit


def test_batches_grow_only_while_more_than_a_batch_is_queued() -> None:
    assert batch_limit(0, 500) == 500
    assert batch_limit(500, 500) == 500
    assert batch_limit(501, 500) == 500 * BACKLOG_BATCHES
    assert batch_limit(10_000, 1) == BACKLOG_BATCHES

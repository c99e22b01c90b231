"""The database volume: `down` keeps the data, `down -v` removes it (runs after test_stack)."""

from __future__ import annotations

from tests.docker.conftest import ComposeStack


def safe_counter(stack: ComposeStack) -> int:
    """The demo's "safe" counter, read through the published port."""
    response = stack.get("/counter")
    assert response.status_code == 200
    return int(response.json()["safe"])


def test_down_keeps_data_and_down_v_removes_it(stack: ComposeStack) -> None:
    stack.ensure_web()
    for _ in range(3):
        response = stack.get("/counter/safe?sleep_ms=0")
        assert response.status_code == 200
    value = safe_counter(stack)
    assert value >= 3

    stack.down(volumes=False)
    stack.up()
    assert safe_counter(stack) == value

    stack.down(volumes=True)
    stack.up()
    assert safe_counter(stack) == 0

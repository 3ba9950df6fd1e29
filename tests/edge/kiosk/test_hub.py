"""The hub between the desk's thread and the pages' event streams: each change reaches a waiting
page, and closing it (the station stops) ends every stream instead of leaving it to be cancelled."""

from __future__ import annotations

import asyncio
import threading

from fpverify.edge.kiosk.display import Hub
from fpverify.edge.kiosk.texts import View


def test_a_change_from_another_thread_reaches_the_page_and_close_ends_the_stream():
    hub = Hub()

    async def page() -> list[int]:
        seen = []
        async for snap in hub.changes(keepalive_s=0.05):
            if snap is None:
                continue
            seen.append(snap[0])
            if len(seen) == 1:
                threading.Thread(target=hub.publish, args=(View(),)).start()
            elif len(seen) == 2:
                threading.Timer(0.1, hub.close).start()
        return seen

    seen = asyncio.run(asyncio.wait_for(page(), 10))
    assert seen == [0, 1]  # the first state, the change; then the stream ended by itself

"""Event ids: time first, so that each new one goes into the unique index's newest pages, then random."""

import re
import time

from events.models import new_event_id

EVENT_ID = re.compile(r"evt_[0-9a-f]{12}[A-Za-z0-9_-]{16}")


def test_ids_sort_by_the_millisecond_they_were_made_and_are_otherwise_random():
    earlier = [new_event_id() for _ in range(100)]
    time.sleep(0.002)
    later = [new_event_id() for _ in range(100)]
    assert all(EVENT_ID.fullmatch(event_id) for event_id in earlier + later)
    assert max(earlier) < min(later)  # whatever the random parts: the index grows at one end
    assert int(later[0][4:16], 16) - int(earlier[0][4:16], 16) >= 2
    assert abs(int(later[0][4:16], 16) - time.time() * 1000) < 60_000
    assert len(set(earlier + later)) == 200 and len({event_id[16:] for event_id in earlier}) == 100

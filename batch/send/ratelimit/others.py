"""Whether anyone else is using the deployment: what separates our charges from other traffic.

The server's ``x-ratelimit-remaining-*`` headers count everyone's requests; our books hold only
ours. The gap is carried as an offset by the limiter either way, but only a reading taken when the
token window held nothing of anyone else's may teach the limiter how the server charges *our*
requests (``scale``, and which measure the charge follows). Otherwise a window left full by a
killed run, a second job, or another app reads as "the server charges us 20x", and the limiter
crawls for minutes after the others have gone.

Two signals, both from replies:

- the first reading of a run: what the server had counted beyond our own opening requests (at the
  larger of their two measures, with a margin) is others' traffic still in the window;
- every reading with request headers: the server's requests in its 10 s window beyond ours.

A reading is *clean* once a whole token window has passed since others were last seen. Unclean
readings may still lower ``scale`` (others only ever add to the server's count, so a ratio below
ours is real), never raise it.
"""

from __future__ import annotations

__all__ = ["OtherTraffic"]

_START_SHARE = 0.05  # of the limit: more than this beyond our opening requests is someone else's
_START_MARGIN = 1.5  # our opening requests may cost more than either measure says
_REQUEST_SLACK = 2  # requests the server may count beyond ours from timing alone


class OtherTraffic:
    """When others' traffic was last seen in the deployment's windows, by our send times."""

    __slots__ = ("seen_at", "observed_at", "requests_seen", "_window", "_request_window", "_started", "_last_read")

    def __init__(self, token_window: float, request_window: float) -> None:
        self._window = token_window
        self._request_window = request_window
        self.seen_at: float | None = None  # send time of the latest reading that showed others (or could have)
        self.observed_at: float | None = None  # the same, only for readings that did show them
        self.requests_seen = 0  # others' requests in the request window at the latest reading
        self._started = False
        self._last_read: float | None = None  # send time of the latest request-window reading

    def first_reading(self, sent_at: float, server_used: float, ours: float, limit: float) -> None:
        """The run's first reading of the token window (``ours``: our opening requests' larger measure)."""
        if self._started:
            return
        self._started = True
        if server_used - _START_MARGIN * ours > _START_SHARE * limit:
            self._see(sent_at)

    def requests(self, sent_at: float, server_requests: int, ours: int, capacity: float) -> None:
        """A reading of the request window: the server's count against ours at the same moment.

        Once others have been seen, time between two readings longer than the request window went
        unwatched: they may have come and gone in it, so it counts as seen."""
        last = self._last_read
        if last is not None and self.seen_at is not None and sent_at - last > self._request_window:
            self._see(sent_at - self._request_window, observed=False)
        if last is None or sent_at > last:
            self._last_read = sent_at
            self.requests_seen = max(0, server_requests - ours)
        if server_requests - ours > max(_REQUEST_SLACK, _START_SHARE * capacity):
            self._see(sent_at)

    def _see(self, sent_at: float, observed: bool = True) -> None:
        if observed and (self.observed_at is None or sent_at > self.observed_at):
            self.observed_at = sent_at
        if self.seen_at is None or sent_at > self.seen_at:
            self.seen_at = sent_at

    def clean(self, sent_at: float) -> bool:
        """No one else's traffic can be in the token window the reading at ``sent_at`` saw."""
        if not self._started:
            return False
        return self.seen_at is None or sent_at > self.seen_at + self._window

"""Live availability: the fresh offer of every window someone watches or asked for,
computed once per change and shared by everyone who watches it.

A window is (service, start, end, staff member or any). Its offer is kept until an
`AvailabilityChanged` event touches it (from any process, through the bus), until time
alone would change it (the first slot passing its minimum notice, or a minute at most),
or while the bus is down (events may be missing then, so nothing cached is trusted).
Watched windows are computed again after a change, a burst of changes within
`COALESCE` seconds costing one computation; unwatched ones are simply forgotten.

A popular window warms once: those asking for a window while it is being computed
await that computation instead of making another, and the whole answer to a query
that only reads availability is made by its first asker for everyone asking meanwhile
(`AnswerFlight`), then kept once. Time (minimum notice, hold expiry, the trust period)
comes from an injected clock (infra/clock.py), which tests move instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from domain import events
from domain.availability import service as availability
from domain.availability.records import Service
from domain.availability.wallclock import from_epoch
from domain.booking import service as booking
from infra.clock import SYSTEM_CLOCK, Clock, Timer

log = logging.getLogger(__name__)

COALESCE = 0.05  # seconds: one computation for a burst of changes
LONGEST_TRUST = timedelta(minutes=1)  # the booking horizon moves with the clock
CACHED_WINDOWS = 2000  # unwatched windows kept for queries
PARALLEL_COMPUTATIONS = 4
TIMER_MARGIN = timedelta(milliseconds=10)  # a timer fires this much after its time

WindowKey = tuple[uuid.UUID, datetime, datetime, uuid.UUID | None]
# (document, operation name, variables as JSON, viewer)
AnswerKey = tuple[str, str | None, bytes, uuid.UUID | None]
KEPT_ANSWERS = 1000
KEPT_ANSWER_BYTES = 32 * 1024 * 1024
# Called after a watched window was computed again; `forced`: even if nothing changed
# (the bus came back and watchers may have missed pushes).
Watcher = Callable[["Window", bool], Awaitable[None]]


@dataclass(eq=False)
class Window:
    key: WindowKey
    service: Service
    offer: availability.Offer | None = None
    version: int = 0
    valid_until: datetime | None = None
    watchers: set[Watcher] = field(default_factory=set)
    stale: bool = True
    forced: bool = False
    refresh: asyncio.Task[None] | None = None
    computing: asyncio.Lock = field(default_factory=asyncio.Lock)
    computations: int = 0  # started so far
    fresh_from: int = 0  # the number of the last computation that ended well
    timers: set[Timer] = field(default_factory=set)

    @property
    def members(self) -> set[uuid.UUID]:
        return {m.id for m in self.offer.staff.values()} if self.offer else set()

    def touched_by(self, change: events.AvailabilityChanged) -> bool:
        service_id, start, end, staff_id = self.key
        if change.organization_id != self.service.organization_id:
            return False
        if change.service_ids is not None and service_id not in change.service_ids:
            return False
        if change.staff_ids is not None:
            named = set(change.staff_ids)
            if staff_id is not None and staff_id not in named:
                return False
            # Whom a window names is known once computed: before, any staff change may
            # touch it (its first computation may have read their calendar already).
            if (
                staff_id is None
                and change.service_ids is None
                and self.offer is not None
                and not named & self.members
            ):
                return False
        reach = timedelta(
            minutes=self.service.duration_minutes
            + self.service.buffer_before_minutes
            + self.service.buffer_after_minutes
        )
        if change.end is not None and change.end <= start - reach:
            return False
        return not (change.start is not None and change.start >= end + reach)


@dataclass(frozen=True, slots=True)
class Answer:
    window: Window
    version: int  # of the window's offer it was computed from
    data: dict[str, object]
    size: int  # bytes, as JSON


# The live windows an answer was made from, each at the version it read.
Reads = Sequence[tuple[Window, int]]


@dataclass(eq=False)
class AnswerFlight:
    """An answer being made by the first to ask for it: those asking meanwhile await
    it instead of making it again (and it is kept once, for all of them)."""

    made: asyncio.Future[tuple[dict[str, object], tuple[tuple[Window, int], ...]] | None]
    joined: int = 0  # askers awaiting it


class LiveAvailability:
    def __init__(
        self,
        reader: AsyncEngine,
        bus_healthy: Callable[[], bool],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.reader = reader
        self.bus_healthy = bus_healthy
        # Minimum notice, hold expiry and the trust period run on it: tests move it.
        self.clock = clock
        self.windows: OrderedDict[WindowKey, Window] = OrderedDict()
        # An event names its organization: only that organization's windows are checked.
        self.by_organization: dict[uuid.UUID, set[Window]] = {}
        self.answer_bytes = 0
        self.answers: OrderedDict[AnswerKey, Answer] = OrderedDict()
        self.asked: OrderedDict[AnswerKey, tuple[Window, int]] = OrderedDict()
        self.flights: dict[AnswerKey, AnswerFlight] = {}
        self._gate = asyncio.Semaphore(PARALLEL_COMPUTATIONS)
        self._telling: set[asyncio.Task[None]] = set()

    # ---- reads -------------------------------------------------------------------------

    async def fresh_window(
        self, service: Service, start: datetime, end: datetime, staff_id: uuid.UUID | None
    ) -> Window:
        """The window with its offer now: kept, or computed (and kept) when not fresh."""
        window = self._window(service, start, end, staff_id)
        await self._fresh(window)
        return window

    def trusted(self, window: Window, version: int) -> bool:
        """Whether the window's offer at `version` is still the fresh one."""
        return window.version == version and self._trusted(window, self.clock.now())

    # ---- whole answers to availability queries -------------------------------------------

    def answer(self, key: AnswerKey) -> dict[str, object] | None:
        """The kept answer to a query that read one window only, while that window is
        unchanged."""
        found = self.answers.get(key)
        if found is None:
            return None
        if not self.trusted(found.window, found.version):
            self._forget_answer(key)
            return None
        self.answers.move_to_end(key)
        return found.data

    def answering(self, key: AnswerKey) -> AnswerFlight | None:
        """The answer to `key` an earlier asker is making now, if any."""
        return self.flights.get(key)

    def start_answer(self, key: AnswerKey) -> AnswerFlight:
        """The caller makes the answer to `key` (no one else is): those asking for it
        meanwhile await it. The caller must `end_answer` it, whatever happens."""
        assert key not in self.flights, "the answer is being made already"
        flight = AnswerFlight(asyncio.get_running_loop().create_future())
        self.flights[key] = flight
        return flight

    def join_answer(self, flight: AnswerFlight) -> None:
        """The caller asks for the answer the flight makes: it is kept for all who did."""
        flight.joined += 1

    async def shared_answer(self, flight: AnswerFlight) -> dict[str, object] | None:
        """The answer the flight makes, once made, if it still holds (every window it
        read unchanged since); None if it failed or no longer holds."""
        made = await asyncio.shield(flight.made)  # an asker leaving stops no one else
        if made is None:
            return None
        data, reads = made
        return data if all(self.trusted(w, v) for w, v in reads) else None

    def end_answer(
        self, key: AnswerKey, flight: AnswerFlight, data: dict[str, object] | None, reads: Reads
    ) -> None:
        """The flight's answer (None: it failed) goes to those who await it; it is kept
        (once) when it read exactly one window."""
        if self.flights.get(key) is flight:
            del self.flights[key]
        made = (data, tuple(reads)) if data is not None and reads else None
        flight.made.set_result(made)
        if data is not None and len(reads) == 1:
            window, version = reads[0]
            self.keep_answer(key, window, version, data, askers=1 + flight.joined)

    def keep_answer(
        self,
        key: AnswerKey,
        window: Window,
        version: int,
        data: dict[str, object],
        askers: int = 1,
    ) -> None:
        """Keeps an answer asked for twice (one after the other, or `askers` at once);
        a kept answer that still holds stays as it is. The oldest go when there are more
        than KEPT_ANSWERS or they weigh more than KEPT_ANSWER_BYTES (as JSON) together."""
        kept = self.answers.get(key)
        if kept is not None:
            if self.trusted(kept.window, kept.version):
                return  # made once: the kept one is this very answer
            self._forget_answer(key)
        if self.asked.pop(key, None) != (window, version) and askers < 2:
            # Asked once so far: remember that, no more (one-off windows cost nothing).
            self.asked[key] = (window, version)
            if len(self.asked) > KEPT_ANSWERS:
                self.asked.popitem(last=False)
            return
        size = len(orjson.dumps(data))
        if size > KEPT_ANSWER_BYTES // 4:
            return
        self.answers[key] = Answer(window, version, data, size)
        self.answer_bytes += size
        while len(self.answers) > KEPT_ANSWERS or self.answer_bytes > KEPT_ANSWER_BYTES:
            self._forget_answer(next(iter(self.answers)))

    def _forget_answer(self, key: AnswerKey) -> None:
        self.answer_bytes -= self.answers.pop(key).size

    def _window(
        self, service: Service, start: datetime, end: datetime, staff_id: uuid.UUID | None
    ) -> Window:
        key = (service.id, start, end, staff_id)
        window = self.windows.get(key)
        if window is None:
            window = Window(key, service)
            self.windows[key] = window
            self.by_organization.setdefault(service.organization_id, set()).add(window)
            self._forget_unwatched()
        else:
            self.windows.move_to_end(key)
        return window

    def _trusted(self, window: Window, now: datetime) -> bool:
        return (
            not window.stale
            and window.offer is not None
            and window.valid_until is not None
            and now < window.valid_until
            and self.bus_healthy()
        )

    async def _fresh(self, window: Window, quiet: Watcher | None = None) -> None:
        """Computes the window when it is not trusted; tells its watchers (except
        `quiet`, which is about to read it anyway) when that changed it."""
        if self._trusted(window, self.clock.now()):
            return
        asked = window.computations
        async with window.computing:
            # A computation that started after we asked is the one we would make.
            if not self._computed_since(window, asked) and not self._trusted(
                window, self.clock.now()
            ):
                before = window.version
                await self._compute(window)
                others = window.watchers - {quiet} if quiet else window.watchers
                if window.version != before and others:
                    # Found changed on a read (the clock, or the bus down): tell them.
                    task = asyncio.create_task(self._tell(window, False, others))
                    self._telling.add(task)
                    task.add_done_callback(self._telling.discard)

    def _computed_since(self, window: Window, asked: int) -> bool:
        """Whether a computation of the window that started after the `asked`th ended
        well, and nothing changed it since (even while nothing is trusted)."""
        return (
            window.fresh_from > asked
            and not window.stale
            and window.valid_until is not None
            and self.clock.now() < window.valid_until
        )

    async def _tell(
        self, window: Window, forced: bool, watchers: set[Watcher] | None = None
    ) -> None:
        await asyncio.gather(
            *(watcher(window, forced) for watcher in list(watchers or window.watchers)),
            return_exceptions=True,
        )

    async def _compute(self, window: Window) -> None:
        _service_id, start, end, staff_id = window.key
        window.stale = False  # a change arriving during the computation marks it again
        window.computations += 1
        number = window.computations
        now = self.clock.now()
        async with self._gate, self.reader.connect() as conn:
            offer = await availability.availability(
                conn, window.service, start, end, staff_id, now, booking.claims_loader(now)
            )
        if offer != window.offer:  # the same offer keeps its version: nothing to push
            window.offer = offer
            window.version += 1
        window.valid_until = _valid_until(window.service, offer, now)
        window.fresh_from = number

    # ---- watching -----------------------------------------------------------------------

    async def watch(
        self,
        service: Service,
        start: datetime,
        end: datetime,
        staff_id: uuid.UUID | None,
        watcher: Watcher,
    ) -> Window:
        """Registers `watcher` for the window's changes; the window, fresh."""
        window = self._window(service, start, end, staff_id)
        # Watched before it is computed: a change meanwhile must not drop the window.
        window.watchers.add(watcher)
        try:
            await self._fresh(window, quiet=watcher)
        except BaseException:
            window.watchers.discard(watcher)
            raise
        self._expire_at(window, window.valid_until)
        return window

    def unwatch(self, window: Window, watcher: Watcher) -> None:
        window.watchers.discard(watcher)

    def changed(self, batch: list[events.Event]) -> None:
        """Events from the bus: windows they touch are computed again (watched) or
        forgotten (unwatched)."""
        for change in batch:
            if not isinstance(change, events.AvailabilityChanged):
                continue
            for window in list(self.by_organization.get(change.organization_id, ())):
                if window.touched_by(change):
                    self._invalidate(window)
                    if change.until is not None:
                        self._expire_at(window, change.until)

    def resync(self) -> None:
        """The bus was down: every watched window is pushed afresh, changed or not."""
        for window in list(self.windows.values()):
            window.forced = True
            self._invalidate(window)

    def _invalidate(self, window: Window) -> None:
        window.stale = True
        if not window.watchers:
            self._drop(window)
        elif window.refresh is None:
            window.refresh = asyncio.create_task(self._refresh(window))

    def _drop(self, window: Window) -> None:
        window.stale = True  # no event reaches it any more: nothing made from it holds
        if self.windows.get(window.key) is window:
            del self.windows[window.key]
        same = self.by_organization.get(window.service.organization_id)
        if same is not None:
            same.discard(window)
            if not same:
                del self.by_organization[window.service.organization_id]
        for timer in window.timers:
            timer.cancel()
        window.timers.clear()

    def _expire_at(self, window: Window, when: datetime | None) -> None:
        """Time alone changes the window then (a hold expires, a slot passes its notice)."""
        if when is None or not window.watchers:
            return

        def fire() -> None:
            window.timers.discard(handle)
            if window.watchers:
                self._invalidate(window)

        handle = self.clock.call_at(when + TIMER_MARGIN, fire)
        window.timers.add(handle)

    async def _refresh(self, window: Window) -> None:
        try:
            await asyncio.sleep(COALESCE)
            before = window.version
            forced, window.forced = window.forced, False
            async with window.computing:
                await self._compute(window)
            self._expire_at(window, window.valid_until)
            if forced or window.version != before:
                await self._tell(window, forced)
        except Exception:
            log.warning("recomputing a live window failed", exc_info=True)
        finally:
            window.refresh = None
        if window.stale and window.watchers:  # changed again meanwhile
            window.refresh = asyncio.create_task(self._refresh(window))

    def _forget_unwatched(self) -> None:
        while len(self.windows) > CACHED_WINDOWS:
            for _key, window in self.windows.items():
                if not window.watchers:
                    self._drop(window)
                    break
            else:
                return


def _valid_until(service: Service, offer: availability.Offer, now: datetime) -> datetime:
    """When time alone changes the offer: the first slot passes its minimum notice (it
    stops being offered), or the horizon moves (capped at a minute)."""
    notice = timedelta(minutes=service.min_notice_minutes)
    until = now + LONGEST_TRUST
    for slot in offer.slots:
        passes = from_epoch(slot.start) - notice
        if passes > now:
            return min(until, passes)
    return until

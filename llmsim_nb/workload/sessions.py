"""Closed-loop multi-turn sessions: each turn's prompt repeats the whole conversation.

A :class:`Session` is a conversation of :class:`Turn` s. Turn ``k`` arrives
``think_time`` seconds after turn ``k - 1`` *finished* (closed loop: the
simulator decides when, so a session is no fixed trace), and its prompt is
the conversation so far, in this order (see :mod:`.content`)::

    [(SYSTEM_ID, system_prompt_len)]          if system_prompt_len > 0
    (user_id(0), u_0), (output_id(0), o_0),   every earlier turn j < k
    ...
    (user_id(k), u_k)                         this turn's user message

so its length is ``system_prompt_len + sum_{j<k} (u_j + o_j) + u_k``, and its
output id is ``output_id(k)``, the id later turns repeat it under.

Ids of a :class:`SessionWorkload`: the system prompt is :data:`SYSTEM_ID`
(``0``), shared by every session (sessions with different lengths share its
first ``min`` tokens). Turn ``k`` of session ``s`` is the workload's turn
``g = (turns of sessions 0 .. s - 1) + k``; its user message is ``1 + 2 g`` and
its output ``2 + 2 g``. So ids are deterministic, unique per (session, turn)
and never equal across sessions or to the system id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._checks import check_int, check_positive, check_rng
from .arrivals import poisson_arrivals
from .content import RequestContent
from .recipe import MAX_GENERATED_REQUESTS
from .request import Request
from .trace import MAX_ARRIVAL_S, MAX_TOKENS

__all__ = ["SYSTEM_ID", "Session", "SessionWorkload", "Turn", "multi_turn_sessions"]

#: Segment id of the system prompt every session of a workload shares.
SYSTEM_ID = 0


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _int_field(where: str, value: object, minimum: int) -> int:
    if not _is_int(value) or not minimum <= value <= MAX_TOKENS:
        raise ValueError(f"{where} = {value!r}; must be an integer from {minimum} to "
                         f"{MAX_TOKENS}")
    return int(value)


@dataclass(frozen=True, slots=True)
class Turn:
    """One user message and the answer to it.

    Parameters
    ----------
    num_user_tokens : int
        Tokens of the new user message, ``>= 1``.
    num_output_tokens : int
        Tokens generated in answer, ``>= 1``.
    think_time : float, optional
        Seconds, finite and ``>= 0``, between the previous turn *finishing*
        and this turn arriving. Turn 0 ignores it (it arrives at the
        session's ``start_at``).

    Raises
    ------
    ValueError
        Naming the field, for a value of the wrong type or range.
    """

    num_user_tokens: int
    num_output_tokens: int
    think_time: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_user_tokens",
                           _int_field("Turn.num_user_tokens", self.num_user_tokens, 1))
        object.__setattr__(self, "num_output_tokens",
                           _int_field("Turn.num_output_tokens", self.num_output_tokens, 1))
        t = self.think_time
        if not _is_real(t) or not math.isfinite(t) or t < 0:
            raise ValueError(f"Turn.think_time = {t!r}; must be a finite number of seconds >= 0")
        object.__setattr__(self, "think_time", float(t))


@dataclass(frozen=True)
class Session:
    """A conversation: when it starts and its turns.

    Parameters
    ----------
    start_at : float
        Arrival of turn 0 in seconds, finite, ``>= 0`` and below 1e8.
    turns : tuple of Turn
        At least one (a list is stored as a tuple).
    system_prompt_len : int, optional
        Tokens of the shared system prompt that starts every prompt, ``>= 0``
        (0: none).

    Raises
    ------
    ValueError
        Naming the field (and turn), also when the last turn's prompt would
        exceed ``2**31 - 1`` tokens.
    """

    start_at: float
    turns: tuple[Turn, ...]
    system_prompt_len: int = 0

    def __post_init__(self) -> None:
        t = self.start_at
        if not _is_real(t) or not math.isfinite(t) or not 0 <= t < MAX_ARRIVAL_S:
            raise ValueError(f"Session.start_at = {t!r}; must be a finite number of seconds "
                             f">= 0 and below {MAX_ARRIVAL_S:g}")
        object.__setattr__(self, "start_at", float(t))
        if not isinstance(self.turns, (tuple, list)) or not self.turns:
            raise ValueError(f"Session.turns must be a non-empty tuple of Turn, got "
                             f"{self.turns!r}")
        turns = tuple(self.turns)
        for k, turn in enumerate(turns):
            if not isinstance(turn, Turn):
                raise ValueError(f"Session.turns[{k}] is a {type(turn).__name__}; expected Turn")
        object.__setattr__(self, "turns", turns)
        object.__setattr__(self, "system_prompt_len",
                           _int_field("Session.system_prompt_len", self.system_prompt_len, 0))
        longest = self.prompt_tokens(len(turns) - 1)
        if longest > MAX_TOKENS:
            raise ValueError(f"Session.turns: turn {len(turns) - 1}'s prompt would hold {longest} "
                             f"tokens; at most {MAX_TOKENS} (2**31 - 1)")

    def prompt_tokens(self, turn_index: int) -> int:
        """Prompt length of turn ``turn_index``: system, all earlier turns, its message."""
        history = sum(t.num_user_tokens + t.num_output_tokens for t in self.turns[:turn_index])
        return self.system_prompt_len + history + self.turns[turn_index].num_user_tokens


@dataclass(frozen=True)
class SessionWorkload:
    """Sessions whose turns the simulator submits as earlier turns finish.

    Parameters
    ----------
    sessions : tuple of Session
        At least one, in non-decreasing ``start_at`` order (a list is stored
        as a tuple).
    source : str, optional
        What made the workload.

    Raises
    ------
    ValueError
        Naming the field and session index.
    """

    sessions: tuple[Session, ...]
    source: str = "in-memory"
    _first_turn: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.sessions, (tuple, list)) or not self.sessions:
            raise ValueError(f"SessionWorkload.sessions must be a non-empty tuple of Session, "
                             f"got {self.sessions!r}")
        sessions = tuple(self.sessions)
        for s, session in enumerate(sessions):
            if not isinstance(session, Session):
                raise ValueError(f"SessionWorkload.sessions[{s}] is a {type(session).__name__}; "
                                 f"expected Session")
            if s and session.start_at < sessions[s - 1].start_at:
                raise ValueError(f"SessionWorkload.sessions[{s}].start_at = {session.start_at!r}"
                                 f" is earlier than sessions[{s - 1}]'s "
                                 f"{sessions[s - 1].start_at!r}; sessions must be sorted by start")
        if not isinstance(self.source, str):
            raise ValueError(f"SessionWorkload.source must be a str, got "
                             f"{type(self.source).__name__}")
        object.__setattr__(self, "sessions", sessions)
        first = np.zeros(len(sessions) + 1, dtype=np.int64)
        np.cumsum([len(s.turns) for s in sessions], out=first[1:])
        object.__setattr__(self, "_first_turn", tuple(first.tolist()))

    @property
    def num_sessions(self) -> int:
        """Number of sessions."""
        return len(self.sessions)

    @property
    def num_requests(self) -> int:
        """Number of turns of all sessions (each is one request)."""
        return self._first_turn[-1]

    def first_arrivals(self) -> np.ndarray:
        """Each session's ``start_at`` (when its turn 0 arrives), sorted, float64 seconds."""
        return np.array([s.start_at for s in self.sessions], dtype=np.float64)

    def max_prompt_tokens(self) -> int:
        """The longest prompt of any turn (the last turn of some session)."""
        return max(s.prompt_tokens(len(s.turns) - 1) for s in self.sessions)

    def _index(self, session_index: object, turn_index: object) -> tuple[int, int]:
        if not _is_int(session_index) or not 0 <= session_index < len(self.sessions):
            raise ValueError(f"SessionWorkload: session_index = {session_index!r}; must be an "
                             f"integer from 0 to {len(self.sessions) - 1}")
        turns = len(self.sessions[session_index].turns)
        if not _is_int(turn_index) or not 0 <= turn_index < turns:
            raise ValueError(f"SessionWorkload: turn_index = {turn_index!r}; session "
                             f"{session_index} has turns 0 to {turns - 1}")
        return int(session_index), int(turn_index)

    def turn_ids(self, session_index: int, turn_index: int) -> tuple[int, int]:
        """``(user message id, output id)`` of a turn (see the module docstring)."""
        s, k = self._index(session_index, turn_index)
        g = self._first_turn[s] + k
        return 1 + 2 * g, 2 + 2 * g

    def content(self, session_index: int, turn_index: int) -> RequestContent:
        """What turn ``turn_index`` of session ``session_index`` prompts with and outputs."""
        s, k = self._index(session_index, turn_index)
        session = self.sessions[s]
        g0 = self._first_turn[s]
        ids: list[int] = []
        lengths: list[int] = []
        if session.system_prompt_len:
            ids.append(SYSTEM_ID)
            lengths.append(session.system_prompt_len)
        for j, turn in enumerate(session.turns[:k]):
            ids += [1 + 2 * (g0 + j), 2 + 2 * (g0 + j)]
            lengths += [turn.num_user_tokens, turn.num_output_tokens]
        ids.append(1 + 2 * (g0 + k))
        lengths.append(session.turns[k].num_user_tokens)
        return RequestContent(tuple(ids), tuple(lengths), 2 + 2 * (g0 + k))

    def request(self, session_index: int, turn_index: int, arrival_at: float,
                request_id: int) -> Request:
        """The :class:`Request` of a turn arriving at ``arrival_at``, with its content.

        Parameters
        ----------
        session_index, turn_index : int
            Which turn.
        arrival_at : float
            When it arrives (seconds): the session's start for turn 0, else
            when the previous turn finished plus this turn's ``think_time``.
        request_id : int
            The id the simulator gives it, ``>= 0``.

        Returns
        -------
        Request
        """
        content = self.content(session_index, turn_index)
        turn = self.sessions[session_index].turns[turn_index]
        return Request(request_id, arrival_at, content.num_prompt_tokens,
                       turn.num_output_tokens, content=content)


def _length_spec(name: str, value: object) -> tuple[int, int]:
    """An int ``n`` as ``(n, n)``, or a ``(low, high)`` pair, both in 1 .. MAX_TOKENS."""
    where = "multi_turn_sessions"
    if _is_int(value):
        lo = hi = value
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_is_int, value)):
        lo, hi = value
    else:
        raise ValueError(f"{where}: {name} must be an integer or a (low, high) pair of integers, "
                         f"got {value!r}")
    if not 1 <= lo <= hi <= MAX_TOKENS:
        raise ValueError(f"{where}: {name} = {value!r}; must have 1 <= low <= high <= "
                         f"{MAX_TOKENS}")
    return int(lo), int(hi)


def multi_turn_sessions(num_sessions: int, turns_per_session: int | tuple[int, int],
                        user_tokens: int | tuple[int, int], output_tokens: int | tuple[int, int],
                        think_time: float, *, session_rate: float, system_prompt_len: int = 0,
                        rng: np.random.Generator) -> SessionWorkload:
    """Generate random multi-turn sessions.

    Parameters
    ----------
    num_sessions : int
        Number of sessions, ``>= 1``.
    turns_per_session : int or (int, int)
        Turns of every session, or a ``(low, high)`` range each session's
        count is drawn from uniformly (inclusive), ``>= 1``.
    user_tokens, output_tokens : int or (int, int)
        Tokens of each user message / answer: fixed, or drawn uniformly from
        ``low .. high`` (inclusive) for every turn; ``>= 1``.
    think_time : float
        Mean seconds between a turn finishing and the next arriving, drawn
        exponentially for every turn after the first; 0 means none.
    session_rate : float
        Sessions start as a Poisson process of this many per second (the
        first at 0 s), finite and ``> 0``.
    system_prompt_len : int, optional
        Tokens of the system prompt every session shares, ``>= 0``.
    rng : numpy.random.Generator
        The only source of randomness. Draw order: session starts, turn
        counts (only for a range), then for all turns in session order the
        user lengths, output lengths (each only for a range) and think times
        (only when ``think_time > 0``; turn 0's draw is stored as 0).

    Returns
    -------
    SessionWorkload
        Sessions in start order; ``source`` names every parameter.

    Raises
    ------
    ValueError
        Naming the argument (also for more than 10 million possible turns).
    """
    where = "multi_turn_sessions"
    rng = check_rng(where, rng)
    n = check_int(where, "num_sessions", num_sessions, 1)
    turns = _length_spec("turns_per_session", turns_per_session)
    user = _length_spec("user_tokens", user_tokens)
    out = _length_spec("output_tokens", output_tokens)
    think = check_positive(where, "think_time", think_time, allow_zero=True)
    rate = check_positive(where, "session_rate", session_rate)
    system = check_int(where, "system_prompt_len", system_prompt_len, 0)
    if n * turns[1] > MAX_GENERATED_REQUESTS:
        raise ValueError(f"{where}: num_sessions * turns_per_session = {n} * {turns[1]} may "
                         f"exceed {MAX_GENERATED_REQUESTS} requests, the most generated")
    starts = poisson_arrivals(rng, n, rate)
    counts = (np.full(n, turns[0], dtype=np.int64) if turns[0] == turns[1]
              else rng.integers(turns[0], turns[1] + 1, size=n))
    total = int(counts.sum())

    def draw(spec: tuple[int, int]) -> list[int]:
        if spec[0] == spec[1]:
            return [spec[0]] * total
        return rng.integers(spec[0], spec[1] + 1, size=total).tolist()

    users, outputs = draw(user), draw(out)
    thinks = rng.exponential(think, size=total).tolist() if think > 0 else [0.0] * total
    sessions = []
    at = 0
    for s in range(n):
        c = int(counts[s])
        sessions.append(Session(float(starts[s]), tuple(
            Turn(users[at + k], outputs[at + k], thinks[at + k] if k else 0.0) for k in range(c)),
            system))
        at += c
    source = (f"multi_turn_sessions(num_sessions={n}, turns_per_session={turns_per_session!r}, "
              f"user_tokens={user_tokens!r}, output_tokens={output_tokens!r}, think_time="
              f"{think:g} s, session_rate={rate:g}/s, system_prompt_len={system})")
    return SessionWorkload(tuple(sessions), source)

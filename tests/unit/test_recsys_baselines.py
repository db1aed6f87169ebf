"""Baselines on tiny sessions: each one's defining behaviour."""

from __future__ import annotations

import numpy as np

from flashrec.recsys.baselines import VSKNN, Pop, SessionPop
from flashrec.recsys.covisit import pair_matrix, sequential_rules, transitions
from flashrec.recsys.data import from_prefixes

SESSIONS = [np.array(s) for s in ([1, 2, 3], [1, 2, 4], [5, 6], [5, 6], [5, 6], [2, 3])]


def test_pop_and_spop() -> None:
    pop = Pop().fit(SESSIONS, 8)
    assert pop.order(2).tolist() == [2, 5]
    s = SessionPop().fit(SESSIONS, 8).score(from_prefixes([np.array([3, 1, 3])]))
    row = s.toarray()[0]
    assert row.argmax() == 3 and row[1] > 0 and row[2] == 0


def test_transitions_and_rules_follow_order() -> None:
    m = pair_matrix(SESSIONS, 8, max_distance=2)
    assert m[1, 2] == 2.0 and m[1, 3] == 0.5 and m[2, 1] == 0
    t = transitions().fit(SESSIONS, 8).score(from_prefixes([np.array([1])])).toarray()[0]
    assert t.argmax() == 2
    r = sequential_rules().fit(SESSIONS, 8).score(from_prefixes([np.array([5])])).toarray()[0]
    assert r.argmax() == 6


def test_vsknn_recommends_items_of_similar_sessions() -> None:
    scores = VSKNN(k=10).fit(SESSIONS, 8).score(from_prefixes([np.array([1, 2])])).toarray()[0]
    assert scores[3] > 0 and scores[4] > 0 and scores[6] == 0
    # The last shared item decides the decay: a session sharing only '2' still counts.
    assert scores[3] > scores[4]  # 3 follows 2 in two sessions, 4 in one

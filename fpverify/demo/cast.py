"""Who plays in the demo: card holders with synthetic fingers, a delegate, an impostor, someone not
enrolled, and the staff accounts of the registry."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PASSWORDS = {"supervisor": "demo-supervisor-1", "auditor": "demo-auditor-1", "admin": "demo-sysadmin-1",
             "enroller": "demo-enroller-1"}
ROLES = {"supervisor": "supervisor", "auditor": "auditor", "admin": "sysadmin", "enroller": "enroller"}
NAMES = ["王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊", "赵丽", "黄强", "周婷", "吴军", "徐娜", "孙杰", "马超",
         "朱琳", "胡斌", "郭颖", "何平", "林涛", "罗欣", "高峰", "郑浩"]
ENROLLED_FINGER = 2  # ISO position: right index
# impressions 0-2 of a finger are its enrollment presses: the demo enrolls 3, quicker to watch; stations
# ask for edge.presses.ENROLL_PRESSES (5) unless told otherwise
ENROLL_PRESSES = 3


@dataclass
class Person:
    name: str
    seed: int
    national_id: str
    card: str | None = None  # the card they hold (None: impostor, delegate)
    delegate_id: str | None = None
    _master: Any = None
    _k: Iterator[int] = field(default_factory=lambda: itertools.count(ENROLL_PRESSES))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def master(self):
        with self._lock:
            if self._master is None:
                from fpverify.matcher.synth import generate_finger

                self._master = generate_finger(self.seed)
            return self._master

    def press(self, k: int | None = None):
        """One impression (uint8 image) of this person's finger: the k-th, or the next unused one."""
        from fpverify.matcher.synth import impression

        with self._lock:
            k = next(self._k) if k is None else k
        return impression(self.master(), k, seed=self.seed)[0]

    def presses(self, n: int = 3) -> Iterator:
        """The next `n` impressions, made as they are needed (a hand at the sensor)."""
        return (self.press() for _ in range(n))

    def poor_presses(self, n: int = 3) -> Iterator:
        return (poor_press(self, k) for k in range(n))


def poor_press(person: Person, kind: int):
    """A press the quality gate refuses: only the fingertip touching, or a dry, faint finger."""
    import numpy as np

    image = person.press()
    if kind % 2 == 0:
        out = np.full_like(image, 255)
        rows = image.shape[0] // 5
        out[-rows:] = image[-rows:]
        return out
    return (255 - (255 - image.astype(np.float32)) * 0.08).astype(np.uint8)


@dataclass
class Cast:
    holders: list[Person]
    delegate: Person  # son of holders[2]; picks up medicine for them (代取药)
    impostor: Person
    unenrolled: Person  # holds a card, has not enrolled yet

    def inpatients(self) -> list[Person]:
        """On ward 3; the last of them is not in their bed at the rounds."""
        return self.holders[-4:]

    def card_holders(self) -> list[Person]:
        """Everyone with a card of their own (registered at the registry)."""
        return [*self.holders, self.unenrolled]

    def enrollment_order(self) -> list[Person]:
        """Those the morning's script needs first, then the others."""
        h = self.holders
        first = [h[0], h[1], *self.inpatients()[:3], h[2], self.delegate, h[3], h[4], h[5]]
        return first + [p for p in h if p not in first]


def make_cast(n_holders: int, seed: int = 0) -> Cast:
    holders = [Person(NAMES[i % len(NAMES)], seed * 1000 + i + 1, f"11010119{60 + i:02d}0101{i:04d}",
                      card=f"DEMO-{1001 + i}") for i in range(n_holders)]
    return Cast(
        holders=holders,
        delegate=Person("王建国", seed * 1000 + 500, "110101198801019999"),
        impostor=Person("冒名者", seed * 1000 + 900, "110101199909099999"),
        unenrolled=Person(NAMES[n_holders % len(NAMES)] + "(未录入)", seed * 1000 + 700, "110101195505055555",
                          card=f"DEMO-{1001 + n_holders}"),
    )

"""How many presses of a finger enrollment takes: one definition for the station, the kiosk, the HIS
API and the wire contract (`edge.wire.EnrolledFinger` enforces the bounds). A module of its own so
that the command line reads it without importing the wire models (pydantic, a third of its start).

Five by default: against three, they cut the desk's false rejects after one retry at fmr_1e-4 from
1.7 to 0.4 % (held out, sensor condition; docs/matcher.md "Desk"), for two more presses once at
enrollment. Three is the least the registry takes.
"""

ENROLL_PRESSES = 5
MIN_PRESSES = 3
MAX_PRESSES = 10

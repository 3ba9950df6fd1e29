"""`fpverify demo`: the whole system on one machine, on embedded defaults.

registry (FastAPI + SQLite + MQTT ingest + dashboard) <- MQTT broker (private Mosquitto, or the
embedded amqtt broker, MQTT 3.1.1 only) <- three stations (registration desk, pharmacy, inpatient
ward), each a real edge.station.Station driving a SimulatedSensor on a pty through the real
pyfingerprint driver and pressing synthetic fingers from matcher.synth, and each serving its kiosk
page (the patient's screen, Chinese first) on a free port of 127.0.0.1, linked from the summary.

Card holders are registered, consented and enrolled through the registry's HTTP API as an
enroller (edge.enroll.Enroller), devices registered by the sysadmin through the API. Then a day is
played: honest patients, someone using another person's card (no_match -> alert, card retained),
poor presses, a proxy pickup by a delegate, bedside rounds with one inpatient missing, and the
pharmacy losing its network (a relay in front of the broker is cut) and catching up from its
outbox when it comes back.

Modules: cast (the people and the staff logins), settings (the stations' and the registry's
settings, the demo's decision threshold), services (the registry in this process, an API client,
the network relay), stations (the stations and the hand at their sensors), scenario (the day),
system (all of it put together: Demo), summary (logins and the closing summary), cli (the command).
"""

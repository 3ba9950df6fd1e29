"""A provisioned station as its own process (run inside a network namespace by the network-cut
fault test): python -m tests.server.trust.station_proc CONFIG SECONDS INTERVAL DRAIN_TIMEOUT.
Records a signed result every INTERVAL seconds for SECONDS, then waits until the outbox is empty.
Prints one JSON line: {"recorded": n, "pending": n, "errors": [...]}. Exit 0 when drained."""

from __future__ import annotations

import json
import logging
import sys
import time


def main(argv: list[str]) -> int:
    from fpverify.edge.cache import Store, parse_key
    from fpverify.edge.config import load_config
    from fpverify.edge.mqtt_link import MqttLink
    from fpverify.edge.signing import ResultSigner
    from tests.server.trust.helpers import SigningOutbox, result

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg_path, seconds, interval, drain = argv[0], float(argv[1]), float(argv[2]), float(argv[3])
    cfg = load_config(cfg_path)
    store = Store.open(cfg.cache.path, parse_key(cfg.cache.key.read_bytes()))
    dev = cfg.station.device_id
    outbox = SigningOutbox(store, ResultSigner.from_files(cfg.mqtt.key_file, dev, cfg.mqtt.cert_file))
    link = MqttLink(cfg.mqtt, dev, outbox)
    link.start()
    errors = []
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        outbox.add(result(device_id=dev, site_id=cfg.station.site_id))
        link.notify()
        n += 1
        time.sleep(interval)
    drained = link.wait_drained(drain)
    if link.last_error:
        errors.append(link.last_error)
    print(json.dumps({"recorded": n, "pending": outbox.count(), "errors": errors}), flush=True)
    link.stop()
    store.close()
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

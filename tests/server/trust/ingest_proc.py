"""The registry's ingest worker (with the ResultVerifier) as its own process, for the SIGKILL fault
test: python -m tests.server.trust.ingest_proc DB_URL BROKER_PORT CA_DIR CERT KEY. Prints 'ready'."""

from __future__ import annotations

import signal
import sys
import threading


def main(argv: list[str]) -> None:
    from fpverify.server.db import Database
    from fpverify.server.ingest.consumer import IngestWorker
    from fpverify.server.trust.verify import ResultVerifier
    from tests.server.helpers import make_settings

    url, port, ca_dir, cert, key = argv
    settings = make_settings(url, mqtt_port=int(port), mqtt_version="5", mqtt_tls_ca=f"{ca_dir}/ca.crt",
                             mqtt_tls_cert=cert, mqtt_tls_key=key, ingest_batch_size=20)
    db = Database(settings=settings)
    worker = IngestWorker(db, settings, verifier=ResultVerifier.for_registry(ca_dir)).start()
    if not worker.wait_ready(60):
        print("not ready", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    done.wait()
    worker.stop()


if __name__ == "__main__":
    main(sys.argv[1:])

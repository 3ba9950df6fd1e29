"""The ingest's work queue on RabbitMQ: several registry workers share one durable queue.

Stations keep publishing MQTT (QoS 1) to RabbitMQ's MQTT plugin, which routes each PUBLISH to the
`amq.topic` exchange (topic `a/b` becomes routing key `a.b`) and sends the PUBACK only once the
queues it reached have confirmed it. A message no queue takes is acknowledged and dropped, so the
bindings must cover every device id (dots included: measured, see routing_key). The results and status routing keys are bound to one
quorum queue (`ingest_queue`), durable and replicated across a cluster's nodes: a broker restart
keeps it, with what was queued and what was delivered but not acknowledged. Every worker consumes
it over AMQP 0-9-1 (pika); the broker hands each message to one consumer at a time and gives
again whatever a lost connection left unacknowledged, so a duplicate is possible and the
writer's unique result id absorbs it.

Threads: pika's BlockingConnection is not thread-safe, so this source owns it in one thread; the
writer thread acknowledges through `add_callback_threadsafe`, after the batch has committed.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import pika
import pika.credentials
import pika.exceptions

from fpverify.edge import wire
from fpverify.server.core.config import Settings
from fpverify.server.ingest.writer import Message

log = logging.getLogger(__name__)

EXCHANGE = "amq.topic"  # where the MQTT plugin publishes
TAG_SPAN = 1 << 48  # a Message's mid packs the connection number above the channel's delivery tag


def routing_key(topic: str) -> str:
    """The routing key RabbitMQ 3.10's MQTT plugin gives a topic: "/" becomes "." and a dot stays,
    so a device id with dots ("desk.3") spans several words of the key."""
    return topic.replace("/", ".")


# "#" (any number of words), not "*": a device id may hold dots
BINDINGS = tuple(f"{routing_key(wire.TOPIC_ROOT)}.#.{kind}" for kind in ("results", "status"))


def topic_of(key: str) -> str:
    """The MQTT topic back from a routing key (what the writer checks against the payload's device).
    Later plugins swap "." and "/" instead of keeping dots: both read back the same."""
    prefix = routing_key(wire.TOPIC_ROOT) + "."
    for kind in ("results", "status"):
        suffix = "." + kind
        if key.startswith(prefix) and key.endswith(suffix) and len(key) > len(prefix) + len(suffix):
            device = key[len(prefix):-len(suffix)].replace("/", ".")
            return f"{wire.TOPIC_ROOT}/{device}/{kind}"
    return key  # not ours: the writer dead-letters it by its topic


class AmqpSource:
    """Consumes `settings.ingest_queue` (declared quorum, bound to the results and status keys) and
    puts each delivery on `deliver` as a `Message` whose mid is connection number x TAG_SPAN + delivery tag."""

    def __init__(self, settings: Settings, deliver: Callable[[Message], None], name: str):
        if settings.ingest_amqp_url is None:
            raise ValueError("FPVERIFY_INGEST_AMQP_URL is needed with FPVERIFY_INGEST_BROKER=rabbitmq")
        self.settings = settings
        self.deliver = deliver
        self.name = name
        url = settings.ingest_amqp_url.get_secret_value()
        try:
            self.params = pika.URLParameters(url)
        except ValueError as exc:
            raise ValueError(f"FPVERIFY_INGEST_AMQP_URL is not a usable AMQP URL: {exc}") from None
        self.params.heartbeat = 30
        self.params.client_properties = {"connection_name": name}
        if url.startswith("amqps://"):
            # the registry CA and the registry's client certificate (the MQTT TLS files): mutual TLS,
            # and with no user in the URL the certificate is the login (RabbitMQ's EXTERNAL)
            self.params.ssl_options = pika.SSLOptions(self._tls(), self.params.host)
            if urlsplit(url).username is None:
                self.params.credentials = pika.credentials.ExternalCredentials()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._conn: pika.BlockingConnection | None = None
        self._channel = None
        self._generation = 0  # delivery tags are per channel: acks for an older one are dropped
        self._thread: threading.Thread | None = None

    def _tls(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=str(s.mqtt_tls_ca) if s.mqtt_tls_ca else None)
        if s.mqtt_tls_cert:
            ctx.load_cert_chain(str(s.mqtt_tls_cert), str(s.mqtt_tls_key) if s.mqtt_tls_key else None)
        return ctx

    def start(self) -> AmqpSource:
        self._thread = threading.Thread(target=self._run, name=f"ingest-amqp-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def ack(self, batch: list[Message]) -> int:
        """Acknowledge a committed batch (any thread). Per connection, one `multiple` ack of the
        highest tag: the writer takes messages in delivery order, so every lower tag of that
        connection was in this batch or an earlier one. Returns how many were acknowledged."""
        conn = self._conn
        gen = self._generation
        tags = [m.mid % TAG_SPAN for m in batch if m.mid // TAG_SPAN == gen]
        if not tags or conn is None:
            return 0  # their connection is gone: the broker gives them again (duplicates)
        top = max(tags)

        def do_ack() -> None:
            if self._generation == gen and self._channel is not None and self._channel.is_open:
                self._channel.basic_ack(top, multiple=True)

        try:
            conn.add_callback_threadsafe(do_ack)
        except Exception:  # noqa: BLE001 - closed meanwhile: redelivered later
            return 0
        return len(tags)

    # ---- the connection's thread ----------------------------------------------------------------

    def _run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._consume()
                delay = 0.5
            except (pika.exceptions.AMQPError, OSError) as exc:
                self.ready.clear()
                log.error("AMQP broker %s:%s unreachable or closed (%s); check FPVERIFY_INGEST_AMQP_URL; "
                          "retrying in %.1fs", self.params.host, self.params.port, exc.__class__.__name__, delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, 10)  # a restarting node is back within seconds
            finally:
                self._channel = None
                conn, self._conn = self._conn, None
                if conn is not None and conn.is_open:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001, S110 - closing a broken connection
                        pass

    def _consume(self) -> None:
        conn = pika.BlockingConnection(self.params)
        ch = conn.channel()
        q = self.settings.ingest_queue
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        for binding in BINDINGS:
            ch.queue_bind(q, EXCHANGE, binding)
        ch.basic_qos(prefetch_count=self.settings.ingest_receive_maximum)
        self._generation += 1
        gen = self._generation
        self._conn, self._channel = conn, ch

        def on_message(channel, method, properties, body) -> None:
            self.deliver(Message(topic_of(method.routing_key), bytes(body), gen * TAG_SPAN + method.delivery_tag, 1))

        ch.basic_consume(q, on_message)
        self.ready.set()
        log.info("consuming %s on %s:%s", q, self.params.host, self.params.port)
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.2)
        conn.process_data_events(time_limit=0)  # the last acknowledgements

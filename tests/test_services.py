"""The private service fixtures themselves work (everything else relies on them)."""

import socket

import psycopg
import sqlalchemy


def test_mosquitto_accepts_connections(mosquitto):
    with socket.create_connection((mosquitto.host, mosquitto.port), timeout=2):
        pass


def test_postgres_fresh_database(pg_url):
    engine = sqlalchemy.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    engine.dispose()
    assert psycopg  # the driver the URL names is installed

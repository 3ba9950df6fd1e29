"""fpverify registry: FastAPI app, SQLAlchemy models, MQTT ingestion, template feed, audit, backups."""

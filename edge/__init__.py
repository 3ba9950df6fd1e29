"""The station: sensor drivers, encrypted template cache, durable outbox, MQTT link, workflow."""

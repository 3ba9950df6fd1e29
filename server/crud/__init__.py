"""Data operations of the registry. Every write goes through here and appends an audit row in the
same transaction (server.audit.record); callers commit. Functions take the acting principal's name
as `actor` ("alice", "device:ward-1", "system", "cli")."""

"""Domain errors raised by crud functions; the API maps them to HTTP statuses."""


class DomainError(Exception):
    """`msgid`: an English message id, with {placeholders} filled from `values`. str() is the English
    text (the API's); the dashboard shows the translated id formatted with the same values."""

    status_code = 400

    def __init__(self, msgid: str = "", **values) -> None:
        self.msgid, self.values = msgid, values
        super().__init__(msgid.format(**values) if values else msgid)


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422


class Denied(DomainError):
    status_code = 403

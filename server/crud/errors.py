"""Domain errors raised by crud functions; the API maps them to HTTP statuses."""


class DomainError(Exception):
    status_code = 400


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Invalid(DomainError):
    status_code = 422


class Denied(DomainError):
    status_code = 403

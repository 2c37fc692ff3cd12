"""The one exception the command line turns into exit code 2."""

__all__ = ["AuditError", "first_line"]


class AuditError(Exception):
    """The model or an option cannot be audited; the message is one line naming the cause."""


def first_line(message: object) -> str:
    """The first line of a message or an exception's (other libraries' run to pages); an
    exception without one is named by its type."""
    text = str(message).strip()
    if text:
        return text.splitlines()[0]
    return type(message).__name__ if isinstance(message, BaseException) else "unknown error"

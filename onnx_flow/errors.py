"""The one exception the command line turns into exit code 2."""

__all__ = ["AuditError"]


class AuditError(Exception):
    """The model or an option cannot be audited; the message is one line naming the cause."""

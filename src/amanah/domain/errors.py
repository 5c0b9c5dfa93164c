"""One rooted hierarchy of the errors Amanah raises on purpose.

    AmanahError
     +-- ValidationError        input that cannot be accepted (bad amount, empty message, ...)
     |    +-- InvalidAmount      an amount that is negative, zero where not allowed, or not a number
     +-- NotFound               an entity the caller named does not exist (or is not theirs)
     |    +-- UnknownCustomer    no customer with that username or id
     +-- Forbidden              the caller may not do this (wrong owner, no consent, ...)
     |    +-- CardBlocked        the card was reported lost or stolen; its status is final
     +-- ConfigurationError     settings or agreement files that cannot be used; start-up stops
     +-- TransientError         a dependency failed in a way worth retrying

Each class says when it is raised. Adapters translate these into HTTP statuses or polite replies;
nothing here ever reaches a user as a traceback.
"""

from __future__ import annotations


class AmanahError(Exception):
    """Base of every error Amanah raises deliberately."""


class ValidationError(AmanahError):
    """Raised when input is malformed or out of range (empty or oversized message, bad field)."""


class InvalidAmount(ValidationError):
    """Raised when an amount is not a finite positive number in the currency's minor units."""


class NotFound(AmanahError):
    """Raised when a named entity does not exist, or is not visible to the caller."""


class UnknownCustomer(NotFound):
    """Raised when no customer matches the given username or id."""


class Forbidden(AmanahError):
    """Raised when the caller is authenticated but not allowed to do what it asked."""


class CardBlocked(Forbidden):
    """Raised when a status change is asked for a card already reported lost or stolen (final)."""


class ConfigurationError(AmanahError):
    """Raised at start-up when settings or agreement files are missing, broken or contradictory."""


class TransientError(AmanahError):
    """Raised when a dependency failed in a way that may succeed if retried."""

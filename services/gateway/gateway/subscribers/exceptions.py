from mlife_shared.errors import Conflict, NotFound, ServiceUnavailable, Unprocessable


class SubscriberNotFound(NotFound):
    """No such subscriber."""


class SubscriberNameTaken(Conflict):
    """A subscriber of that name exists: choose another name or delete it first."""


class InvalidSubscription(Unprocessable):
    """The subjects, filter or replay point cannot be provisioned."""


class BusUnavailable(ServiceUnavailable):
    """NATS cannot be reached from the gateway now: try again."""


class StreamMissing(Conflict):
    """A stream the subjects live in does not exist yet: its service has not started; try again once it has."""

from mlife_shared.errors import Conflict, NotFound, Unprocessable


class AlertRuleNotFound(NotFound):
    """No such alert rule."""


class AlertNotFound(NotFound):
    """No such alert."""


class InvalidAlertRule(Unprocessable):
    """The rule's parameters do not fit its kind."""


class AlertResolvedAlready(Conflict):
    """The alert is resolved already."""

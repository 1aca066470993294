from mlife_shared.errors import Conflict, NotFound, ServiceUnavailable, Unauthorized, Unprocessable


class LabellingTaskNotFound(NotFound):
    """No such labelling task."""


class InvalidLabellingTask(Unprocessable):
    """The labelling task cannot be created as asked."""


class LabellingTaskClosed(Conflict):
    """The labelling task is already completed."""


class LabelStudioUnavailable(ServiceUnavailable):
    """Label Studio did not answer as expected; retry later."""


class WebhookRejected(Unauthorized):
    """The webhook's shared-secret header is missing or wrong."""

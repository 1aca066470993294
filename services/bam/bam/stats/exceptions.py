from mlife_shared.errors import Unprocessable


class InvalidGroupBy(Unprocessable):
    """`group_by` must be one attribute, or two different ones separated by a comma."""

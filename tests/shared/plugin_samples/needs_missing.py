import mlife_no_such_module  # noqa: F401 - the missing dependency this sample exists for


class Plugin:
    name = "needy"

"""Names every service accepts alike. A function name travels through every service: BAM files badcases under
it, DAM names the function's badcase test set after it (`badcase test set: <function>`), MTT and MSM put it in
tasks, models and URLs (`/api/msm/functions/{function}/thresholds`). One rule, checked where a name enters."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

FUNCTION_MAX_CHARS = 100
# Printable, no slash or backslash (it is a path segment); spaces inside are fine ("expression recognition"),
# blanks around it are dropped.
FUNCTION_PATTERN = r"^[^\x00-\x1f\x7f/\\]+$"

FunctionName = Annotated[str, StringConstraints(strip_whitespace=True), Field(
                                    min_length=1, max_length=FUNCTION_MAX_CHARS, pattern=FUNCTION_PATTERN,
                                    description="The ML system function, e.g. 'digits' or 'expression recognition': "
                                                "up to 100 printable characters, no '/' or '\\'")]

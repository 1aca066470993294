"""The built-in converters (the `mlife.converters` entry points of DAM's pyproject.toml): CSV, TSV, JSON, XML,
Label Studio tasks, COCO, Pascal VOC and YOLO. Each speaks only `mlife_shared.plugins.seams.converters`, as an
outside converter does."""

"""Example MLife plugins, one per seam kind that a team most often adds (docs/plugins.md):

- `createml` (mlife.converters): Apple Create ML's object-detection JSON, imported into and exported from DAM
  documents;
- `aspect-ratio` (mlife.cleaners): flags images far wider than tall (or the reverse), on upload and on a document;
- `top-k` (mlife.evaluators): scores an ONNX classifier as top-k accuracy in an MTT testing task.

Installed next to MLife (`pip install --no-deps examples/plugins`, then restart the services), they are found
through the entry points in pyproject.toml and used exactly as the built-ins are."""

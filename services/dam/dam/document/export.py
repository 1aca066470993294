"""Writing a document version through a converter (the `converters` plugins): DAM's rows and files as the plain
values of the seam, the body and the name it is downloaded under. What a converter refuses (a table as COCO, a
box in fractions of an image of unknown size) is a 422."""

from __future__ import annotations

from dataclasses import dataclass

from dam.document.exceptions import InvalidDocument
from dam.document.formats.labelstudio import data_field, file_url, prediction
from dam.document.models import TABLE, DocumentRow
from dam.file.models import File
from mlife_shared.plugins.seams.converters import ConversionError, Converter, ExportDocument, FileInfo, Row

__all__ = ["Exported", "data_field", "file_info", "file_url", "prediction", "row_of", "write"]


@dataclass(frozen=True)
class Exported:
    body: bytes
    media_type: str
    filename: str


def file_info(f: File | None) -> FileInfo | None:
    if f is None:
        return None
    return FileInfo(md5=f.md5, media_type=f.media_type, size=f.size, width=f.width, height=f.height,
                    duration=f.duration, sample_rate=f.sample_rate, fps=f.fps)


def row_of(r: DocumentRow, f: File | None) -> Row:
    return Row(md5=r.md5, path=r.path, annotation=r.annotation, label=r.label, extra=r.extra, features=r.features,
               file=file_info(f), id=str(r.id))


def write(conv: Converter, *, name: str, version: int, kind: str, columns: list[str], features: list[str],
          label_column: str | None, rows: list[tuple[DocumentRow, File | None]], base_url: str) -> Exported:
    doc = ExportDocument(name=name, version=version, kind="table" if kind == TABLE else "standard", columns=columns,
                         rows=[row_of(r, f) for r, f in rows], features=features, label_column=label_column,
                         base_url=base_url)
    try:
        body = conv.write(doc)
    except ConversionError as exc:
        where = f"row {exc.row}: " if exc.row is not None else ""
        raise InvalidDocument(f"{where}{exc.message}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - what a converter cannot write is said, not a 500
        raise InvalidDocument(f"the {conv.name} converter could not write the document: "
                              f"{type(exc).__name__}: {exc}"[:1000]) from exc
    filename = f"{name}-v{version}.{conv.extension}".replace('"', "").replace("\r", "").replace("\n", "")
    return Exported(body, conv.media_type, filename)

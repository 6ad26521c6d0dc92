"""Read and validate a user's raw (v0) CSV: bytes in, a typed frame in the raw schema out.

The raw file is New York State's "Hospital Inpatient Cost Transparency" CSV (~155 MB, ~1.1 M
rows), possibly fetched from a URL or S3 by the caller. This package is pure (it knows nothing
about Snakemake): :func:`read_raw_csv` either returns a frame with exactly ``RAW_COLUMNS`` plus a
:class:`RawReadReport`, or raises :class:`RawDataError` with one paragraph that says what is
wrong and where (file line numbers, 1-based, the header being line 1).

Its parts, in the order a file goes through them:

* :mod:`.sniff` -- the file's first bytes: empty, HTML / XML / JSON / binary, BOM. The file is
  memory-mapped and only its first chunk is inspected in Python: decoding 155 MB in Python
  would cost more than the whole parse.
* :mod:`.header` -- the header line: where it is, the delimiter, the schema columns' positions.
* :mod:`.parse` -- ``pyarrow.csv`` parses every needed column as a string, so that a single bad
  value cannot abort the read and every problem can be reported with its line; rows with the
  wrong number of fields are captured. If the data is not valid UTF-8 it is Latin-1 (the only
  other encoding seen for this export) and is transcoded and parsed again.
* :mod:`.values` -- numbers are converted with vectorised pyarrow casts (a tolerant path for
  ``$`` and thousands separators only where the fast cast fails) and checked with numpy masks:
  the good-data path never loops over rows in Python.
* :mod:`.report` -- only when something is wrong: exact line numbers, reason counts, examples,
  and the message. Line numbers assume one physical line per record (the real export has no
  quoted newlines); if a valid quoted value does span lines they are marked approximate.
* :mod:`.read` -- :func:`read_raw_csv`, which runs these steps.
"""

from drg_workflow.raw_input.messages import RawDataError
from drg_workflow.raw_input.read import read_raw_csv
from drg_workflow.raw_input.report import RawReadReport
from drg_workflow.raw_input.sniff import check_csv_head

__all__ = ["RawDataError", "RawReadReport", "check_csv_head", "read_raw_csv"]

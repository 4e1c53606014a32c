"""Fuzzing the delimited reader, the generic CSV adapter and mapping files with hostile input.

Every generated file must be read without a traceback (a whole-file problem
may only raise the library's own errors), every data line must be read or
quarantined exactly once, and every line left intact must come back exactly as
written. The dataset adapters are fuzzed in `test_fuzz_datasets.py`.
"""

import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from multiembed.config import DataConfig
from multiembed.data.adapters.generic import ColumnMapping, CsvAdapter, load_generic_adapter
from multiembed.data.prepare import prepare
from multiembed.data.quarantine import Quarantine
from multiembed.data.text import read_delimited
from multiembed.errors import ConfigError, DataError, InputFileError
from tests.data.hostile_helpers import check_lines, fuzz, hostile_file, text_field


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    if not batches:
        return pa.table({"_file": pa.array([], pa.string()), "_row": pa.array([], pa.int64())})
    return pa.Table.from_batches(batches)


# -- the reader itself --------------------------------------------------------------


@st.composite
def _dialect(draw: st.DrawFn) -> dict:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|", "::"]))
    return {
        "delimiter": delimiter,
        "quoting": draw(st.booleans()) and len(delimiter) == 1,
        "encoding": draw(st.sampled_from(["utf-8", "latin-1"])),
        "has_header": draw(st.booleans()),
        "width": draw(st.integers(2, 5)),
    }


@fuzz(700)
@given(dialect=_dialect(), data=st.data())
def test_reader_reads_every_intact_line_and_accounts_for_every_other(dialect, data):
    width, enc = dialect["width"], dialect["encoding"]
    cell = text_field(delimiter=dialect["delimiter"], quoting=dialect["quoting"], encoding=enc)
    rows = data.draw(
        st.lists(st.lists(cell, min_size=width, max_size=width), min_size=1, max_size=8)
    )
    if data.draw(st.integers(0, 19)) == 0:  # now and then a field past csv's 128 KB cap
        rows[0][0] = "x" * 140_000
    names = [f"c{k}" for k in range(width)]
    columns = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=width, unique=True))
    with tempfile.TemporaryDirectory() as tmp:
        written = data.draw(
            hostile_file(
                Path(tmp) / "log.txt",
                rows,
                header=names if dialect["has_header"] else None,
                delimiter=dialect["delimiter"],
                quoting=dialect["quoting"],
                encoding=enc,
            )
        )
        q = Quarantine()
        try:
            batches = list(
                read_delimited(
                    written.path,
                    table="engagements",
                    quarantine=q,
                    columns=columns,
                    delimiter=dialect["delimiter"],
                    encoding=enc,
                    header=None if dialect["has_header"] else names,
                    quoting=dialect["quoting"],
                    batch_rows=3,
                )
            )
        except InputFileError:
            assert written.may_refuse
            return
        read = check_lines(
            written, _table(batches), q, quoting=dialect["quoting"], table="engagements"
        )
    for line, fields in written.intact.items():
        assert [read[line][c] for c in columns] == [fields[names.index(c)] for c in columns]


# -- the generic CSV adapter, through prepare ---------------------------------------

_ACTIONS = {"c": "click", "s": "save", "b": "purchase"}


@st.composite
def _id(draw: st.DrawFn, *, integer: bool) -> str:
    if integer and draw(st.integers(0, 4)):
        n = draw(st.sampled_from([0, 1, 2, 3, 7, 42, -1, -2, 10**17]))
        return draw(st.sampled_from([str(n), f" {n} ", f"+{n}", f"0{n}"]))
    return draw(st.sampled_from(["a", "b7", "x y", "é", "-1", "1.5", "", " 3"]))


@st.composite
def _timestamp(draw: st.DrawFn) -> str:
    t = draw(st.integers(1_600_000_000, 1_600_900_000))
    return draw(
        st.sampled_from(
            [
                str(t),
                f"{t}.5",
                str(t * 1000),  # milliseconds
                "2020-09-14",
                "2020-09-14T12:26:40Z",
                "2020-09-14 12:26:40+02:00",
                "2020-09-14T12:26:40.250-0700",
                "2020-02-30",
                "soon",
                "-5",
                "",
            ]
        )
    )


@st.composite
def _engagement(draw: st.DrawFn, integer: bool, sep: str) -> list[str]:
    topics = draw(st.lists(st.sampled_from(["news", "sport", " tech ", "é"]), max_size=3))
    return [
        draw(_id(integer=integer)),
        draw(_id(integer=integer)),
        draw(_timestamp()),
        draw(st.sampled_from([*_ACTIONS, "zap", ""])),
        sep.join(topics),
    ]


@fuzz(250)
@given(data=st.data())
def test_generic_csv_adapter_and_prepare(data):
    delimiter = data.draw(st.sampled_from([",", ";", "\t", "|"]))
    encoding = data.draw(st.sampled_from(["utf-8", "latin-1"]))
    integer = data.draw(st.booleans())
    in_file = data.draw(st.booleans())  # header row in the file, or in the mapping
    names = ["who", "what", "when", "how", "tags"]
    sep = ";" if delimiter == "|" else "|"
    mapping = ColumnMapping(
        user="who",
        item="what",
        ts="when",
        action="how",
        action_map=_ACTIONS,
        item_topics="tags",
        topic_separator=sep,
        delimiter=delimiter,
        encoding=encoding,
        header=None if in_file else tuple(names),
        integer_ids=integer,
    )
    rows = data.draw(st.lists(_engagement(integer, sep), min_size=1, max_size=10))
    with tempfile.TemporaryDirectory() as tmp:
        written = data.draw(
            hostile_file(
                Path(tmp) / "log.csv",
                rows,
                header=names if in_file else None,
                delimiter=delimiter,
                quoting=True,
                encoding=encoding,
            )
        )
        q = Quarantine()
        try:
            raw = CsvAdapter(mapping, batch_rows=4).read(written.path, q)
            engagements = _table(list(raw.engagements()))
            items = _table(list(raw.items()))
        except InputFileError:
            assert written.may_refuse
            return
        read = check_lines(written, engagements, q, quoting=True, table="engagements")
        for line, fields in written.intact.items():
            got = read[line]
            assert [got["user_id"], got["item_id"], got["ts"]] == fields[:3]
            assert got["action"] == _ACTIONS.get(fields[3], fields[3])
        derived = items.column("item_id").to_pylist() if items.num_rows else []
        assert set(derived) == {r["item_id"] for r in read.values()}
        _prepare_accounts(CsvAdapter(mapping, batch_rows=4), written, Path(tmp), integer)


def _prepare_accounts(adapter, written, tmp: Path, integer_ids: bool) -> None:
    """prepare ends in a report or a library error; its engagement rows are the lines read."""
    q = Quarantine()
    try:
        report = prepare(
            adapter.read(written.path, q), tmp / "out", config=DataConfig(), quarantine=q
        )
    except (DataError, InputFileError):
        return
    for table in report["tables"].values():
        assert table["rows_in"] == table["rows_kept"] + table["rows_quarantined"]
    assert report["tables"]["engagements"]["rows_in"] == written.n_lines
    kept = pq.read_table(tmp / "out" / "engagements.parquet")
    assert kept.num_rows == report["tables"]["engagements"]["rows_kept"]
    if integer_ids:  # the service's padding value is never an integer raw id
        for name in ("users", "items"):
            raw = pq.read_table(tmp / "out" / "vocab" / f"{name}.parquet").column("raw")
            assert "-1" not in raw.to_pylist()


# -- mapping files ------------------------------------------------------------------

_JUNK = st.one_of(
    st.text(max_size=6), st.integers(-3, 3), st.floats(), st.lists(st.integers(), max_size=2)
)


@st.composite
def _key(draw: st.DrawFn, valid: st.SearchStrategy) -> object:
    """Mostly a value that the key accepts, sometimes anything at all."""
    return draw(valid if draw(st.sampled_from(range(8))) else _JUNK)


_MAPPING_KEYS = {
    "user": _key(st.just("u")),
    "item": _key(st.just("i")),
    "ts": _key(st.just("t")),
    "action": _key(st.sampled_from(["a", ""])),
    "default_action": _key(st.sampled_from(["click", "view", "poke"])),
    "action_map": _key(
        st.dictionaries(st.sampled_from(["c", "v", "x"]), st.sampled_from(["click", "view", "zap"]))
    ),
    "topic_separator": _key(st.sampled_from(["|", ";", ""])),
    "delimiter": _key(st.sampled_from([",", ";", "\t", '"', "\n", ";;", ""])),
    "encoding": _key(st.sampled_from(["utf-8", "latin-1", "cp1252", "base64", "utf-16", "nope"])),
    "header": _key(
        st.sampled_from([["u", "i", "t", "a"], ["u", "i", "t", "u"], ["u", "i"], "u,i,t,a", [1, 2]])
    ),
    "integer_ids": _key(st.booleans()),
    "items_file": _key(st.sampled_from(["items.csv", "absent.csv"])),
    "name": _key(st.just("shop")),
    "colour": st.just("blue"),  # not a key
}


@st.composite
def _mapping_doc(draw: st.DrawFn) -> dict:
    """A mapping file's keys: the three required ones usually there, the others now and then."""
    doc = {}
    for key, value in _MAPPING_KEYS.items():
        odds = 19 if key in ("user", "item", "ts") else 1 if key == "colour" else 5
        if draw(st.sampled_from(range(20))) < odds:
            doc[key] = draw(value)
    return doc


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + "}"


#: What the log written below holds: a mapping that names anything else may fail to read it.
_AS_WRITTEN = {
    "user": "u",
    "item": "i",
    "ts": "t",
    "action": "a",
    "header": ["u", "i", "t", "a"],
    "items_file": "items.csv",
}


@fuzz(300)
@given(doc=_mapping_doc(), junk=st.one_of(st.none(), st.none(), st.binary(max_size=20)))
def test_mapping_file_gives_an_adapter_or_a_config_error(doc, junk):
    text = "".join(f"{k} = {_toml(v)}\n" for k, v in doc.items()).encode()
    with tempfile.TemporaryDirectory() as tmp:
        toml = Path(tmp) / "shop.toml"
        toml.write_bytes(text if junk is None else junk + text)
        try:
            adapter = load_generic_adapter("csv", toml, batch_rows=10)
        except ConfigError as err:
            refused = str(err)
        else:
            refused = ""
        if refused:
            assert str(toml) in refused  # the message names the mapping file
            return
        # A mapping that loads reads a log written the way it says, or explains why not.
        sep = doc.get("delimiter", ",")
        rows = ["u,i,t,a", "1,2,1600000000,c", "3,2,1600000001,v"]
        if "header" in doc:
            rows = rows[1:]
        text = "\n".join(r.replace(",", sep) for r in rows) + "\n"
        (Path(tmp) / "log.csv").write_bytes(text.encode(doc.get("encoding", "utf-8")))
        (Path(tmp) / "items.csv").write_text("i\n2\n")
        try:
            raw = adapter.read(Path(tmp) / "log.csv", Quarantine())
            engagements = pa.Table.from_batches(list(raw.engagements()))
            list(raw.items())
        except InputFileError:  # a column or file the mapping names is not there
            assert not all(doc.get(k, v) == v for k, v in _AS_WRITTEN.items())
            return
        assert engagements.num_rows == 2
